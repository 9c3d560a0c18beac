"""`make help` names every target the README documents: a new user reads one and runs the other."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import ROOT


def test_make_help_lists_every_target_the_readme_documents() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`make ([a-z-]+)", readme))
    assert {"run", "test", "deploy-web", "docs-check"} <= documented
    shown = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    listed = {line.split()[1] for line in shown.splitlines() if line.startswith("make ")}
    assert documented <= listed, f"make help leaves out {sorted(documented - listed)}"

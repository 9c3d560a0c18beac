"""The repository stands alone: no doc, code or data file points at a file outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The design brief the project started from lives beside the repository, not in it: the docs state
# what they need of it themselves.
OUTSIDE = re.compile(r"DESIGN\.md|\.\./shared/DESIGN|/work/shared")


def test_no_tracked_file_refers_to_a_file_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    found = []
    for name in files.split():
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".json", ".yaml", ".yml", ".js", ".html", ".toml", ".txt"}:
            continue
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line) and name != "tests/unit/test_standalone.py":
                found.append(f"{name}:{number}: {line.strip()[:100]}")
    assert not found, "\n".join(found)

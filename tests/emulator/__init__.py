"""Emulator tests. A moto patch is shown on plain moto in a fresh process (:func:`run_scenario`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_scenario(module: str, argument: str, env: dict[str, str]) -> Any:
    """``python -m <module> <argument>`` from the repository's root with ``env``; the JSON its last
    line prints."""
    done = subprocess.run(
        [sys.executable, "-m", module, argument],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])

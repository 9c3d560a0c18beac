"""Least privilege, measured (D50): for each role, each granted action and resource, and whether a run
used it.

A stack run with enforcement on and ``MARKETPLACE_IAM_USAGE=<dir>`` writes, when it stops, what each
of its roles was granted (the policies moto holds, from the transformed template) and what moto
authorised and refused for it (:mod:`marketplace_local.moto_patches.iam_enforcement`). This module
merges those files (a test run has one stack per worker) and prints, per role, every statement's
actions with the resources it names, each marked used or never used, and every refusal.
``make iam-report`` runs the workflow and end-to-end tests that way and prints the report.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

USAGE_VARIABLE = "MARKETPLACE_IAM_USAGE"


def write_usage(directory: Path, iam: Any, role_names: list[str], name: str) -> Path:
    """The granted statements of ``role_names`` (read from moto) and this process's recorded calls."""
    from marketplace_local.moto_patches import iam_enforcement

    granted: dict[str, list[dict[str, Any]]] = {}
    for role in role_names:
        statements = granted.setdefault(role, [])
        for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
            for statement in _as_list(document.get("Statement")):
                statements.append({"policy": policy_name, **statement})
    document = {
        "granted": granted,
        "used": sorted(iam_enforcement.used),
        "denied": sorted(set(iam_enforcement.denied)),
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"usage-{name}.json"
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _pattern(text: str) -> re.Pattern[str]:
    """An IAM wildcard (``*`` any run, ``?`` one character) as a regular expression."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text) + r"\Z")


def report(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """Per role name: one row per (statement, action) with its resources and the calls that used it."""
    granted: dict[str, list[dict[str, Any]]] = {}
    used: set[tuple[str, str, str]] = set()
    denied: set[tuple[str, str, str]] = set()
    for path in sorted(directory.glob("usage-*.json")):
        document = json.loads(path.read_text())
        granted.update(document["granted"])
        used |= {tuple(u) for u in document["used"]}
        denied |= {tuple(d) for d in document["denied"]}
    rows: dict[str, list[dict[str, Any]]] = {}
    for role, statements in sorted(granted.items()):
        calls = [(a, r) for arn, a, r in used if arn.rsplit("/", 1)[-1] == role]
        for statement in statements:
            if statement.get("Effect") != "Allow":
                continue
            resources = [str(r) for r in _as_list(statement.get("Resource"))]
            for action in _as_list(statement.get("Action")):
                matching = sorted(
                    {(a, r) for a, r in calls
                     if _pattern(action.lower()).match(a.lower()) and any(_pattern(p).match(r) for p in resources)}
                )  # fmt: skip
                rows.setdefault(role, []).append(
                    {"policy": statement["policy"], "action": action, "resources": resources,
                     "used": [f"{a} {r}" for a, r in matching]}
                )  # fmt: skip
        for arn, action, resource in sorted(denied):
            if arn.rsplit("/", 1)[-1] == role:
                rows.setdefault(role, []).append({"denied": f"{action} {resource}"})
    return rows


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0] if args else ".local/iam-usage")
    rows = report(directory)
    if not rows:
        print(
            f"no usage recorded in {directory}: run a stack with MARKETPLACE_IAM=on {USAGE_VARIABLE}={directory}"
        )
        return 1
    unused = 0
    for role, entries in rows.items():
        print(role)
        for entry in entries:
            if "denied" in entry:
                print(f"  DENIED     {entry['denied']}")
                continue
            mark = "used      " if entry["used"] else "NEVER USED"
            unused += not entry["used"]
            print(f"  {mark} {entry['action']:<40} {', '.join(entry['resources'])}  [{entry['policy']}]")
    print(f"{unused} granted action(s) never used by this run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Least privilege, measured (D50): for each role, each granted action and resource, and whether a run
used it; a grant no test uses must carry a written reason.

A stack run with enforcement on and ``MARKETPLACE_IAM_USAGE=<dir>`` writes, when it stops, what each
of its roles was granted (the policies moto holds, from the transformed template, keyed by the role's
logical id) and what moto authorised and refused for it
(:mod:`marketplace_local.moto_patches.iam_enforcement`). This module merges those files (a test run
has one stack per worker and per end-to-end module) and prints, per role, every statement's actions
with the resources it names, each marked used or never used, and every refusal.

A grant that no run uses is kept only with a reason in ``iam-reasons.yaml`` beside the template (the
one home of those reasons): ``--check`` fails on a grant never used and not explained there, and on a
refusal. ``make iam-report`` runs the tests that way and prints the report with the check.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

USAGE_VARIABLE = "MARKETPLACE_IAM_USAGE"
REASONS_PATH = Path(__file__).resolve().parents[2] / "iam-reasons.yaml"


def policy_source(sam: dict[str, Any], role: str, policy_name: str) -> str:
    """What wrote a role's policy: the SAM policy template (``DynamoDBCrudPolicy``...) or
    ``Statement`` of the function's or state machine's ``Policies`` (SAM names the policy
    ``<Role>Policy<index>``), else the policy's own name (an AWS managed policy, a connector's)."""
    match = re.fullmatch(re.escape(role) + r"Policy(\d+)", policy_name)
    owner = (sam.get("Resources") or {}).get(role.removesuffix("Role")) or {}
    policies = _as_list((owner.get("Properties") or {}).get("Policies"))
    if match and int(match.group(1)) < len(policies) and isinstance(policies[int(match.group(1))], dict):
        (source, *_) = policies[int(match.group(1))]
        return str(source)
    return policy_name


def write_usage(directory: Path, iam: Any, roles: dict[str, str], name: str) -> Path:
    """The granted statements of ``roles`` (logical id -> role name; read from moto) and this
    process's recorded calls."""
    from marketplace_local.moto_patches import iam_enforcement

    granted: dict[str, list[dict[str, Any]]] = {}
    for logical_id, role in roles.items():
        statements = granted.setdefault(logical_id, [])
        for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
            for statement in _as_list(document.get("Statement")):
                statements.append({"policy": policy_name, **statement})
    by_name = {role: logical_id for logical_id, role in roles.items()}

    def known(calls: Any) -> list[list[str]]:
        return sorted(
            [by_name[arn.rsplit("/", 1)[-1]], action, resource]
            for arn, action, resource in calls
            if arn.rsplit("/", 1)[-1] in by_name
        )

    document = {
        "granted": granted,
        "used": known(set(iam_enforcement.used)),
        "denied": known(set(iam_enforcement.denied)),
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


def report(directory: Path, sam: dict[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per role (logical id): one row per (statement, action) with its policy's source in the SAM
    template ``sam`` (:func:`policy_source`), its resources and the calls that used it, then one row
    per refusal. Two statements of one policy that grant an action on different resources (a table
    and an index, two tables) are two rows, each used or not on its own.

    Each stack's calls are matched against that stack's own grants (a key or a user pool has another
    id in each stack), then merged by (role, policy, statement's place in it, action); a role's
    grants are its newest stack's (the template may have changed between runs)."""
    rows: dict[tuple[str, str, int, str], dict[str, Any]] = {}
    latest: dict[str, list[tuple[str, str, int, str]]] = {}
    denied: set[tuple[str, str, str]] = set()
    for path in sorted(directory.glob("usage-*.json"), key=lambda p: p.stat().st_mtime):
        document = json.loads(path.read_text())
        denied |= {tuple(d) for d in document["denied"]}
        for role, statements in document["granted"].items():
            calls = [(a, r) for who, a, r in document["used"] if who == role]
            keys = latest[role] = []
            places: dict[str, int] = {}
            for statement in statements:
                place = places[statement["policy"]] = places.get(statement["policy"], -1) + 1
                if statement.get("Effect") != "Allow":
                    continue
                resources = [str(r) for r in _as_list(statement.get("Resource"))]
                for action in _as_list(statement.get("Action")):
                    matching = {
                        f"{a} {r}" for a, r in calls
                        if _pattern(action.lower()).match(a.lower()) and any(_pattern(p).match(r) for p in resources)
                    }  # fmt: skip
                    key = (role, statement["policy"], place, action)
                    keys.append(key)
                    row = rows.setdefault(key, {"used": []})
                    row.update(
                        policy=statement["policy"], source=policy_source(sam or {}, role, statement["policy"]),
                        action=action, resources=resources, used=sorted(set(row["used"]) | matching),
                    )  # fmt: skip
    merged: dict[str, list[dict[str, Any]]] = {}
    for role, keys in sorted(latest.items()):
        merged[role] = [
            {k: rows[key][k] for k in ("policy", "source", "action", "resources", "used")} for key in keys
        ]
        merged[role] += [{"denied": f"{a} {r}"} for who, a, r in sorted(denied) if who == role]
    return merged


def load_reasons(path: Path = REASONS_PATH) -> list[dict[str, str]]:
    """``iam-reasons.yaml``: a list of {role, action, reason} (``role`` a logical id or ``*`` for
    every role); optional, ``policy`` (the role policy's name, or its source: an AWS managed
    policy's name, a SAM policy template's such as ``DynamoDBCrudPolicy``, or ``Statement``) and
    ``resource`` (a text the granted resource contains)."""
    entries = yaml.safe_load(path.read_text()) or []
    for entry in entries:
        missing = {"role", "action", "reason"} - set(entry)
        if missing or not str(entry.get("reason", "")).strip():
            raise ValueError(f"{path.name}: {entry} needs a role, an action and a reason")
    return entries


def reason_for(role: str, row: dict[str, Any], reasons: list[dict[str, str]]) -> str | None:
    """The written reason that keeps this unused grant, if any."""
    for entry in reasons:
        if entry["role"] not in ("*", role) or entry["action"].lower() != row["action"].lower():
            continue
        if "policy" in entry and entry["policy"] not in (row["policy"], row.get("source")):
            continue
        if "resource" in entry and not any(entry["resource"] in r for r in row["resources"]):
            continue
        return entry["reason"]
    return None


def template_grants(sam: dict[str, Any], cfn: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """Every (role, policy name, its source, action) the transformed template allows, the AWS
    managed policies with their documents, as the provisioner puts them on the roles."""
    from marketplace_local.provision import aws_managed_policy

    grants: set[tuple[str, str, str, str]] = set()
    for role, resource in cfn["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        props = resource.get("Properties") or {}
        documents = [(p["PolicyName"], p["PolicyDocument"]) for p in props.get("Policies", [])]
        for arn in props.get("ManagedPolicyArns", []):
            text = arn.get("Fn::Sub", arn) if isinstance(arn, dict) else arn
            text = str(text).replace("${AWS::Partition}", "aws")
            documents.append((text.rsplit("/", 1)[-1], aws_managed_policy(text)))
        for name, document in documents:
            for statement in _as_list(document.get("Statement")):
                if statement.get("Effect") == "Allow":
                    source = policy_source(sam, role, name)
                    grants |= {(role, name, source, str(a)) for a in _as_list(statement.get("Action"))}
    return grants


def stale_reasons(
    sam: dict[str, Any], cfn: dict[str, Any], reasons: list[dict[str, str]]
) -> list[dict[str, str]]:
    """The reasons that name no grant of the template (the grant was taken off: so goes its reason)."""
    grants = template_grants(sam, cfn)
    return [
        entry
        for entry in reasons
        if not any(
            entry["role"] in ("*", role) and entry.get("policy", policy) in (policy, source)
            and entry["action"].lower() == action.lower()
            for role, policy, source, action in grants
        )
    ]  # fmt: skip


def problems(rows: dict[str, list[dict[str, Any]]], reasons: list[dict[str, str]]) -> list[str]:
    """Every grant never used without a reason, and every refusal: what ``--check`` fails on."""
    found = []
    for role, entries in rows.items():
        for entry in entries:
            if "denied" in entry:
                found.append(f"{role}: refused {entry['denied']}")
            elif not entry["used"] and reason_for(role, entry, reasons) is None:
                found.append(
                    f"{role}: {entry['action']} on {', '.join(entry['resources'])} is never used "
                    f"[{entry['policy']}]: tighten the template or give the reason in {REASONS_PATH.name}"
                )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m marketplace_local.iam_report", description=__doc__)
    parser.add_argument("directory", nargs="?", type=Path, default=Path(".local/iam-usage"))
    parser.add_argument(
        "--check", action="store_true", help="fail on an unexplained unused grant or a refusal"
    )
    parser.add_argument("--reasons", type=Path, default=REASONS_PATH)
    args = parser.parse_args(argv)
    from marketplace_local.template import load_sam

    rows = report(args.directory, load_sam())
    if not rows:
        print(
            f"no usage recorded in {args.directory}: run a stack with MARKETPLACE_IAM=on "
            f"{USAGE_VARIABLE}={args.directory}"
        )
        return 1
    reasons = load_reasons(args.reasons)
    unused = explained = 0
    for role, entries in rows.items():
        print(role)
        for entry in entries:
            if "denied" in entry:
                print(f"  DENIED     {entry['denied']}")
                continue
            if entry["used"]:
                mark = "used      "
            elif reason_for(role, entry, reasons):
                mark, explained = "unused (*)", explained + 1
            else:
                mark, unused = "NEVER USED", unused + 1
            where = (
                entry["policy"]
                if entry["source"] == entry["policy"]
                else f"{entry['policy']}: {entry['source']}"
            )
            print(f"  {mark} {entry['action']:<40} {', '.join(entry['resources'])}  [{where}]")
    print(f"{unused} granted action(s) never used by this run without a reason; "
          f"{explained} unused with a reason in {args.reasons.name} (*)")  # fmt: skip
    found = problems(rows, reasons)
    if args.check and found:
        print("\n".join(["", "Least privilege check failed:", *found]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`marketplace audit verify|digest`: check a tenant's audit trail, or write the digests now (D48).

``verify`` reads every audit entry of the tenant and every digest of it, recomputes each entry's
hash, its link to the entry before it and its personal values' commitments, checks each digest
against the one before it and the entries it names, and prints the first entry of each record's
trail that does not match (the record, its version and why). Exit status: 0 intact, 1 a mismatch,
2 on bad usage. ``digest`` runs the scheduled digest job once (``--include-latest``: also the
entries written in the last minute, which the job leaves to its next run).

Where: the running local stack (its ``.local/stack.json``), or a deployed stack with ``--stack
NAME`` (its outputs ``TableName`` and ``AuditDigestBucketName``, read with your AWS credentials),
or ``--table`` and ``--bucket`` given directly.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import boto3

from marketplace import audit, clock
from marketplace.repository import Table
from marketplace_local.auth import resolve_state_dir


class CommandError(Exception):
    """Ends the command with a message and exit status 2."""


def add_parser(sub: Any) -> None:
    cmd = sub.add_parser("audit", help="verify a tenant's hash-chained audit trail and its digests",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    actions = cmd.add_subparsers(dest="action", required=True)
    verify = actions.add_parser(
        "verify", help="check every chain and digest of a tenant; exit 1 on a mismatch"
    )
    verify.add_argument("--tenant", required=True, help="the retailer (tenant) id")
    digest = actions.add_parser("digest", help="write the digests now, as the hourly job does")
    digest.add_argument("--include-latest", action="store_true",
                        help="also digest the entries of the last minute (the job waits for GSI4 to show them)")  # fmt: skip
    for action in (verify, digest):
        action.add_argument("--stack", help="a deployed stack's name (default: the running local stack)")
        action.add_argument("--table", help="the table's name (with --bucket: no stack lookup)")
        action.add_argument("--bucket", help="the digest bucket's name")
        action.add_argument("--region", help="the AWS region (default: your AWS configuration's)")
    cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        table, store = _where(args)
        if args.action == "digest":
            now = clock.now() + audit.DIGEST_LAG if args.include_latest else clock.now()
            written = audit.write_digests(table, store, now)
            print(f"{len(written)} digest(s) written" + "".join(f"\n  {key}" for key in written))
            return 0
        checked, findings = audit.verify_tenant(table, store, args.tenant)
    except CommandError as exc:
        print(f"marketplace audit: {exc}", file=sys.stderr)
        return 2
    digests = len(store.keys(args.tenant))
    if not findings:
        print(f"OK: tenant {args.tenant}: {checked} audit entries and {digests} digest(s) verified")
        return 0
    print(f"MISMATCH: tenant {args.tenant}: {len(findings)} trail(s) or digest(s) do not match")
    print(f"first: {findings[0]}")
    for finding in findings[1:]:
        print(f"also:  {finding}")
    return 1


def _where(args: argparse.Namespace) -> tuple[Table, audit.DigestStore]:
    if args.table and args.bucket:
        session = boto3.session.Session(region_name=args.region)
        return Table(args.table, session.client("dynamodb")), audit.DigestStore(
            args.bucket, session.client("s3")
        )
    if args.stack:
        session = boto3.session.Session(region_name=args.region)
        try:
            stacks = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"]
        except Exception as exc:
            raise CommandError(f"cannot read stack {args.stack}: {exc}") from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        if "TableName" not in outputs or "AuditDigestBucketName" not in outputs:
            raise CommandError(f"stack {args.stack} has no TableName and AuditDigestBucketName outputs")
        return (Table(outputs["TableName"], session.client("dynamodb")),
                audit.DigestStore(outputs["AuditDigestBucketName"], session.client("s3")))  # fmt: skip
    state = resolve_state_dir(None) / "stack.json"
    if not state.is_file():
        raise CommandError("no local stack is running (`make run`), and no --stack or --table/--bucket given")
    document = json.loads(state.read_text())
    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local",  # noqa: S106
                                    region_name=document["region"])  # fmt: skip
    endpoint = document["awsEndpointUrl"]
    resources = document["resources"]
    return (Table(resources["MarketplaceTable"]["ref"], session.client("dynamodb", endpoint_url=endpoint)),
            audit.DigestStore(resources["AuditDigestBucket"]["ref"], session.client("s3", endpoint_url=endpoint)))  # fmt: skip

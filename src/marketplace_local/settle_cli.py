"""`marketplace settle --period P`: run the hourly settlement start once, as of the time period P is
due (a day after it closes, D45), against the running local stack.

On AWS the schedule starts each tenant's settlement a day after its period closed; the local stack
runs the same function, but its clock is this machine's, so a week's statement would come a week
later. This command invokes the stack's ``StartSettlementsFunction`` with the scheduled event's
``time`` set to that moment, as the schedule would then: every tenant with ledger entries has its
period that closed by then settled by the real workflow (one named execution per tenant and period:
running it again starts nothing). Exit status: 0 started (or already started), 1 the function
failed, 2 on bad usage or no local stack.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from marketplace import statements
from marketplace.clock import iso
from marketplace.errors import InvalidInput, NotFound
from marketplace_local.auth import resolve_state_dir


def add_parser(sub: Any) -> None:
    cmd = sub.add_parser("settle", help="settle a closed period now, as the hourly schedule would (local stack)",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    cmd.add_argument("--period", required=True, help="an ISO week (2026-W49) or a month (2026-12)")
    cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        period = statements.period_named(args.period)
    except InvalidInput as exc:
        print(f"marketplace settle: --period {args.period} {exc.fields[0].reason}", file=sys.stderr)
        return 2
    except NotFound as exc:
        print(f"marketplace settle: --period: {exc}", file=sys.stderr)
        return 2
    state = resolve_state_dir(None) / "stack.json"
    if not state.is_file():
        print("marketplace settle: no local stack is running (`make run`)", file=sys.stderr)
        return 2
    document = json.loads(state.read_text())
    function = document.get("resources", {}).get("StartSettlementsFunction", {}).get("ref")
    if not function:
        print("marketplace settle: the local stack in stack.json has no settlements (restart `make run`)",
              file=sys.stderr)  # fmt: skip
        return 2
    client = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local",  # noqa: S106
                                   region_name=document["region"]).client("lambda", endpoint_url=document["awsEndpointUrl"])  # fmt: skip
    as_of = iso(period.end + statements.SETTLE_AFTER)
    try:
        answer = client.invoke(FunctionName=function, Payload=json.dumps({"time": as_of}).encode())
    except (BotoCoreError, ClientError) as exc:
        print(f"marketplace settle: the local stack did not answer ({exc}); is `make run` running?",
              file=sys.stderr)  # fmt: skip
        return 2
    body = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError"):
        print(f"marketplace settle: the settlement start failed: {body}", file=sys.stderr)
        return 1
    print(
        f"as of {as_of}: {len(body['started'])} settlement(s) started, {len(body['already'])} already started"
    )
    for name in body["started"]:
        print(f"  {name}")
    return 0

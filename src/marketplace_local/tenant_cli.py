"""`marketplace tenant`: the platform operator's commands (docs/tenants.md).

    marketplace tenant create TENANT_ID --name N --tier standard|premium --admin EMAIL [--admin EMAIL]
        [--region R --profile P --stage S --samconfig FILE]   (premium: its own stack's settings)
    marketplace tenant list
    marketplace tenant suspend TENANT_ID --reason R
    marketplace tenant reinstate TENANT_ID --reason R

Each is one call of the /platform/ API, against the running local stack (with an operator token
minted with its key) or a deployed one (--api and --token, an operator's ID token). ``create``
prints the tenant's status, the seconds it took to go live, and each admin; locally also a token for
each admin (on AWS, Cognito mails each admin a temporary password). Exit status: 0 when the tenant
is LIVE (or the command did what it says), 1 when it is FAILED or the API refused, 2 on bad usage.

A premium tenant created on a shared (pool) stack is recorded there as SILOED, served by a stack of
its own (D53): ``create`` then writes that stack's environment, named after the tenant, to
``samconfig.toml`` (the template's ``PinnedTenant``, its stack name, region and AWS profile) and
prints the ``sam deploy --config-env`` that deploys it; it deploys nothing itself. Sent to the
tenant's own stack once deployed, the same ``create`` makes its admins and runs its smoke test there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from marketplace_local import samconfig
from marketplace_local.auth import OPERATOR, TokenIssuer
from marketplace_local.import_cli import Api, _default_api, guarded


def add_parser(sub: Any) -> None:
    cmd = sub.add_parser("tenant", help="create, list, suspend and reinstate tenants (the platform operator)",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    actions = cmd.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a tenant, its admins, and run its smoke test")
    create.add_argument("tenant_id", metavar="TENANT_ID")
    create.add_argument("--name", required=True, help="the retailer's name")
    create.add_argument("--tier", required=True, choices=("standard", "premium"))
    create.add_argument("--admin", required=True, action="append", metavar="EMAIL",
                        help="a first admin's e-mail (repeat for more)")  # fmt: skip
    silo = create.add_argument_group("a premium tenant's own stack (written to samconfig.toml, not deployed)")
    silo.add_argument("--region", default="eu-central-1", help="its AWS region (default: eu-central-1)")
    silo.add_argument("--profile", help="the AWS profile of its own account (default: the tenant id)")
    silo.add_argument("--stage", default="prod", help="its Stage parameter (default: prod)")
    silo.add_argument("--samconfig", type=Path, default=samconfig.DEFAULT_PATH,
                      help="the SAM config file to write its environment to (default: ./samconfig.toml)")  # fmt: skip
    actions.add_parser("list", help="list the tenants")
    for name in ("suspend", "reinstate"):
        change = actions.add_parser(name, help=f"{name} a tenant")
        change.add_argument("tenant_id", metavar="TENANT_ID")
        change.add_argument("--reason", required=True)
    for action in actions.choices.values():
        action.add_argument(
            "--api", help="API base URL (default: the running local stack's, else 127.0.0.1:3000)"
        )
        action.add_argument(
            "--token", help="an operator's bearer token (default: mint one with the local stack's key)"
        )
        action.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return guarded("tenant", _run, args)


def _run(args: argparse.Namespace) -> int:
    local = not args.token
    token = args.token or TokenIssuer.load_or_create().mint(None, OPERATOR, subject="local-operator")
    api = Api(args.api or _default_api(), token)
    if args.action == "list":
        answer = api.call("GET", "/platform/tenants?limit=100")
        if args.json:
            print(json.dumps(answer, indent=2))
        for tenant in answer["items"]:
            print(f"{tenant['tenantId']}\t{tenant['status']}\t{tenant['tier']}\t{tenant['name']}")
        return 0
    if args.action in ("suspend", "reinstate"):
        answer = api.call(
            "POST", f"/platform/tenants/{args.tenant_id}/{args.action}", {"reason": args.reason}
        )
        print(json.dumps(answer, indent=2) if args.json else f"{answer['tenantId']}: {answer['status']}")
        return 0
    body = {"tenantId": args.tenant_id, "name": args.name, "tier": args.tier, "admins": args.admin}
    answer = api.call("POST", "/platform/tenants", body)
    from marketplace.tenants import SILOED  # the domain package, only for the command that needs it

    if answer["status"] == SILOED:
        return _siloed(args, answer)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0 if answer["status"] == "LIVE" else 1
    if answer["status"] == "LIVE":
        print(f"tenant {answer['tenantId']} LIVE in {answer['goLiveSeconds']:.2f} s")
    else:
        print(f"tenant {answer['tenantId']} {answer['status']}: {answer.get('smokeTest', {}).get('error')}")
    for admin in answer["admins"]:
        line = f"admin {admin['email']}"
        if local:  # the local stack's issuer stands in for Cognito's sign-in
            line += " token " + TokenIssuer.load_or_create().mint(
                answer["tenantId"], "admin", subject=admin["subject"]
            )
        print(line)
    return 0 if answer["status"] == "LIVE" else 1


def _siloed(args: argparse.Namespace, answer: dict[str, Any]) -> int:
    """The pool recorded a premium tenant: write its own stack's environment to samconfig.toml."""
    tenant_id, stack_name = answer["tenantId"], answer["silo"]["stackName"]
    profile = args.profile or tenant_id
    environment = samconfig.silo_environment(tenant_id, stack_name, args.region, profile, args.stage)
    samconfig.write_environment(args.samconfig, tenant_id, environment)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"tenant {tenant_id} SILOED: served by its own stack {stack_name}, not this one")
    print(f"{args.samconfig} [{tenant_id}]: stack {stack_name}, region {args.region}, profile {profile}")
    print(f"deploy it: sam build && sam deploy --config-env {tenant_id}")
    return 0

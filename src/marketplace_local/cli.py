"""`marketplace` command: run the local stack, mint tokens for it, import a catalog, verify the
audit, create tenants."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
import threading

from marketplace_local import audit_cli, import_cli, settle_cli, tenant_cli
from marketplace_local.auth import OPERATOR, ROLES, TokenIssuer


def _run(args: argparse.Namespace) -> int:
    from marketplace_local.stack import LocalStack, StackConfig
    from marketplace_local.template import TemplateError, load_sam, parameter_values

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")  # fmt: skip
    config = StackConfig.from_env()
    if args.port is not None:
        config.api_port = args.port
    if args.moto_port is not None:
        config.moto_port = args.moto_port
    if args.tenant:
        config.pin(args.tenant)
    try:  # a bad --tenant (or PORT...) stops here with the reason, before anything starts
        parameter_values(load_sam(config.template_path), config.parameter_overrides)
    except TemplateError as exc:
        print(f"marketplace run: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # `kill -USR1 <pid>` prints where every thread of a stack that seems stuck stands.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    stack = LocalStack(config).start()
    try:
        if config.pinned_tenant:
            print(f"Stack {config.stack_name} serves only tenant {config.pinned_tenant}; "
                  f"its key and stack.json are in {config.state_dir}", flush=True)  # fmt: skip
        print(f"Marketplace API ready at {stack.api_url}", flush=True)
        stop.wait()
    finally:
        print("Stopping the local marketplace...", file=sys.stderr, flush=True)
        stack.stop()
    # Everything the stack held was in this process's memory and is gone with it: exit now rather
    # than wait, in the interpreter's shutdown, for a handler still running in some thread whose
    # answer nobody will read (the pollers gave them their few seconds in stop()).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _token(args: argparse.Namespace) -> int:
    issuer = TokenIssuer.load_or_create()
    try:
        if (args.role == OPERATOR) == bool(args.tenant):
            raise ValueError("--tenant is required, except for --role operator (a member of no tenant)")
        token = issuer.mint(args.tenant, args.role, supplier_id=args.supplier_id, ttl_seconds=args.ttl)
    except ValueError as exc:
        print(f"marketplace token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="marketplace", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the local marketplace (API on 127.0.0.1:3000; PORT overrides)")
    run.add_argument("--port", type=int, default=None, help="API port (default: $PORT or 3000)")
    run.add_argument(
        "--moto-port", type=int, default=None, help="local AWS port (default: $MOTO_PORT or 5000)"
    )
    run.add_argument("--tenant", help="run a premium tenant's own stack (the silo), serving only this tenant, "
                     "beside the pool: give it other ports (docs/deploy.md)")  # fmt: skip
    run.add_argument("-v", "--verbose", action="store_true", help="log the local stack's own activity")
    run.set_defaults(func=_run)

    token = sub.add_parser("token", help="print a bearer token that the local API accepts")
    token.add_argument("--tenant", help="the retailer (tenant) id; none for --role operator")
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument("--supplier-id", help="required for --role supplier")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until the token expires")
    token.set_defaults(func=_token)

    import_cli.add_parser(sub)  # marketplace import-products (docs/import.md)
    audit_cli.add_parser(sub)  # marketplace audit verify|digest (docs/audit.md)
    tenant_cli.add_parser(sub)  # marketplace tenant (docs/tenants.md)
    settle_cli.add_parser(sub)  # marketplace settle (docs/money.md)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())

"""`marketplace import-products`: a supplier's catalog CSV through the bulk import API.

Creates the import, PUTs the file to its pre-signed URL, starts it, shows a progress bar while
the rows are processed, and prints the counts: rows imported and failed, and the imported
listings per workflow status (ACTIVE / FLAGGED / REJECTED / PENDING). The error report (CSV: row,
sku, field, reason) is written next to the input, or to --report. With --update, a row whose SKU is
already listed updates that listing's quantity and price instead of being refused. Exit status: 0 when the import
completed (even if some rows failed), 1 when it failed or did not finish in time, 2 on bad usage.

Plain urllib: the command needs nothing beyond the local stack's own dependencies and tqdm.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tqdm import tqdm

from marketplace_local.auth import OPERATOR, ROLES, TokenIssuer, resolve_state_dir

STATUSES = ("ACTIVE", "FLAGGED", "REJECTED", "PENDING")


class CommandError(Exception):
    """Ends the command with a message and exit status 1."""


class TransientCallError(Exception):
    """A 5xx answer or a lost connection: a safe call may be tried again."""


def add_parser(sub: Any) -> None:
    cmd = sub.add_parser(
        "import-products",
        help="import a supplier's catalog CSV (bulk listings) and report per-row errors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("catalog", type=Path, help="the CSV file (header: sku,title,category,price,currency,"
                     "quantity[,images][,attributes.<name>...])")  # fmt: skip
    cmd.add_argument("--supplier", required=True, help="the supplier whose listings these are")
    cmd.add_argument("--tenant", help="the retailer (tenant) id; needed to mint a local token")
    cmd.add_argument(
        "--role",
        choices=[r for r in ROLES if r != OPERATOR],
        default="supplier",
        help="role of a minted token (default supplier)",
    )
    cmd.add_argument("--update", action="store_true",
                     help="update the quantity and price of SKUs already listed (a stock and price feed)")  # fmt: skip
    cmd.add_argument("--api", help="API base URL (default: the running local stack's, else 127.0.0.1:3000)")
    cmd.add_argument("--token", help="bearer token (default: mint one with the local stack's key)")
    cmd.add_argument(
        "--report", type=Path, help="where to write the error report (default: beside the input)"
    )
    cmd.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait for the import (default 900)"
    )
    cmd.add_argument("--wait-listings", type=float, default=0.0, metavar="SECONDS",
                     help="also wait up to SECONDS for the listings' workflows to leave PENDING")  # fmt: skip
    cmd.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return guarded("import-products", _import, args)


def guarded(command: str, body: Any, args: argparse.Namespace) -> int:
    """``body(args)``'s exit status; a CommandError is its message on stderr and status 1."""
    try:
        return int(body(args))
    except CommandError as exc:
        print(f"marketplace {command}: {exc}", file=sys.stderr)
        return 1


def _import(args: argparse.Namespace) -> int:
    if not args.catalog.is_file():
        print(f"marketplace import-products: no such file {args.catalog}", file=sys.stderr)
        return 2
    api = Api(args.api or _default_api(), _token(args))
    rows = count_rows(args.catalog)
    base = f"/suppliers/{args.supplier}/imports"
    created = api.call(
        "POST", base, {"fileName": args.catalog.name[:255], "mode": "update" if args.update else "create"}
    )
    import_id = created["importId"]
    if args.catalog.stat().st_size > created["maxUploadBytes"]:
        raise CommandError(
            f"{args.catalog} is larger than the {created['maxUploadBytes']} bytes one import takes"
        )
    upload(created["uploadUrl"], args.catalog)
    api.call("POST", f"{base}/{import_id}/start")
    print(f"Import {import_id}: {rows} rows from {args.catalog}", file=sys.stderr)

    state = _follow(api, f"{base}/{import_id}", rows, args)
    if state["status"] == "FAILED":
        raise CommandError(f"the import failed: {state.get('failureReason', 'no reason given')}")
    path = f"{base}/{import_id}?include=listings"
    counts = _wait_listings(api, path, args) if args.wait_listings > 0 else listing_counts(api, path)
    report = args.report or args.catalog.with_name(f"{args.catalog.stem}.errors.csv")
    if state.get("reportUrl"):
        download(state["reportUrl"], report)
    updated = f", updated {state['updated']}" if args.update else ""
    print(f"Imported {state['imported']}{updated} of {state['rowsProcessed']} rows; {state['failed']} failed"
          + (f" (error report: {report})" if state.get("reportUrl") else ""))  # fmt: skip
    print("Listings: " + "  ".join(f"{s} {counts.get(s, 0)}" for s in STATUSES))
    return 0


def _follow(api: Api, path: str, rows: int, args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.monotonic() + args.timeout
    with tqdm(total=rows, unit="row", desc="importing", file=sys.stderr, dynamic_ncols=True) as bar:
        while True:
            state = api.call("GET", path)
            bar.update(max(0, min(rows, state["rowsProcessed"]) - bar.n))
            bar.set_postfix(imported=state["imported"], failed=state["failed"], refresh=False)
            if state["status"] in ("COMPLETED", "FAILED"):
                return state
            if time.monotonic() > deadline:
                raise CommandError(
                    f"the import is still {state['status']} after {args.timeout:.0f}s "
                    f"({state['rowsProcessed']} of {rows} rows); follow it with GET {path}"
                )
            time.sleep(args.interval)


def listing_counts(api: Api, path: str) -> dict[str, int]:
    """The import's listings per status, added up over the API's pages."""
    counts: dict[str, int] = {}
    token = None
    while True:
        page = api.call("GET", path + (f"&listingsToken={urllib.parse.quote(token)}" if token else ""))
        for status, count in page["listings"].items():
            counts[status] = counts.get(status, 0) + count
        token = page.get("listingsNextToken")
        if not token:
            return counts


def _wait_listings(api: Api, path: str, args: argparse.Namespace) -> dict[str, int]:
    deadline = time.monotonic() + args.wait_listings
    counts = listing_counts(api, path)
    total = sum(counts.values())
    with tqdm(total=total, unit="listing", desc="workflows", file=sys.stderr, dynamic_ncols=True) as bar:
        while True:
            decided = total - counts.get("PENDING", 0)
            bar.update(max(0, decided - bar.n))
            if decided >= total or time.monotonic() > deadline:
                return counts
            time.sleep(max(args.interval, 1.0))
            counts = listing_counts(api, path)


# ------------------------------------------------------------------------------------------- helpers
def count_rows(path: Path) -> int:
    """Data rows as the import counts them (non-blank records after the header)."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        try:
            return sum(1 for cells in reader if any(c.strip() for c in cells))
        except csv.Error as exc:
            raise CommandError(f"{path} is not a readable CSV file: {exc}") from None


def _default_api() -> str:
    state = resolve_state_dir(None) / "stack.json"
    if state.is_file():
        return json.loads(state.read_text())["apiUrl"]
    return "http://127.0.0.1:3000"


def _token(args: argparse.Namespace) -> str:
    if args.token:
        return args.token
    if not args.tenant:
        raise CommandError("give --token, or --tenant to mint a token with the local stack's key")
    supplier_id = args.supplier if args.role == "supplier" else None
    return TokenIssuer.load_or_create().mint(args.tenant, args.role, supplier_id=supplier_id)


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: Any = None, patience: float = 60.0) -> dict[str, Any]:
        """One API call. A GET or a start (both safe to repeat) that meets a 5xx or a lost
        connection is tried again with backoff for up to ``patience`` seconds."""
        repeatable = method == "GET" or path.endswith("/start")
        deadline = time.monotonic() + patience
        delay = 0.5
        while True:
            try:
                return self._call(method, path, body)
            except TransientCallError as exc:
                if not repeatable or time.monotonic() + delay > deadline:
                    raise CommandError(str(exc)) from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the URL is the user's API
            self.base + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            message = f"{method} {path}: HTTP {error.code} {_describe(error.read())}"
            if error.code >= 500:
                raise TransientCallError(message) from None
            raise CommandError(message) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise TransientCallError(f"cannot reach the API at {self.base}: {error}") from None


def _describe(raw: bytes) -> str:
    try:
        error = json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        return raw[:300].decode(errors="replace")
    fields = "; ".join(f"{f['field']}: {f['reason']}" for f in error.get("fields", []))
    return f"{error.get('message', '')}{' (' + fields + ')' if fields else ''}"


def upload(url: str, path: Path) -> None:
    """Stream the file to the pre-signed URL (never all of it in memory). The Content-Type is
    explicit: urllib would send a form type, and a server may then read the body as a form."""
    with path.open("rb") as body:
        request = urllib.request.Request(  # noqa: S310 - the pre-signed URL the API issued
            url,
            data=body,
            method="PUT",
            headers={"Content-Length": str(path.stat().st_size), "Content-Type": "text/csv"},
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as error:
            raise CommandError(f"the upload was refused: HTTP {error.code} {error.read()[:300]!r}") from None


def download(url: str, path: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - the pre-signed URL
            path.write_bytes(response.read())
    except urllib.error.HTTPError as error:
        raise CommandError(f"the error report could not be fetched: HTTP {error.code}") from None

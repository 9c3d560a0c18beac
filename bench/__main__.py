"""`python -m bench` (`make bench`): every performance figure of the marketplace in one table,
written as JSON to ``bench/results/<timestamp>.json``.

1. Per business transaction, counted from real runs in the local stack (bench/costs.py): state
   transitions, Lambda invocations with their CPU and wall time, DynamoDB write and read units,
   SQS, SNS, StartExecution and API requests, log bytes; and from them the AWS cost of a million
   supplier onboardings, of a million supplier orders placed -> accepted, and of a million whole
   lifecycles (placed -> accepted -> shipped -> delivered -> closed, the last two by the deadline
   sweeper) at the us-east-1 list prices of bench/prices.json (dated), by service.
2. Capacity at AWS default quotas (bench/quotas.json), derived from those counts: supplier orders
   per second per tenant in us-east-1 and in the lowest-quota region, and the quota that binds; for
   the lifecycle also how fast the deadline sweeper fires its transitions.
   And how long a new standard tenant takes to go live (POST /platform/tenants: its record, its
   admin, its smoke test through the workflows; docs/tenants.md).
3. Cold start: import time of each Lambda handler module as on Lambda (bench/imports.py), and of
   the shared libraries they all import.
4. Warm validation of one supplier record, and records validated per second.
5. The fair share's limiter (bench/fair_share.py, D52): its time per request, and its writes and
   their cost for a standard tenant's steady 2,000 requests/s over 1 to 200 API instances.
6. Local end-to-end throughput (bench/throughput.py), when that module is there.

Figures are the median, min and max over ``--runs`` runs, on this machine (shared, noisy), not AWS.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import costs, fair_share, imports

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

GOALS = {
    "order_usd_per_million": 15.0,
    "import_ms": 300.0,
    "validation_us": 1000.0,
    "orders_per_s_us_east_1": 3000.0,
    "orders_per_s_every_region": 1000.0,
    "tenant_go_live_s": 60.0,
}


def git_revision() -> str | None:
    def git(*args: str) -> str:
        # git from PATH, with fixed arguments.
        command = ["git", *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()  # noqa: S603

    try:
        return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain") else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def load_throughput() -> Any:
    """bench/throughput.py's ``run``, or None when the module is not there."""
    try:
        from bench import throughput
    except ModuleNotFoundError as error:
        if error.name != "bench.throughput":
            raise
        return None
    return throughput.run


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, ...] | str] = []

    def section(self, title: str) -> None:
        self.rows.append(title)

    def add(self, label: str, figure: dict[str, float] | None, unit: str = "", goal: str = "",
            fmt: str = ",.1f") -> None:  # fmt: skip
        if figure is None:
            self.rows.append((label, "-", "-", "-", unit, goal))
            return
        cells = tuple(format(figure[k], fmt) for k in ("median", "min", "max"))
        self.rows.append((label, *cells, unit, goal))

    def print(self) -> None:
        width = max(len(r[0]) for r in self.rows if isinstance(r, tuple)) + 2
        header = f"{'':<{width}}{'median':>12}{'min':>12}{'max':>12}  {'unit':<10} goal"
        print(header)
        print("-" * len(header))
        for row in self.rows:
            if isinstance(row, str):
                print(f"\n{row}")
                continue
            label, median, low, high, unit, goal = row
            print(f"{label:<{width}}{median:>12}{low:>12}{high:>12}  {unit:<10} {goal}".rstrip())


def verdict(value: float, goal: float, below: bool = True) -> str:
    met = value <= goal if below else value >= goal
    return ("met" if met else "NOT met") + f" ({'<=' if below else '>='} {goal:,.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per figure (default 5)")
    parser.add_argument("--no-throughput", action="store_true", help="skip the end-to-end throughput runs")
    parser.add_argument("--no-write", action="store_true", help="print only, write no results file")
    args = parser.parse_args(argv)
    runs = max(1, args.runs)
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    started = datetime.now(UTC)
    from marketplace_local.template import TEMPLATE_PATH, load_sam

    print(f"bench: {runs} runs of each figure; the counting runs start a local stack ...", file=sys.stderr)
    t0 = time.perf_counter()
    measured = costs.measure(runs)
    counted = costs.report(measured)
    print(f"bench: counted in {time.perf_counter() - t0:.0f} s; cold starts ...", file=sys.stderr)
    handler_rows = imports.handler_imports(load_sam(TEMPLATE_PATH), runs)
    shared = imports.shared_imports(runs)
    validation = imports.validation_speed(runs)
    limiter = fair_share.figures(runs)
    run_throughput = None if args.no_throughput else load_throughput()
    throughput: dict[str, Any] | None = None
    if run_throughput is not None:
        print("bench: end-to-end throughput ...", file=sys.stderr)
        try:
            throughput = run_throughput(runs=min(runs, 3), log=lambda line: print(line, file=sys.stderr))
        except Exception as error:  # its failure is reported; the other figures are kept
            throughput = {"failed": f"{type(error).__name__}: {str(error)[:300]}"}

    report = {
        "timestamp": started.isoformat(timespec="seconds"),
        "git": git_revision(),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": os.getloadavg(),
        "runs": runs,
        "goals": GOALS,
        "transactions": counted,
        "samples": measured["samples"],
        "measured_with": {k: v for k, v in measured.items() if k != "samples"},
        "prices": costs.load_prices(),
        "quotas": json.loads(costs.QUOTAS_PATH.read_text()),
        "handler_imports": handler_rows,
        "shared_imports_ms": shared,
        "validation": validation,
        "fair_share": limiter,
        "throughput": throughput if throughput is not None else (
            "skipped (--no-throughput)" if args.no_throughput else "bench/throughput.py is absent"),
    }  # fmt: skip
    print_report(report)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


def print_report(report: dict[str, Any]) -> None:
    t = report["transactions"]
    print(f"bench  {report['timestamp']}  git {report['git']}  Python {report['python']}  {report['machine']}"
          f"  load {report['load_average'][0]:.1f}")  # fmt: skip
    print(f"median, min and max of {report['runs']} runs; local stack and venv on this machine, not AWS\n")
    table = Table()
    for name, title in (("onboarding", "one supplier onboarding (POST /suppliers -> APPROVED, welcome)"),
                        ("order", "one supplier order (POST /orders, 1 line -> reserved -> accepted, "
                                  "SNS + webhook per status)"),
                        ("lifecycle", "one supplier order's whole lifecycle (placed -> accepted -> shipped -> "
                                      "delivered and closed by the sweeper, SNS + webhook per status)")):  # fmt: skip
        c = t[name]["counts"]
        table.section(f"per transaction: {title}")
        table.add(
            "Step Functions state transitions, Standard", c["state_transitions_standard"], "", fmt=",.0f"
        )
        table.add("Step Functions state transitions, Express", c["state_transitions_express"], "", fmt=",.0f")
        table.add("Express execution duration", c["express_duration_ms"], "ms", fmt=",.0f")
        table.add("Lambda invocations", c["lambda_invocations"], "", fmt=",.0f")
        table.add("Lambda CPU time", c["lambda_cpu_ms"], "ms")
        table.add("Lambda wall time (local)", c["lambda_wall_ms"], "ms", fmt=",.0f")
        table.add("DynamoDB write request units", c["dynamodb_wru"], "WRU", fmt=",.0f")
        table.add("DynamoDB read request units", c["dynamodb_rru"], "RRU")
        table.add(
            "  of which the audit trail (entries, links, GSI4)", c["dynamodb_wru_audit"], "WRU", fmt=",.0f"
        )
        table.add("  of which the audit trail (the entry before each)", c["dynamodb_rru_audit"], "RRU")
        table.add(
            "  of which the supplier's ledger (its entries)", c["dynamodb_wru_ledger"], "WRU", fmt=",.0f"
        )
        for key, label in (("stepfunctions:StartExecution", "StartExecution requests"),
                           ("sns:Publish", "SNS Publish requests"), ("sns:PublishBatch", "SNS PublishBatch requests"),
                           (costs.SNS_MESSAGES, "SNS messages published")):  # fmt: skip
            table.add(label, c["requests"].get(key), "", fmt=",.0f")
        sqs = {k: v for k, v in c["requests"].items() if k.startswith("sqs:")}
        for key, figure in sqs.items():
            table.add(f"SQS {key[4:]} requests", figure, "", fmt=",.0f")
        table.add("API requests", c["lambda_invocations_by_function"].get("ApiFunction"), "", fmt=",.0f")
        table.add("log bytes (handlers' own)", c["log_bytes"], "B", fmt=",.0f")
        usd = t[name]["usd_per_million"]
        goal = verdict(usd["median"], GOALS["order_usd_per_million"]) if name != "onboarding" else ""
        table.add(
            f"AWS cost per million, us-east-1 ({t['prices_as_of']} prices)", usd, "USD", goal, fmt=",.2f"
        )
        if name == "lifecycle":
            table.add("  same, the sweeper runs' fixed part counted whole, not amortised",
                      t[name]["usd_per_million_with_whole_sweeper_runs"], "USD", fmt=",.2f")  # fmt: skip
        table.add("  of which the audit trail's DynamoDB requests", t[name]["usd_per_million_audit_dynamodb"],
                  "USD", fmt=",.2f")  # fmt: skip
        table.add("  of which the ledger's DynamoDB writes", t[name]["usd_per_million_ledger_dynamodb"],
                  "USD", fmt=",.2f")  # fmt: skip
        table.add("  same, Lambda billed at CPU time (lower bound)", t[name]["usd_per_million_lambda_at_cpu_time"],
                  "USD", fmt=",.2f")  # fmt: skip
        by_service = sorted(t[name]["usd_per_million_by_service"].items(), key=lambda i: -i[1]["median"])
        for service, figure in by_service:
            if figure["max"] > 0:
                table.add(f"    {service}", figure, "USD", fmt=",.2f")
        if name != "onboarding":
            top, figure = by_service[0]
            table.rows.append((f"  the largest line: {top}, {figure['median'] / usd['median']:.0%} of the cost",
                               "", "", "", "", ""))  # fmt: skip

    capacity_rows(table, t["capacity"], "placed -> accepted")
    capacity_rows(table, t["lifecycle_capacity"], "whole lifecycle, each transition at the order rate")
    sweeper = t["lifecycle_capacity"]["sweeper"]
    wall, cpu = sweeper["orders_per_s_wall"], sweeper["orders_per_s_cpu"]
    table.rows.append((f"deadline sweeper, one at a time ({sweeper['requests_per_order']:,.0f} requests/order): "
                       "local wall time | CPU time", f"{wall:,.0f}" if wall else "-", f"{cpu:,.0f}" if cpu else "-", "",
                       "orders/s", ""))  # fmt: skip
    at_once = sweeper.get("orders_per_s_wall_at_once")
    table.rows.append((f"  {sweeper.get('concurrency', 1)} at once, as one run fires them (model: network waits "
                       "overlap on AWS)", f"{at_once:,.0f}" if at_once else "-", "", "", "orders/s",
                       verdict(at_once or 0, GOALS["orders_per_s_us_east_1"], below=False)))  # fmt: skip

    go_live = report["measured_with"].get("tenant_go_live_s")
    table.section(
        "a new standard tenant: POST /platform/tenants -> LIVE (admin, smoke test through the workflows)"
    )
    if go_live:
        figure = costs.stats(go_live)
        table.add("time to go live (local)", figure, "s", verdict(figure["median"], GOALS["tenant_go_live_s"]),
                  fmt=",.2f")  # fmt: skip
    settlement_rows(table, t.get("settlement"))

    table.section(
        "cold start: import time of each handler module as on Lambda (layer on the path, tracing on)"
    )
    for row in report["handler_imports"]:
        figure = row["import_ms"]
        table.add(f"{row['function']}  {row['code_uri']}{row['module']}.py", figure, "ms",
                  verdict(figure["median"], GOALS["import_ms"]), fmt=",.0f")  # fmt: skip
    for module, figure in report["shared_imports_ms"].items():
        table.add(f"  shared: import {module} alone", figure, "ms", fmt=",.0f")

    v = report["validation"]
    table.section("warm validation of one supplier record (schema + rules; DynamoDB lookups excluded)")
    table.add(
        "time per record",
        v["per_record_us"],
        "µs",
        verdict(v["per_record_us"]["median"], GOALS["validation_us"]),
    )
    table.add("records validated per second", v["records_per_second"], "records/s", fmt=",.0f")

    limiter = report["fair_share"]
    table.section(
        "fair share: the tenant limiter (bench/fair_share.py, D52; a standard tenant at 2,000 requests/s)"
    )
    table.add(
        "time per request (lease spent from memory)", costs.stats(limiter["admit_us"]), "µs", fmt=",.2f"
    )
    for row in limiter["steady"]:
        at = f"  {row['instances']} API instances:"
        table.add(f"{at} conditional writes", costs.stats([row["writes_per_s"]]), "writes/s", fmt=",.0f")
        table.add(f"{at} their cost", costs.stats([row["wru_usd_per_million_orders"]]), "$/1M orders",
                  fmt=",.3f")  # fmt: skip
        table.add(f"{at} let in", costs.stats([row["steady_admitted_per_s"]]), "requests/s", fmt=",.0f")

    th = report["throughput"]
    table.section("local end-to-end throughput (bench/throughput.py)")
    if isinstance(th, dict) and "failed" in th:
        table.rows.append((f"failed: {th['failed'][:100]}", "-", "-", "-", "", ""))
    elif isinstance(th, dict):
        for variant in th["variants"]:
            for key, unit in (("onboardings_per_s", "/s"), ("orders_per_s", "/s"), ("api_p50_ms", "ms"),
                              ("api_p99_ms", "ms")):  # fmt: skip
                table.add(f"{variant}: {key}", th[variant][key], unit)
    else:
        table.rows.append((f"not run: {th}", "-", "-", "-", "", ""))
    table.print()


def settlement_rows(table: Table, settled: dict[str, Any] | None) -> None:
    """The settlement of the lifecycles' delivered orders (one run: every week they fall in)."""
    if not settled:
        return
    c = settled["counts"]
    table.section(f"settlement: {settled['orders_settled']} delivered orders of one supplier, "
                  f"{settled['statements']} statement(s), the whole of it once (D45)")  # fmt: skip
    table.add("Step Functions state transitions, Standard", c["state_transitions_standard"], "", fmt=",.0f")
    table.add("Lambda invocations", c["lambda_invocations"], "", fmt=",.0f")
    table.add("DynamoDB write request units", c["dynamodb_wru"], "WRU", fmt=",.0f")
    table.add("DynamoDB read request units", c["dynamodb_rru"], "RRU")
    table.add("S3 PutObject requests", c["requests"].get("s3:PutObject"), "", fmt=",.0f")
    one = settled["usd_per_statement"]
    table.add("AWS cost per statement", {"median": one, "min": one, "max": one}, "USD", fmt=",.6f")
    per_million = settled["usd_per_million_orders"]
    table.add(f"AWS cost per million orders settled ({settled['orders_settled']} orders a statement)",
              {"median": per_million, "min": per_million, "max": per_million}, "USD", fmt=",.2f")  # fmt: skip
    for service, usd in sorted(settled["usd_per_million_orders_by_service"].items(), key=lambda i: -i[1]):
        table.add(f"    {service}", {"median": usd, "min": usd, "max": usd}, "USD", fmt=",.2f")


def capacity_rows(table: Table, cap: dict[str, Any], what: str) -> None:
    table.section(
        f"capacity at AWS default quotas, {what}, derived from its counts (supplier orders/s per tenant)"
    )
    for item in cap["limits"]:
        east = item["orders_per_s_us_east_1"]
        low = item["orders_per_s_lower"]
        label = f"{item['quota'][:90]} ({item['per_order']:,.2f}/order)"
        table.rows.append((label, f"{east:,.0f}" if east else "-", f"{low:,.0f}" if low else "-", "", "orders/s",
                           "us-east-1 | lowest region"))  # fmt: skip
    e, lo = cap["us_east_1"], cap["lower_quota_region"]
    table.rows.append((f"sustained, us-east-1 (binds: {e['binding'][:60]})", f"{e['orders_per_s']:,.0f}", "", "",
                       "orders/s", verdict(e["orders_per_s"], GOALS["orders_per_s_us_east_1"], below=False)))  # fmt: skip
    table.rows.append((f"sustained, lowest-quota region (binds: {lo['binding'][:60]})", f"{lo['orders_per_s']:,.0f}",
                       "", "", "orders/s", verdict(lo["orders_per_s"], GOALS["orders_per_s_every_region"], below=False)))  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())

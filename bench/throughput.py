"""End-to-end throughput of the local stack: supplier onboardings and supplier orders per second, taken
from the API to their final status, and the API's latency under that load.

What is measured (issue 6, item 1):

* the stack runs in its own process (``python -m bench.throughput --serve``, the same LocalStack that
  `make run` starts, on the real clock, schedules on) so that the load generator does not share its
  interpreter (and GIL) with the stack under test;
* a thread pool of ``clients`` HTTP clients (one keep-alive session each) drives ``n`` supplier
  onboardings and ``n`` supplier orders at the same time, interleaved. An onboarding is
  ``POST /suppliers`` and then ``GET /suppliers/{id}`` every ``poll`` seconds until it is APPROVED
  (its final status). An order is ``POST /orders`` (one line, one supplier order) and then the
  supplier polls ``GET /supplier-orders/{id}`` until it is AWAITING_ACCEPTANCE and accepts it at
  once (``POST .../accept``): its final status is ACCEPTED. The approved suppliers and active
  listings the orders need are made before the clock starts, in a fresh tenant per run;
* per kind, completed per second = completed flows / (last final status - first POST); a flow that
  ends in another status (or not within ``timeout``) is counted as failed, never as done;
* API latency: each request's wall time as the client sees it (p50 and p99, nearest rank), for all
  requests under the load and per kind of request;
* several runs (``runs``), median / min / max of each figure. ``variants`` runs the same load on
  stacks that differ only by the local-stack performance options (``baseline``: all off, as the
  stack was before; ``fast``: the defaults) or by the IAM check (``iam-off``: the defaults with
  ``MARKETPLACE_IAM=off``, D50), alternating run by run so that both see the same
  machine (it is shared and noisy); ``--profile`` samples the stack process with py-spy during one
  run of each variant and puts the top frames in the results JSON.

This is the local emulation on this machine (moto, in-process handlers, 2 shared cores), not AWS.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from marketplace_local.samples import SHIP_TO, SUPPLIER, listing

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

LISTING = listing(quantity=1_000_000)

# The stack's options, by variant: what --serve sets on StackConfig.
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"in_process_aws": False, "cache_asl_programs": False, "fast_serializer": False},
    "fast": {"in_process_aws": True, "cache_asl_programs": True, "fast_serializer": True},
    # One option off at a time (``--variants fast,no-fast-serializer``): what that option alone gives.
    "no-in-process-aws": {"in_process_aws": False, "cache_asl_programs": True, "fast_serializer": True},
    "no-asl-cache": {"in_process_aws": True, "cache_asl_programs": False, "fast_serializer": True},
    "no-fast-serializer": {"in_process_aws": True, "cache_asl_programs": True, "fast_serializer": False},
    # The defaults without the IAM check (MARKETPLACE_IAM=off, D50): ``--variants fast,iam-off`` is what
    # enforcing the template's policies costs. The other variants enforce as the environment says (on).
    "iam-off": {
        "in_process_aws": True,
        "cache_asl_programs": True,
        "fast_serializer": True,
        "enforce_iam": False,
    },
}


# ------------------------------------------------------------------------------------ the stack process
def serve(variant: str, state_dir: Path) -> int:
    """Run a LocalStack for the benchmark until stdin closes; print its URL when ready."""
    import logging

    from marketplace_local.stack import LocalStack, StackConfig, free_port

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = StackConfig(api_port=free_port(), moto_port=free_port(), state_dir=state_dir)
    for name, value in VARIANTS[variant].items():
        setattr(config, name, value)
    stack = LocalStack(config).start()
    print(f"READY {stack.api_url} {os.getpid()}", flush=True)
    try:
        sys.stdin.read()  # the parent closes stdin (or dies) to stop us
    finally:
        threading.Timer(30, os._exit, (1,)).start()  # never outlive the benchmark by much
        stack.stop()
        os._exit(0)
    return 0


@dataclass
class StackProcess:
    variant: str
    process: subprocess.Popen[str]
    url: str
    state_dir: Path

    @classmethod
    def start(cls, variant: str) -> StackProcess:
        state_dir = Path(tempfile.mkdtemp(prefix=f"bench-{variant}-"))
        env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
        process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", "bench.throughput", "--serve", variant, "--state-dir", str(state_dir)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("READY "):
            process.kill()
            raise RuntimeError(f"the {variant} stack did not start: {line!r}")
        url = line.split()[1]
        threading.Thread(target=process.stdout.read, daemon=True).start()
        return cls(variant, process, url, state_dir)

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(timeout=10)


# ------------------------------------------------------------------------------------ the load
@dataclass
class Recorder:
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, session: Any, kind: str, method: str, url: str, **kwargs: Any) -> Any:
        started = time.perf_counter()
        response = session.request(method, url, timeout=60, **kwargs)
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latencies[kind].append(elapsed)
            if response.status_code >= 500:
                self.errors[f"{kind} {response.status_code}"] += 1
        return response


class Driver:
    def __init__(self, url: str, state_dir: Path, clients: int, poll: float, timeout: float) -> None:
        import requests

        from marketplace_local.auth import TokenIssuer

        self.url = url
        self.issuer = TokenIssuer.load_or_create(state_dir)
        self.poll = poll
        self.timeout = timeout
        self.clients = clients
        self._local = threading.local()
        self._requests = requests

    def session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._requests.Session()
        return session

    def headers(self, tenant: str, role: str, supplier_id: str | None = None) -> dict[str, str]:
        token = self.issuer.mint(tenant, role, supplier_id=supplier_id, ttl_seconds=3600)
        return {"Authorization": f"Bearer {token}"}

    def _until(self, rec: Recorder, kind: str, url: str, headers: dict[str, str], done: set[str]) -> str:
        deadline = time.monotonic() + self.timeout
        status = ""
        while time.monotonic() < deadline:
            response = rec.request(self.session(), kind, "GET", url, headers=headers)
            status = response.json().get("status", "") if response.status_code == 200 else ""
            if status in done:
                return status
            time.sleep(self.poll)
        return f"timeout ({status or 'no status'})"

    # -------------------------------------------------------------- flows (each returns (start, end, ok))
    def onboarding(self, rec: Recorder, tenant: str, headers: dict[str, str]) -> tuple[float, float, str]:
        body = {**SUPPLIER, "taxId": f"DE{uuid.uuid4().int % 10**9:09d}"}
        started = time.perf_counter()
        response = rec.request(self.session(), "POST /suppliers", "POST", f"{self.url}/suppliers",
                               json=body, headers=headers)  # fmt: skip
        if response.status_code != 202:
            return started, time.perf_counter(), f"POST {response.status_code}"
        supplier_id = response.json()["supplierId"]
        final = self._until(rec, "GET /suppliers/{id}", f"{self.url}/suppliers/{supplier_id}", headers,
                            {"APPROVED", "REJECTED", "FLAGGED"})  # fmt: skip
        return started, time.perf_counter(), final

    def order(self, rec: Recorder, tenant: str, headers: dict[str, str], supplier: tuple[str, dict[str, str]]
              ) -> tuple[float, float, str]:  # fmt: skip
        supplier_id, supplier_headers = supplier
        customer_order = f"web-{uuid.uuid4().hex[:12]}"
        body = {
            "customerOrderId": customer_order,
            "lines": [{"supplierId": supplier_id, "sku": LISTING["sku"], "quantity": 1,
                       "unitPrice": LISTING["price"]}],
            "shipTo": SHIP_TO,
        }  # fmt: skip
        started = time.perf_counter()
        response = rec.request(self.session(), "POST /orders", "POST", f"{self.url}/orders", json=body,
                               headers={**headers, "Idempotency-Key": customer_order})  # fmt: skip
        if response.status_code != 202:
            return started, time.perf_counter(), f"POST {response.status_code}"
        (part,) = response.json()["supplierOrders"]
        url = f"{self.url}/supplier-orders/{part['supplierOrderId']}"
        status = self._until(rec, "GET /supplier-orders/{id}", url, supplier_headers,
                             {"AWAITING_ACCEPTANCE", "REJECTED", "FLAGGED"})  # fmt: skip
        if status != "AWAITING_ACCEPTANCE":
            return started, time.perf_counter(), status
        accepted = rec.request(self.session(), "POST /supplier-orders/{id}/accept", "POST", f"{url}/accept",
                               headers=supplier_headers)  # fmt: skip
        status = (
            accepted.json().get("status", "")
            if accepted.status_code == 200
            else f"accept {accepted.status_code}"
        )
        return started, time.perf_counter(), status

    # -------------------------------------------------------------- setup (not timed)
    def suppliers_with_listings(self, tenant: str, count: int) -> list[tuple[str, dict[str, str]]]:
        rec = Recorder()
        retailer = self.headers(tenant, "retailer")
        with ThreadPoolExecutor(count) as pool:
            results = list(pool.map(lambda _: self.onboarding(rec, tenant, retailer), range(count)))
        suppliers = []
        session = self.session()
        for _, _, status in results:
            if status != "APPROVED":
                raise RuntimeError(f"setup: a supplier ended {status}")
        listed = session.get(f"{self.url}/suppliers", headers=retailer, timeout=30).json()["items"]
        for item in listed:
            headers = self.headers(tenant, "supplier", item["supplierId"])
            created = session.post(f"{self.url}/suppliers/{item['supplierId']}/products", json=LISTING,
                                   headers=headers, timeout=30)  # fmt: skip
            if created.status_code != 202:
                raise RuntimeError(f"setup: listing {created.status_code} {created.text}")
            suppliers.append((item["supplierId"], headers))
        for supplier_id, headers in suppliers:
            url = f"{self.url}/suppliers/{supplier_id}/products/{LISTING['sku']}"
            deadline = time.monotonic() + self.timeout
            while session.get(url, headers=headers, timeout=30).json().get("status") != "ACTIVE":
                if time.monotonic() > deadline:
                    raise RuntimeError("setup: a listing never became ACTIVE")
                time.sleep(0.1)
        return suppliers

    def run(self, n: int, order_suppliers: int = 4) -> dict[str, Any]:
        tenant = f"bench-{uuid.uuid4().hex[:10]}"
        suppliers = self.suppliers_with_listings(tenant, order_suppliers)
        retailer = self.headers(tenant, "retailer")
        rec = Recorder()
        jobs: queue.Queue[tuple[str, int]] = queue.Queue()
        for i in range(n):
            jobs.put(("onboarding", i))
            jobs.put(("order", i))
        outcomes: dict[str, list[tuple[float, float, str]]] = {"onboarding": [], "order": []}
        lock = threading.Lock()

        def client() -> None:
            while True:
                try:
                    kind, i = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    if kind == "onboarding":
                        outcome = self.onboarding(rec, tenant, retailer)
                    else:
                        outcome = self.order(rec, tenant, retailer, suppliers[i % len(suppliers)])
                except Exception as exc:  # a client error is a failed flow, not a crashed benchmark
                    outcome = (time.perf_counter(), time.perf_counter(), f"client error {exc!r}"[:200])
                with lock:
                    outcomes[kind].append(outcome)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(self.clients)]
        wall = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - wall

        finals = {"onboarding": "APPROVED", "order": "ACCEPTED"}
        result: dict[str, Any] = {"n": n, "wall_s": wall}
        for kind, flows in outcomes.items():
            ok = [f for f in flows if f[2] == finals[kind]]
            span = max(f[1] for f in flows) - min(f[0] for f in flows)
            result[kind] = {
                "completed": len(ok),
                "failed": collections.Counter(f[2] for f in flows if f[2] != finals[kind]),
                "span_s": span,
                "per_s": len(ok) / span if span > 0 else 0.0,
                "flow_p50_s": percentile([f[1] - f[0] for f in ok], 50),
                "flow_p99_s": percentile([f[1] - f[0] for f in ok], 99),
            }
        everything = [v for values in rec.latencies.values() for v in values]
        result["api"] = {
            "requests": len(everything),
            "p50_ms": percentile(everything, 50) * 1000,
            "p99_ms": percentile(everything, 99) * 1000,
            "by_request": {
                kind: {
                    "count": len(v),
                    "p50_ms": percentile(v, 50) * 1000,
                    "p99_ms": percentile(v, 99) * 1000,
                }
                for kind, v in sorted(rec.latencies.items())
            },
            "5xx": dict(rec.errors),
        }
        return result


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


# ------------------------------------------------------------------------------------ profiling
def profile_during(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy samples the stack process (every thread that holds the GIL) for ``seconds``."""
    py_spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(  # noqa: S603 - py-spy from our own virtual environment
        [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
         "--format", "raw", "--gil", "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def top_frames(collapsed: Path, limit: int = 25) -> dict[str, Any]:
    """From py-spy's collapsed stacks: the share of samples in which each function is on the stack
    (inclusive) and at its top (self), heaviest first."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [_short(frame) for frame in stack.split(";")[1:]]  # the first frame is the thread
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    share = lambda c: round(100 * c / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "inclusive_pct": {f: share(c) for f, c in inclusive.most_common(limit)},
        "self_pct": {f: share(c) for f, c in own.most_common(limit)},
    }


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``: lines merge, paths shorten."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(file).parts
    tail = "/".join(parts[-2:]) if len(parts) > 1 else file
    return f"{name} ({tail})"


# ------------------------------------------------------------------------------------ runs
def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run(
    n: int = 150,
    runs: int = 3,
    clients: int = 16,
    poll: float = 0.1,
    variants: tuple[str, ...] = ("baseline", "fast"),
    profile: bool = False,
    timeout: float = 120.0,
    log: Any = print,
) -> dict[str, Any]:
    """Start a stack process per variant, warm each up, then ``runs`` measured runs alternating
    between the variants. Returns per variant the runs and the median/min/max of each figure."""
    stacks = {variant: StackProcess.start(variant) for variant in variants}
    per_variant: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    profiles: dict[str, Any] = {}
    try:
        drivers = {v: Driver(s.url, s.state_dir, clients, poll, timeout) for v, s in stacks.items()}
        for variant, driver in drivers.items():
            log(f"  warm-up {variant}")
            driver.run(max(10, n // 10))
        for i in range(runs):
            for variant, driver in drivers.items():
                sampler = None
                if profile and i == 0:
                    # The raw stacks (megabytes) stay out of the tree; the top frames go in the report.
                    out = Path(tempfile.gettempdir()) / f"bench-profile-{variant}-{os.getpid()}.collapsed.txt"
                    sampler = profile_during(stacks[variant].process.pid, out, seconds=15)
                    time.sleep(1.0)  # py-spy attaches
                measured = driver.run(n)
                if sampler is not None:
                    sampler.wait(timeout=60)
                    profiles[variant] = top_frames(out)
                per_variant[variant].append(measured)
                log(
                    f"  run {i + 1}/{runs} {variant:>8}: onboardings {measured['onboarding']['per_s']:.1f}/s, "
                    f"orders {measured['order']['per_s']:.1f}/s, api p50 {measured['api']['p50_ms']:.0f} ms "
                    f"p99 {measured['api']['p99_ms']:.0f} ms"
                )
    finally:
        for stack in stacks.values():
            stack.stop()

    report: dict[str, Any] = {
        "n": n, "runs": runs, "clients": clients, "poll_s": poll,
        "variants": {v: VARIANTS[v] for v in variants},
    }  # fmt: skip
    for variant, measured in per_variant.items():
        report[variant] = {
            "onboardings_per_s": summary([m["onboarding"]["per_s"] for m in measured]),
            "orders_per_s": summary([m["order"]["per_s"] for m in measured]),
            "api_p50_ms": summary([m["api"]["p50_ms"] for m in measured]),
            "api_p99_ms": summary([m["api"]["p99_ms"] for m in measured]),
            "failed_flows": sum(
                sum(m[k]["failed"].values()) for m in measured for k in ("onboarding", "order")
            ),
            "runs": measured,
        }
    if len(variants) == 2:
        base, fast = variants
        report["ratios"] = {"of": f"{fast}/{base}"} | {
            key: statistics.median(
                _fig(f, key) / _fig(b, key) if _fig(b, key) else 0.0
                for b, f in zip(per_variant[base], per_variant[fast], strict=True)
            )
            for key in ("onboardings_per_s", "orders_per_s", "api_p99_ms")
        }
    if profiles:
        report["profiles"] = profiles
    return report


def _fig(measured: dict[str, Any], key: str) -> float:
    return {
        "onboardings_per_s": measured["onboarding"]["per_s"],
        "orders_per_s": measured["order"]["per_s"],
        "api_p99_ms": measured["api"]["p99_ms"],
    }[key]


def print_table(report: dict[str, Any]) -> None:
    variants = list(report["variants"])
    print(f"\nend-to-end throughput: n={report['n']} onboardings + n orders per run, {report['clients']} "
          f"clients, poll {report['poll_s']} s; median (min-max) of {report['runs']} runs")  # fmt: skip
    header = f"{'':<22}" + "".join(f"{v:>26}" for v in variants)
    print(header)
    print("-" * len(header))
    for key, label in (("onboardings_per_s", "onboardings/s"), ("orders_per_s", "supplier orders/s"),
                       ("api_p50_ms", "API p50 ms"), ("api_p99_ms", "API p99 ms")):  # fmt: skip
        cells = []
        for v in variants:
            s = report[v][key]
            cells.append(f"{s['median']:.1f} ({s['min']:.1f}-{s['max']:.1f})")
        print(f"{label:<22}" + "".join(f"{c:>26}" for c in cells))
    print(f"{'failed flows':<22}" + "".join(f"{report[v]['failed_flows']:>26}" for v in variants))
    described = "; ".join(f"{v} = StackConfig({', '.join(f'{k}={o}' for k, o in VARIANTS[v].items())})"
                          for v in variants)  # fmt: skip
    print(f"variants: {described}. baseline is the stack before these options; fast is the default; "
          "iam-off is the default without the IAM check. "
          "No template setting is overridden: the stream mappings' batching windows are honoured in real time.")  # fmt: skip
    if "ratios" in report:
        r = report["ratios"]
        print(f"\n{r['of']}, median of run-by-run ratios: onboardings x{r['onboardings_per_s']:.2f}, "
              f"orders x{r['orders_per_s']:.2f}, API p99 x{r['api_p99_ms']:.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=150, help="onboardings and orders per run (each)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--variants", default="baseline,fast")
    parser.add_argument("--profile", action="store_true", help="py-spy the stack during the first run")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--serve", metavar="VARIANT", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.state_dir)
    started = datetime.now(UTC)
    report = run(n=args.n, runs=args.runs, clients=args.clients, poll=args.poll,
                 variants=tuple(args.variants.split(",")), profile=args.profile)  # fmt: skip
    report["timestamp"] = started.isoformat(timespec="seconds")
    print_table(report)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"throughput-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

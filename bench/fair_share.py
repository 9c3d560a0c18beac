"""`python -m bench.fair_share`: what the fair share's limiter (marketplace.fair_share, D52) costs.

1. Time per request of ``FairShare.admit`` on this machine, its leases answered by an in-memory
   count (the DynamoDB write it stands for is counted, not timed: on AWS it is one UpdateItem, a few
   milliseconds, once per lease, not per request).
2. A tenant's requests spread at random over N API instances at a steady rate, simulated
   second by second with the limiter's own code: the conditional writes per million requests (each 1 WRU, at the
   price in bench/prices.json), and how many of the tier's limit a tenant offering twice its limit
   is let in (what the leases left unspent cost it).

The simulation's table is :class:`Count` (one dictionary): the figures are the limiter's
arithmetic, which the unit tests hold to the real table (tests/unit/test_fair_share.py).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from marketplace import tenants
from marketplace.errors import Throttled
from marketplace.fair_share import FairShare

PRICES = json.loads((Path(__file__).parent / "prices.json").read_text())["prices"]
REQUESTS_PER_ORDER = 2  # placed, accepted (docs/capacity.md)


class Count:
    """The request-window items as ``Table.take`` keeps them, in memory."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], int] = {}

    def take(self, pk: str, sk: str, counter: str, n: int, ceiling: int, expires_at: int) -> tuple[bool, int]:
        found = self.items.get((pk, sk), 0)
        if found + n > ceiling:
            return False, found
        self.items[(pk, sk)] = found + n
        return True, found + n


class Clock:
    def __init__(self, at: float = 1_900_000_000.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def time_per_admit(requests: int) -> float:
    """Microseconds per admitted request, one instance, steady (leases from the in-memory count)."""
    clock, limit = Clock(), tenants.REQUEST_LIMITS[tenants.STANDARD]
    limiter = FairShare(Count(), clock)  # type: ignore[arg-type]
    started = time.perf_counter()
    for i in range(requests):
        clock.at = 1_900_000_000.0 + i / (limit * 0.9)  # 90 % of the limit: never refused
        limiter.admit("t", limit, tenants.STANDARD)
    return (time.perf_counter() - started) / requests * 1e6


def simulate(instances: int, offered_per_s: int, limit: int, seconds: int = 10) -> dict[str, Any]:
    """A tenant's ``offered_per_s`` requests a second, each to an instance drawn at random (seeded),
    for ``seconds``."""
    clock, table, draw = Clock(), Count(), random.Random(7)
    limiters = [FairShare(table, clock) for _ in range(instances)]  # type: ignore[arg-type]
    admitted = refused = 0
    per_second: list[int] = []
    for second in range(seconds):
        let_in = 0
        for i in range(offered_per_s):
            clock.at = 1_900_000_000.0 + second + i / offered_per_s
            try:
                limiters[draw.randrange(instances)].admit("t", limit, tenants.STANDARD)
                let_in += 1
            except Throttled:
                refused += 1
        admitted += let_in
        per_second.append(let_in)
    writes = sum(limiter.writes for limiter in limiters)
    offered = offered_per_s * seconds
    return {
        "instances": instances, "offered_per_s": offered_per_s, "limit": limit,
        "admitted_per_s": admitted / seconds, "of_limit": admitted / seconds / limit if offered_per_s >= limit else None,
        "steady_admitted_per_s": min(per_second[1:]), "refused": refused,
        "writes_per_million_requests": writes / offered * 1e6,
        "wru_usd_per_million_orders": writes / offered * REQUESTS_PER_ORDER * 1e6 * PRICES["dynamodb_on_demand_per_wru"]["usd"],
        "writes_per_s": writes / seconds,
    }  # fmt: skip


def figures(runs: int, requests: int = 100_000) -> dict[str, Any]:
    """What ``make bench`` prints: the time per request over ``runs`` runs, and a standard tenant's
    steady 2,000 requests/s over 1, 50 and 200 instances (the simulation is deterministic)."""
    limit = tenants.REQUEST_LIMITS[tenants.STANDARD]
    return {
        "admit_us": [time_per_admit(requests) for _ in range(runs)],
        "steady": [simulate(instances, 2000, limit) for instances in (1, 50, 200)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    limit = tenants.REQUEST_LIMITS[tenants.STANDARD]
    print(f"admit: {time_per_admit(args.requests):.2f} µs per request (one instance, steady, in memory)")
    print(
        "instances  offered/s  admitted/s (of limit)  writes per 1M requests  WRU $ per 1M orders  writes/s"
    )
    for instances in (1, 10, 50, 200):
        for offered in (2000, 2 * limit):
            r = simulate(instances, offered, limit)
            share = f" ({r['of_limit']:.0%})" if r["of_limit"] is not None else ""
            print(f"{instances:9}  {offered:9}  {r['steady_admitted_per_s']:10.0f}{share:11}  "
                  f"{r['writes_per_million_requests']:22,.0f}  {r['wru_usd_per_million_orders']:19.4f}  "
                  f"{r['writes_per_s']:8.0f}")  # fmt: skip


if __name__ == "__main__":
    main()

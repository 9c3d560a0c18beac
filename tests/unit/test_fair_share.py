"""The fair share's limiter (marketplace.fair_share, D52) against a table shaped as the stack's: a
tenant gets exactly its limit in a second however many API instances lease it, a used-up tenant is
refused with a 429 naming its limit and when to retry, costs no write per request, and leaves other
tenants alone."""

from __future__ import annotations

import pytest

from marketplace import keys, tenants
from marketplace.errors import Throttled, TransientError
from marketplace.fair_share import FairShare


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def seconds() -> Clock:
    return Clock(1_900_000_000.25)


def drain(limiter: FairShare, tenant: str, limit: int) -> int:
    """Requests of ``tenant`` until this instance is refused: how many it let in."""
    admitted = 0
    while True:
        try:
            limiter.admit(tenant, limit, "standard")
        except Throttled:
            return admitted
        admitted += 1


def test_a_tenant_gets_exactly_its_limit_in_a_second_across_instances(quiet_table, tenant, seconds):
    instances = [FairShare(quiet_table, seconds) for _ in range(3)]
    admitted = 0
    # Interleaved, as instances serve a tenant's requests at once, until every one is refused.
    while True:
        round_ = 0
        for limiter in instances:
            try:
                limiter.admit(tenant, 50, "standard")
                round_ += 1
            except Throttled:
                pass
        admitted += round_
        if round_ == 0:
            break
    assert admitted == 50, "every lease spent: not one request more or less than the limit"
    item = quiet_table.get(keys.request_window_pk(tenant, 1_900_000_000), keys.REQUEST_WINDOW_SK)
    assert item["granted"] == 50 and item["expiresAt"] == 1_900_000_000 + 60
    seconds.at += 1  # the next second: a new count
    assert sum(drain(limiter, tenant, 50) for limiter in instances) == 50


def test_a_used_up_tenant_is_refused_naming_its_limit_and_when_to_retry(quiet_table, tenant, seconds):
    limiter = FairShare(quiet_table, seconds)
    assert drain(limiter, tenant, 10) == 10
    with pytest.raises(Throttled) as refused:
        limiter.admit(tenant, 10, "standard")
    assert refused.value.status == 429 and refused.value.code == "throttled"
    assert refused.value.retry_after == 1
    assert str(refused.value) == (
        f"tenant {tenant} used up its request limit of 10 requests per second (standard tier): retry after 1 s"
    )


def test_a_flood_costs_one_refused_write_per_instance_and_second_not_one_per_request(
    quiet_table, tenant, seconds
):
    limiter = FairShare(quiet_table, seconds)
    drain(limiter, tenant, 10)
    writes = limiter.writes
    for _ in range(1000):
        with pytest.raises(Throttled):
            limiter.admit(tenant, 10, "standard")
    assert limiter.writes == writes, "a used-up second is known in memory"


def test_a_steady_instance_leases_its_requests_in_a_few_writes(quiet_table, tenant, seconds):
    limiter, limit = FairShare(quiet_table, seconds), tenants.REQUEST_LIMITS["standard"]
    per_second = []
    for _ in range(3):
        before = limiter.writes
        for _ in range(1000):
            limiter.admit(tenant, limit, "standard")
        per_second.append(limiter.writes - before)
        seconds.at += 1
    # The first second grows its lease from one (1, 2, 4, ... to a twentieth of the limit); later
    # seconds lease half the previous second's requests, up to that twentieth.
    assert per_second[0] <= 16 and per_second[1] <= 9 and per_second[2] <= 9, per_second


def test_one_tenant_used_up_leaves_another_its_own_limit(quiet_table, tenant, seconds):
    limiter = FairShare(quiet_table, seconds)
    drain(limiter, tenant, 5)
    assert drain(limiter, f"{tenant}-b", 5) == 5


def test_the_limits_are_set_per_tier_and_a_tenant_without_a_record_is_standard():
    assert set(tenants.REQUEST_LIMITS) == {tenants.STANDARD, tenants.PREMIUM}
    # A standard tenant's 1,000 orders/s are 2,000 requests/s (placed, accepted).
    assert tenants.REQUEST_LIMITS[tenants.STANDARD] >= 2 * 1000
    assert tenants.REQUEST_LIMITS[tenants.PREMIUM] > tenants.REQUEST_LIMITS[tenants.STANDARD]


class Throttling:
    """A table whose writes DynamoDB throttles (after the client's own retries)."""

    def take(self, *args: object, **kwargs: object) -> tuple[bool, int]:
        raise TransientError("ProvisionedThroughputExceededException")


def test_a_count_that_cannot_be_written_lets_the_request_in_rather_than_refuse_it(seconds):
    limiter = FairShare(Throttling(), seconds)  # type: ignore[arg-type]
    for _ in range(3):
        limiter.admit("t-any", 1, "standard")
    assert limiter.writes == 3, "uncounted, one request at a time: each asks again"

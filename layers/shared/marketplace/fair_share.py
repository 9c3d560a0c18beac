"""Fair share: each tenant's API requests held to its tier's limit, so that one tenant's flood never
takes another's capacity (docs/decisions.md D52).

A tenant may make ``limit`` requests in each second (Unix time, the same second in every API
instance); one item per tenant and second counts the requests granted so far
(``keys.request_window_pk``). An API instance does not write it per request: it **leases** a few at
a time with one conditional ``ADD`` (granted only while the second's count stays within the limit)
and spends them from memory. When the second has fewer left than it asked for, it takes what is
left; when none is left, the instance answers 429 for the rest of that second without asking again.
So the count never exceeds the limit whatever the number of instances (leases never over-grant),
and a tenant that floods costs one refused write per instance and second.

The lease grows with what the instance served of the tenant: its previous second's requests (one
write per instance and second at a steady rate), doubling within a second from one (a fresh
instance asks 1, 2, 4, ...), and never more than a twentieth of the limit, so that one instance
holds little of what the others may need. What an instance leased and did not spend by the
second's end is lost to the tenant for that second: the tiers' limits carry a half more than their
promise for it (``tenants.REQUEST_LIMITS``).

Rejected (D52): a write per request (1 WRU per request, and one key per tenant would pass DynamoDB's
1,000 writes/s per key below a tenant's 2,000 requests/s); a count in memory per instance (the
tenant's share would be the limit times an instance count nobody controls); API Gateway usage plans
(they key on API keys, not on the tenant of a Cognito token).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from marketplace import clock, keys
from marketplace.errors import Throttled, TransientError
from marketplace.repository import Table

WINDOW_KEPT_SECONDS = 60  # a second's count expires (TTL) a minute after it: nothing reads it then
LEASE_SHARE = 20  # an instance leases at most a twentieth of the limit at a time


@dataclass
class _Second:
    """An instance's view of one tenant's current second."""

    second: int
    leased: int = 0  # granted to this instance and not yet spent
    served: int = 0  # requests this instance saw for the tenant in this second
    previous: int = 0  # ... in the second before it
    used_up: bool = False  # the tenant's count reached its limit: 429 until the second ends


def _now() -> float:
    return clock.now().timestamp()


class FairShare:
    """One API instance's limiter: :meth:`admit` before a tenant's request runs."""

    def __init__(self, table: Table | None = None, now: Callable[[], float] = _now) -> None:
        self._table = table
        self.now = now
        self.seconds: dict[str, _Second] = {}
        self.writes = 0  # the conditional writes made (the limiter's cost, for the bench)

    @property
    def table(self) -> Table:
        return self._table or Table()

    def admit(self, tenant_id: str, limit: int, tier: str) -> None:
        """Let the request in, or raise :class:`Throttled` (429) naming the limit, with the seconds
        until the next second begins as ``retry_after``."""
        moment = self.now()
        second = int(moment)
        state = self.seconds.get(tenant_id)
        if state is None or state.second != second:
            previous = state.served if state is not None and state.second == second - 1 else 0
            state = self.seconds[tenant_id] = _Second(second, previous=previous)
        state.served += 1
        if state.leased == 0 and not state.used_up:
            state.leased = self._lease(tenant_id, second, limit, self._lease_size(state, limit))
            state.used_up = state.leased == 0
        if state.leased > 0:
            state.leased -= 1
            return
        wait = max(1, math.ceil(second + 1 - moment))
        raise Throttled(
            f"tenant {tenant_id} used up its request limit of {limit} requests per second ({tier} tier): "
            f"retry after {wait} s",
            retry_after=wait,
        )

    @staticmethod
    def _lease_size(state: _Second, limit: int) -> int:
        return max(1, min(max(state.previous, state.served), math.ceil(limit / LEASE_SHARE)))

    def _lease(self, tenant_id: str, second: int, limit: int, wanted: int) -> int:
        """Up to ``wanted`` of the second's requests for this instance: all of them while the count
        stays within ``limit``, else what is left (0 when none is)."""
        try:
            granted, count = self._add(tenant_id, second, limit, wanted)
            if granted:
                return wanted
            left = min(limit - count, wanted)
            if left <= 0:
                return 0
            granted, _ = self._add(tenant_id, second, limit, left)
            return left if granted else 0
        except TransientError:
            # The count cannot be written now (DynamoDB throttled or timed out): this one request
            # is let in uncounted rather than refused for the limiter's sake; the next one asks again.
            return 1

    def _add(self, tenant_id: str, second: int, limit: int, n: int) -> tuple[bool, int]:
        """Add ``n`` to the second's count unless that passes ``limit``: (added, the count then)."""
        self.writes += 1
        return self.table.take(
            keys.request_window_pk(tenant_id, second), keys.REQUEST_WINDOW_SK, "granted", n, limit,
            expires_at=second + WINDOW_KEPT_SECONDS,
        )  # fmt: skip

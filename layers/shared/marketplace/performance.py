"""A supplier's performance: what became of its orders, counted from the table's stream, over the
last 30 and 90 days (docs/orders.md section 8, docs/decisions.md D46).

Every order counts on the day it was placed (its ``createdAt``, UTC): one item per supplier and day
(``keys.performance_pk`` / ``keys.performance_day_sk``) holds the counters of that day's orders, and
each counter is moved by ``ADD`` when one of those orders reaches the point it counts, whenever that
happens. So every rate is a share of one set of orders (those placed in the window) and is never
above 1: an order counted as refunded is one counted as delivered.

What an order counts, once each (:func:`counts_for`, from the stream record's old and new image):

* ``decided`` when the supplier's decision is taken or its time runs out (``AWAITING_ACCEPTANCE`` to
  ``ACCEPTED``, ``REJECTED`` or ``EXPIRED``), and one of ``accepted``, ``refused`` (every line
  refused is a rejection), ``expired``; an accepted order also counts its acceptance delay (from its
  placement to its acceptance) in one bucket of :data:`DELAY_BUCKETS`;
* ``shipped`` when it becomes ``SHIPPED`` (its last unit left, or the rest was cancelled), and
  ``shippedLate`` too when that is after its ``shipBy``;
* ``cancelled`` when an accepted order is cancelled by its supplier or by the deadline sweeper (not
  shipped in time); a cancellation by the retailer or an admin is theirs, not the supplier's;
* ``delivered`` when it becomes ``DELIVERED``; ``returned`` at its first return, ``refunded`` at
  its first refund (a return received, or an incident decided with a refund), ``incidents`` at its
  first incident (a return refused or disputed).

The events function (the one that reads every order change from the stream, D39) counts each change
in one transaction: the counters' ``ADD`` and an item named by the change's event id, written only
if absent (``keys.counted_sk``), so a stream record delivered twice, a batch retried or bisected, or
two instances at once count it once (docs/decisions.md D46).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import accumulate
from typing import Any

from marketplace import access, keys
from marketplace import order_lifecycle as lifecycle
from marketplace.clock import iso, now, parse_iso
from marketplace.orders import ENTITY as ORDER  # the entity whose changes count
from marketplace.principal import Principal
from marketplace.repository import Table, TransactionCancelled, TransactionConflict, plain, to_item
from marketplace.suppliers import Suppliers

ENTITY = "PERFORMANCE_DAY"
COUNTED = "PERFORMANCE_COUNTED"
WINDOWS = (30, 90)  # days, today (UTC) included
KEEP_DAYS = 120  # a day's counters expire (TTL) this long after the day: past the longest window
# A counted event's item only has to outlive the redeliveries of its stream record: the mapping gives
# up on a record a day old (MaximumRecordAgeInSeconds), and the stream keeps none longer.
COUNTED_KEPT = timedelta(days=7)

# The acceptance delay's buckets, by their lower bound in seconds: a bucket holds the delays from its
# bound up to the next one (the last, 48 hours and more, has no upper bound). The median is known to
# its bucket: under 5 minutes, 5-15 min, 15-30 min, 30 min-1 h, 1-2 h, 2-4 h, 4-8 h, 8-12 h, 12-24 h,
# 24-48 h, 48 h and more.
DELAY_BUCKETS = (0, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800)

COUNTS = ("decided", "accepted", "refused", "expired", "shipped", "shippedLate", "cancelled",
          "delivered", "returned", "refunded", "incidents")  # fmt: skip
# Each rate: (its numerator, its denominator), both counts of the orders placed in the window.
RATES: dict[str, tuple[str, str]] = {
    "acceptanceRate": ("accepted", "decided"),
    "refusalRate": ("refused", "decided"),
    "expiryRate": ("expired", "decided"),
    "lateShipmentRate": ("shippedLate", "shipped"),
    "cancellationRate": ("cancelled", "accepted"),
    "returnRate": ("returned", "delivered"),
    "refundRate": ("refunded", "delivered"),
    "incidentRate": ("incidents", "delivered"),
}
RATE_PLACES = Decimal("0.0001")
TRANSACTION_ATTEMPTS = 4

_DECISIONS = {lifecycle.ACCEPTED: "accepted", lifecycle.REJECTED: "refused", "EXPIRED": "expired"}
# A return's statuses that say, once any return of an order has reached one, that the order had a
# return, a refund (received, or refunded by the admin's decision), an incident (refused or
# disputed, and so decided by the admin either way).
_RETURN_MARKS: tuple[tuple[str, frozenset[str]], ...] = (
    ("returned", frozenset(lifecycle.RETURN_STATUSES)),
    ("refunded", frozenset({lifecycle.RETURN_STEPS["receive_return"][1], lifecycle.RETURN_DECIDED[True]})),
    ("incidents", frozenset({*lifecycle.INCIDENTS, *lifecycle.RETURN_DECIDED.values()})),
)


def delay_count(seconds: float) -> str:
    """The counter of the acceptance-delay bucket ``seconds`` falls in (``delayFrom<lower bound>``)."""
    bound = max(b for b in DELAY_BUCKETS if b <= max(seconds, 0))
    return f"delayFrom{bound}"


def counts_for(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, int]:
    """What one change of a supplier order counts (an empty dict for most changes), from the stream
    record's images before and after it."""
    if not old or not new or new.get("entity") != ORDER:
        return {}
    before, after = old.get("status"), new.get("status")
    counts: dict[str, int] = {}
    if before == lifecycle.AWAITING and after in _DECISIONS:
        counts.update({"decided": 1, _DECISIONS[after]: 1})
        if after == lifecycle.ACCEPTED:
            waited = parse_iso(str(new["acceptedAt"])) - parse_iso(str(new["createdAt"]))
            counts[delay_count(waited.total_seconds())] = 1
    if after == lifecycle.SHIPPED and before != lifecycle.SHIPPED:
        counts["shipped"] = 1
        if new.get("shipBy") and parse_iso(str(new["shippedAt"])) > parse_iso(str(new["shipBy"])):
            counts["shippedLate"] = 1
    if after == lifecycle.CANCELLED and before == lifecycle.ACCEPTED:
        by = Principal.acting_as(str(new.get("updatedBy") or ""))
        if access.SUPPLIER in by or lifecycle.SYSTEM in by:
            counts["cancelled"] = 1
    if after == lifecycle.DELIVERED and before != lifecycle.DELIVERED:
        counts["delivered"] = 1
    for name, statuses in _RETURN_MARKS:
        if not _has_return_in(old, statuses) and _has_return_in(new, statuses):
            counts[name] = 1
    return counts


def _has_return_in(order: Mapping[str, Any], statuses: frozenset[str]) -> bool:
    return any(status in statuses for status in dict(order.get("returns") or {}).values())


def placed_day(order: Mapping[str, Any]) -> str:
    """The day (UTC, ``YYYY-MM-DD``) an order was placed: the day its counts go to."""
    return parse_iso(str(order["createdAt"])).astimezone(UTC).date().isoformat()


def record(table: Table, event_id: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """Count one change of a supplier order (the stream record's images; ``event_id`` its event's id)
    in its supplier's counters, unless this event was counted already. Whether it counted now."""
    counts = counts_for(old, new)
    if not counts or new is None:
        return False
    tenant_id, supplier_id = str(new["tenantId"]), str(new["supplierId"])
    day = placed_day(new)
    mark = {
        "PK": keys.supplier_order_pk(tenant_id, str(new["supplierOrderId"])), "SK": keys.counted_sk(event_id),
        "entity": COUNTED, "tenantId": tenant_id, "supplierId": supplier_id, "eventId": event_id, "day": day,
        "counts": counts, "expiresAt": int((now() + COUNTED_KEPT).timestamp()),
    }  # fmt: skip
    kept = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC) + timedelta(days=KEEP_DAYS)
    fields = {"entity": ENTITY, "tenantId": tenant_id, "supplierId": supplier_id, "day": day,
              "expiresAt": int(kept.timestamp())}  # fmt: skip
    names = {**{f"#f{i}": k for i, k in enumerate(fields)}, **{f"#c{i}": k for i, k in enumerate(counts)}}
    values = {**{f":f{i}": v for i, v in enumerate(fields.values())},
              **{f":c{i}": n for i, n in enumerate(counts.values())}}  # fmt: skip
    sets = ", ".join(f"#f{i} = :f{i}" for i in range(len(fields)))
    adds = ", ".join(f"#c{i} :c{i}" for i in range(len(counts)))
    items = [
        {"Put": {"TableName": table.name, "Item": to_item(mark), "ConditionExpression": "attribute_not_exists(PK)"}},
        {"Update": {"TableName": table.name,
                    "Key": to_item({"PK": keys.performance_pk(tenant_id, supplier_id), "SK": keys.performance_day_sk(day)}),
                    "UpdateExpression": f"SET {sets} ADD {adds}", "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": to_item(values)}},
    ]  # fmt: skip
    attempt = 1
    while True:
        try:
            table.transact(items)
        except TransactionConflict:
            return False  # this event was counted already
        except TransactionCancelled:
            # Another transaction on the supplier's day item at that moment (its other orders'
            # changes, counted by other instances): back off and try again; the last refusal fails
            # the stream record, which the mapping delivers again.
            if attempt == TRANSACTION_ATTEMPTS:
                raise
            time.sleep(0.05 * 2**attempt)
            attempt += 1
        else:
            return True


def rate(numerator: int, denominator: int) -> int | float | None:
    """``numerator / denominator`` to four decimals (half to even), or None when there is nothing to
    divide by (no order reached the denominator's point in the window)."""
    if not denominator:
        return None
    # As every number the API answers: an int when whole (1, not 1.0), else a float (repository.plain).
    return plain((Decimal(numerator) / Decimal(denominator)).quantize(RATE_PLACES, ROUND_HALF_EVEN))


def median_delay(totals: Mapping[str, int]) -> dict[str, int | None] | None:
    """The bucket that holds the median acceptance delay (for an even number of acceptances, the
    lower of the two middle ones): ``{fromSeconds, toSeconds}``, ``toSeconds`` None for the last
    bucket; None without an acceptance."""
    running = list(accumulate(int(totals.get(delay_count(bound), 0)) for bound in DELAY_BUCKETS))
    middle = (running[-1] + 1) // 2
    if not middle:
        return None
    i = next(i for i, seen in enumerate(running) if seen >= middle)
    return {"fromSeconds": DELAY_BUCKETS[i], "toSeconds": (DELAY_BUCKETS[i + 1 :] or (None,))[0]}


def window(days: Mapping[str, Mapping[str, Any]], today: date, length: int) -> dict[str, Any]:
    """The figures of the orders placed in the ``length`` days up to ``today`` (both included), from
    the day items ``days`` (by day)."""
    first = today - timedelta(days=length - 1)
    totals: dict[str, int] = {}
    for day, item in days.items():
        if first.isoformat() <= day <= today.isoformat():
            for name, value in item.items():
                if name in COUNTS or name.startswith("delayFrom"):
                    totals[name] = totals.get(name, 0) + int(value)
    return {
        "from": first.isoformat(),
        "to": today.isoformat(),
        "counts": {name: totals.get(name, 0) for name in COUNTS},
        "rates": {name: rate(totals.get(n, 0), totals.get(d, 0)) for name, (n, d) in RATES.items()},
        "medianAcceptanceDelay": median_delay(totals),
    }


def read(principal: Principal, supplier_id: str, table: Table | None = None) -> dict[str, Any]:
    """The supplier's figures over each window, as of now: one query of its day items. The supplier
    itself, or the tenant's staff (an unknown supplier is 404)."""
    table = table or Table()
    access.require_supplier(principal, supplier_id)
    Suppliers(table).get(principal.tenant_id, supplier_id)
    at = now()
    today = at.astimezone(UTC).date()
    first = today - timedelta(days=max(WINDOWS) - 1)
    span = (keys.performance_day_sk(first.isoformat()), keys.performance_day_sk(today.isoformat()))
    page = table.query(
        keys.performance_pk(principal.tenant_id, supplier_id), sk_between=span, limit=max(WINDOWS)
    )
    days = {str(item["day"]): item for item in page.items}
    return {
        "supplierId": supplier_id,
        "asOf": iso(at),
        **{f"last{length}Days": window(days, today, length) for length in WINDOWS},
    }

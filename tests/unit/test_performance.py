"""A supplier's performance arithmetic, with worked examples computed by hand in each test: what each
change of an order counts, the windows' sums, the rates and the median acceptance delay's bucket
(marketplace.performance; docs/orders.md section 8, D46)."""

from __future__ import annotations

from datetime import date

import pytest

from marketplace import performance
from marketplace.performance import counts_for, delay_count, median_delay, rate, window
from marketplace.repository import TransactionCancelled, TransactionConflict

PLACED = "2026-12-01T10:00:00.000Z"


def order(status: str, **fields) -> dict:
    return {"entity": "SUPPLIER_ORDER", "tenantId": "t", "supplierId": "s-1", "supplierOrderId": "so-1",
            "createdAt": PLACED, "status": status, **fields}  # fmt: skip


def test_a_decision_counts_decided_and_its_kind_and_an_acceptance_its_delay():
    awaiting = order("AWAITING_ACCEPTANCE")
    # Accepted 50 min after placement: the 30 min to 1 h bucket (1800 <= 3000 < 3600).
    accepted = order("ACCEPTED", acceptedAt="2026-12-01T10:50:00.000Z", updatedBy="supplier:u")
    assert counts_for(awaiting, accepted) == {"decided": 1, "accepted": 1, "delayFrom1800": 1}
    assert counts_for(awaiting, order("REJECTED")) == {"decided": 1, "refused": 1}
    assert counts_for(awaiting, order("EXPIRED")) == {"decided": 1, "expired": 1}
    # Out of stock at the intake is no decision of the supplier's; a line cancelled while it awaits
    # (the status stays) decides nothing either.
    assert counts_for(order("PENDING"), order("REJECTED")) == {}
    assert counts_for(awaiting, awaiting) == {}
    # Creation (no old image) and other records count nothing.
    assert counts_for(None, awaiting) == {}
    assert (
        counts_for({"entity": "SUPPLIER", "status": "PENDING"}, {"entity": "SUPPLIER", "status": "APPROVED"})
        == {}
    )


def test_the_delay_buckets_hold_their_lower_bound_and_not_their_upper():
    assert [delay_count(s) for s in (0, 299.999, 300, 3599, 3600, 172799, 172800, 10**7)] == [
        "delayFrom0", "delayFrom0", "delayFrom300", "delayFrom1800", "delayFrom3600", "delayFrom86400",
        "delayFrom172800", "delayFrom172800"]  # fmt: skip
    assert delay_count(-2) == "delayFrom0"  # an acceptance stamped before its placement (clock skew)


def test_shipping_counts_once_the_order_is_shipped_and_late_after_its_ship_by():
    ship_by = "2026-12-04T10:50:00.000Z"
    accepted = order("ACCEPTED", shipBy=ship_by)
    partly = order("PARTIALLY_SHIPPED", shipBy=ship_by)
    assert counts_for(accepted, partly) == {}
    on_time = order("SHIPPED", shipBy=ship_by, shippedAt=ship_by)  # at the deadline is on time
    late = order("SHIPPED", shipBy=ship_by, shippedAt="2026-12-04T10:50:00.001Z")
    assert counts_for(partly, on_time) == {"shipped": 1}
    assert counts_for(accepted, late) == {"shipped": 1, "shippedLate": 1}
    assert counts_for(late, {**late, "status": "DELIVERED"}) == {"delivered": 1}


def test_a_cancellation_after_acceptance_counts_when_the_supplier_or_the_sweeper_made_it():
    accepted = order("ACCEPTED")
    for by, counted in (("supplier:u", True), ("admin+supplier:u", True), ("system:deadline-sweeper", True),
                        ("retailer:u", False), ("admin:u", False)):  # fmt: skip
        assert counts_for(accepted, order("CANCELLED", updatedBy=by)) == (
            {"cancelled": 1} if counted else {}
        ), by
    # Before acceptance a cancellation is never the supplier's doing.
    assert counts_for(order("AWAITING_ACCEPTANCE"), order("CANCELLED", updatedBy="admin:u")) == {}


def test_returns_count_an_orders_first_return_first_refund_and_first_incident():
    delivered = order("DELIVERED")
    asked = order("DELIVERED", returns={"r1": "REQUESTED"})
    assert counts_for(delivered, asked) == {"returned": 1}
    accepted = order("DELIVERED", returns={"r1": "ACCEPTED"})
    assert counts_for(asked, accepted) == {}
    received = order("DELIVERED", returns={"r1": "RECEIVED"})
    assert counts_for(accepted, received) == {"refunded": 1}
    # A second return, refused (an incident), then refunded by the admin: the order had its return
    # and its refund already; the incident is its first.
    second = order("DELIVERED", returns={"r1": "RECEIVED", "r2": "REQUESTED"})
    assert counts_for(received, second) == {}
    refused = order("DELIVERED", returns={"r1": "RECEIVED", "r2": "REFUSED"})
    assert counts_for(second, refused) == {"incidents": 1}
    assert counts_for(refused, order("DELIVERED", returns={"r1": "RECEIVED", "r2": "REFUNDED"})) == {}
    # An incident closed without a refund is still one incident, and no refund.
    disputed = order("DELIVERED", returns={"r1": "DISPUTED"})
    assert counts_for(accepted, disputed) == {"incidents": 1}
    assert counts_for(disputed, order("DELIVERED", returns={"r1": "CLOSED"})) == {}
    assert counts_for(disputed, order("DELIVERED", returns={"r1": "REFUNDED"})) == {"refunded": 1}


def test_rates_are_four_decimals_half_to_even_and_none_without_a_denominator():
    # 2/3 = 0.66666 -> 0.6667; 1/32 = 0.03125, a tie -> 0.0312 (2 is even); 3/32 = 0.09375 -> 0.0938.
    assert [rate(2, 3), rate(1, 32), rate(3, 32), rate(0, 5), rate(4, 4), rate(0, 0)] == [
        0.6667, 0.0312, 0.0938, 0.0, 1.0, None]  # fmt: skip


def test_the_median_is_the_bucket_of_the_middle_acceptance():
    assert median_delay({}) is None
    # One acceptance: its bucket. Three: the second (0-5 min, 5-15 min, 5-15 min sorted -> 5-15 min).
    assert median_delay({"delayFrom3600": 1}) == {"fromSeconds": 3600, "toSeconds": 7200}
    assert median_delay({"delayFrom0": 1, "delayFrom300": 2}) == {"fromSeconds": 300, "toSeconds": 900}
    # Four: the lower of the two middle ones, the second (0-5 min, 0-5 min | 1-2 h, 48 h+).
    assert median_delay({"delayFrom0": 2, "delayFrom3600": 1, "delayFrom172800": 1}) == {
        "fromSeconds": 0, "toSeconds": 300}  # fmt: skip
    # The last bucket has no upper bound.
    assert median_delay({"delayFrom172800": 3, "delayFrom0": 1}) == {"fromSeconds": 172800, "toSeconds": None}


def test_a_window_sums_the_days_it_spans_and_its_rates_share_those_sums():
    """Today 2026-12-07. Orders placed 2026-12-07: 3 decided, 2 accepted (one in 0-5 min, one in
    15-30 min), 1 refused, 2 shipped of which 1 late, 1 delivered. 2026-11-08 (29 days back, the 30
    days' first): 1 decided and accepted (1-2 h), shipped, delivered, returned and refunded. 2026-11-07
    (30 days back): in the 90 days only: 2 decided, 2 expired. 2026-09-08 (90 days back): in neither.
    30 days: decided 4, accepted 3, refused 1; rates 0.75, 0.25, 0; shipped 3, late 1 -> 0.3333;
    delivered 2, returned 1, refunded 1 -> 0.5, 0.5; median of 3 delays (0-5 min, 15-30 min, 1-2 h):
    the second, 15-30 min.
    90 days: decided 6, accepted 3 -> 0.5, expired 2 -> 0.3333, refused 1 -> 0.1667."""
    days = {
        "2026-12-07": {"decided": 3, "accepted": 2, "refused": 1, "shipped": 2, "shippedLate": 1, "delivered": 1,
                       "delayFrom0": 1, "delayFrom900": 1, "day": "2026-12-07", "entity": "PERFORMANCE_DAY"},
        "2026-11-08": {"decided": 1, "accepted": 1, "shipped": 1, "delivered": 1, "returned": 1, "refunded": 1,
                       "delayFrom3600": 1},
        "2026-11-07": {"decided": 2, "expired": 2},
        "2026-09-08": {"decided": 5, "accepted": 5, "delayFrom0": 5},
    }  # fmt: skip
    today = date(2026, 12, 7)
    month = window(days, today, 30)
    assert (month["from"], month["to"]) == ("2026-11-08", "2026-12-07")
    assert month["counts"] == {"decided": 4, "accepted": 3, "refused": 1, "expired": 0, "shipped": 3,
                               "shippedLate": 1, "cancelled": 0, "delivered": 2, "returned": 1,
                               "refunded": 1, "incidents": 0}  # fmt: skip
    assert month["rates"] == {"acceptanceRate": 0.75, "refusalRate": 0.25, "expiryRate": 0.0,
                              "lateShipmentRate": 0.3333, "cancellationRate": 0.0, "returnRate": 0.5,
                              "refundRate": 0.5, "incidentRate": 0.0}  # fmt: skip
    assert month["medianAcceptanceDelay"] == {"fromSeconds": 900, "toSeconds": 1800}
    quarter = window(days, today, 90)
    assert quarter["from"] == "2026-09-09"
    assert (quarter["counts"]["decided"], quarter["counts"]["expired"]) == (6, 2)
    assert (quarter["rates"]["acceptanceRate"], quarter["rates"]["expiryRate"], quarter["rates"]["refusalRate"]) == (
        0.5, 0.3333, 0.1667)  # fmt: skip
    # No order in the window: every count 0, no rate, no median.
    empty = window({}, today, 30)
    assert set(empty["counts"].values()) == {0} and set(empty["rates"].values()) == {None}
    assert empty["medianAcceptanceDelay"] is None


def test_an_order_counts_on_the_day_it_was_placed_in_utc():
    assert performance.placed_day({"createdAt": "2026-12-01T23:59:59.999Z"}) == "2026-12-01"
    assert performance.placed_day({"createdAt": "2026-12-01T23:30:00.000-01:00"}) == "2026-12-02"


class Transactions:
    """A table whose transactions answer, in turn, what ``outcomes`` says (an exception to raise, or
    None for written); each transaction sent is kept."""

    name = "t"

    def __init__(self, *outcomes: Exception | None) -> None:
        self.outcomes, self.sent = list(outcomes), []

    def transact(self, items: list) -> None:
        self.sent.append(items)
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome


def test_a_change_is_counted_in_one_transaction_retried_while_another_holds_the_day_item(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(performance.time, "sleep", slept.append)
    old = order("AWAITING_ACCEPTANCE", version=2)
    new = order("REJECTED", version=3)
    busy = TransactionCancelled([{"Code": "None"}, {"Code": "TransactionConflict"}])
    table = Transactions(busy, None)
    assert performance.record(table, "so-1-v3", old, new) is True  # type: ignore[arg-type]
    mark, day = table.sent[0]
    assert (mark["Put"]["ConditionExpression"], day["Update"]["UpdateExpression"]) == (
        "attribute_not_exists(PK)", "SET #f0 = :f0, #f1 = :f1, #f2 = :f2, #f3 = :f3, #f4 = :f4 ADD #c0 :c0, #c1 :c1")  # fmt: skip
    assert day["Update"]["Key"] == {"PK": {"S": "TENANT#t#PERFORMANCE#s-1"}, "SK": {"S": "DAY#2026-12-01"}}
    assert mark["Put"]["Item"]["SK"] == {"S": "COUNTED#so-1-v3"} and table.sent[1] == table.sent[0]
    assert slept == [0.1]
    # Counted already (the mark's condition failed): nothing more, no retry.
    counted = Transactions(TransactionConflict([{"Code": "ConditionalCheckFailed"}, {"Code": "None"}]))
    assert performance.record(counted, "so-1-v3", old, new) is False  # type: ignore[arg-type]
    # Cancelled every time: the stream record fails after the last try (the mapping delivers it again).
    with pytest.raises(TransactionCancelled):
        performance.record(Transactions(busy, busy, busy, busy), "so-1-v3", old, new)  # type: ignore[arg-type]
    assert slept == [0.1, 0.1, 0.2, 0.4]
    # A change that counts nothing writes nothing.
    assert performance.record(Transactions(), "so-1-v4", new, {**new, "version": 4}) is False  # type: ignore[arg-type]

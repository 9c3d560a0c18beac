"""The supplier-order lifecycle after intake (marketplace.order_lifecycle): who may fire which
transition from which status, what a line still holds, when an order is shipped, and the one event
each transition emits (marketplace.events)."""

from __future__ import annotations

import pytest

from marketplace import order_lifecycle as lifecycle
from marketplace.errors import Conflict
from marketplace.events import event_for


@pytest.mark.parametrize(
    ("name", "who", "status"),
    [
        ("accept", "supplier", "AWAITING_ACCEPTANCE"),
        ("ship", "supplier", "ACCEPTED"),
        ("ship", "supplier", "PARTIALLY_SHIPPED"),
        ("deliver", "supplier", "SHIPPED"),
        ("deliver", "retailer", "SHIPPED"),
        ("cancel", "retailer", "ACCEPTED"),
        ("cancel", "retailer", "AWAITING_ACCEPTANCE"),
        ("cancel", "admin", "FLAGGED"),
        ("cancel", "supplier", "ACCEPTED"),
        ("cancel_lines", "retailer", "ACCEPTED"),
    ],
)
def test_a_transition_fires_from_the_statuses_its_definition_gives_each_caller(name, who, status):
    lifecycle.transition(name).check(status, {who})


@pytest.mark.parametrize(
    ("name", "who", "status"),
    [
        ("ship", "supplier", "AWAITING_ACCEPTANCE"),  # not accepted yet
        ("ship", "supplier", "CANCELLED"),
        ("deliver", "retailer", "PARTIALLY_SHIPPED"),  # units still to come
        ("cancel", "retailer", "PARTIALLY_SHIPPED"),  # the retailer cancels only before shipment
        ("cancel", "supplier", "AWAITING_ACCEPTANCE"),  # the supplier rejects instead
        ("cancel", "supplier", "SHIPPED"),
        ("accept", "supplier", "ACCEPTED"),
        ("deliver", "admin", "SHIPPED"),  # not one of deliver's callers
    ],
)
def test_an_illegal_transition_is_a_409_naming_the_current_status(name, who, status):
    with pytest.raises(Conflict) as refused:
        lifecycle.transition(name).check(status, {who})
    assert refused.value.status == 409
    assert f"the order is {status}" in str(refused.value)


def test_each_transitions_route_roles_and_event_come_from_the_definition():
    assert lifecycle.roles("ship") == ("supplier",)
    assert lifecycle.roles("deliver") == ("retailer", "supplier")
    assert lifecycle.roles("cancel") == ("admin", "retailer", "supplier")  # never "system"
    events = {t.name: t.event for t in lifecycle.TRANSITIONS.values()}
    assert events["ship"] == "supplier_order.shipped"
    assert events["deliver"] == "supplier_order.delivered"
    assert events["cancel"] == "supplier_order.cancelled"
    for t in lifecycle.TRANSITIONS.values():
        assert set(t.targets) <= set(lifecycle.STATUSES), t
        assert all(set(sources) <= set(lifecycle.STATUSES) for sources in t.by.values()), t


def test_a_line_holds_its_unshipped_units_until_refused_or_cancelled():
    assert lifecycle.held({"sku": "A", "quantity": 5}) == 5
    assert lifecycle.held({"sku": "A", "quantity": 5, "shipped": 2}) == 3
    assert lifecycle.held({"sku": "A", "quantity": 5, "status": "REFUSED"}) == 0
    assert lifecycle.held({"sku": "A", "quantity": 5, "shipped": 2, "status": "CANCELLED"}) == 0


def test_an_order_is_shipped_once_every_live_line_shipped_in_full():
    lines = [{"sku": "A", "quantity": 2, "shipped": 2}, {"sku": "B", "quantity": 3, "shipped": 1}]
    assert lifecycle.after_shipment(lines) == "PARTIALLY_SHIPPED"
    lines[1]["shipped"] = 3
    assert lifecycle.after_shipment(lines) == "SHIPPED"
    refused = [{"sku": "A", "quantity": 2, "shipped": 2}, {"sku": "B", "quantity": 3, "status": "REFUSED"}]
    assert lifecycle.after_shipment(refused) == "SHIPPED"


def _order(status: str, version: int, marked: dict | None = None) -> dict:
    order = {"entity": "SUPPLIER_ORDER", "tenantId": "t1", "supplierId": "s1", "supplierOrderId": "so1",
             "orderId": "o1", "status": status, "version": version, "lines": []}  # fmt: skip
    if marked is not None:
        order["lastEvent"] = marked
    return order


def test_every_transition_is_one_event_even_when_the_status_stays():
    first = _order("PARTIALLY_SHIPPED", 4, lifecycle.marker("ship", 4, shipmentId="sh1"))
    second = _order("PARTIALLY_SHIPPED", 5, lifecycle.marker("ship", 5, shipmentId="sh2"))
    event = event_for(first, second)
    assert (event["type"], event["id"], event["body"]["shipmentId"]) == (
        "supplier_order.shipped",
        "so1-v5",
        "sh2",
    )
    lines = _order("ACCEPTED", 6, lifecycle.marker("cancel_lines", 6, reason="customer changed mind"))
    event = event_for(_order("ACCEPTED", 5), lines)
    assert (event["type"], event["body"]["reason"]) == (
        "supplier_order.lines_cancelled",
        "customer changed mind",
    )
    # A later write that is no transition (an admin's retry request) keeps the old marker: no event.
    assert event_for(lines, _order("ACCEPTED", 7, lines["lastEvent"])) is None
    # The intake's writes carry no marker: their event is the status they set.
    assert event_for(_order("PENDING", 1), _order("AWAITING_ACCEPTANCE", 2))["type"] == (
        "supplier_order.awaiting_acceptance"
    )


def test_a_write_leading_elsewhere_than_the_definition_says_is_refused():
    lifecycle.transition("ship").require_target("ACCEPTED", "PARTIALLY_SHIPPED")
    lifecycle.transition("cancel_lines").require_target("ACCEPTED", "ACCEPTED")  # keeps the status
    with pytest.raises(RuntimeError, match="deliver cannot take an order from SHIPPED to CANCELLED"):
        lifecycle.transition("deliver").require_target("SHIPPED", "CANCELLED")
    with pytest.raises(RuntimeError):
        lifecycle.transition("cancel_lines").require_target("ACCEPTED", "AWAITING_ACCEPTANCE")


# ------------------------------------------------------------------------- timed transitions, refunds
def _at(hours: float) -> str:
    from datetime import UTC, datetime, timedelta

    from marketplace.clock import iso

    return iso(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hours))


@pytest.mark.parametrize(
    ("order", "due", "hours"),
    [
        ({"status": "ACCEPTED", "acceptedAt": _at(0)}, "late", 72),
        ({"status": "ACCEPTED", "acceptedAt": _at(0), "lateAt": _at(72)}, "auto_cancel", 7 * 24),
        ({"status": "PARTIALLY_SHIPPED", "acceptedAt": _at(0)}, "late", 72),
        ({"status": "PARTIALLY_SHIPPED", "acceptedAt": _at(0), "lateAt": _at(72)}, None, None),
        ({"status": "SHIPPED", "acceptedAt": _at(0), "shippedAt": _at(10)}, "auto_deliver", 10 + 14 * 24),
        ({"status": "DELIVERED", "deliveredAt": _at(5)}, "close", 5 + 30 * 24),
        # A refused return is an incident: the order stays open until the admin decides it.
        ({"status": "DELIVERED", "deliveredAt": _at(5), "returns": {"r": "REFUSED"}}, None, None),
        ({"status": "DELIVERED", "deliveredAt": _at(5), "returns": {"r": "REFUNDED"}}, "close", 5 + 30 * 24),
        ({"status": "DELIVERED", "deliveredAt": _at(5), "returns": {"r": "CLOSED"}}, "close", 5 + 30 * 24),
        ({"status": "DELIVERED", "deliveredAt": _at(5), "returns": {"r": "ACCEPTED"}}, None, None),
        ({"status": "CANCELLED", "acceptedAt": _at(0)}, None, None),
        ({"status": "CLOSED", "deliveredAt": _at(0)}, None, None),
    ],
)
def test_an_order_carries_the_one_timed_transition_due_next(order, due, hours):
    from marketplace.clock import parse_iso
    from marketplace.tenant_settings import DEFAULT_ORDER_SETTINGS

    found = lifecycle.next_deadline(order, DEFAULT_ORDER_SETTINGS)
    assert found == (None if due is None else (due, parse_iso(_at(hours))))


def test_a_timed_transition_is_the_systems_only():
    for name in ("late", "auto_cancel", "auto_deliver", "close"):
        assert lifecycle.roles(name) == ()  # no route fires it
        lifecycle.transition(name).check(lifecycle.TIMERS[[t.transition for t in lifecycle.TIMERS].index(name)]
                                         .statuses[0], {lifecycle.SYSTEM})  # fmt: skip
    with pytest.raises(Conflict, match="the order is PARTIALLY_SHIPPED"):
        lifecycle.transition("auto_cancel").check("PARTIALLY_SHIPPED", {lifecycle.SYSTEM})


def test_a_refund_is_each_lines_units_at_its_unit_price_in_exact_decimals():
    from decimal import Decimal

    from marketplace.money import refund

    order = {"lines": [{"sku": "A", "unitPrice": {"amount": Decimal("0.1"), "currency": "EUR"}},
                       {"sku": "B", "unitPrice": {"amount": Decimal("1299.99"), "currency": "EUR"}}]}  # fmt: skip
    got = refund(order, [{"sku": "A", "quantity": 3}, {"sku": "B", "quantity": 2}])
    assert got == {"amount": Decimal("2600.28"), "currency": "EUR", "lines": [
        {"sku": "A", "quantity": 3, "amount": Decimal("0.3")},
        {"sku": "B", "quantity": 2, "amount": Decimal("2599.98")}]}  # fmt: skip
    order["lines"][1]["unitPrice"]["currency"] = "GBP"
    with pytest.raises(Conflict, match="EUR, GBP"):
        refund(order, [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}])

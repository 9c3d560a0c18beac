"""Returns of a delivered supplier order in the local stack: requested within the return window,
accepted, received with the refund recorded in exact decimals (and the units restocked when the
tenant says so); refused with a reason, which opens an incident in the admin's correction queue that
the admin decides (refund or not); two returns of the same units end with one; the window closed;
another supplier or tenant gets 404 (marketplace.order_lifecycle, marketplace.orders)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from marketplace import clock, registry
from marketplace.errors import Conflict, InvalidInput, NotFound
from marketplace.principal import Principal
from tests.workflow.conftest import activate_rule_pack
from tests.workflow.test_supplier_order_lifecycle import shipment, two_line_order
from tests.workflow.test_supplier_orders import Shop

pytestmark = pytest.mark.workflow


def delivered(shop: Shop) -> tuple[str, str, str, str]:
    """(supplier, sku A with 3 units, sku B with 2, supplier order id) of a delivered order."""
    supplier_id, sku_a, sku_b, part = two_line_order(shop)
    me = shop.supplier(supplier_id)
    shop.orders.accept(me, part)
    shop.orders.ship(me, part, shipment((sku_a, 3), (sku_b, 2)))
    assert shop.orders.deliver(shop.retailer(), part)["status"] == "DELIVERED"
    return supplier_id, sku_a, sku_b, part


def ask(shop: Shop, part: str, *lines: tuple[str, int], reason: str = "damaged in transit") -> dict:
    body = {"lines": [{"sku": s, "quantity": q} for s, q in lines], "reason": reason}
    return shop.orders.request_return(shop.retailer(), part, body)


def test_a_return_accepted_then_received_records_its_refund_exactly(shop):
    supplier_id, sku_a, sku_b, part = delivered(shop)
    me = shop.supplier(supplier_id)
    asked = ask(shop, part, (sku_a, 2), (sku_b, 1))
    assert (asked["status"], asked["reason"]) == ("REQUESTED", "damaged in transit")
    order = shop.orders.get(shop.tenant, part)
    assert order["returns"] == {asked["returnId"]: "REQUESTED"} and "due" not in order  # it does not close
    assert [line["returned"] for line in order["lines"]] == [2, 1]
    with pytest.raises(Conflict, match="the return is REQUESTED; receive return needs it ACCEPTED"):
        shop.orders.answer_return(me, asked["returnId"], "receive_return")
    assert shop.orders.answer_return(me, asked["returnId"], "accept_return")["status"] == "ACCEPTED"
    received = shop.orders.answer_return(me, asked["returnId"], "receive_return")
    assert received["status"] == "RECEIVED"
    # Computed in decimals from the unit price 1299.99 (in floats 3 * 1299.99 is 3899.9700000000003).
    refund = received["refund"]
    assert (Decimal(str(refund["amount"])), refund["currency"]) == (Decimal("3899.97"), "EUR")
    assert [(line["sku"], line["quantity"], Decimal(str(line["amount"]))) for line in refund["lines"]] == [
        (sku_a, 2, Decimal("2599.98")), (sku_b, 1, Decimal("1299.99"))]  # fmt: skip
    assert shop.orders.get_return(shop.retailer(), asked["returnId"])["refund"] == received["refund"]
    again = shop.orders.answer_return(me, asked["returnId"], "receive_return")  # a retry: no change
    assert again["updatedAt"] == received["updatedAt"]
    order = shop.orders.get(shop.tenant, part)
    assert order["returns"] == {asked["returnId"]: "RECEIVED"} and order["due"] == "close"
    # The tenant does not restock returns by default: the units stay off sale.
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (7, 8)


def test_a_received_return_is_restocked_when_the_tenant_says_so(shop):
    supplier_id, sku_a, _, part = delivered(shop)
    me = shop.supplier(supplier_id)
    activate_rule_pack(shop.listings.onboarding, lambda pack: pack["orders"].update(restockOnReturn=True))
    asked = ask(shop, part, (sku_a, 2))
    shop.orders.answer_return(me, asked["returnId"], "accept_return")
    assert shop.orders.answer_return(me, asked["returnId"], "receive_return")["restocked"] is True
    assert shop.stock(supplier_id, sku_a) == 9


def test_a_refused_return_keeps_its_reason_and_its_units(shop):
    supplier_id, sku_a, _, part = delivered(shop)
    asked = ask(shop, part, (sku_a, 3))
    refused = shop.orders.answer_return(
        shop.supplier(supplier_id), asked["returnId"], "refuse_return", "not ours"
    )
    assert (refused["status"], refused["statusReason"]) == ("REFUSED", "not ours")
    with pytest.raises(Conflict, match="the return is REFUSED; accept return needs it REQUESTED"):
        shop.orders.answer_return(shop.supplier(supplier_id), asked["returnId"], "accept_return")
    with pytest.raises(InvalidInput) as none_left:
        ask(shop, part, (sku_a, 1))
    assert (none_left.value.fields[0].field, none_left.value.fields[0].reason) == (
        "lines.0.quantity", "is more than the 0 units left to return")  # fmt: skip
    # Refused is an incident for the admin: the order stays open until the admin decides it.
    assert "due" not in shop.orders.get(shop.tenant, part)


def admin(shop: Shop) -> Principal:
    return Principal("a-user", shop.tenant, frozenset({"admin"}))


def incidents(shop: Shop) -> dict[str, dict]:
    """The tenant's incidents as the admin's correction queue lists them, by return id."""
    page = registry.corrections_page(shop.orders.table, shop.tenant, 50, None)
    return {i["recordId"]: i for i in page["items"] if i["recordType"] == "RETURN"}


def refused(shop: Shop, supplier_id: str, part: str, *lines: tuple[str, int]) -> dict:
    asked = ask(shop, part, *lines, reason="arrived broken")
    return shop.orders.answer_return(
        shop.supplier(supplier_id), asked["returnId"], "refuse_return", "broken by the customer"
    )


def test_a_refused_return_is_an_incident_the_admin_decides_to_refund(shop):
    supplier_id, sku_a, sku_b, part = delivered(shop)
    incident = refused(shop, supplier_id, part, (sku_a, 2), (sku_b, 1))
    return_id = incident["returnId"]
    queued = incidents(shop)[return_id]
    assert (queued["correctionId"], queued["supplierId"], queued["supplierOrderId"]) == (
        f"RETURN:{return_id}", supplier_id, part)  # fmt: skip
    assert queued["flags"] == [
        {"field": "reason", "reason": "the retailer asked: arrived broken"},
        {"field": "statusReason", "reason": "the supplier refused: broken by the customer"},
    ]
    assert queued["record"]["status"] == "REFUSED" and "GSI1PK" not in queued["record"]
    # Only the admin decides, and a retry of a validation means nothing for an incident.
    with pytest.raises(Conflict, match="the order is DELIVERED; decide return needs it"):
        shop.orders.decide_return(shop.retailer(), return_id, True, "x")
    with pytest.raises(Conflict, match="only a FLAGGED return can be retried; this one is REFUSED"):
        registry.retry(shop.orders.table, admin(shop), f"RETURN:{return_id}")
    decided = shop.orders.decide_return(admin(shop), return_id, True, "the photos show transit damage")
    assert decided["status"] == "REFUNDED"
    assert (decided["decision"]["refund"], decided["decision"]["reason"]) == (
        True,
        "the photos show transit damage",
    )
    # Recorded as a received return records it: each line at the order's unit price, in decimals.
    refund = decided["refund"]
    assert (Decimal(str(refund["amount"])), refund["currency"]) == (Decimal("3899.97"), "EUR")
    assert [(line["sku"], line["quantity"], Decimal(str(line["amount"]))) for line in refund["lines"]] == [
        (sku_a, 2, Decimal("2599.98")), (sku_b, 1, Decimal("1299.99"))]  # fmt: skip
    assert return_id not in incidents(shop)  # out of the queue
    again = shop.orders.decide_return(admin(shop), return_id, True, "the photos show transit damage")
    assert again["updatedAt"] == decided["updatedAt"]  # the same decision again: no change
    with pytest.raises(Conflict, match="the return is REFUNDED; decide return needs it REFUSED"):
        shop.orders.decide_return(admin(shop), return_id, False, "changed my mind")
    order = shop.orders.get(shop.tenant, part)
    assert order["returns"] == {return_id: "REFUNDED"} and order["due"] == "close"
    assert order["lastEvent"]["type"] == "supplier_order.incident_resolved"
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (7, 8)  # not restocked


def test_an_incident_refunded_is_restocked_when_the_tenant_says_so(shop):
    supplier_id, sku_a, _, part = delivered(shop)
    activate_rule_pack(shop.listings.onboarding, lambda pack: pack["orders"].update(restockOnReturn=True))
    incident = refused(shop, supplier_id, part, (sku_a, 2))
    decided = shop.orders.decide_return(admin(shop), incident["returnId"], True, "goods came back")
    assert decided["restocked"] is True and shop.stock(supplier_id, sku_a) == 9


def test_a_refused_return_is_an_incident_the_admin_closes_without_a_refund(shop):
    supplier_id, sku_a, _, part = delivered(shop)
    incident = refused(shop, supplier_id, part, (sku_a, 1))
    return_id = incident["returnId"]
    assert return_id in incidents(shop)
    # Rejecting it from the correction queue is the same decision: no refund, with the reason.
    closed = registry.reject(shop.orders.table, admin(shop), f"RETURN:{return_id}", "used, not defective")
    assert closed["status"] == "CLOSED" and "refund" not in closed
    assert closed["decision"]["refund"] is False and closed["decision"]["reason"] == "used, not defective"
    assert closed["statusReason"] == "broken by the customer"  # the supplier's reason stays
    assert return_id not in incidents(shop)
    assert (
        shop.orders.decide_return(admin(shop), return_id, False, "again")["updatedAt"] == closed["updatedAt"]
    )
    with pytest.raises(Conflict, match="the return is CLOSED; decide return needs it REFUSED"):
        shop.orders.decide_return(admin(shop), return_id, True, "x")
    order = shop.orders.get(shop.tenant, part)
    assert order["returns"] == {return_id: "CLOSED"} and order["due"] == "close"
    assert shop.stock(supplier_id, sku_a) == 7


def accepted(shop: Shop, supplier_id: str, part: str, *lines: tuple[str, int]) -> dict:
    asked = ask(shop, part, *lines, reason="arrived broken")
    return shop.orders.answer_return(shop.supplier(supplier_id), asked["returnId"], "accept_return")


def test_an_accepted_return_the_retailer_disputes_is_an_incident_the_admin_refunds_in_part(shop):
    supplier_id, sku_a, sku_b, part = delivered(shop)
    return_id = accepted(shop, supplier_id, part, (sku_a, 2), (sku_b, 1))["returnId"]
    assert return_id not in incidents(shop)  # accepted: the two sides agree so far
    disputed = shop.orders.answer_return(
        shop.retailer(), return_id, "dispute_return", "sent back on 2 December, never marked received"
    )
    assert (disputed["status"], disputed["disputedBy"]) == ("DISPUTED", "retailer")
    queued = incidents(shop)[return_id]
    assert queued["correctionId"] == f"RETURN:{return_id}" and queued["flags"] == [
        {"field": "reason", "reason": "the retailer asked: arrived broken"},
        {"field": "statusReason", "reason": "the retailer disputes: sent back on 2 December, never marked received"},
    ]  # fmt: skip
    # Disputed, nobody but the admin moves it: the supplier's "received" now is 409.
    with pytest.raises(Conflict, match="the return is DISPUTED; receive return needs it ACCEPTED"):
        shop.orders.answer_return(shop.supplier(supplier_id), return_id, "receive_return")
    with pytest.raises(InvalidInput) as too_many:
        shop.orders.decide_return(admin(shop), return_id, True, "x", [{"sku": sku_b, "quantity": 2}])
    assert (too_many.value.fields[0].field, too_many.value.fields[0].reason) == (
        "lines.0.quantity", "is more than the 1 units left to refund")  # fmt: skip
    decided = shop.orders.decide_return(
        admin(shop), return_id, True, "one lamp came back", [{"sku": sku_a, "quantity": 1}]
    )
    assert decided["status"] == "REFUNDED" and decided["decision"]["refund"] is True
    refund = decided["refund"]  # one unit of the three returned, at its unit price, exactly
    assert (Decimal(str(refund["amount"])), refund["currency"]) == (Decimal("1299.99"), "EUR")
    assert [(line["sku"], line["quantity"]) for line in refund["lines"]] == [(sku_a, 1)]
    assert return_id not in incidents(shop)
    order = shop.orders.get(shop.tenant, part)
    assert order["returns"] == {return_id: "REFUNDED"} and order["due"] == "close"
    assert order["lastEvent"]["type"] == "supplier_order.incident_resolved"


def test_the_supplier_disputes_an_accepted_return_and_the_admin_closes_it(shop):
    supplier_id, sku_a, _, part = delivered(shop)
    asked = ask(shop, part, (sku_a, 1))
    # A requested return is answered (accepted or refused), not disputed.
    with pytest.raises(Conflict, match="the return is REQUESTED; dispute return needs it ACCEPTED"):
        shop.orders.answer_return(shop.retailer(), asked["returnId"], "dispute_return", "x")
    me = shop.supplier(supplier_id)
    shop.orders.answer_return(me, asked["returnId"], "accept_return")
    disputed = shop.orders.answer_return(me, asked["returnId"], "dispute_return", "it came back used")
    assert (disputed["status"], disputed["disputedBy"], disputed["statusReason"]) == (
        "DISPUTED", "supplier", "it came back used")  # fmt: skip
    assert shop.orders.get(shop.tenant, part)["lastEvent"]["type"] == "supplier_order.return_disputed"
    assert "due" not in shop.orders.get(shop.tenant, part)  # an open incident: the order stays open
    closed = registry.reject(
        shop.orders.table, admin(shop), f"RETURN:{asked['returnId']}", "used, as the photos show"
    )
    assert closed["status"] == "CLOSED" and "refund" not in closed
    assert shop.orders.get(shop.tenant, part)["due"] == "close"


def test_an_undecided_return_is_no_incident(shop):
    _supplier_id, sku_a, _, part = delivered(shop)
    asked = ask(shop, part, (sku_a, 1))
    assert asked["returnId"] not in incidents(shop)
    with pytest.raises(Conflict, match="the return is REQUESTED; decide return needs it REFUSED"):
        shop.orders.decide_return(admin(shop), asked["returnId"], True, "x")


def test_two_returns_of_the_same_units_end_with_one(shop):
    _, sku_a, _, part = delivered(shop)
    start, outcomes = threading.Barrier(2), []

    def run():
        start.wait()
        try:
            outcomes.append(ask(shop, part, (sku_a, 2))["status"])
        except InvalidInput as refused:
            outcomes.append(refused.fields[0].reason)
        except Exception as other:
            outcomes.append(repr(other))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["REQUESTED", "is more than the 1 units left to return"], outcomes
    order = shop.orders.get(shop.tenant, part)
    assert len(order["returns"]) == 1 and order["lines"][0]["returned"] == 2


def test_a_return_needs_a_delivered_order_within_the_window(shop):
    _supplier_id, sku_a, _, part = two_line_order(shop)
    with pytest.raises(Conflict, match="the order is AWAITING_ACCEPTANCE; request return needs it DELIVERED"):
        ask(shop, part, (sku_a, 1))
    _, sku_a, _, part = delivered(shop)
    with clock.use(lambda: datetime.now(UTC) + timedelta(days=31)), pytest.raises(Conflict, match="window"):
        ask(shop, part, (sku_a, 1))


def test_another_supplier_or_tenant_gets_404_on_every_return_route(shop):
    supplier_id, sku_a, _, part = delivered(shop)
    asked = ask(shop, part, (sku_a, 1))
    other, _ = shop.supplier_with_listing()
    stranger = Principal("x-user", f"t-{uuid.uuid4().hex[:8]}", frozenset({"supplier"}), supplier_id)
    staff = Principal("y-user", stranger.tenant_id, frozenset({"retailer", "admin"}))
    for who in (shop.supplier(other), stranger):
        for name in ("accept_return", "refuse_return", "receive_return"):
            with pytest.raises(NotFound):
                shop.orders.answer_return(who, asked["returnId"], name, "x")
        with pytest.raises(NotFound):
            shop.orders.get_return(who, asked["returnId"])
    other_admin = Principal("z-user", stranger.tenant_id, frozenset({"admin"}))
    with pytest.raises(NotFound):
        shop.orders.decide_return(other_admin, asked["returnId"], True, "x")
    with pytest.raises(NotFound):
        shop.orders.request_return(staff, part, {"lines": [{"sku": sku_a, "quantity": 1}], "reason": "x"})
    assert shop.orders.get_return(shop.retailer(), asked["returnId"])["status"] == "REQUESTED"

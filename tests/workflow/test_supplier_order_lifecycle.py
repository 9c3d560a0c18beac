"""A supplier order after its intake, in the local stack: per-line acceptance, shipments, delivery,
cancellation by the retailer and by the supplier with the stock given back, a ship/cancel race that
ends in one outcome, and the audit trail of it all (marketplace.order_lifecycle)."""

from __future__ import annotations

import threading
import uuid

import pytest

from marketplace.errors import Conflict, InvalidInput, NotFound
from marketplace.principal import Principal
from tests.conftest import wait_until
from tests.workflow.test_supplier_orders import Shop

pytestmark = pytest.mark.workflow


def two_line_order(shop: Shop, first: int = 3, second: int = 2) -> tuple[str, str, str, str]:
    """(supplier, sku A, sku B, supplier order id) of an awaiting order of one supplier's two listings
    of 10 units each."""
    supplier_id, sku_a = shop.supplier_with_listing(quantity=10)
    sku_b = shop.listings.register(supplier_id, sku=f"B-{uuid.uuid4().hex[:8]}", quantity=10)
    shop.listings.wait_status(supplier_id, sku_b, "ACTIVE")
    part = shop.place((supplier_id, sku_a, first), (supplier_id, sku_b, second))["supplierOrders"][0]
    shop.wait_status(part["supplierOrderId"], "AWAITING_ACCEPTANCE")
    return supplier_id, sku_a, sku_b, part["supplierOrderId"]


def shipment(*lines: tuple[str, int]) -> dict:
    return {"carrier": "DHL", "trackingNumber": f"JD{uuid.uuid4().hex[:10]}",
            "trackingUrl": "https://track.example/JD1", "lines": [{"sku": s, "quantity": q} for s, q in lines]}  # fmt: skip


def test_a_refused_line_gives_its_stock_back_and_the_rest_is_accepted(shop):
    supplier_id, sku_a, sku_b, part = two_line_order(shop)
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (7, 8)
    decisions = [{"sku": sku_b, "accept": False, "reason": "discontinued"}]
    accepted = shop.orders.accept(shop.supplier(supplier_id), part, decisions)
    assert accepted["status"] == "ACCEPTED" and accepted["shipBy"] > accepted["acceptedAt"]
    assert [(line["sku"], line["status"]) for line in accepted["lines"]] == [
        (sku_a, "ACCEPTED"),
        (sku_b, "REFUSED"),
    ]
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (7, 10)
    # The same decision again (a retry) changes nothing; the refused line cannot be shipped.
    assert shop.orders.accept(shop.supplier(supplier_id), part, decisions)["version"] == accepted["version"]
    with pytest.raises(InvalidInput) as refused:
        shop.orders.ship(shop.supplier(supplier_id), part, shipment((sku_b, 1)))
    assert refused.value.fields[0].field == "lines.0.sku"


def test_every_line_refused_is_a_rejection_with_all_stock_back(shop):
    supplier_id, sku_a, sku_b, part = two_line_order(shop)
    decisions = [
        {"sku": sku_a, "accept": False, "reason": "no"},
        {"sku": sku_b, "accept": False, "reason": "none"},
    ]
    rejected = shop.orders.accept(shop.supplier(supplier_id), part, decisions)
    assert (rejected["status"], rejected["reserved"]) == ("REJECTED", False)
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (10, 10)


def test_a_refusal_needs_a_reason_and_a_line_of_the_order(shop):
    supplier_id, sku_a, _, part = two_line_order(shop)
    with pytest.raises(InvalidInput) as refused:
        shop.orders.accept(shop.supplier(supplier_id), part, [{"sku": sku_a, "accept": False},
                                                                {"sku": "NOPE", "accept": True}])  # fmt: skip
    assert sorted(f.field for f in refused.value.fields) == ["lines.0.reason", "lines.1.sku"]
    assert shop.orders.get(shop.tenant, part)["status"] == "AWAITING_ACCEPTANCE"


def test_two_shipments_then_delivered_and_the_history_says_who_did_each(shop):
    supplier_id, sku_a, sku_b, part = two_line_order(shop)
    me = shop.supplier(supplier_id)
    shop.orders.accept(me, part)
    first = shop.orders.ship(me, part, shipment((sku_a, 3), (sku_b, 1)))
    assert shop.orders.get(shop.tenant, part)["status"] == "PARTIALLY_SHIPPED"
    with pytest.raises(InvalidInput) as too_many:
        shop.orders.ship(me, part, shipment((sku_b, 2)))
    assert (too_many.value.fields[0].field, too_many.value.fields[0].reason) == (
        "lines.0.quantity", "is more than the 1 units left to ship")  # fmt: skip
    with pytest.raises(Conflict, match="the order is PARTIALLY_SHIPPED"):
        shop.orders.deliver(shop.retailer(), part)
    second = shop.orders.ship(me, part, shipment((sku_b, 1)))
    assert shop.orders.get(shop.tenant, part)["status"] == "SHIPPED"
    listed = shop.orders.shipments(shop.retailer(), part)
    assert [s["shipmentId"] for s in listed] == [first["shipmentId"], second["shipmentId"]]
    with pytest.raises(Conflict, match="the order is SHIPPED"):
        shop.orders.cancel(shop.retailer(), part, "too late")
    delivered = shop.orders.deliver(shop.retailer(), part)
    assert delivered["status"] == "DELIVERED" and delivered["deliveredAt"]
    assert shop.orders.deliver(me, part)["version"] == delivered["version"]  # again: no change
    # Shipped units left the stock for good: nothing came back.
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (7, 8)

    def trail():
        items = shop.orders.history(shop.retailer(), part, 50, None).items
        statuses = [i["after"]["status"] for i in items if i["after"]]
        return items if statuses[-1:] == ["DELIVERED"] else None

    items = wait_until(trail, what="the order's audit trail up to DELIVERED")
    assert [i["after"]["status"] for i in items] == [
        "PENDING", "AWAITING_ACCEPTANCE", "ACCEPTED", "PARTIALLY_SHIPPED", "SHIPPED", "DELIVERED"]  # fmt: skip
    assert [i["by"] for i in items][2:] == ["supplier:s-user"] * 3 + ["retailer:r-user"]


def test_the_retailer_cancels_before_shipment_and_the_stock_comes_back(shop):
    supplier_id, sku_a, sku_b, part = two_line_order(shop)
    shop.orders.accept(shop.supplier(supplier_id), part)
    fewer = shop.orders.cancel(shop.retailer(), part, "customer changed their mind", [{"sku": sku_b}])
    assert fewer["status"] == "ACCEPTED"
    assert [line.get("status") for line in fewer["lines"]] == ["ACCEPTED", "CANCELLED"]
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (7, 10)
    cancelled = shop.orders.cancel(shop.retailer(), part, "customer cancelled")
    assert (cancelled["status"], cancelled["statusReason"], cancelled["reserved"]) == (
        "CANCELLED", "customer cancelled", False)  # fmt: skip
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (10, 10)
    assert shop.orders.cancel(shop.retailer(), part, "again")["version"] == cancelled["version"]


def test_the_supplier_cancels_an_accepted_order_it_cannot_fulfil_and_another_supplier_cannot(shop):
    supplier_id, sku_a, sku_b, part = two_line_order(shop)
    other, _ = shop.supplier_with_listing()
    with pytest.raises(Conflict, match="the order is AWAITING_ACCEPTANCE"):
        shop.orders.cancel(shop.supplier(supplier_id), part, "cannot")  # it rejects instead
    shop.orders.accept(shop.supplier(supplier_id), part)
    for act in (lambda p: shop.orders.cancel(p, part, "x"), lambda p: shop.orders.ship(p, part, shipment((sku_a, 1))),
                lambda p: shop.orders.shipments(p, part), lambda p: shop.orders.history(p, part, 10, None)):  # fmt: skip
        with pytest.raises(NotFound):
            act(shop.supplier(other))
    cancelled = shop.orders.cancel(shop.supplier(supplier_id), part, "warehouse flooded")
    assert cancelled["status"] == "CANCELLED"
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (10, 10)


def test_part_of_a_line_is_cancelled_and_only_those_units_come_back(shop):
    supplier_id, sku_a, sku_b, part = two_line_order(shop)  # 3 of A, 2 of B
    shop.orders.accept(shop.supplier(supplier_id), part)
    fewer = shop.orders.cancel(
        shop.retailer(), part, "customer wants one less", [{"sku": sku_a, "quantity": 1}]
    )
    line_a = fewer["lines"][0]
    assert (fewer["status"], line_a["cancelled"], line_a.get("status"), line_a["cancelledReason"]) == (
        "ACCEPTED", 1, "ACCEPTED", "customer wants one less")  # fmt: skip
    assert shop.stock(supplier_id, sku_a) == 8  # 10 - 3 reserved + 1 back
    with pytest.raises(InvalidInput) as too_many:  # 2 of A are left to ship
        shop.orders.cancel(shop.retailer(), part, "x", [{"sku": sku_a, "quantity": 3}])
    assert [(f.field, f.reason) for f in too_many.value.fields] == [
        ("lines.0.quantity", "is more than the 2 units left to cancel")]  # fmt: skip
    with pytest.raises(InvalidInput) as too_many_shipped:
        shop.orders.ship(shop.supplier(supplier_id), part, shipment((sku_a, 3)))
    assert [f.reason for f in too_many_shipped.value.fields] == ["is more than the 2 units left to ship"]
    shipped = shop.orders.ship(shop.supplier(supplier_id), part, shipment((sku_a, 2), (sku_b, 2)))
    assert shop.orders.get(shop.tenant, part)["status"] == "SHIPPED" and shipped["lines"]


def test_the_supplier_cancels_the_unshipped_rest_of_a_partly_shipped_order(shop):
    supplier_id, sku_a, sku_b, part = two_line_order(shop)  # 3 of A, 2 of B
    shop.orders.accept(shop.supplier(supplier_id), part)
    shop.orders.ship(shop.supplier(supplier_id), part, shipment((sku_a, 2)))
    assert shop.orders.get(shop.tenant, part)["status"] == "PARTIALLY_SHIPPED"
    # The retailer cancels before shipment only; the whole order cannot be cancelled once part shipped.
    with pytest.raises(Conflict, match="the order is PARTIALLY_SHIPPED"):
        shop.orders.cancel(shop.retailer(), part, "x", [{"sku": sku_b}])
    with pytest.raises(Conflict, match="the order is PARTIALLY_SHIPPED"):
        shop.orders.cancel(shop.supplier(supplier_id), part, "x")
    rest = shop.orders.cancel(shop.supplier(supplier_id), part, "out of stock at the warehouse",
                              [{"sku": sku_a}, {"sku": sku_b}])  # fmt: skip
    assert rest["status"] == "SHIPPED" and rest["shippedAt"]
    assert [(line.get("shipped", 0), line.get("cancelled"), line.get("status")) for line in rest["lines"]] == [
        (2, 1, "ACCEPTED"), (0, 2, "CANCELLED")]  # fmt: skip
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (
        8,
        10,
    )  # 2 shipped, the rest back
    # The timed transitions go on from SHIPPED: the order is due to be delivered automatically.
    assert shop.orders.get(shop.tenant, part)["due"] == "auto_deliver"


def test_another_tenant_gets_404_on_every_transition(shop):
    supplier_id, sku_a, _, part = two_line_order(shop)
    stranger = Principal("x-user", f"t-{uuid.uuid4().hex[:8]}", frozenset({"supplier"}), supplier_id)
    staff = Principal("y-user", stranger.tenant_id, frozenset({"retailer", "admin"}))
    for act in (lambda: shop.orders.accept(stranger, part), lambda: shop.orders.cancel(staff, part, "x"),
                lambda: shop.orders.ship(stranger, part, shipment((sku_a, 1))), lambda: shop.orders.deliver(staff, part),
                lambda: shop.orders.shipments(staff, part), lambda: shop.orders.history(staff, part, 10, None)):  # fmt: skip
        with pytest.raises(NotFound):
            act()
    assert shop.orders.get(shop.tenant, part)["status"] == "AWAITING_ACCEPTANCE"


def test_ship_and_cancel_at_once_end_in_one_outcome(shop):
    supplier_id, sku_a, sku_b, part = two_line_order(shop)
    shop.orders.accept(shop.supplier(supplier_id), part)
    start, outcomes = threading.Barrier(2), {}

    def run(name, act):
        start.wait()
        try:
            act()
            outcomes[name] = "done"
        except Conflict as conflict:
            outcomes[name] = str(conflict)

    threads = [
        threading.Thread(target=run, args=("ship", lambda: shop.orders.ship(
            shop.supplier(supplier_id), part, shipment((sku_a, 3), (sku_b, 2))))),
        threading.Thread(target=run, args=("cancel", lambda: shop.orders.cancel(shop.retailer(), part, "race"))),
    ]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = shop.orders.get(shop.tenant, part)
    shipped = shop.orders.shipments(shop.retailer(), part)
    stock = (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b))
    if final["status"] == "SHIPPED":
        assert outcomes == {"ship": "done", "cancel": "the order is SHIPPED; cancel needs it PENDING or FLAGGED "
                            "or AWAITING_ACCEPTANCE or ACCEPTED"}  # fmt: skip
        assert len(shipped) == 1 and stock == (7, 8)
    else:
        assert final["status"] == "CANCELLED", final
        assert outcomes["cancel"] == "done" and "the order is CANCELLED" in outcomes["ship"], outcomes
        assert shipped == [] and stock == (10, 10)

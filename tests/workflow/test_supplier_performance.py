"""A supplier's performance in the local stack: a known sequence of orders driven through the real
lifecycle (accepted after known delays, shipped on time and late, cancelled by the supplier and by
the retailer, rejected, expired, delivered, returned and refunded, an incident) gives figures worked
out by hand, counted from the table's stream by the events function; a stream record delivered
again counts nothing more (marketplace.performance; docs/orders.md section 8, D46)."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import pytest

from marketplace import clock, performance
from marketplace.clock import parse_iso
from marketplace.errors import NotFound
from marketplace.principal import Principal
from marketplace.tenant_settings import DEFAULT_ORDER_SETTINGS as SETTINGS
from tests.conftest import wait_until
from tests.workflow.test_supplier_ledger import admin, replay
from tests.workflow.test_supplier_order_lifecycle import shipment
from tests.workflow.test_supplier_order_returns import ask
from tests.workflow.test_supplier_orders import Shop

pytestmark = pytest.mark.workflow


def figures(shop: Shop, supplier_id: str, counts: dict[str, int]) -> dict[str, Any]:
    """The supplier's figures once the stream has counted ``counts`` (the last changes are counted a
    moment after they are written); the figures as read then, whatever they are, after the timeout."""
    last: dict[str, Any] = {}

    def counted() -> bool:
        last.update(performance.read(shop.supplier(supplier_id), supplier_id, shop.orders.table))
        return last["last30Days"]["counts"] == counts

    with contextlib.suppress(AssertionError):  # the test's assertions show what differs
        wait_until(counted, timeout=20, what="the performance counts", dump=False)
    return last


def test_the_figures_of_a_known_sequence_of_orders_are_exact_and_a_replayed_record_counts_once(shop):
    """Seven one-unit orders of one supplier, all placed today, each accepted (or not) a known time
    after its placement:

    A  accepted after 10 min (bucket 5-15 min), shipped on time, delivered, returned and refunded
    B  accepted after 50 min (30 min-1 h), shipped an hour after its shipBy (late), delivered
    C  accepted after 3 h (2-4 h), cancelled by the supplier
    D  accepted after 20 min (15-30 min), cancelled by the retailer (not the supplier's doing)
    E  rejected by the supplier
    F  expired (nobody decided within the SLA)
    G  accepted after 2 min (under 5 min), shipped on time, delivered, its return refused (an
       incident) and refunded by the admin

    decided 7 (A-G), accepted 5 (A, B, C, D, G), refused 1 (E), expired 1 (F):
    acceptance 5/7 = 0.714285... -> 0.7143, refusal and expiry 1/7 = 0.142857... -> 0.1429.
    shipped 3 (A, B, G), late 1 (B): 1/3 -> 0.3333. cancelled 1 (C) of 5 accepted: 0.2.
    delivered 3 (A, B, G); returned 2 (A, G): 0.6667; refunded 2 (A, G): 0.6667; incidents 1 (G): 0.3333.
    Delays sorted: G <5 min, A 5-15 min, D 15-30 min, B 30 min-1 h, C 2-4 h: the third, 15-30 min."""
    supplier_id, sku = shop.supplier_with_listing(quantity=20)
    me, retailer = shop.supplier(supplier_id), shop.retailer()

    def placed() -> tuple[str, Any]:
        part = shop.place((supplier_id, sku, 1))["supplierOrders"][0]
        shop.wait_status(part["supplierOrderId"], "AWAITING_ACCEPTANCE")
        return part["supplierOrderId"], parse_iso(part["createdAt"])

    def accepted(after: timedelta) -> tuple[str, Any]:
        part, at = placed()
        with clock.use(lambda: at + after):
            shop.orders.accept(me, part)
        return part, at + after

    def delivered(after: timedelta, ship_late: bool = False) -> str:
        part, at = accepted(after)
        ship_at = at + timedelta(hours=SETTINGS.ship_by_hours + 1) if ship_late else at
        with clock.use(lambda: ship_at):
            shop.orders.ship(me, part, shipment((sku, 1)))
            shop.orders.deliver(retailer, part)
        return part

    a = delivered(timedelta(minutes=10))
    returned = ask(shop, a, (sku, 1))
    shop.orders.answer_return(me, returned["returnId"], "accept_return")
    assert shop.orders.answer_return(me, returned["returnId"], "receive_return")["status"] == "RECEIVED"
    b = delivered(timedelta(minutes=50), ship_late=True)
    assert shop.orders.get(shop.tenant, b)["shippedAt"] > shop.orders.get(shop.tenant, b)["shipBy"]
    c, _ = accepted(timedelta(hours=3))
    assert shop.orders.cancel(me, c, "the supplier cannot source it")["status"] == "CANCELLED"
    d, _ = accepted(timedelta(minutes=20))
    assert shop.orders.cancel(retailer, d, "the customer cancelled")["status"] == "CANCELLED"
    e, _ = placed()
    assert shop.orders.reject(me, e, "not in this colour")["status"] == "REJECTED"
    f, _ = placed()
    assert f in shop.sweep(parse_iso(shop.orders.get(shop.tenant, f)["deadline"]) + timedelta(seconds=1))
    g = delivered(timedelta(minutes=2))
    incident = ask(shop, g, (sku, 1))
    shop.orders.answer_return(me, incident["returnId"], "refuse_return", "it was used")
    assert (
        shop.orders.decide_return(admin(shop), incident["returnId"], True, "photos")["status"] == "REFUNDED"
    )

    counts = {"decided": 7, "accepted": 5, "refused": 1, "expired": 1, "shipped": 3, "shippedLate": 1,
              "cancelled": 1, "delivered": 3, "returned": 2, "refunded": 2, "incidents": 1}  # fmt: skip
    rates = {"acceptanceRate": 0.7143, "refusalRate": 0.1429, "expiryRate": 0.1429, "lateShipmentRate": 0.3333,
             "cancellationRate": 0.2, "returnRate": 0.6667, "refundRate": 0.6667, "incidentRate": 0.3333}  # fmt: skip
    median = {"fromSeconds": 900, "toSeconds": 1800}
    got = figures(shop, supplier_id, counts)
    for days in ("last30Days", "last90Days"):  # every order was placed today: the same in both windows
        assert (got[days]["counts"], got[days]["rates"], got[days]["medianAcceptanceDelay"]) == (
            counts, rates, median), days  # fmt: skip
    assert got["last30Days"]["to"] == clock.now().date().isoformat()

    # B's delivery delivered by the stream again, twice in one batch (a retried batch): counted once.
    delivery = shop.orders.get(shop.tenant, b)
    assert delivery["lastEvent"]["type"] == "supplier_order.delivered"
    replay(shop, delivery, "SHIPPED")
    again = performance.read(admin(shop), supplier_id, shop.orders.table)
    assert (again["last30Days"]["counts"], again["last90Days"]["counts"]) == (counts, counts)

    # The retailer reads the same; another tenant sees no such supplier (the access matrix holds every
    # caller to its row over HTTP).
    assert performance.read(retailer, supplier_id, shop.orders.table)["last90Days"]["rates"] == rates
    with pytest.raises(NotFound):
        performance.read(
            Principal("r", "another-tenant", frozenset({"retailer"})), supplier_id, shop.orders.table
        )

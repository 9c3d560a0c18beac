"""A supplier order's timed transitions after acceptance, fired by the deadline sweeper in the local
stack (the scheduled run's ``time`` is the sweep's now; acceptance and shipment happen at a time the
test sets with ``marketplace.clock.use``): late, then cancelled unshipped with its stock back;
delivered automatically, then closed after the return window; a sweep repeated or run twice at once
fires each transition once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from marketplace import clock
from marketplace.clock import parse_iso
from marketplace.tenant_settings import DEFAULT_ORDER_SETTINGS as SETTINGS
from tests.conftest import wait_until
from tests.workflow.test_supplier_order_lifecycle import shipment, two_line_order
from tests.workflow.test_supplier_orders import Shop

pytestmark = pytest.mark.workflow


def fired(shop: Shop, as_of: datetime) -> dict[str, list[str]]:
    name = shop.stack.physical_id("ExpireSupplierOrdersFunction")
    return shop.stack.runtime.invoke_or_raise(name, {"time": as_of.isoformat()})["fired"]


def next_second() -> datetime:
    """A whole second after now: the driven clock never goes back before the writes the order's
    intake made on the real one (the audit trail is in time order)."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)


def trail(shop: Shop, part: str, last: str, by: str = "system:deadline-sweeper") -> list[dict]:
    """The order's audit trail once its last change is to ``last`` by ``by``."""

    def reached():
        items = shop.orders.history(shop.retailer(), part, 50, None).items
        return (
            items
            if items and (items[-1]["after"] or {}).get("status") == last and items[-1]["by"] == by
            else None
        )

    return wait_until(reached, what=f"the audit trail of {part} up to {last} by {by}")


def test_late_then_cancelled_unshipped_with_the_stock_back(shop):
    supplier_id, sku_a, sku_b, part = two_line_order(shop)
    accepted_at = next_second()
    with clock.use(lambda: accepted_at):
        accepted = shop.orders.accept(shop.supplier(supplier_id), part)
    ship_by = accepted_at + timedelta(hours=SETTINGS.ship_by_hours)
    assert (accepted["due"], parse_iso(accepted["deadline"])) == ("late", ship_by)
    assert part not in fired(shop, ship_by - timedelta(seconds=1)).get("late", [])
    assert part in fired(shop, ship_by + timedelta(seconds=1))["late"]
    late = shop.orders.get(shop.tenant, part)
    cancel_at = accepted_at + timedelta(days=SETTINGS.auto_cancel_unshipped_days)
    assert (late["status"], late["due"], parse_iso(late["deadline"])) == (
        "ACCEPTED",
        "auto_cancel",
        cancel_at,
    )
    assert late["lateAt"] and (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (7, 8)
    assert part not in str(fired(shop, ship_by + timedelta(seconds=2)))  # once
    assert part in fired(shop, cancel_at + timedelta(seconds=1))["auto_cancel"]
    cancelled = shop.orders.get(shop.tenant, part)
    assert (cancelled["status"], cancelled["statusReason"], cancelled["reserved"]) == (
        "CANCELLED", "not shipped within 7 days of acceptance", False)  # fmt: skip
    assert "due" not in cancelled and "GSI3PK" not in shop.orders.table.get(cancelled["PK"], cancelled["SK"])
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (10, 10)
    assert part not in str(fired(shop, cancel_at + timedelta(seconds=2)))
    items = trail(shop, part, "CANCELLED")
    assert [(i["after"]["status"], i["by"]) for i in items][-3:] == [
        ("ACCEPTED", "supplier:s-user"), ("ACCEPTED", "system:deadline-sweeper"),
        ("CANCELLED", "system:deadline-sweeper")]  # fmt: skip


def test_shipped_is_delivered_automatically_then_closed_after_the_return_window(shop):
    supplier_id, sku_a, sku_b, part = two_line_order(shop)
    me, at = shop.supplier(supplier_id), next_second()
    with clock.use(lambda: at):
        shop.orders.accept(me, part)
        shipped = shop.orders.ship(me, part, shipment((sku_a, 3), (sku_b, 2)))
    order = shop.orders.get(shop.tenant, part)
    deliver_at = at + timedelta(days=SETTINGS.auto_deliver_days)
    assert shipped and (order["status"], order["due"], parse_iso(order["deadline"])) == (
        "SHIPPED", "auto_deliver", deliver_at)  # fmt: skip
    # Its ship-by deadline is gone with its shipment: nothing is late or cancelled.
    assert part not in str(fired(shop, at + timedelta(hours=SETTINGS.ship_by_hours, seconds=1)))
    assert part not in str(fired(shop, deliver_at - timedelta(seconds=1)))
    assert part in fired(shop, deliver_at + timedelta(seconds=1))["auto_deliver"]
    delivered = shop.orders.get(shop.tenant, part)
    close_at = parse_iso(delivered["deliveredAt"]) + timedelta(days=SETTINGS.return_window_days)
    assert (delivered["status"], delivered["due"], parse_iso(delivered["deadline"])) == (
        "DELIVERED", "close", close_at)  # fmt: skip
    assert part not in str(fired(shop, close_at - timedelta(seconds=1)))
    assert part in fired(shop, close_at + timedelta(seconds=1))["close"]
    closed = shop.orders.get(shop.tenant, part)
    assert closed["status"] == "CLOSED" and "due" not in closed
    items = trail(shop, part, "CLOSED")
    assert [i["after"]["status"] for i in items][-2:] == ["DELIVERED", "CLOSED"]
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (7, 8)


def test_two_sweeps_at_once_fire_a_transition_once(shop):
    supplier_id, _, _, part = two_line_order(shop)
    at = next_second()
    with clock.use(lambda: at):
        shop.orders.accept(shop.supplier(supplier_id), part)
    as_of, start, runs = at + timedelta(hours=SETTINGS.ship_by_hours, seconds=1), threading.Barrier(2), []

    def sweep():
        start.wait()
        runs.append(shop.orders.sweep_due(as_of))

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(run.get("late", []).count(part) for run in runs) == 1, runs
    items = trail(shop, part, "ACCEPTED")
    assert [i["by"] for i in items].count("system:deadline-sweeper") == 1


def test_one_run_fires_every_due_order_each_once_several_at_once(shop):
    """One run of the sweeper function fires the due orders of a page several at once (D43): every
    one of them, each once; the next run fires none of them again."""
    supplier_id, sku = shop.supplier_with_listing(quantity=20)
    parts = [shop.place((supplier_id, sku, 1))["supplierOrders"][0]["supplierOrderId"] for _ in range(6)]
    at = next_second()
    for part in parts:
        shop.wait_status(part, "AWAITING_ACCEPTANCE")
        with clock.use(lambda: at):
            shop.orders.accept(shop.supplier(supplier_id), part)
    as_of = at + timedelta(hours=SETTINGS.ship_by_hours, seconds=1)
    late = fired(shop, as_of).get("late", [])
    assert sorted(p for p in late if p in parts) == sorted(parts)
    assert not set(parts) & set(str(fired(shop, as_of)).split("'"))
    assert {shop.orders.get(shop.tenant, p)["due"] for p in parts} == {"auto_cancel"}


def test_a_deadline_missed_for_47_hours_two_calendar_days_back_is_still_fired(shop):
    """The sweeper reads the index by deadline day (D49): a run after an outage of almost two days
    still finds a deadline two calendar days back, and fires it once."""
    supplier_id, _, _, part = two_line_order(shop)
    at = (datetime.now(UTC) + timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    with clock.use(lambda: at):
        shop.orders.accept(shop.supplier(supplier_id), part)
    ship_by = at + timedelta(hours=SETTINGS.ship_by_hours)
    as_of = ship_by + timedelta(hours=47)
    assert (as_of.date() - ship_by.date()).days == 2
    assert part in fired(shop, as_of)["late"]
    assert part not in str(fired(shop, as_of + timedelta(seconds=1)))


def test_an_awaiting_order_with_a_line_cancelled_still_expires_after_the_sla(shop):
    """Cancelling some lines of an order still awaiting the supplier keeps its expiry deadline: the
    order stays in the sweeper's index and expires at the SLA with the rest of its stock back."""
    supplier_id, sku_a, sku_b, part = two_line_order(shop)
    awaiting = shop.orders.get(shop.tenant, part)
    shop.orders.cancel(shop.retailer(), part, "customer changed their mind", [{"sku": sku_b}])
    after = shop.orders.get(shop.tenant, part)
    assert (after["status"], after["due"], after["deadline"]) == (
        "AWAITING_ACCEPTANCE",
        "expire",
        awaiting["deadline"],
    )
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (7, 10)
    assert part in shop.sweep(parse_iso(awaiting["deadline"]) + timedelta(seconds=1))
    assert shop.orders.get(shop.tenant, part)["status"] == "EXPIRED"
    assert (shop.stock(supplier_id, sku_a), shop.stock(supplier_id, sku_b)) == (10, 10)

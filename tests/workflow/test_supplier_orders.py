"""Supplier orders: intake (Express workflow: validate, reserve, await), the supplier's decision,
expiry after the SLA, compensation, and the race for the last unit — in the local stack."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from marketplace.clock import parse_iso
from marketplace.orders import Orders
from marketplace.principal import Principal
from marketplace.repository import Table
from tests.conftest import wait_until
from tests.workflow.test_product_listing import Listings

pytestmark = pytest.mark.workflow

SHIP_TO = {
    "name": "Ada Lovelace",
    "line1": "1 Analytical St",
    "city": "London",
    "postalCode": "N1 9GU",
    "country": "GB",
}


class Shop:
    def __init__(self, listings: Listings) -> None:
        self.listings = listings
        self.stack = listings.onboarding.stack
        self.tenant = listings.onboarding.tenant
        self.orders = Orders(Table(self.stack.physical_id("MarketplaceTable"), self.stack.client("dynamodb")))

    def supplier_with_listing(self, quantity: int = 10, **overrides) -> tuple[str, str]:
        supplier_id = self.listings.supplier()
        sku = self.listings.register(supplier_id, quantity=quantity, **overrides)
        self.listings.wait_status(supplier_id, sku, "ACTIVE")
        return supplier_id, sku

    def retailer(self) -> Principal:
        return Principal("r-user", self.tenant, frozenset({"retailer"}))

    def supplier(self, supplier_id: str) -> Principal:
        return Principal("s-user", self.tenant, frozenset({"supplier"}), supplier_id)

    def place(self, *lines: tuple[str, str, int], price: float = 1299.99) -> dict:
        body = {
            "customerOrderId": f"c-{uuid.uuid4().hex[:10]}",
            "lines": [{"supplierId": s, "sku": k, "quantity": q, "unitPrice": {"amount": price, "currency": "EUR"}}
                      for s, k, q in lines],
            "shipTo": SHIP_TO,
        }  # fmt: skip
        return self.orders.place(self.retailer(), body)

    def stock(self, supplier_id: str, sku: str) -> int:
        return self.listings.products.get(self.tenant, supplier_id, sku)["quantity"]

    def wait_status(self, supplier_order_id: str, *statuses: str) -> dict:
        def reached():
            record = self.orders.get(self.tenant, supplier_order_id)
            return record if record["status"] in statuses else None

        return wait_until(reached, what=f"supplier order {supplier_order_id} in {statuses}")

    def sweep(self, as_of: datetime) -> list[str]:
        name = self.stack.physical_id("ExpireSupplierOrdersFunction")
        return self.stack.runtime.invoke_or_raise(name, {"time": as_of.isoformat()})["expired"]


def test_an_order_over_two_suppliers_reserves_stock_and_awaits_both(shop):
    (s1, k1), (s2, k2) = shop.supplier_with_listing(quantity=10), shop.supplier_with_listing(quantity=5)
    order = shop.place((s1, k1, 3), (s2, k2, 2))
    assert sorted(p["supplierId"] for p in order["supplierOrders"]) == sorted([s1, s2])
    for part in order["supplierOrders"]:
        awaiting = shop.wait_status(part["supplierOrderId"], "AWAITING_ACCEPTANCE")
        deadline = parse_iso(awaiting["deadline"]) - datetime.now(UTC)
        assert timedelta(hours=24, seconds=-60) < deadline <= timedelta(hours=24)  # the default pack's SLA
    assert (shop.stock(s1, k1), shop.stock(s2, k2)) == (7, 3)


def test_accepted_keeps_the_stock_rejected_releases_it(shop):
    (s1, k1), (s2, k2) = shop.supplier_with_listing(quantity=10), shop.supplier_with_listing(quantity=10)
    order = shop.place((s1, k1, 4), (s2, k2, 4))
    one, two = ({p["supplierId"]: p["supplierOrderId"] for p in order["supplierOrders"]}[s] for s in (s1, s2))
    shop.wait_status(one, "AWAITING_ACCEPTANCE")
    shop.wait_status(two, "AWAITING_ACCEPTANCE")
    assert shop.orders.accept(shop.supplier(s1), one)["status"] == "ACCEPTED"
    rejected = shop.orders.reject(shop.supplier(s2), two, "cannot ship to the UK")
    assert (rejected["status"], rejected["statusReason"], rejected["reserved"]) == (
        "REJECTED",
        "cannot ship to the UK",
        False,
    )
    assert (shop.stock(s1, k1), shop.stock(s2, k2)) == (6, 10)


def test_a_supplier_cannot_decide_another_suppliers_order(shop):
    from marketplace.errors import NotFound

    (s1, k1), (s2, _) = shop.supplier_with_listing(), shop.supplier_with_listing()
    part = shop.place((s1, k1, 1))["supplierOrders"][0]["supplierOrderId"]
    shop.wait_status(part, "AWAITING_ACCEPTANCE")
    with pytest.raises(NotFound):
        shop.orders.accept(shop.supplier(s2), part)


def test_an_order_not_decided_within_the_sla_expires_and_releases_its_stock(shop):
    supplier_id, sku = shop.supplier_with_listing(quantity=3)
    part = shop.place((supplier_id, sku, 2))["supplierOrders"][0]["supplierOrderId"]
    awaiting = shop.wait_status(part, "AWAITING_ACCEPTANCE")
    deadline = parse_iso(awaiting["deadline"])
    assert part not in shop.sweep(deadline - timedelta(seconds=1))
    assert shop.stock(supplier_id, sku) == 1
    assert part in shop.sweep(deadline + timedelta(seconds=1))
    expired = shop.orders.get(shop.tenant, part)
    assert (expired["status"], expired["statusReason"]) == ("EXPIRED", "no decision within the SLA")
    assert shop.stock(supplier_id, sku) == 3
    assert part not in shop.sweep(deadline + timedelta(seconds=2))  # once
    with pytest.raises(Exception, match="EXPIRED"):
        shop.orders.accept(shop.supplier(supplier_id), part)


def test_two_orders_racing_for_the_last_unit_exactly_one_wins(shop):
    supplier_id, sku = shop.supplier_with_listing(quantity=1)
    parts: list[str] = []
    lock = threading.Lock()

    def order() -> None:
        placed = shop.place((supplier_id, sku, 1))
        with lock:
            parts.append(placed["supplierOrders"][0]["supplierOrderId"])

    threads = [threading.Thread(target=order) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    finals = sorted(shop.wait_status(p, "AWAITING_ACCEPTANCE", "REJECTED")["status"] for p in parts)
    assert finals == ["AWAITING_ACCEPTANCE", "REJECTED"]
    loser = next(
        shop.orders.get(shop.tenant, p)
        for p in parts
        if shop.orders.get(shop.tenant, p)["status"] == "REJECTED"
    )
    assert loser["statusReason"] == "out of stock"
    assert shop.stock(supplier_id, sku) == 0


def test_a_repeated_intake_reserves_once(shop):
    supplier_id, sku = shop.supplier_with_listing(quantity=5)
    part = shop.place((supplier_id, sku, 2))["supplierOrders"][0]
    shop.wait_status(part["supplierOrderId"], "AWAITING_ACCEPTANCE")
    # The stream delivers the same insert again: Express names are not unique, so a second intake runs.
    sfn = shop.stack.client("stepfunctions")
    arn = shop.stack.physical_id("SupplierOrderStateMachine")
    again = sfn.start_execution(stateMachineArn=arn, name=f"replay-{uuid.uuid4().hex[:8]}",
                                input=json.dumps({"tenantId": shop.tenant, "supplierOrderId": part["supplierOrderId"], "version": 1}))  # fmt: skip
    wait_until(
        lambda: sfn.describe_execution(executionArn=again["executionArn"])["status"] == "SUCCEEDED",
        what="replay",
    )
    assert shop.stock(supplier_id, sku) == 3
    assert shop.orders.get(shop.tenant, part["supplierOrderId"])["status"] == "AWAITING_ACCEPTANCE"


@pytest.mark.parametrize(
    ("line_price", "field", "reason"),
    [(999.0, "lines.0.unitPrice", "is not the listed 1299.99 EUR")],
    ids=["price-mismatch"],
)  # fmt: skip
def test_an_invalid_supplier_order_is_flagged_for_a_human(shop, line_price, field, reason):
    supplier_id, sku = shop.supplier_with_listing()
    part = shop.place((supplier_id, sku, 1), price=line_price)["supplierOrders"][0]["supplierOrderId"]
    flagged = shop.wait_status(part, "FLAGGED")
    assert any(f["field"] == field and reason in f["reason"] for f in flagged["flags"]), flagged["flags"]
    (message,) = wait_until(lambda: shop.listings.onboarding.queued(part), what="correction message")
    assert (message["kind"], message["flaggedVersion"]) == ("SUPPLIER_ORDER", flagged["version"])
    assert shop.stock(supplier_id, sku) == 10  # nothing reserved
    cancelled = shop.orders.cancel(
        shop.listings.onboarding.principal("admin"), part, "price typo by the retailer"
    )
    assert cancelled["status"] == "CANCELLED"
    assert shop.listings.onboarding.drain().get("closed") == 1


def test_quantity_is_what_is_available_to_sell(shop):
    supplier_id, sku = shop.supplier_with_listing(quantity=2)
    first = shop.place((supplier_id, sku, 2))["supplierOrders"][0]["supplierOrderId"]
    shop.wait_status(first, "AWAITING_ACCEPTANCE")
    second = shop.place((supplier_id, sku, 1))["supplierOrders"][0]["supplierOrderId"]
    assert shop.wait_status(second, "REJECTED")["statusReason"] == "out of stock"
    shop.orders.reject(shop.supplier(supplier_id), first, "changed my mind")
    assert shop.stock(supplier_id, sku) == 2


def test_a_repeated_intake_of_a_decided_order_changes_nothing(shop):
    supplier_id, sku = shop.supplier_with_listing(quantity=5)
    part = shop.place((supplier_id, sku, 1))["supplierOrders"][0]["supplierOrderId"]
    shop.wait_status(part, "AWAITING_ACCEPTANCE")
    accepted = shop.orders.accept(shop.supplier(supplier_id), part)
    # The listing's price changes, then the intake runs again: it must not flag the accepted order.
    shop.listings.products.update(shop.supplier(supplier_id), supplier_id, sku,
                                  {"price": {"amount": 10.0, "currency": "EUR"}}, None)  # fmt: skip
    sfn = shop.stack.client("stepfunctions")
    again = sfn.start_execution(stateMachineArn=shop.stack.physical_id("SupplierOrderStateMachine"),
                                name=f"replay-{uuid.uuid4().hex[:8]}",
                                input=json.dumps({"tenantId": shop.tenant, "supplierOrderId": part, "version": 1}))  # fmt: skip
    wait_until(
        lambda: sfn.describe_execution(executionArn=again["executionArn"])["status"] == "SUCCEEDED",
        what="replay",
    )
    after = shop.orders.get(shop.tenant, part)
    assert (after["status"], after["version"]) == ("ACCEPTED", accepted["version"])
    assert shop.stock(supplier_id, sku) == 4


def test_a_system_error_in_the_intake_flags_the_order_for_a_human(shop):
    spec = shop.stack.runtime.by_logical_id("SupplierOrderStepsFunction")

    class Broken(Exception):
        pass

    def interceptor(function, event):
        if (
            function.name == spec.name
            and event.get("tenantId") == shop.tenant
            and event.get("step") == "reserve"
        ):
            raise Broken("injected fault")

    supplier_id, sku = shop.supplier_with_listing(quantity=4)
    shop.stack.runtime.interceptors.append(interceptor)
    try:
        part = shop.place((supplier_id, sku, 1))["supplierOrders"][0]["supplierOrderId"]
        flagged = shop.wait_status(part, "FLAGGED")
    finally:
        shop.stack.runtime.interceptors.remove(interceptor)
    assert flagged["flags"][0]["field"] == "(system)" and "Broken" in flagged["flags"][0]["reason"]
    (message,) = wait_until(lambda: shop.listings.onboarding.queued(part), what="correction message")
    assert message["kind"] == "SUPPLIER_ORDER"
    assert shop.stock(supplier_id, sku) == 4
    # Cured: an admin retries it and the drain starts the intake again, which reserves.
    shop.orders.request_retry(shop.listings.onboarding.principal("admin"), part)
    assert shop.listings.onboarding.drain().get("restarted") == 1
    shop.wait_status(part, "AWAITING_ACCEPTANCE")
    assert shop.stock(supplier_id, sku) == 3

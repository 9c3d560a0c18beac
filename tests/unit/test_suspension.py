"""Suspension and delisting (docs/decisions.md D40): which status each comes from and goes to, the
same call again, who may put a listing back, the rules run again on the way back, orders refused
for what is off sale, and a suspended supplier's awaiting orders cancelled with their stock back.
On a table shaped as the stack's, without its stream (``quiet_table``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from marketplace import keys, suspension
from marketplace.errors import Conflict
from marketplace.orders import Orders
from marketplace.principal import Principal
from marketplace.products import Products
from marketplace.repository import Table
from marketplace.suppliers import Suppliers
from marketplace_local.samples import SHIP_TO, SUPPLIER

PRICE = {"amount": 49.9, "currency": "EUR"}
LISTING = {"sku": "LAMP-1", "title": "Desk lamp", "category": "home", "price": PRICE, "quantity": 5,
           "images": ["https://cdn.example.com/lamp.webp"], "attributes": {"material": "steel"}}  # fmt: skip


def approved_supplier(table: Table, admin: Principal) -> str:
    record = Suppliers(table).register(admin, {**SUPPLIER, "taxId": f"DE{uuid.uuid4().int % 10**9:09d}"})
    table.update(record["PK"], record["SK"], 1, {"status": "APPROVED"})
    return str(record["supplierId"])


def active_listing(table: Table, admin: Principal, supplier_id: str, sku: str = "LAMP-1") -> None:
    record = Products(table).register(admin, supplier_id, {**LISTING, "sku": sku})
    table.update(record["PK"], record["SK"], 1, {"status": "ACTIVE"})


def supplier_of(admin: Principal, supplier_id: str) -> Principal:
    return Principal(
        subject="sam", tenant_id=admin.tenant_id, roles=frozenset({"supplier"}), supplier_id=supplier_id
    )


def order(
    table: Table, admin: Principal, supplier_id: str, sku: str = "LAMP-1", units: int = 2
) -> dict[str, Any]:
    body = {"customerOrderId": f"c-{uuid.uuid4().hex[:8]}", "shipTo": SHIP_TO,
            "lines": [{"supplierId": supplier_id, "sku": sku, "quantity": units, "unitPrice": PRICE}]}  # fmt: skip
    return Orders(table).place(admin, body)


def test_a_supplier_is_suspended_from_approved_and_reinstated_to_approved(table, admin):
    supplier_id = approved_supplier(table, admin)
    suspended = suspension.suspend(admin, supplier_id, "unpaid fees", table)
    assert (suspended["status"], suspended["statusReason"], suspended["version"]) == (
        "SUSPENDED",
        "unpaid fees",
        3,
    )
    assert (suspended["updatedBy"], suspended["withdrawnBy"], suspended["withdrawnAs"]) == (
        admin.actor, admin.actor, "admin",
    )  # fmt: skip
    # The same call again (a retry): the record as it is, no new version, no 409.
    assert suspension.suspend(admin, supplier_id, "unpaid fees", table)["version"] == 3
    # GET /suppliers?status=SUSPENDED lists it.
    assert [s["supplierId"] for s in Suppliers(table).list(admin.tenant_id, "SUSPENDED", 10, None).items] == [
        supplier_id
    ]
    reinstated = suspension.reinstate(admin, supplier_id, "fees paid", table)
    assert (reinstated["status"], reinstated["statusReason"], reinstated["version"]) == (
        "APPROVED",
        "fees paid",
        4,
    )
    assert "withdrawnBy" not in reinstated
    assert suspension.reinstate(admin, supplier_id, "fees paid", table)["version"] == 4


@pytest.mark.parametrize("status", ["PENDING", "FLAGGED", "REJECTED"])
def test_only_an_approved_supplier_is_suspended_and_only_a_suspended_one_reinstated(table, admin, status):
    record = Suppliers(table).register(admin, {**SUPPLIER, "taxId": f"DE{uuid.uuid4().int % 10**9:09d}"})
    table.update(record["PK"], record["SK"], 1, {"status": status})
    for change, needed in ((suspension.suspend, "APPROVED"), (suspension.reinstate, "SUSPENDED")):
        with pytest.raises(Conflict) as refused:
            change(admin, record["supplierId"], "why", table)
        assert f"the supplier is {status}; " in str(refused.value) and needed in str(refused.value)
        assert [f.as_dict() for f in refused.value.fields] == [
            {"field": "status", "reason": f"is {status}, not {needed}"}
        ]


def test_a_supplier_on_the_blocked_list_stays_suspended(table, admin):
    supplier_id = approved_supplier(table, admin)
    suspension.suspend(admin, supplier_id, "fraud report", table)
    supplier = Suppliers(table).get(admin.tenant_id, supplier_id)
    sk = keys.blocked_tax_id_sk(supplier["country"], supplier["taxId"])
    table.put({"PK": keys.blocklist_pk(admin.tenant_id), "SK": sk, "entity": "BLOCKLIST", "reason": "fraud"})
    with pytest.raises(Conflict) as refused:
        suspension.reinstate(admin, supplier_id, "a mistake", table)
    assert [f.field for f in refused.value.fields] == ["taxId"]
    assert Suppliers(table).get(admin.tenant_id, supplier_id)["status"] == "SUSPENDED"


def test_a_listing_is_delisted_from_active_and_relisted_to_active(table, admin):
    supplier_id = approved_supplier(table, admin)
    active_listing(table, admin, supplier_id)
    own = supplier_of(admin, supplier_id)
    delisted = suspension.delist(own, supplier_id, "LAMP-1", "out of season", table)
    assert (delisted["status"], delisted["withdrawnAs"], delisted["updatedBy"]) == (
        "DELISTED",
        "supplier",
        own.actor,
    )
    assert (
        suspension.delist(own, supplier_id, "LAMP-1", "out of season", table)["version"]
        == delisted["version"]
    )
    relisted = suspension.relist(own, supplier_id, "LAMP-1", "back in season", table)
    assert relisted["status"] == "ACTIVE" and relisted["version"] == delisted["version"] + 1
    # From any other status than the one it leaves: 409 naming the status.
    listing = Products(table).get(admin.tenant_id, supplier_id, "LAMP-1")
    table.update(listing["PK"], listing["SK"], int(listing["version"]), {"status": "FLAGGED"})
    for change, needed in ((suspension.delist, "ACTIVE"), (suspension.relist, "DELISTED")):
        with pytest.raises(Conflict, match=f"the listing is FLAGGED; {change.__name__} needs it {needed}"):
            change(own, supplier_id, "LAMP-1", "why", table)


def test_a_listing_an_admin_delisted_is_relisted_only_by_an_admin(table, admin):
    supplier_id = approved_supplier(table, admin)
    active_listing(table, admin, supplier_id)
    suspension.delist(admin, supplier_id, "LAMP-1", "counterfeit report", table)
    with pytest.raises(Conflict, match="only an admin may relist it"):
        suspension.relist(supplier_of(admin, supplier_id), supplier_id, "LAMP-1", "it is genuine", table)
    assert suspension.relist(admin, supplier_id, "LAMP-1", "checked: genuine", table)["status"] == "ACTIVE"


def test_a_listing_is_relisted_only_while_its_rules_pass(table, admin):
    supplier_id = approved_supplier(table, admin)
    active_listing(table, admin, supplier_id)
    suspension.delist(admin, supplier_id, "LAMP-1", "recall", table)
    Products(table).update(
        admin, supplier_id, "LAMP-1", {"category": "weapons"}, None
    )  # changed while off sale
    with pytest.raises(Conflict) as refused:
        suspension.relist(admin, supplier_id, "LAMP-1", "recall over", table)
    assert [f.field for f in refused.value.fields] == ["category"]
    Products(table).update(admin, supplier_id, "LAMP-1", {"category": "home"}, None)
    suspension.suspend(admin, supplier_id, "audit", table)
    with pytest.raises(Conflict) as refused:  # its supplier is suspended
        suspension.relist(admin, supplier_id, "LAMP-1", "recall over", table)
    assert [f.field for f in refused.value.fields] == ["supplierId"]
    suspension.reinstate(admin, supplier_id, "audit passed", table)
    assert suspension.relist(admin, supplier_id, "LAMP-1", "recall over", table)["status"] == "ACTIVE"


def test_an_order_for_a_suspended_supplier_or_a_delisted_listing_is_refused_naming_the_line(table, admin):
    suspended, selling = approved_supplier(table, admin), approved_supplier(table, admin)
    for supplier_id in (suspended, selling):
        active_listing(table, admin, supplier_id)
    active_listing(table, admin, selling, "LAMP-2")
    suspension.suspend(admin, suspended, "audit", table)
    suspension.delist(admin, selling, "LAMP-2", "recall", table)
    body = {"customerOrderId": "c-1", "shipTo": SHIP_TO, "lines": [
        {"supplierId": selling, "sku": "LAMP-1", "quantity": 1, "unitPrice": PRICE},
        {"supplierId": suspended, "sku": "LAMP-1", "quantity": 1, "unitPrice": PRICE},
        {"supplierId": selling, "sku": "LAMP-2", "quantity": 1, "unitPrice": PRICE},
    ]}  # fmt: skip
    with pytest.raises(Conflict) as refused:
        Orders(table).place(admin, body)
    assert [f.as_dict() for f in refused.value.fields] == [
        {
            "field": "lines.1.sku",
            "reason": f"its supplier {suspended} is SUSPENDED: its listings cannot be ordered",
        },
        {"field": "lines.2.sku", "reason": "LAMP-2 is DELISTED: it cannot be ordered"},
    ]
    # Nothing was written: the customer order id is still free.
    assert Orders(table).place(admin, {**body, "lines": body["lines"][:1]})["customerOrderId"] == "c-1"


def test_suspending_cancels_the_awaiting_orders_with_their_stock_back_and_leaves_accepted_ones(table, admin):
    supplier_id = approved_supplier(table, admin)
    active_listing(table, admin, supplier_id)
    store, now = Orders(table), datetime.now(UTC)
    awaiting, accepted = (order(table, admin, supplier_id)["supplierOrders"][0] for _ in range(2))
    for placed in (awaiting, accepted):
        assert store.reserve(admin.tenant_id, placed["supplierOrderId"], 1, now)["outcome"] == "RESERVED"
    store.accept(supplier_of(admin, supplier_id), accepted["supplierOrderId"])
    assert Products(table).get(admin.tenant_id, supplier_id, "LAMP-1")["quantity"] == 1

    suspension.suspend(admin, supplier_id, "unpaid fees", table)

    cancelled = store.get(admin.tenant_id, awaiting["supplierOrderId"])
    assert (cancelled["status"], cancelled["statusReason"], cancelled["updatedBy"]) == (
        "CANCELLED", "the supplier is suspended: unpaid fees", admin.actor,
    )  # fmt: skip
    assert store.get(admin.tenant_id, accepted["supplierOrderId"])["status"] == "ACCEPTED"
    assert (
        Products(table).get(admin.tenant_id, supplier_id, "LAMP-1")["quantity"] == 3
    )  # 2 back, 2 still held


def test_each_change_is_announced_as_the_status_it_sets_with_its_reason():
    from marketplace.events import event_for

    supplier = {
        "entity": "SUPPLIER",
        "tenantId": "t1",
        "supplierId": "s1",
        "version": 2,
        "status": "APPROVED",
    }
    listing = {"entity": "PRODUCT", "tenantId": "t1", "supplierId": "s1", "sku": "LAMP-1", "version": 4,
               "status": "ACTIVE"}  # fmt: skip
    for before, status, event in ((supplier, "SUSPENDED", "supplier.suspended"),
                                  (listing, "DELISTED", "listing.delisted")):  # fmt: skip
        off = {**before, "status": status, "version": before["version"] + 1, "statusReason": "audit"}
        announced = event_for(before, off)
        assert (announced["type"], announced["body"]["reason"]) == (event, "audit")
        back = event_for(off, {**before, "version": before["version"] + 2, "statusReason": "audit passed"})
        assert (back["type"], back["body"]["reason"]) == (
            f"{event.split('.')[0]}.{before['status'].lower()}", "audit passed",
        )  # fmt: skip


def test_the_suspension_cancels_an_order_only_while_it_awaits_acceptance(table, admin):
    """An order accepted between the suspension's read of the index and its cancellation goes on
    (an admin may cancel an accepted order otherwise)."""
    supplier_id = approved_supplier(table, admin)
    active_listing(table, admin, supplier_id)
    store = Orders(table)
    placed = order(table, admin, supplier_id)["supplierOrders"][0]["supplierOrderId"]
    store.reserve(admin.tenant_id, placed, 1, datetime.now(UTC))
    store.accept(supplier_of(admin, supplier_id), placed)
    kept = store.cancel(admin, placed, "the supplier is suspended: audit", only_from=("AWAITING_ACCEPTANCE",))
    assert (kept["status"], kept["version"]) == ("ACCEPTED", 3)


def test_a_suspended_supplier_cannot_accept_an_order_that_reached_it_after_the_suspension(table, admin):
    """An order validated before the suspension and reserved after its cancellations read the index
    awaits a supplier that is suspended: the supplier cannot accept it (it expires, its stock back)."""
    supplier_id = approved_supplier(table, admin)
    active_listing(table, admin, supplier_id)
    store = Orders(table)
    placed = order(table, admin, supplier_id)["supplierOrders"][0]["supplierOrderId"]
    suspension.suspend(admin, supplier_id, "audit", table)  # nothing awaiting yet
    assert store.reserve(admin.tenant_id, placed, 1, datetime.now(UTC))["outcome"] == "RESERVED"
    with pytest.raises(Conflict, match="the supplier is SUSPENDED: it cannot accept orders"):
        store.accept(supplier_of(admin, supplier_id), placed)
    assert store.get(admin.tenant_id, placed)["status"] == "AWAITING_ACCEPTANCE"

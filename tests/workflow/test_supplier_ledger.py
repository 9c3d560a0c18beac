"""Money in the local stack: the tenant's commission rules (versioned, audited, If-Match), orders priced
by them (subtotal, commission, supplierNet, the rule version kept), an order in two currencies refused,
and the supplier's ledger written from the order events: an order delivered and another refunded give
entries and a balance exact to the cent, and a duplicated event writes nothing twice
(marketplace.money, marketplace.commission, marketplace.ledger; docs/money.md)."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace import commission, keys, ledger
from marketplace.errors import InvalidInput, PreconditionFailed
from marketplace.principal import Principal
from marketplace.repository import to_item
from tests.conftest import wait_until
from tests.workflow.test_supplier_order_lifecycle import shipment, two_line_order
from tests.workflow.test_supplier_order_returns import ask
from tests.workflow.test_supplier_orders import Shop

pytestmark = pytest.mark.workflow

EUR = "EUR"
# The listings of the order tests are "electronics" at 1299.99 EUR.
RULES = {"defaultPercent": 10, "categories": {"electronics": 8}, "minimumPerLine": {EUR: 0.5}}


def admin(shop: Shop) -> Principal:
    return Principal("a-user", shop.tenant, frozenset({"admin"}))


def money(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": EUR}


def entries(shop: Shop, supplier_id: str, at_least: int) -> list[dict[str, Any]]:
    def written() -> list[dict[str, Any]] | None:
        page = shop.orders.table.query(
            keys.ledger_pk(shop.tenant, supplier_id), sk_prefix=keys.LEDGER_SK_PREFIX, limit=100
        )  # the entries only: the supplier's statements are in its ledger's partition too
        return page.items if len(page.items) >= at_least else None

    return wait_until(written, what=f"{at_least} ledger entries of {supplier_id}")


def replay(shop: Shop, order: dict[str, Any], status_before: str) -> None:
    """The stream record of ``order``'s last change (from ``status_before``), delivered twice in one
    batch to the events function, as a retried batch delivers it again; every record handled."""
    before = {**order, "version": order["version"] - 1, "status": status_before}
    record = {"eventID": "replayed", "eventName": "MODIFY", "eventSource": "aws:dynamodb",
              "dynamodb": {"NewImage": to_item(order), "OldImage": to_item(before), "SequenceNumber": "1",
                           "Keys": to_item({"PK": order["PK"], "SK": order["SK"]})}}  # fmt: skip
    name = shop.stack.physical_id("SupplierOrderEventsFunction")
    assert shop.stack.runtime.invoke_or_raise(name, {"Records": [record, record]}) == {
        "batchItemFailures": []
    }


def test_the_rules_are_versioned_and_every_version_is_audited(shop):
    table = shop.orders.table
    assert commission.get_rules(table, admin(shop)) == {"version": 0}  # none set
    with pytest.raises(PreconditionFailed, match="at version 0, not 3"):
        commission.put_rules(table, admin(shop), RULES, 3)
    first = commission.put_rules(table, admin(shop), {**RULES, "suppliers": {"s-x": 2.5}}, 0)
    assert (first["version"], first["suppliers"]) == (1, {"s-x": 2.5})
    second = commission.put_rules(table, admin(shop), RULES, None)
    assert second["version"] == 2 and "suppliers" not in second  # an override left out is gone
    with pytest.raises(PreconditionFailed, match="at version 2, not 1"):
        commission.put_rules(table, admin(shop), RULES, 1)
    pk = keys.tenant_settings_pk(shop.tenant)

    def audited() -> list[dict[str, Any]] | None:
        trail = table.query(pk, sk_prefix=keys.audit_prefix(keys.COMMISSION_RULES_SK), limit=10).items
        return trail if len(trail) == 2 else None

    trail = audited() or wait_until(audited, what="both versions of the rules audited")
    assert [(e["after"]["version"], e["by"]) for e in trail] == [(1, "admin:a-user"), (2, "admin:a-user")]
    assert trail[1]["before"]["suppliers"] == {"s-x": 2.5} and "suppliers" in trail[1]["changed"]


def test_an_order_in_two_currencies_is_refused_naming_the_line(shop):
    supplier_id, sku = shop.supplier_with_listing()
    body = {"customerOrderId": "c-two-currencies", "shipTo": {"name": "A", "line1": "1 St", "city": "X",
            "postalCode": "12345", "country": "DE"}, "lines": [
        {"supplierId": supplier_id, "sku": sku, "quantity": 1, "unitPrice": {"amount": 1299.99, "currency": EUR}},
        {"supplierId": supplier_id, "sku": "other", "quantity": 1, "unitPrice": {"amount": 10, "currency": "USD"}}]}  # fmt: skip
    with pytest.raises(InvalidInput) as refused:
        shop.orders.place(shop.retailer(), body)
    assert [(f.field, f.reason) for f in refused.value.fields] == [
        ("lines.1.unitPrice.currency", "is USD, but line 0 is EUR: an order is in one currency")]  # fmt: skip


def test_an_order_delivered_and_another_refunded_balance_to_the_cent(shop):
    """By hand, at 8 % (electronics) of 1299.99 EUR a unit:
    order 1, 3 x A + 2 x B: sale 6499.95; commission 3899.97 x 8 % = 311.9976 -> 312.00 and
    2599.98 x 8 % = 207.9984 -> 208.00, so -520.00.
    order 2, 1 x A + 1 x B: sale 2599.98; commission 103.9992 -> 104.00 twice, -208.00; both units
    returned and refunded: refund -2599.98, the commission reversed +208.00.
    Balance: 6499.95 - 520.00 + 2599.98 - 208.00 - 2599.98 + 208.00 = 5979.95."""
    rules = commission.put_rules(shop.orders.table, admin(shop), RULES, None)
    supplier_id, sku_a, sku_b, first = two_line_order(shop)
    placed = shop.orders.get(shop.tenant, first)
    assert (placed["subtotal"], placed["commission"], placed["supplierNet"]) == (
        money("6499.95"), money("520.00"), money("5979.95"))  # fmt: skip
    assert placed["commissionRulesVersion"] == rules["version"]
    assert [line["commission"] for line in placed["lines"]] == [
        {"percent": 8, "minimum": "0.50", "amount": "312.00"}, {"percent": 8, "minimum": "0.50", "amount": "208.00"}]  # fmt: skip
    second = shop.place((supplier_id, sku_a, 1), (supplier_id, sku_b, 1))["supplierOrders"][0][
        "supplierOrderId"
    ]
    shop.wait_status(second, "AWAITING_ACCEPTANCE")
    me = shop.supplier(supplier_id)
    for part, units in ((first, ((sku_a, 3), (sku_b, 2))), (second, ((sku_a, 1), (sku_b, 1)))):
        shop.orders.accept(me, part)
        shop.orders.ship(me, part, shipment(*units))
        assert shop.orders.deliver(shop.retailer(), part)["status"] == "DELIVERED"
    asked = ask(shop, second, (sku_a, 1), (sku_b, 1))
    shop.orders.answer_return(me, asked["returnId"], "accept_return")
    shop.orders.answer_return(me, asked["returnId"], "receive_return")

    written = entries(shop, supplier_id, 6)
    got = sorted((e["supplierOrderId"] == first, e["type"], e["amount"]["amount"]) for e in written)
    assert got == sorted([
        (True, "SALE", "6499.95"), (True, "COMMISSION", "-520.00"),
        (False, "SALE", "2599.98"), (False, "COMMISSION", "-208.00"),
        (False, "REFUND", "-2599.98"), (False, "COMMISSION_REVERSAL", "208.00"),
    ])  # fmt: skip
    assert {e["returnId"] for e in written if e["type"] in ("REFUND", "COMMISSION_REVERSAL")} == {
        asked["returnId"]
    }
    read = ledger.read(me, supplier_id, 4, None, shop.orders.table)
    assert read["balance"] == [money("5979.95")] and len(read["items"]) == 4 and read["nextToken"]
    rest = ledger.read(admin(shop), supplier_id, 4, read["nextToken"], shop.orders.table)
    assert len(rest["items"]) == 2 and rest["nextToken"] is None
    assert [e["at"] for e in read["items"] + rest["items"]] == sorted(
        e["at"] for e in written
    )  # oldest first

    # The delivery's stream record delivered again (a retried batch): the same event, no new entry.
    delivered = shop.orders.get(shop.tenant, first)
    assert delivered["lastEvent"]["type"] == "supplier_order.delivered"
    replay(shop, delivered, "SHIPPED")
    assert len(shop.orders.table.query(keys.ledger_pk(shop.tenant, supplier_id), limit=100).items) == 6
    assert ledger.balance(shop.orders.table, shop.tenant, supplier_id) == [money("5979.95")]


def test_an_incident_refunded_by_the_admin_is_a_refund_and_one_decided_without_is_nothing(shop):
    """At 10 % (the default; no category rule) of 1299.99: 129.999 -> 130.00 a unit. One order of
    1 x A + 1 x B delivered: sale 2599.98, commission -260.00. The supplier refuses two returns; the
    admin refunds A's (-1299.99, reversal +130.00) and not B's. Balance 2339.98 - 1299.99 + 130.00
    = 1169.99."""
    commission.put_rules(shop.orders.table, admin(shop), {"defaultPercent": 10}, None)
    supplier_id, sku_a, sku_b, part = two_line_order(shop, 1, 1)
    me = shop.supplier(supplier_id)
    shop.orders.accept(me, part)
    shop.orders.ship(me, part, shipment((sku_a, 1), (sku_b, 1)))
    shop.orders.deliver(shop.retailer(), part)
    decided = []
    for sku, refund_it in ((sku_a, True), (sku_b, False)):
        asked = ask(shop, part, (sku, 1))
        shop.orders.answer_return(me, asked["returnId"], "refuse_return", "broken by the customer")
        decided.append(
            shop.orders.decide_return(admin(shop), asked["returnId"], refund_it, "goodwill")["status"]
        )
    assert decided == ["REFUNDED", "CLOSED"]
    written = entries(shop, supplier_id, 4)
    assert [(e["type"], e["amount"]["amount"]) for e in written] == [
        ("SALE", "2599.98"), ("COMMISSION", "-260.00"), ("REFUND", "-1299.99"), ("COMMISSION_REVERSAL", "130.00")]  # fmt: skip
    # The decision without a refund (the order's last change), handled again now: it writes nothing.
    last = shop.orders.get(shop.tenant, part)
    assert (last["lastEvent"]["type"], last["lastEvent"]["refund"]) == (
        "supplier_order.incident_resolved",
        False,
    )
    replay(shop, last, "DELIVERED")
    assert len(shop.orders.table.query(keys.ledger_pk(shop.tenant, supplier_id), limit=100).items) == 4
    assert ledger.balance(shop.orders.table, shop.tenant, supplier_id) == [money("1169.99")]

"""The workflows run with the tenant's rule pack in force and keep its version (D51): each
onboarding and listing execution's output carries ``validation.rulePackVersion``, 0 for the defaults;
an activation decides the next validation, and another tenant keeps its own rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.workflow.conftest import Onboarding, activate_rule_pack
from tests.workflow.test_product_listing import Listings

pytestmark = pytest.mark.workflow

NL = {"formats": ["NL\\d{9}B\\d{2}"], "description": "a NL VAT number is NL, 9 digits, B, then 2 digits"}
DUTCH = {"country": "NL", "taxId": "NL123456789B01", "contactEmail": "inkoop@acme.com"}


def pack_version(onboarding: Onboarding, arn: str) -> Any:
    output = json.loads(onboarding.wait_execution(arn, "SUCCEEDED")["output"])
    return output["validation"]["rulePackVersion"]


def test_an_onboarding_runs_with_the_pack_in_force_and_its_execution_keeps_the_version(
    onboarding, stack, tenant
):
    before = onboarding.register()
    onboarding.wait_status(before, "APPROVED")
    assert pack_version(onboarding, onboarding.execution_arn(before)) == 0  # the defaults

    assert activate_rule_pack(onboarding, lambda d: d["taxIds"].update(NL=NL)) == 1
    dutch = onboarding.register(**DUTCH)
    assert "flags" not in onboarding.wait_status(dutch, "APPROVED")  # the defaults flag NL for review
    assert pack_version(onboarding, onboarding.execution_arn(dutch)) == 1

    elsewhere = Onboarding(stack, f"{tenant}-other")
    other = elsewhere.register(**DUTCH)
    flagged = elsewhere.wait_status(other, "FLAGGED")
    assert flagged["flags"] == [
        {"field": "taxId", "reason": "no automatic check for country NL: manual review"}
    ]


def test_a_listing_runs_with_the_pack_in_force_and_its_execution_keeps_the_version(onboarding):
    listings = Listings(onboarding)
    supplier_id = listings.supplier()
    garden = {
        "price": {"min": 1, "max": 300},
        "requiredAttributes": ["material"],
        "images": {"min": 1, "max": 5},
    }
    assert activate_rule_pack(onboarding, lambda d: d["categories"].update(garden=garden)) == 1
    bench = {
        "category": "garden",
        "price": {"amount": 149, "currency": "EUR"},
        "attributes": {"material": "teak"},
    }
    sku = listings.register(supplier_id, sku="BENCH-1", **bench)  # the defaults flag garden for review
    listings.wait_status(supplier_id, sku, "ACTIVE")
    assert pack_version(onboarding, listings.execution_arn(supplier_id, sku)) == 1
    too_dear = listings.register(
        supplier_id, sku="BENCH-2", **{**bench, "price": {"amount": 900, "currency": "EUR"}}
    )
    flagged = listings.wait_status(supplier_id, too_dear, "FLAGGED")
    assert flagged["flags"] == [{"field": "price.amount", "reason": "must be between 1 and 300 for garden"}]


def test_an_order_takes_the_timings_of_the_pack_in_force_and_another_tenant_keeps_the_defaults(shop, stack):
    """The order timings are the pack's ``orders``: an activation sets each order's next deadline."""
    from datetime import datetime, timedelta

    from tests.workflow.test_supplier_orders import Shop

    def accepted_ship_by(at: Shop) -> timedelta:
        supplier_id, sku = at.supplier_with_listing(quantity=3)
        part = at.place((supplier_id, sku, 1))["supplierOrders"][0]["supplierOrderId"]
        at.wait_status(part, "AWAITING_ACCEPTANCE")
        order = at.orders.accept(at.supplier(supplier_id), part)
        return datetime.fromisoformat(order["shipBy"]) - datetime.fromisoformat(order["acceptedAt"])

    onboarding = shop.listings.onboarding
    assert activate_rule_pack(onboarding, lambda d: d["orders"].update(shipByHours=24)) == 1
    assert accepted_ship_by(shop) == timedelta(hours=24)
    other = Shop(Listings(Onboarding(stack, f"{onboarding.tenant}-other")))
    assert accepted_ship_by(other) == timedelta(hours=72)  # the default pack's


def test_an_order_takes_the_commission_default_of_the_pack_in_force_until_the_rules_set_one(shop, stack):
    """The pack's ``commission`` fills in what the tenant's commission rules leave out: an order placed
    after its activation carries its percent and the pack's version; the rules' default wins once
    set, and a tenant without either takes none."""
    from marketplace import commission
    from marketplace.principal import Principal
    from tests.workflow.test_supplier_orders import Shop

    def placed(at: Shop) -> dict[str, Any]:
        supplier_id, sku = at.supplier_with_listing(quantity=3)
        part = at.place((supplier_id, sku, 1))["supplierOrders"][0]["supplierOrderId"]
        return at.orders.get(at.tenant, part)

    onboarding = shop.listings.onboarding
    assert activate_rule_pack(onboarding, lambda d: d.update(commission={"defaultPercent": 5})) == 1
    order = placed(shop)  # 5 % of 1299.99 = 64.9995 -> 65.00
    assert (order["commission"], order["supplierNet"]) == (
        {"amount": "65.00", "currency": "EUR"},
        {"amount": "1234.99", "currency": "EUR"},
    )
    assert order["lines"][0]["commission"] == {"percent": 5, "amount": "65.00"}
    assert (order["commissionRulesVersion"], order["commissionRulePackVersion"]) == (0, 1)

    admin = Principal("ada", shop.tenant, frozenset({"admin"}))
    commission.put_rules(shop.orders.table, admin, {"defaultPercent": 8}, 0)
    order = placed(shop)  # the rules' 8 %: 103.9992 -> 104.00
    assert (order["commission"]["amount"], order["commissionRulesVersion"]) == ("104.00", 1)
    assert "commissionRulePackVersion" not in order

    other = Shop(Listings(Onboarding(stack, f"{onboarding.tenant}-other")))
    elsewhere = placed(other)
    assert (elsewhere["commission"]["amount"], elsewhere["commissionRulesVersion"]) == ("0.00", 0)
    assert "commissionRulePackVersion" not in elsewhere

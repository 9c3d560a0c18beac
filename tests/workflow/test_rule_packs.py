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


def test_an_order_awaits_its_supplier_for_the_acceptance_sla_of_the_pack_in_force(shop, stack):
    """The pack's ``orders.acceptanceSlaHours`` sets a new order's deadline: the sweeper expires it
    then, and releases its stock; another tenant's order keeps the default pack's 24 hours."""
    from datetime import timedelta

    from marketplace.clock import parse_iso
    from tests.workflow.test_supplier_orders import Shop

    def awaiting(at: Shop) -> tuple[str, str, str, dict[str, Any]]:
        supplier_id, sku = at.supplier_with_listing(quantity=3)
        part = at.place((supplier_id, sku, 2))["supplierOrders"][0]["supplierOrderId"]
        return supplier_id, sku, part, at.wait_status(part, "AWAITING_ACCEPTANCE")

    onboarding = shop.listings.onboarding
    assert activate_rule_pack(onboarding, lambda d: d["orders"].update(acceptanceSlaHours=2)) == 1
    supplier_id, sku, part, order = awaiting(shop)
    deadline = parse_iso(order["deadline"])
    assert deadline - parse_iso(order["updatedAt"]) == timedelta(hours=2)  # reserved then
    assert part not in shop.sweep(deadline - timedelta(seconds=1))
    assert part in shop.sweep(deadline + timedelta(seconds=1))
    assert shop.orders.get(shop.tenant, part)["status"] == "EXPIRED"
    assert shop.stock(supplier_id, sku) == 3

    other = Shop(Listings(Onboarding(stack, f"{onboarding.tenant}-other")))
    *_, elsewhere = awaiting(other)
    assert parse_iso(elsewhere["deadline"]) - parse_iso(elsewhere["updatedAt"]) == timedelta(hours=24)


def test_a_flagged_record_gets_the_correction_rounds_of_the_pack_in_force(onboarding, stack, tenant):
    """``corrections.maxRounds`` bounds a flagged record's loop: with 1 round the workflow queues the
    record for a restart at once (no wait for a fix), and the execution says which bound it used;
    another tenant's record waits for its fix (the default pack's 3 rounds)."""
    assert activate_rule_pack(onboarding, lambda d: d["corrections"].update(maxRounds=1)) == 1
    supplier_id = onboarding.register(taxId="12345")  # not an EIN: flagged
    arn = onboarding.execution_arn(supplier_id)
    output = json.loads(onboarding.wait_execution(arn, "SUCCEEDED")["output"])
    assert (output["validation"]["maxRounds"], output["validation"]["rulePackVersion"]) == (1, 1)
    states = onboarding.entered(arn)
    assert "WaitForFix" not in states and states[-2:] == ["QueueForRestart", "AwaitingManualRestart"]
    assert onboarding.record(supplier_id)["status"] == "FLAGGED"

    elsewhere = Onboarding(stack, f"{tenant}-other")
    other = elsewhere.register(taxId="12345")
    elsewhere.wait_status(other, "FLAGGED")
    elsewhere.wait_entered(elsewhere.execution_arn(other), "WaitForFix")


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


def test_a_draft_blocking_a_tax_id_is_previewed_then_suspends_its_supplier_and_the_entry_s_trail_names_the_admin(
    onboarding, api, tenant
):
    """Through the API: the what-if names the approved supplier the draft's entry would suspend, the
    activation suspends it and keeps no ``blocklist`` in the pack, and the entry, a blocked-list item
    as its own route writes it, is audited naming the admin (D48)."""
    from marketplace import blocklist, keys
    from tests.conftest import wait_until

    supplier_id = onboarding.register()
    record = onboarding.wait_status(supplier_id, "APPROVED")
    entry = {
        "kind": "taxId",
        "value": record["taxId"],
        "country": record["country"],
        "reason": "forged papers",
    }
    pack = api.call("GET", "/admin/rule-packs/active", "admin").json()["pack"]
    put = api.call("PUT", "/admin/rule-packs/draft", "admin", json={**pack, "blocklist": {"add": [entry]}})
    assert put.status_code == 200, put.text

    what_if = api.call("POST", "/admin/rule-packs/draft/what-if", "admin").json()
    blocked = [{"field": "taxId", "reason": "on the tenant's blocked list: forged papers"}]
    assert what_if["changes"] == [
        {
            "kind": "supplier",
            "id": supplier_id,
            "status": "APPROVED",
            "wouldBe": "SUSPENDED",
            "reasons": blocked,
        }
    ]
    assert onboarding.record(supplier_id)["status"] == "APPROVED"  # the what-if writes nothing

    activated = api.call(
        "POST", "/admin/rule-packs/draft/activate", "admin", headers={"If-Match": str(what_if["revision"])}
    )
    assert activated.status_code == 200, activated.text
    assert activated.json()["blocklist"] == {"added": 1, "removed": 0, "suspendedSuppliers": [supplier_id]}
    assert "blocklist" not in api.call("GET", "/admin/rule-packs/active", "admin").json()["pack"]
    assert onboarding.record(supplier_id)["status"] == "SUSPENDED"
    listed = api.call("GET", "/admin/blocklist", "admin").json()["items"]
    assert [(e["value"], e["reason"], e["createdBy"].split(":")[0]) for e in listed] == [
        (record["taxId"], "forged papers", "admin")
    ]

    _, sort_key = blocklist.checked(entry)
    pk = keys.blocklist_pk(tenant)
    trail = wait_until(lambda: list(onboarding.table.partition(pk, keys.audit_prefix(sort_key))) or None,
                       what="the entry's audit trail")  # fmt: skip
    assert [(e["action"], e["by"].split(":")[0]) for e in trail] == [("created", "admin")]

"""The audit trail in the local stack (D48): orders, blocked-list changes, webhook settings and
commission rules are audited from the stream beside suppliers and listings; every trail is hash-chained
and digested to the write-once bucket; `marketplace audit verify --tenant T` finds it intact, then names
an entry edited and a gap left by one deleted behind the API's back; an erasure on request masks the
supplier's contact details everywhere and the trail still verifies."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from marketplace import audit, clock, commission, keys, rule_packs
from marketplace.principal import Principal
from marketplace.repository import Table
from marketplace.suppliers import Suppliers
from marketplace_local import cli
from tests.conftest import wait_until
from tests.workflow.test_supplier_orders import Shop

pytestmark = pytest.mark.workflow


def trail(shop: Shop, pk: str, record_sk: str, at_least: int = 1) -> list[dict[str, Any]]:
    table = shop.orders.table

    def written() -> list[dict[str, Any]] | None:
        found = list(table.partition(pk, keys.audit_prefix(record_sk)))
        return found if len(found) >= at_least else None

    return wait_until(written, what=f"{at_least} audit entries of {pk} {record_sk}")


def verify(stack: Any, tenant: str, capsys: Any, monkeypatch: Any) -> tuple[int, str]:
    """`marketplace audit verify --tenant T` against the running local stack (its stack.json)."""
    monkeypatch.setenv("MARKETPLACE_STATE_DIR", str(stack.config.state_dir))
    capsys.readouterr()
    code = cli.main(["audit", "verify", "--tenant", tenant])
    return code, capsys.readouterr().out


def digest(stack: Any) -> None:
    """The scheduled digest job, run now by the stack's function, reaching every entry written so far."""
    table = Table(stack.physical_id("MarketplaceTable"), stack.client("dynamodb"))
    state = keys.audit_digest_state()
    if table.get(*state) is None:  # a first run reads two days of hourly partitions: start minutes back
        table.put({"PK": state[0], "SK": state[1], "through": clock.iso(clock.now() - timedelta(minutes=5))})
    when = clock.iso(clock.now() + audit.DIGEST_LAG)
    stack.runtime.invoke_or_raise(stack.physical_id("AuditDigestFunction"), {"time": when})


def test_every_kind_is_audited_chained_and_verify_names_what_was_edited_or_deleted(
    shop, api, capsys, monkeypatch
):
    stack, tenant, table = shop.stack, shop.tenant, shop.orders.table
    supplier_id, sku = shop.supplier_with_listing()
    order = shop.place((supplier_id, sku, 1))
    shop.wait_status(order["supplierOrders"][0]["supplierOrderId"], "AWAITING_ACCEPTANCE")
    blocked = api.call("POST", "/admin/blocklist", "admin", json={"kind": "domain", "value": "fraud.example",
                                                                  "reason": "chargebacks"})  # fmt: skip
    assert blocked.status_code == 201, blocked.text
    assert api.call("DELETE", f"/admin/blocklist/{blocked.json()['entryId']}", "admin").status_code == 204
    hook = {"url": "https://hooks.example.com/marketplace", "secret": "whsec-0123456789abcdef0123"}
    assert (
        api.call("PUT", f"/suppliers/{supplier_id}/webhook", "supplier", supplier_id, json=hook).status_code
        == 200
    )
    commission.put_rules(table, Principal("a-user", tenant, frozenset({"admin"})), {"defaultPercent": 10}, 0)
    rule_packs.put_draft(
        table, Principal("a-user", tenant, frozenset({"admin"})), rule_packs.default_document(), 0
    )
    rule_packs.activate(table, Principal("a-user", tenant, frozenset({"admin"})), 1)

    order_trail = trail(shop, keys.order_pk(tenant, order["orderId"]), keys.RECORD_SK)
    assert (order_trail[0]["action"], order_trail[0]["by"]) == ("created", "retailer:r-user")
    assert order_trail[0]["after"]["shipTo"]["name"] == "Ada Lovelace"  # a personal value, committed
    assert "after.shipTo" in order_trail[0]["commitments"]
    blocklist_trail = trail(shop, keys.blocklist_pk(tenant), keys.blocked_domain_sk("fraud.example"), 3)
    # Who removed it is written on it first, so that the deletion names them.
    assert api.call("GET", "/admin/blocklist", "admin").json()["items"] == []  # the trail is not listed
    assert [(e["action"], e["by"].split(":")[0]) for e in blocklist_trail] == [
        ("created", "admin"),
        ("changed", "admin"),
        ("deleted", "admin"),
    ]
    hook_trail = trail(shop, keys.supplier_pk(tenant, supplier_id), keys.WEBHOOK_SK)
    assert hook_trail[0]["after"]["url"] == hook["url"] and hook["secret"] not in json.dumps(
        hook_trail, default=str
    )
    trail(shop, keys.tenant_settings_pk(tenant), keys.COMMISSION_RULES_SK)
    pack_trail = trail(
        shop, keys.tenant_settings_pk(tenant), keys.RULE_PACK_SK, 2
    )  # the draft, its activation
    assert [(e["action"], e["by"], e["after"]["activeVersion"]) for e in pack_trail] == [
        ("created", "admin:a-user", 0),
        ("changed", "admin:a-user", 1),
    ]
    listing = trail(
        shop, keys.supplier_pk(tenant, supplier_id), keys.product_sk(sku), 3
    )  # made, active, reserved
    stack.wait_for_streams()
    digest(stack)
    assert verify(stack, tenant, capsys, monkeypatch)[0] == 0

    # One entry edited behind the API (the order's author rewritten in the table): verify names it.
    dynamodb, name = stack.client("dynamodb"), stack.physical_id("MarketplaceTable")
    dynamodb.update_item(TableName=name, Key={"PK": {"S": order_trail[0]["PK"]}, "SK": {"S": order_trail[0]["SK"]}},
                         UpdateExpression="SET #by = :by", ExpressionAttributeNames={"#by": "by"},
                         ExpressionAttributeValues={":by": {"S": "retailer:someone-else"}})  # fmt: skip
    code, out = verify(stack, tenant, capsys, monkeypatch)
    assert code == 1, out
    assert (
        f"ORDER#{order['orderId']} RECORD version 1: its content does not match its hash: it was changed"
        in out
    )

    # One entry deleted: the next one names the gap.
    dynamodb.delete_item(TableName=name, Key={"PK": {"S": listing[1]["PK"]}, "SK": {"S": listing[1]["SK"]}})
    code, out = verify(stack, tenant, capsys, monkeypatch)
    assert code == 1, out
    assert (
        f"SUPPLIER#{supplier_id} PRODUCT#{sku} version 3: version 2 of the trail is missing before it" in out
    )


def test_an_erased_supplier_keeps_no_contact_detail_and_its_trail_still_verifies(shop, capsys, monkeypatch):
    stack, tenant = shop.stack, shop.tenant
    supplier_id = shop.listings.supplier()
    shop.listings.onboarding.wait_status(supplier_id, "APPROVED")
    record = shop.listings.onboarding.record(supplier_id)
    email, phone = record["contactEmail"], record["phone"]
    before = trail(shop, record["PK"], keys.RECORD_SK, int(record["version"]))
    stack.wait_for_streams()
    digest(stack)  # the digests hold the hashes of the entries about to be masked

    admin = Principal("a-user", tenant, frozenset({"admin"}))
    erased = Suppliers(shop.orders.table).erase(admin, supplier_id, "GDPR request 42")
    assert erased["maskedEntries"] == len(before) and "contactEmail" not in erased["supplier"]
    after = trail(shop, record["PK"], keys.RECORD_SK, len(before) + 1)
    assert after[-1]["action"] == "erased" and set(after[-1]["changed"]) >= {
        "contactEmail",
        "phone",
        "erasedAt",
    }
    text = json.dumps(after, default=str)
    assert email not in text and phone not in text
    assert [e["hash"] for e in after[: len(before)]] == [e["hash"] for e in before]
    # Erasing again answers the supplier as it is and masks nothing more.
    assert Suppliers(shop.orders.table).erase(admin, supplier_id, "GDPR request 42")["maskedEntries"] == 0
    stack.wait_for_streams()
    digest(stack)
    code, out = verify(stack, tenant, capsys, monkeypatch)
    assert code == 0, out

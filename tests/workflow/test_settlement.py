"""Settlement statements in the local stack: the scheduled start settles a tenant's closed period in the
settlement workflow (statemachines/settlement.asl.json), one statement per supplier with ledger entries
(its JSON beside the ledger, its CSV in S3), announced as ``statement.ready``; a rerun of the period
writes nothing; an admin marks a statement paid and the ledger gets the payout, which the next period's
statement opens with (marketplace.statements; docs/money.md, D45)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests

from marketplace import clock, commission, keys, ledger, statements, tenant_settings
from marketplace.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from marketplace.imports import ImportStore
from marketplace.principal import Principal
from marketplace_local.samples import SHIP_TO
from tests.conftest import wait_until
from tests.workflow.conftest import inbox, received
from tests.workflow.test_audit_trail import trail
from tests.workflow.test_supplier_ledger import admin, entries, money
from tests.workflow.test_supplier_order_lifecycle import shipment
from tests.workflow.test_supplier_orders import Shop

pytestmark = pytest.mark.workflow


def delivered(shop: Shop, supplier_id: str, sku: str, units: int) -> str:
    """A supplier order of ``units`` of ``sku`` at 1299.99 EUR, accepted, shipped and delivered."""
    part = shop.place((supplier_id, sku, units))["supplierOrders"][0]["supplierOrderId"]
    shop.wait_status(part, "AWAITING_ACCEPTANCE")
    me = shop.supplier(supplier_id)
    shop.orders.accept(me, part)
    shop.orders.ship(me, part, shipment((sku, units)))
    assert shop.orders.deliver(shop.retailer(), part)["status"] == "DELIVERED"
    return part


def start_settlements(shop: Shop, as_of: Any) -> dict[str, Any]:
    """The scheduled start, as its hourly schedule fires it at ``as_of``."""
    name = shop.stack.physical_id("StartSettlementsFunction")
    return shop.stack.runtime.invoke_or_raise(name, {"time": as_of.isoformat()})


def execution(shop: Shop, name: str) -> dict[str, Any]:
    sfn = shop.stack.client("stepfunctions")
    arn = (
        shop.stack.physical_id("SettlementStateMachine").replace(":stateMachine:", ":execution:") + ":" + name
    )

    def finished() -> dict[str, Any] | None:
        found = sfn.describe_execution(executionArn=arn)
        return found if found["status"] != "RUNNING" else None

    return wait_until(finished, timeout=60, what=f"settlement {name} finished")


def execution_name(shop: Shop, period: statements.Period) -> str:
    return keys.execution_name("SETTLEMENT", f"{shop.tenant}-{period.id}", 1)


def settled(shop: Shop, period: statements.Period, as_of: Any) -> str:
    """Start the settlements due at ``as_of``, and wait for this tenant's of ``period``."""
    name = execution_name(shop, period)
    assert name in start_settlements(shop, as_of)["started"]
    assert execution(shop, name)["status"] == "SUCCEEDED"
    return name


def statement(shop: Shop, supplier_id: str, period: statements.Period) -> dict[str, Any] | None:
    return shop.orders.table.get(
        keys.ledger_pk(shop.tenant, supplier_id), keys.statement_sk(period.start_iso, period.id)
    )


def test_a_period_settles_every_supplier_with_entries_once_and_the_payout_opens_the_next(shop):
    """At 10 % of 1299.99 EUR: 129.999 -> 130.00 a unit. Supplier A sells 2 units (2599.98, commission
    -260.00, net 2339.98), B one (1299.99, -130.00, net 1169.99); C sells nothing."""
    table = shop.orders.table
    commission.put_rules(table, admin(shop), {"defaultPercent": 10}, None)
    a, sku_a = shop.supplier_with_listing()
    b, sku_b = shop.supplier_with_listing()
    c, _ = shop.supplier_with_listing()
    delivered(shop, a, sku_a, 2)
    delivered(shop, b, sku_b, 1)
    entries(shop, a, 2), entries(shop, b, 2)
    ready = inbox(
        shop.stack, {"tenant_id": [shop.tenant], "event_type": ["statement.ready", "statement.paid"]}
    )

    week = statements.period_of(clock.now(), statements.WEEKLY)
    # Not yet: the period closes at its end, and is settled a day later (the stream's retries).
    assert (
        execution_name(shop, week) not in start_settlements(shop, week.end + timedelta(hours=23))["started"]
    )
    name = settled(shop, week, week.end + timedelta(days=1, hours=1))
    # The test stack lists 2 suppliers a page (SettlementSuppliersPerPage, tests/conftest.py): the
    # three suppliers take the workflow's loop over two pages, as tens of thousands take it over many.
    arn = (
        shop.stack.physical_id("SettlementStateMachine").replace(":stateMachine:", ":execution:") + ":" + name
    )
    assert shop.listings.onboarding.entered(arn).count("ListSuppliers") == 2

    first_a, first_b = statement(shop, a, week), statement(shop, b, week)
    assert statement(shop, c, week) is None  # no entries in the period: no statement
    assert first_a is not None and first_b is not None
    assert (first_a["statementId"], first_a["period"], first_a["status"]) == (
        f"{week.id}.{a}",
        week.id,
        "READY",
    )
    assert (first_a["openingBalance"], first_a["closingBalance"], first_a["payable"]) == (
        [], [money("2339.98")], [money("2339.98")])  # fmt: skip
    assert first_a["totals"] == [{"type": "SALE", "amount": money("2599.98")},
                                 {"type": "COMMISSION", "amount": money("-260.00")}]  # fmt: skip
    assert (first_b["closingBalance"], first_b["payable"], first_b["entries"]) == (
        [money("1169.99")], [money("1169.99")], 2)  # fmt: skip

    # The CSV: the opening balance (none), each entry, the closing balance, the amount payable;
    # a negative amount stays a number (no formula quote).
    store = ImportStore(shop.stack.physical_id("ImportBucket"))
    rows = list(csv.reader(io.StringIO(
        store.s3.get_object(Bucket=store.bucket, Key=first_a["csvKey"])["Body"].read().decode())))  # fmt: skip
    assert rows[0] == list(statements.CSV_HEADER)
    assert [(r[1], r[5], r[6]) for r in rows[1:]] == [
        ("SALE", "2599.98", "EUR"), ("COMMISSION", "-260.00", "EUR"),
        ("CLOSING_BALANCE", "2339.98", "EUR"), ("PAYABLE", "2339.98", "EUR")]  # fmt: skip

    # Announced from the stream, once per statement.
    def announced() -> list[dict[str, Any]] | None:
        got = received(shop.stack, ready)
        return got or None

    events = announced() or []
    events += wait_until(announced, what="statement.ready") if len(events) < 2 else []
    assert sorted((e["event"], e["supplierId"], e["payable"][0]["amount"]) for e in events) == sorted(
        [("statement.ready", a, "2339.98"), ("statement.ready", b, "1169.99")])  # fmt: skip

    # Re-running the period changes nothing: the schedule again starts nothing, and a second
    # execution of the same period (by hand, as after a failure) writes no statement and no file again.
    again = start_settlements(shop, week.end + timedelta(days=1, hours=2))
    assert name in again["already"] and name not in again["started"]
    sfn = shop.stack.client("stepfunctions")
    sfn.start_execution(stateMachineArn=shop.stack.physical_id("SettlementStateMachine"), name=f"{name}-again",
                        input=json.dumps({"tenantId": shop.tenant, "periodId": week.id, "nextToken": None}))  # fmt: skip
    assert execution(shop, f"{name}-again")["status"] == "SUCCEEDED"
    assert (statement(shop, a, week), statement(shop, b, week)) == (first_a, first_b)
    versions = store.s3.list_object_versions(Bucket=store.bucket, Prefix=first_a["csvKey"])["Versions"]
    assert len(versions) == 1

    # Paid: the statement is PAID with the reference, the ledger has the payout, the balance is 0.
    paid_at = week.end + timedelta(days=2)
    with clock.use(lambda: paid_at):
        paid = statements.mark_paid(admin(shop), first_a["statementId"], "SEPA-2026-0001", table)
        assert statements.mark_paid(admin(shop), first_a["statementId"], "SEPA-2026-0001", table) == paid
        with pytest.raises(Conflict, match="already paid"):
            statements.mark_paid(admin(shop), first_a["statementId"], "SEPA-OTHER", table)
    assert (paid["status"], paid["reference"], paid["version"]) == ("PAID", "SEPA-2026-0001", 2)
    payouts = [e for e in entries(shop, a, 3) if e["type"] == ledger.PAYOUT]
    assert [(p["amount"], p["statementId"], p["reference"]) for p in payouts] == [
        (money("-2339.98"), first_a["statementId"], "SEPA-2026-0001")]  # fmt: skip
    assert ledger.balance(table, shop.tenant, a) == [money("0.00")]
    paid_event = wait_until(lambda: received(shop.stack, ready) or None, what="statement.paid")
    assert [(e["event"], e["reference"]) for e in paid_event] == [("statement.paid", "SEPA-2026-0001")]
    # Audited as every record (D48): written READY by the workflow, then PAID by the admin.
    audited = trail(shop, keys.ledger_pk(shop.tenant, a), first_a["SK"], 2)
    assert [((e["after"] or {}).get("status"), e["by"].split(":")[0]) for e in audited] == [
        ("READY", "workflow"), ("PAID", "admin")]  # fmt: skip

    # The next period: A's payout is its one entry; it opens with the closing balance and pays off.
    following = statements.period_of(paid_at, statements.WEEKLY)
    settled(shop, following, following.end + timedelta(days=1, hours=1))
    second_a = statement(shop, a, following)
    assert second_a is not None and statement(shop, b, following) is None
    assert (second_a["openingBalance"], second_a["closingBalance"], second_a["payable"], second_a["totals"]) == (
        [money("2339.98")], [money("0.00")], [], [{"type": "PAYOUT", "amount": money("-2339.98")}])  # fmt: skip


def test_reading_statements_is_the_suppliers_own_and_its_staffs(shop):
    """A statement is read by its supplier and the tenant's staff (another supplier: 404), with a
    link to its CSV; an unknown period is 404, a malformed one 400 naming it; another tenant's
    statement cannot be paid (404)."""
    table = shop.orders.table
    a, sku = shop.supplier_with_listing()
    other, _ = shop.supplier_with_listing()
    delivered(shop, a, sku, 1)
    entries(shop, a, 2)
    week = statements.period_of(clock.now(), statements.WEEKLY)
    store = ImportStore(shop.stack.physical_id("ImportBucket"))
    written = statements.settle(table, store, shop.tenant, week, a)
    assert written is not None
    for reader in (shop.supplier(a), shop.retailer(), admin(shop)):
        shown = statements.get_for(reader, a, week.id, table, store)
        assert shown["statementId"] == written["statementId"] and shown["csvUrl"].startswith("http")
        listed = statements.list_for(reader, a, 10, None, table)
        assert [s["period"] for s in listed["items"]] == [week.id] and "csvUrl" not in listed["items"][0]
    with pytest.raises(NotFound):
        statements.get_for(shop.supplier(other), a, week.id, table, store)
    with pytest.raises(NotFound, match="statement of 2020-W01"):
        statements.get_for(admin(shop), a, "2020-W01", table, store)
    with pytest.raises(NotFound, match="no week 2025-W53"):  # 2025 has 52 ISO weeks
        statements.get_for(admin(shop), a, "2025-W53", table, store)
    with pytest.raises(InvalidInput) as bad:
        statements.get_for(admin(shop), a, "2026-W54", table, store)
    assert [f.field for f in bad.value.fields] == ["period"]
    stranger = Principal("a-user", f"{shop.tenant}-other", frozenset({"admin"}))
    with pytest.raises(NotFound):
        statements.mark_paid(stranger, written["statementId"], "REF-1", table)


def test_end_to_end_a_delivered_order_and_a_refunded_one_settle_to_a_statement_paid_over_http(shop, api):
    """Over the API. At 10 % of 1299.99 EUR (130.00 a unit): order 1, 2 units delivered: sale 2599.98,
    commission -260.00; order 2, 1 unit delivered, returned and refunded: sale 1299.99, commission
    -130.00, refund -1299.99, reversal +130.00. Closing balance: sales 3899.97 - commissions 390.00
    - refunds 1299.99 + reversals 130.00 = 2339.98, all payable; paid, the ledger's balance is 0."""
    put = api.call("PUT", "/admin/commission-rules", "admin", json={"defaultPercent": 10})
    assert put.status_code == 200, put.text
    supplier_id, sku = shop.supplier_with_listing()

    def ok(method: str, path: str, role: str, **kwargs: Any) -> dict[str, Any]:
        answer = api.call(method, path, role, supplier_id if role == "supplier" else None, **kwargs)
        assert answer.status_code < 300, (method, path, answer.status_code, answer.text)
        return answer.json()

    def deliver(units: int) -> str:
        body = {"customerOrderId": f"c-{uuid.uuid4().hex[:10]}", "shipTo": SHIP_TO, "lines": [
            {"supplierId": supplier_id, "sku": sku, "quantity": units, "unitPrice": {"amount": 1299.99, "currency": "EUR"}}]}  # fmt: skip
        part = ok("POST", "/orders", "retailer", json=body)["supplierOrders"][0]["supplierOrderId"]
        shop.wait_status(part, "AWAITING_ACCEPTANCE")
        ok("POST", f"/supplier-orders/{part}/accept", "supplier")
        ok("POST", f"/supplier-orders/{part}/shipments", "supplier", json=shipment((sku, units)))
        assert ok("POST", f"/supplier-orders/{part}/delivered", "retailer")["status"] == "DELIVERED"
        return part

    deliver(2)
    refunded = deliver(1)
    asked = {"lines": [{"sku": sku, "quantity": 1}], "reason": "arrived broken"}
    return_id = ok("POST", f"/supplier-orders/{refunded}/returns", "retailer", json=asked)["returnId"]
    ok("POST", f"/returns/{return_id}/accept", "supplier")
    assert ok("POST", f"/returns/{return_id}/received", "supplier")["status"] == "RECEIVED"
    ledger_path = f"/suppliers/{supplier_id}/ledger"
    wait_until(lambda: len(ok("GET", ledger_path, "retailer")["items"]) == 6, what="six ledger entries")

    week = statements.period_of(clock.now(), statements.WEEKLY)
    settled(shop, week, week.end + timedelta(days=1, hours=1))
    shown = ok("GET", f"/suppliers/{supplier_id}/statements/{week.id}", "supplier")
    assert (shown["openingBalance"], shown["closingBalance"], shown["payable"], shown["entries"]) == (
        [], [money("2339.98")], [money("2339.98")], 6)  # fmt: skip
    assert shown["totals"] == [
        {"type": "SALE", "amount": money("3899.97")}, {"type": "COMMISSION", "amount": money("-390.00")},
        {"type": "REFUND", "amount": money("-1299.99")}, {"type": "COMMISSION_REVERSAL", "amount": money("130.00")}]  # fmt: skip
    rows = list(csv.reader(io.StringIO(requests.get(shown["csvUrl"], timeout=30).text)))
    assert [r[1] for r in rows] == ["type", "SALE", "COMMISSION", "SALE", "COMMISSION", "REFUND",
                                    "COMMISSION_REVERSAL", "CLOSING_BALANCE", "PAYABLE"]  # fmt: skip
    assert rows[-1][5:] == ["2339.98", "EUR"]
    assert [s["period"] for s in ok("GET", f"/suppliers/{supplier_id}/statements", "retailer")["items"]] == [
        week.id
    ]

    path = f"/admin/statements/{shown['statementId']}/paid"
    key = {"Idempotency-Key": f"pay-{uuid.uuid4().hex[:8]}"}
    paid = ok("POST", path, "admin", json={"reference": "SEPA-2026-0042"}, headers=key)
    assert (paid["status"], paid["reference"]) == ("PAID", "SEPA-2026-0042")
    assert ok("POST", path, "admin", json={"reference": "SEPA-2026-0042"}, headers=key) == paid
    other = api.call("POST", path, "admin", json={"reference": "SEPA-2026-0043"})
    assert other.status_code == 409 and other.json()["error"]["fields"][0]["field"] == "reference", other.text
    assert api.call("POST", path, "supplier", supplier_id, json={"reference": "X-1"}).status_code == 403
    after = ok("GET", ledger_path, "admin")
    assert after["balance"] == [money("0.00")]
    assert [(e["type"], e["amount"], e["reference"]) for e in after["items"] if e["type"] == "PAYOUT"] == [
        ("PAYOUT", money("-2339.98"), "SEPA-2026-0042")]  # fmt: skip


def test_a_tenant_that_turns_monthly_settles_its_month_from_where_its_last_week_ended(shop):
    """The admin sets the period (versioned); the month that holds the last weekly statement's end is
    settled from that end: no entry is on two statements. A delivery at 10 % of 1299.99 EUR: the week
    closes at 1169.99, paid the day after the week; the month opens at 1169.99 and closes at 0."""
    table = shop.orders.table
    commission.put_rules(table, admin(shop), {"defaultPercent": 10}, None)
    a, sku = shop.supplier_with_listing()
    delivered(shop, a, sku, 1)
    entries(shop, a, 2)
    week = statements.period_of(clock.now(), statements.WEEKLY)
    store = ImportStore(shop.stack.physical_id("ImportBucket"))
    weekly = statements.settle(table, store, shop.tenant, week, a)
    assert weekly is not None and weekly["closingBalance"] == [money("1169.99")]
    with clock.use(lambda: week.end + timedelta(days=1)):
        statements.mark_paid(admin(shop), weekly["statementId"], "SEPA-W", table)

    assert tenant_settings.settlement_settings(table, shop.tenant) == {"period": "weekly", "version": 1}
    with pytest.raises(PreconditionFailed, match="at version 1, not 0"):
        tenant_settings.put_settlement_settings(table, admin(shop), statements.MONTHLY, 0)
    assert tenant_settings.put_settlement_settings(table, admin(shop), statements.MONTHLY, 1) == {
        "period": "monthly", "version": 2}  # fmt: skip

    month = statements.period_of(week.end, statements.MONTHLY)
    settled(shop, month, month.end + timedelta(days=1, hours=1))
    monthly = statement(shop, a, month)
    assert monthly is not None
    assert (monthly["periodStart"], monthly["openingBalance"], monthly["totals"], monthly["closingBalance"]) == (
        week.end_iso, [money("1169.99")], [{"type": "PAYOUT", "amount": money("-1169.99")}], [money("0.00")])  # fmt: skip
    assert monthly["payable"] == [] and monthly["entries"] == 1

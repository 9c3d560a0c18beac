"""A supplier's ledger: append-only entries written from the order events, and the balance they add up to.

Entries (amounts signed from the supplier's side: what the retailer owes it is positive):

* ``SALE`` when a supplier order is delivered (``supplier_order.delivered``, by a caller or the
  sweeper): every shipped unit at its unit price;
* ``COMMISSION`` against that sale (negative): each line's commission on its shipped units, by the
  percent and minimum the order was priced with (``marketplace.commission``, its rule version);
* ``REFUND`` when a return is refunded (``supplier_order.return_received``, or the admin's decision
  of an incident with a refund, ``supplier_order.incident_resolved``): the return's refund, negative;
* ``COMMISSION_REVERSAL`` with it: each refunded line's share of the commission its sale took
  (the line's commission times the units refunded over the units sold, rounded by the one rule);
* ``PAYOUT`` when an admin marks a settlement statement paid (``marketplace.statements``): minus the
  statement's amount payable, written with the statement's change to PAID.

Each entry's key is the event's id (the order's id and the version the change wrote) and the entry's
type (``keys.ledger_sk``), written only if absent: a stream record delivered twice, a batch retried, or
the same event handled by two instances writes each entry once. Nothing updates or deletes an entry;
the balance is the sum of the entries, per currency, computed when it is read.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marketplace import access, keys, tenant_settings
from marketplace.commission import commission_of
from marketplace.errors import Conflict
from marketplace.money import Money, total
from marketplace.principal import Principal
from marketplace.repository import Page, Table
from marketplace.suppliers import Suppliers

ENTITY = "LEDGER_ENTRY"
SALE, COMMISSION, REFUND, REVERSAL = "SALE", "COMMISSION", "REFUND", "COMMISSION_REVERSAL"
PAYOUT = "PAYOUT"
_POSITION = {SALE: 0, COMMISSION: 1, REFUND: 0, REVERSAL: 1}  # an event's entries, in this order
DELIVERED = "supplier_order.delivered"
REFUNDED = ("supplier_order.return_received", "supplier_order.incident_resolved")


def entries_for(event: dict[str, Any], table: Table) -> list[dict[str, Any]]:
    """The ledger entries one order event makes (none for most events). ``event`` is the body
    ``marketplace.events`` announces. A refund reads its return (the units and the refund)."""
    kind = event.get("event")
    if kind == DELIVERED:
        return _sale(event)
    if kind in REFUNDED and event.get("returnId") and event.get("refund", True) is not False:
        found = table.get(keys.return_pk(str(event["tenantId"]), str(event["returnId"])), keys.RECORD_SK)
        if found is None or "refund" not in found:
            return []  # only a refunded return moves money
        return _refund(event, found)
    return []


def _sale(event: dict[str, Any]) -> list[dict[str, Any]]:
    sold = [(line, int(line.get("shipped", 0))) for line in event["lines"] if int(line.get("shipped", 0))]
    if not sold:
        return []
    currency = str(sold[0][0]["unitPrice"]["currency"])
    amount = total((Money.parse(line["unitPrice"]).times(n) for line, n in sold), currency)
    taken = total((commission_of(line, n) for line, n in sold), currency)
    units = [{"sku": line["sku"], "quantity": n} for line, n in sold]
    return [_entry(event, SALE, amount, units), _entry(event, COMMISSION, -taken, units)]


def _refund(event: dict[str, Any], found: dict[str, Any]) -> list[dict[str, Any]]:
    refund = found["refund"]
    currency = str(refund["currency"])
    lines = {line["sku"]: line for line in event["lines"]}
    back: list[Money] = []
    for item in found["lines"]:
        line, units = lines[item["sku"]], int(item["quantity"])
        sold = int(line.get("shipped", 0))
        if sold:
            share = commission_of(line, sold).amount * units / sold
            back.append(Money.rounded(share, currency))
    units = [{"sku": i["sku"], "quantity": int(i["quantity"])} for i in found["lines"]]
    extra = {"returnId": found["returnId"]}
    return [
        _entry(event, REFUND, -Money.of(refund["amount"], currency), units, extra),
        _entry(event, REVERSAL, total(back, currency), units, extra),
    ]


def _entry(
    event: dict[str, Any], entry_type: str, amount: Money, units: list[dict[str, Any]], extra: Any = None
) -> dict[str, Any]:
    tenant_id, supplier_id, at = str(event["tenantId"]), str(event["supplierId"]), str(event["at"])
    return {
        "PK": keys.ledger_pk(tenant_id, supplier_id), "SK": keys.ledger_sk(at, str(event["eventId"]), _POSITION[entry_type], entry_type),
        "entity": ENTITY, "tenantId": tenant_id, "supplierId": supplier_id,
        "entryId": f"{event['eventId']}-{entry_type.lower()}", "type": entry_type, "amount": amount.view(),
        "supplierOrderId": event["supplierOrderId"], "orderId": event["orderId"], "eventId": event["eventId"],
        "lines": units, "at": at, **(extra or {}),
    }  # fmt: skip


def record(table: Table, event: dict[str, Any]) -> int:
    """Write the entries of ``event`` that are not written yet; how many were new. The tenant's first
    entry also makes it one the scheduled settlements visit (``tenant_settings.mark_settling``)."""
    written = 0
    for entry in entries_for(event, table):
        try:
            table.put_new(entry)
        except Conflict:
            continue  # this event's entry is already in the ledger
        written += 1
    if written:
        tenant_settings.mark_settling(table, str(event["tenantId"]))
    return written


def view(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ("PK", "SK", "entity", "tenantId")}


def balance(table: Table, tenant_id: str, supplier_id: str) -> list[dict[str, str]]:
    """The sum of every entry of the supplier's ledger, per currency (derived, never stored)."""
    sums: dict[str, Decimal] = {}
    token = None
    while True:
        page = table.query(keys.ledger_pk(tenant_id, supplier_id), sk_prefix=keys.LEDGER_SK_PREFIX,
                           limit=1000, next_token=token, project=("amount",))  # fmt: skip
        for entry in page.items:
            amount = Money.parse(entry["amount"])
            sums[amount.currency] = sums.get(amount.currency, Decimal(0)) + amount.amount
        token = page.next_token
        if not token:
            return [Money(v, c).view() for c, v in sorted(sums.items())]


def read(
    principal: Principal, supplier_id: str, limit: int, token: str | None, table: Table | None = None
) -> dict[str, Any]:
    """A page of the supplier's entries, oldest first, with the whole ledger's balance. The supplier
    itself, or the tenant's staff (an unknown supplier is 404)."""
    table = table or Table()
    access.require_supplier(principal, supplier_id)
    Suppliers(table).get(principal.tenant_id, supplier_id)
    page: Page = table.query(keys.ledger_pk(principal.tenant_id, supplier_id), sk_prefix=keys.LEDGER_SK_PREFIX,
                             limit=limit, next_token=token)  # fmt: skip
    return {
        "supplierId": supplier_id,
        "balance": balance(table, principal.tenant_id, supplier_id),
        "items": [view(e) for e in page.items],
        "nextToken": page.next_token,
    }

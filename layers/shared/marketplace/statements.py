"""Settlement statements: each period, what every supplier with ledger entries in it is owed.

A tenant settles on its own period (``weekly`` by default, or ``monthly``: the tenant's settlement
settings, :func:`marketplace.tenant_settings.settlement_period`). The period's id is readable and
sorts with its kind: ``2026-W49`` (an ISO week, Monday 00:00 UTC to the next Monday), ``2026-12``.

When a period has closed, the settlement workflow (``statemachines/settlement.asl.json``, D45) pages
through the tenant's suppliers and settles each one (:func:`settle`): the entries written in the period
(``[start, end)`` by their time), the opening balance (the previous statement's closing balance and
the entries between the two periods, or every entry before the period when there is none), the
closing balance, and the amount payable (the closing balance where it is positive), per currency.
The statement is one item beside the ledger (its JSON), and a CSV in S3 with each entry; both are
written only if absent (the CSV first, then the item, conditionally), and the statement's id is its
period and its supplier, so re-running a period writes nothing new. A supplier without entries in the
period gets no statement.

The statement is announced from the table's stream as every status change is (``statement.ready``,
then ``statement.paid``; marketplace.events). An admin marks it paid with the payment's reference
(:func:`mark_paid`): in one transaction the statement becomes PAID and the ledger gets a ``PAYOUT``
entry per currency of minus the amount payable, so the balance the statement closed with is paid off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from marketplace import access, keys, ledger, schemas, suppliers
from marketplace.clock import iso, now_iso
from marketplace.errors import Conflict, FieldError, InvalidInput, NotFound
from marketplace.money import Money
from marketplace.principal import Principal
from marketplace.repository import Page, Table, TransactionConflict, to_item

ENTITY = "STATEMENT"
READY, PAID = "READY", "PAID"
WEEKLY, MONTHLY = "weekly", "monthly"
PERIODS = (WEEKLY, MONTHLY)
# Suppliers listed per page of the workflow's loop (the template's SettlementSuppliersPerPage).
SUPPLIERS_PER_PAGE = 1000
SUPPLIERS_PER_BATCH = 100  # suppliers settled by one Lambda call (one item of the workflow's Map)
CSV_URL_SECONDS = 3600
# A period is settled this long after it ended: the order events' stream mapping retries a record for
# up to 24 hours (MaximumRecordAgeInSeconds), so by then every entry stamped in the period is written.
SETTLE_AFTER = timedelta(days=1)
SETTLER = "workflow:settlement"  # who writes a statement (its audit entry's ``by``)
CSV_HEADER = ("at", "type", "entryId", "supplierOrderId", "returnId", "amount", "currency")
_WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


# ------------------------------------------------------------------------------------------ periods
@dataclass(frozen=True)
class Period:
    id: str
    start: datetime
    end: datetime  # exclusive

    @property
    def start_iso(self) -> str:
        return iso(self.start)

    @property
    def end_iso(self) -> str:
        return iso(self.end)


def period_of(moment: datetime, kind: str) -> Period:
    """The ``kind`` period (weekly, monthly) that ``moment`` falls in."""
    day = moment.astimezone(UTC).date()
    if kind == WEEKLY:
        year, week, weekday = day.isocalendar()
        start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=weekday - 1)
        return Period(f"{year}-W{week:02d}", start, start + timedelta(days=7))
    if kind == MONTHLY:
        start = datetime(day.year, day.month, 1, tzinfo=UTC)
        end = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
        return Period(f"{day.year}-{day.month:02d}", start, end)
    raise ValueError(f"no settlement period {kind!r}")


def last_closed(moment: datetime, kind: str) -> Period:
    """The latest ``kind`` period that ended at or before ``moment``."""
    return period_of(period_of(moment, kind).start - timedelta(milliseconds=1), kind)


def period_named(period_id: str, field: str = "period") -> Period:
    """The period a period id names (``2026-W49``, ``2026-12``): 400 naming ``field`` when it is
    not one (schemas/parameters.json ``period``), 404 for a week 53 of a year that has 52."""
    schemas.check_parameter(
        "period", field, period_id, "is not a period: an ISO week (2026-W49) or a month (2026-12)"
    )
    if week := _WEEK.fullmatch(period_id):
        try:
            start = datetime.fromisocalendar(int(week.group(1)), int(week.group(2)), 1).replace(tzinfo=UTC)
        except ValueError:
            raise NotFound(f"no week {period_id}") from None
        return period_of(start, WEEKLY)
    month = _MONTH.fullmatch(period_id)
    assert month is not None  # the parameter's pattern is a week or a month
    return period_of(datetime(int(month.group(1)), int(month.group(2)), 1, tzinfo=UTC), MONTHLY)


# ------------------------------------------------------------------------------------------ amounts
def _sums(items: list[dict[str, Any]], sums: dict[str, Decimal] | None = None) -> dict[str, Decimal]:
    found = dict(sums or {})
    for item in items:
        amount = Money.parse(item["amount"])
        found[amount.currency] = found.get(amount.currency, Decimal(0)) + amount.amount
    return found


def _shown(sums: dict[str, Decimal]) -> list[dict[str, str]]:
    return [Money(v, c).view() for c, v in sorted(sums.items())]


def _entries(
    table: Table, tenant_id: str, supplier_id: str, start: str, end: str, amounts_only: bool = False
):
    """Every ledger entry written in ``[start, end)`` (ISO times; ``""`` for the ledger's start)."""
    found: list[dict[str, Any]] = []
    token = None
    while True:
        page = table.query(
            keys.ledger_pk(tenant_id, supplier_id), limit=1000, next_token=token,
            # BETWEEN includes its upper bound: no entry's key equals ``ledger_entries_from(end)``.
            sk_between=(keys.ledger_entries_from(start), keys.ledger_entries_from(end)),
            project=("amount", "SK") if amounts_only else (),
        )  # fmt: skip
        found += page.items
        token = page.next_token
        if not token:
            return found


def _previous(table: Table, tenant_id: str, supplier_id: str, period: Period) -> dict[str, Any] | None:
    """The supplier's latest statement of a period that started before ``period`` ends (before it,
    or, after a change of the period's kind, a week inside this month)."""
    page = table.query(
        keys.ledger_pk(tenant_id, supplier_id), limit=1, newest_first=True,
        sk_between=(keys.STATEMENT_SK_PREFIX, keys.statement_sk(period.end_iso, "")),
    )  # fmt: skip
    return page.items[0] if page.items else None


# ------------------------------------------------------------------------------------------ settling
def settle(
    table: Table, store: Any, tenant_id: str, period: Period, supplier_id: str
) -> dict[str, Any] | None:
    """The supplier's statement of ``period``: written if it has entries in the period and no
    statement yet; the one already written otherwise (a rerun changes nothing); None without entries."""
    pk, sk = keys.ledger_pk(tenant_id, supplier_id), keys.statement_sk(period.start_iso, period.id)
    existing = table.get(pk, sk)
    if existing is not None:
        return existing
    previous = _previous(table, tenant_id, supplier_id, period)
    # After the tenant changed its period's kind, the previous statement (a week) may end inside this
    # period (a month): this one starts where that one ended, so no entry is on two statements.
    start = max(period.start_iso, previous["periodEnd"]) if previous else period.start_iso
    entries = _entries(table, tenant_id, supplier_id, start, period.end_iso) if start < period.end_iso else []
    if not entries:
        return None
    if previous is None:
        opening = _sums(_entries(table, tenant_id, supplier_id, "", start, amounts_only=True))
    else:
        between = _entries(table, tenant_id, supplier_id, previous["periodEnd"], start, True)
        opening = _sums(between, {m["currency"]: Decimal(m["amount"]) for m in previous["closingBalance"]})
    closing = _sums(entries, opening)
    totals: dict[str, dict[str, Decimal]] = {}
    for entry in entries:
        totals[entry["type"]] = _sums([entry], totals.get(entry["type"]))
    statement_id = keys.statement_id(period.id, supplier_id)
    record = {
        "PK": pk, "SK": sk, "entity": ENTITY, "tenantId": tenant_id, "supplierId": supplier_id,
        "statementId": statement_id, "period": period.id, "periodStart": start,
        "periodEnd": period.end_iso, "status": READY, "version": 1,
        "openingBalance": _shown(opening),
        "totals": [{"type": kind, "amount": amount} for kind, sums in totals.items() for amount in _shown(sums)],
        "closingBalance": _shown(closing),
        "payable": _shown({c: v for c, v in closing.items() if v > 0}),
        "entries": len(entries), "csvKey": keys.statement_csv_key(tenant_id, supplier_id, period.id),
        "createdAt": now_iso(), "createdBy": SETTLER, "updatedAt": now_iso(), "updatedBy": SETTLER,
    }  # fmt: skip
    store.put_csv(record["csvKey"], csv_rows(record, entries), header=False)
    try:
        table.put_new(record)
    except Conflict:  # written meanwhile by another run of the same period: that one stands
        return table.get(pk, sk)
    return record


def csv_rows(statement: dict[str, Any], entries: list[dict[str, Any]]) -> list[list[str]]:
    """The statement as CSV rows: the opening balance, each entry, the closing balance and the amount
    payable, one row per currency for the balances."""
    rows = [list(CSV_HEADER)]
    rows += [[statement["periodStart"], "OPENING_BALANCE", "", "", "", m["amount"], m["currency"]]
             for m in statement["openingBalance"]]  # fmt: skip
    for entry in entries:
        amount = entry["amount"]
        rows.append([entry["at"], entry["type"], entry["entryId"], entry.get("supplierOrderId", ""),
                     entry.get("returnId", ""), amount["amount"], amount["currency"]])  # fmt: skip
    for kind, field in (("CLOSING_BALANCE", "closingBalance"), ("PAYABLE", "payable")):
        rows += [
            [statement["periodEnd"], kind, "", "", "", m["amount"], m["currency"]] for m in statement[field]
        ]
    return rows


def supplier_page(
    table: Table, tenant_id: str, token: str | None, per_page: int = SUPPLIERS_PER_PAGE
) -> dict[str, Any]:
    """One page of ``per_page`` of the tenant's suppliers for the workflow's Map, in batches of
    ``SUPPLIERS_PER_BATCH``; ``nextToken`` None on the last page."""
    page: Page = table.query(
        keys.entity_pk(tenant_id, suppliers.ENTITY), index="GSI2", pk_name="GSI2PK", sk_name="GSI2SK",
        limit=per_page, next_token=token, project=("supplierId",),
    )  # fmt: skip
    ids = [str(item["supplierId"]) for item in page.items]
    batches = [ids[n : n + SUPPLIERS_PER_BATCH] for n in range(0, len(ids), SUPPLIERS_PER_BATCH)]
    return {"batches": batches, "nextToken": page.next_token}


def settle_batch(
    table: Table, store: Any, tenant_id: str, period_id: str, supplier_ids: list[str]
) -> dict[str, int]:
    """Settle each of ``supplier_ids``; how many got a statement (new or already there)."""
    period = period_named(period_id)
    settled = sum(settle(table, store, tenant_id, period, s) is not None for s in supplier_ids)
    return {"suppliers": len(supplier_ids), "statements": settled}


def due(table: Table, now: datetime) -> list[dict[str, str]]:
    """The settlement each tenant with ledger entries is due: its period that closed at least
    ``SETTLE_AFTER`` before ``now``."""
    found: list[dict[str, str]] = []
    token = None
    while True:
        page = table.query(keys.settlement_tenants(), index="GSI3", pk_name="GSI3PK", sk_name="GSI3SK",
                           limit=1000, next_token=token)  # fmt: skip
        for item in page.items:
            period = last_closed(now - SETTLE_AFTER, str(item.get("period", WEEKLY)))
            found.append({"tenantId": str(item["tenantId"]), "periodId": period.id})
        token = page.next_token
        if not token:
            return found


# ------------------------------------------------------------------------------------------ reading
def view(record: dict[str, Any], store: Any = None) -> dict[str, Any]:
    shown = {k: v for k, v in record.items() if k not in ("PK", "SK", "entity", "tenantId", "csvKey")}
    if store is not None:
        shown["csvUrl"] = store.presigned("get_object", record["csvKey"], CSV_URL_SECONDS)
    return shown


def _visible(table: Table, principal: Principal, supplier_id: str) -> None:
    access.require_supplier(principal, supplier_id)
    table.get_or_404(keys.supplier_pk(principal.tenant_id, supplier_id), keys.RECORD_SK,
                     f"supplier {supplier_id}", tenant_id=principal.tenant_id)  # fmt: skip


def list_for(
    principal: Principal, supplier_id: str, limit: int, token: str | None, table: Table
) -> dict[str, Any]:
    """The supplier's statements, newest first: the supplier itself or the tenant's staff."""
    _visible(table, principal, supplier_id)
    page = table.query(keys.ledger_pk(principal.tenant_id, supplier_id), sk_prefix=keys.STATEMENT_SK_PREFIX,
                       limit=limit, next_token=token, newest_first=True)  # fmt: skip
    return {"supplierId": supplier_id, "items": [view(s) for s in page.items], "nextToken": page.next_token}


def get_for(
    principal: Principal, supplier_id: str, period_id: str, table: Table, store: Any
) -> dict[str, Any]:
    """One statement, with a pre-signed link to its CSV."""
    _visible(table, principal, supplier_id)
    period = period_named(period_id)
    found = table.get_or_404(
        keys.ledger_pk(principal.tenant_id, supplier_id), keys.statement_sk(period.start_iso, period.id),
        f"statement of {period_id}", entity=ENTITY, tenant_id=principal.tenant_id,
    )  # fmt: skip
    return view(found, store)


def _by_id(table: Table, tenant_id: str, statement_id: str) -> dict[str, Any]:
    try:
        period_id, supplier_id = keys.statement_id_parts(statement_id)
        period = period_named(period_id)
    except (ValueError, InvalidInput):
        raise NotFound(f"no statement {statement_id}") from None
    return table.get_or_404(keys.ledger_pk(tenant_id, supplier_id), keys.statement_sk(period.start_iso, period.id),
                            f"statement {statement_id}", entity=ENTITY, tenant_id=tenant_id)  # fmt: skip


# ------------------------------------------------------------------------------------------ paying
def payouts(statement: dict[str, Any], reference: str, at: str) -> list[dict[str, Any]]:
    """The ledger entries paying ``statement``: minus its amount payable, one per currency."""
    tenant_id, supplier_id, statement_id = (
        statement["tenantId"],
        statement["supplierId"],
        statement["statementId"],
    )
    event_id = f"payout-{statement_id}"
    found = []
    for n, payable in enumerate(statement["payable"]):
        found.append({
            "PK": keys.ledger_pk(tenant_id, supplier_id), "SK": keys.ledger_sk(at, event_id, n, ledger.PAYOUT),
            "entity": ledger.ENTITY, "tenantId": tenant_id, "supplierId": supplier_id,
            "entryId": f"{event_id}-{payable['currency']}", "type": ledger.PAYOUT,
            "amount": (-Money.parse(payable)).view(), "statementId": statement_id, "reference": reference,
            "eventId": event_id, "at": at,
        })  # fmt: skip
    return found


def mark_paid(
    principal: Principal, statement_id: str, reference: str, table: Table, retried: bool = False
) -> dict[str, Any]:
    """PAID with the payment's reference, and the payout entries in the ledger, in one transaction.
    The same reference again answers the statement as it is; another reference is 409."""
    access.require_role(principal, {access.ADMIN})
    statement = _by_id(table, principal.tenant_id, statement_id)
    if statement["status"] == PAID:
        if statement.get("reference") == reference:
            return view(statement)
        raise Conflict(f"statement {statement_id} is already paid, with another reference",
                       [FieldError("reference", "differs from the reference it was paid with")])  # fmt: skip
    at = now_iso()
    changes = {":paid": PAID, ":ready": READY, ":ref": reference, ":at": at, ":by": principal.actor,
               ":expected": int(statement["version"]), ":one": 1}  # fmt: skip
    update = {"Update": {
        "TableName": table.name, "Key": to_item({"PK": statement["PK"], "SK": statement["SK"]}),
        "UpdateExpression": "SET #status = :paid, #reference = :ref, paidAt = :at, paidBy = :by, "
                            "updatedAt = :at, updatedBy = :by, #version = #version + :one",
        "ConditionExpression": "#status = :ready AND #version = :expected",
        "ExpressionAttributeNames": {"#status": "status", "#version": "version", "#reference": "reference"},
        "ExpressionAttributeValues": to_item(changes),
    }}  # fmt: skip
    entries = payouts(statement, reference, at)
    puts = [{"Put": {"TableName": table.name, "Item": to_item(e), "ConditionExpression": "attribute_not_exists(PK)"}}
            for e in entries]  # fmt: skip
    try:
        table.transact([update, *puts])
    except TransactionConflict:  # paid meanwhile: by this reference (answered as is) or another (409)
        if retried:
            raise Conflict(f"statement {statement_id} changed meanwhile; try again") from None
        return mark_paid(principal, statement_id, reference, table, retried=True)
    return view({**statement, "status": PAID, "reference": reference, "paidAt": at, "paidBy": principal.actor,
                 "updatedAt": at, "updatedBy": principal.actor, "version": int(statement["version"]) + 1})  # fmt: skip

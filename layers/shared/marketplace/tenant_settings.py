"""A tenant's settings, read from this one place.

The order settings are the ``orders`` of the tenant's rule pack in force (``marketplace.rule_packs``,
D51). The commission rules (``marketplace.commission``) are their own item per tenant
(``keys.tenant_settings_pk`` / ``keys.COMMISSION_RULES_SK``), versioned (``If-Match``), audited from the
table's stream as every audited record is; a tenant that never set them has none (version 0).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from marketplace import keys, rule_packs
from marketplace.clock import now_iso
from marketplace.errors import Conflict, PreconditionFailed
from marketplace.principal import Principal
from marketplace.repository import Table
from marketplace.rule_packs import RulePack

COMMISSION_RULES = "COMMISSION_RULES"
SETTLEMENT = "SETTLEMENT_SETTINGS"
DEFAULT_SETTLEMENT_PERIOD = "weekly"  # marketplace.statements.PERIODS: weekly or monthly
# The fields of the commission rules (schemas/commission_rules.json).
RULE_FIELDS = ("defaultPercent", "categories", "suppliers", "minimumPerLine")


# The order timings' names in a rule pack (``orders``), by field of :class:`OrderSettings`.
_ORDER_FIELDS = (
    ("acceptance_sla_hours", "acceptanceSlaHours"),
    ("ship_by_hours", "shipByHours"),
    ("auto_cancel_unshipped_days", "autoCancelUnshippedDays"),
    ("auto_deliver_days", "autoDeliverDays"),
    ("return_window_days", "returnWindowDays"),
    ("restock_on_return", "restockOnReturn"),
)


@dataclass(frozen=True)
class OrderSettings:
    """How long a supplier order may take after acceptance: the ``orders`` of the tenant's rule pack
    in force (``schemas/rule_pack.json`` says what each is; the defaults are the default pack's)."""

    acceptance_sla_hours: int  # the supplier accepts or rejects a new order within this, else it expires
    ship_by_hours: int  # the supplier ships within this many hours of accepting (``shipBy``)
    auto_cancel_unshipped_days: int  # an accepted order still unshipped after this is cancelled
    auto_deliver_days: int  # a shipped order not marked delivered is delivered after this
    return_window_days: int  # returns are taken this long after delivery, then it closes
    restock_on_return: bool  # whether a received return puts its units back on sale

    @classmethod
    def of(cls, pack: RulePack) -> OrderSettings:
        """From ``pack``'s ``orders``: a field left out keeps the default pack's value."""
        given = pack.section("orders")
        return cls(**{field: given[name] for field, name in _ORDER_FIELDS})

    def view(self) -> dict[str, int | bool]:
        return {name: getattr(self, field) for field, name in _ORDER_FIELDS}


DEFAULT_ORDER_SETTINGS = OrderSettings.of(rule_packs.default())


def order_settings(tenant_id: str, table: Table | None = None) -> OrderSettings:
    """The order timings of ``tenant_id``: its rule pack in force (one strongly consistent read, so
    an activation sets every order's next deadline at once, in every instance; D51)."""
    return OrderSettings.of(rule_packs.active(table or Table(), tenant_id))


def commission_rules_record(table: Table, tenant_id: str) -> dict[str, Any] | None:
    """The tenant's commission rules as stored, or None while its admin has set none."""
    return table.get(keys.tenant_settings_pk(tenant_id), keys.COMMISSION_RULES_SK)


def put_commission_rules(
    table: Table, principal: Principal, rules: dict[str, Any], expected_version: int | None
) -> dict[str, Any]:
    """Write the tenant's commission rules as their next version (``rules``: already validated).
    ``expected_version`` (the caller's If-Match; 0 for "none set yet") must be the version stored,
    else 412; without it the write still lands only on the version read (a race is 409)."""
    current = commission_rules_record(table, principal.tenant_id)
    version = int(current["version"]) if current else 0
    if expected_version is not None and expected_version != version:
        raise PreconditionFailed(f"the commission rules are at version {version}, not {expected_version}")
    at = now_iso()
    try:
        if current is None:
            record = {
                "PK": keys.tenant_settings_pk(principal.tenant_id), "SK": keys.COMMISSION_RULES_SK,
                "entity": COMMISSION_RULES, "tenantId": principal.tenant_id, **rules, "version": 1,
                "createdAt": at, "createdBy": principal.actor, "updatedAt": at, "updatedBy": principal.actor,
            }  # fmt: skip
            table.put_new(record)
            return record
        # A field the new version leaves out is removed (None), so no old override outlives it.
        changes = {name: rules.get(name) for name in (*RULE_FIELDS, *rules)}
        return table.update(
            current["PK"], current["SK"], version, {**changes, "updatedAt": at, "updatedBy": principal.actor}
        )
    except Conflict:
        raise Conflict("the commission rules changed meanwhile; read them and try again") from None


# The tenants this process already marked (the mark is never removed): a ledger write of a known
# tenant costs no extra write. Another process marks once more, which the condition makes harmless.
_settling: set[str] = set()


def mark_settling(table: Table, tenant_id: str) -> None:
    """Make the tenant one the scheduled settlements visit: its settlement settings item, with the
    default period, on the sparse index of settling tenants (written once; kept as set after)."""
    if tenant_id in _settling:
        return
    at = now_iso()
    with suppress(Conflict):  # marked already (by another process, or before this one started)
        table.put_new({
            "PK": keys.tenant_settings_pk(tenant_id), "SK": keys.SETTLEMENT_SK, "entity": SETTLEMENT,
            "tenantId": tenant_id, "period": DEFAULT_SETTLEMENT_PERIOD, "version": 1, "createdAt": at,
            "GSI3PK": keys.settlement_tenants(), "GSI3SK": tenant_id,
        })  # fmt: skip
    _settling.add(tenant_id)


def settlement_settings(table: Table, tenant_id: str) -> dict[str, Any]:
    """The tenant's settlement settings as shown: its period and the item's version (0: none yet)."""
    found = table.get(keys.tenant_settings_pk(tenant_id), keys.SETTLEMENT_SK)
    if found is None:
        return {"period": DEFAULT_SETTLEMENT_PERIOD, "version": 0}
    return {"period": found["period"], "version": int(found["version"])}


def put_settlement_settings(
    table: Table, principal: Principal, period: str, expected_version: int | None
) -> dict[str, Any]:
    """Set the tenant's settlement period (``period``: already validated). ``expected_version`` (the
    caller's If-Match; 0 while none is stored) must be the version stored, else 412; a write that
    lost a race is 409. The periods that closed before stay as they were settled."""
    current = settlement_settings(table, principal.tenant_id)
    if expected_version is not None and expected_version != current["version"]:
        raise PreconditionFailed(
            f"the settlement settings are at version {current['version']}, not {expected_version}"
        )
    at, pk = now_iso(), keys.tenant_settings_pk(principal.tenant_id)
    try:
        if current["version"] == 0:
            table.put_new({
                "PK": pk, "SK": keys.SETTLEMENT_SK, "entity": SETTLEMENT, "tenantId": principal.tenant_id,
                "period": period, "version": 1, "createdAt": at, "updatedAt": at, "updatedBy": principal.actor,
                "GSI3PK": keys.settlement_tenants(), "GSI3SK": principal.tenant_id,
            })  # fmt: skip
            _settling.add(principal.tenant_id)
        else:
            table.update(pk, keys.SETTLEMENT_SK, current["version"],
                         {"period": period, "updatedAt": at, "updatedBy": principal.actor})  # fmt: skip
    except Conflict:
        raise Conflict("the settlement settings changed meanwhile; read them and try again") from None
    return settlement_settings(table, principal.tenant_id)

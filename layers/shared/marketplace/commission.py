"""The commission the retailer takes on each order line, by the tenant's rules (docs/money.md).

The rules (``schemas/commission_rules.json``, stored and versioned by ``marketplace.tenant_settings``):
an optional default percent, an override per listing category and one per supplier, and an optional
minimum per line in each currency. Under them, the commission defaults of the tenant's rule pack in
force (its ``commission``: ``defaultPercent``, ``minimumPerLine``; D51). A line's percent is its
supplier's override, else its category's, else the rules' default, else the pack's, else 0; a
currency's minimum is the rules', else the pack's (:class:`Rules`, the one place that says so).

A line's commission is its percent of the line's amount (unit price times units), rounded once by
the one rule of :mod:`marketplace.money`, raised to the minimum of the line's currency if one is set,
and never more than the line's amount. A supplier order carries, as priced when it was placed,
``subtotal`` (the sum of its lines' amounts), ``commission`` (the sum of its lines' commissions),
``supplierNet`` (the difference), ``commissionRulesVersion`` and, when a pack's default priced a line,
``commissionRulePackVersion``; each line keeps its percent and minimum, so the ledger prices what was
delivered and refunded by the same terms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from marketplace import keys, money, rule_packs, schemas, tenant_settings
from marketplace.errors import FieldError, InvalidInput
from marketplace.money import Money
from marketplace.principal import Principal
from marketplace.repository import Table
from marketplace.rule_packs import RulePack


def _decimals(values: Mapping[str, Any] | None) -> dict[str, Decimal]:
    return {k: money.decimal_of(v) for k, v in (values or {}).items()}


@dataclass(frozen=True)
class Rules:
    """The tenant's commission rules, with its rule pack's commission defaults under them."""

    version: int = 0  # 0: the tenant's admin has set none
    default_percent: Decimal | None = None  # None: the rules set none (the pack's, else 0)
    categories: dict[str, Decimal] = field(default_factory=dict)
    suppliers: dict[str, Decimal] = field(default_factory=dict)
    minimum_per_line: dict[str, Decimal] = field(default_factory=dict)
    pack_version: int = 0  # the rule pack in force, whose commission defaults fill in
    pack_default_percent: Decimal | None = None
    pack_minimum_per_line: dict[str, Decimal] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None, pack: RulePack | None = None) -> Rules:
        """The rules as stored (None: none set), over ``pack``'s commission defaults (the default
        pack, which has none, when not given)."""
        pack = pack or rule_packs.default()
        defaults = pack.commission
        record = record or {}
        return cls(
            version=int(record.get("version", 0)),
            default_percent=_percent_of(record),
            categories=_decimals(record.get("categories")),
            suppliers=_decimals(record.get("suppliers")),
            minimum_per_line=_decimals(record.get("minimumPerLine")),
            pack_version=pack.version if defaults else 0,
            pack_default_percent=_percent_of(defaults),
            pack_minimum_per_line=_decimals(defaults.get("minimumPerLine")),
        )

    def _percent(self, supplier_id: str, category: str | None) -> tuple[Decimal, bool]:
        """A line's percent, and whether it is the pack's default."""
        if supplier_id in self.suppliers:
            return self.suppliers[supplier_id], False
        if category is not None and category in self.categories:
            return self.categories[category], False
        if self.default_percent is not None:
            return self.default_percent, False
        if self.pack_default_percent is not None:
            return self.pack_default_percent, True
        return Decimal(0), False

    def _minimum(self, currency: str) -> tuple[Money | None, bool]:
        """A currency's minimum per line, and whether it is the pack's."""
        if currency in self.minimum_per_line:
            return Money.of(self.minimum_per_line[currency], currency), False
        if currency in self.pack_minimum_per_line:
            return Money.of(self.pack_minimum_per_line[currency], currency), True
        return None, False

    def percent_for(self, supplier_id: str, category: str | None) -> Decimal:
        return self._percent(supplier_id, category)[0]

    def minimum_for(self, currency: str) -> Money | None:
        return self._minimum(currency)[0]

    def by_pack(self, supplier_id: str, category: str | None, currency: str) -> bool:
        """Whether the pack's defaults price a line (its percent, or its currency's minimum)."""
        return self._percent(supplier_id, category)[1] or self._minimum(currency)[1]


def _percent_of(values: Mapping[str, Any]) -> Decimal | None:
    found = values.get("defaultPercent")
    return None if found is None else money.decimal_of(found)


def rules_keys(tenant_id: str) -> list[tuple[str, str]]:
    """What :func:`price_order` reads of the tenant's settings, in the caller's batch read: its
    commission rules and its rule pack."""
    pk = keys.tenant_settings_pk(tenant_id)
    return [(pk, keys.COMMISSION_RULES_SK), (pk, keys.RULE_PACK_SK)]


def line_commission(amount: Money, percent: Decimal, minimum: Money | None) -> Money:
    """The commission of a line of ``amount``: ``percent`` of it rounded by the one rule, at least
    ``minimum``, at most the amount itself (a line of no units has none)."""
    if amount.amount <= 0:
        return Money.zero(amount.currency)
    taken = amount.percent(percent)
    if minimum is not None and taken.amount < minimum.amount:
        taken = minimum
    return taken if taken.amount <= amount.amount else amount


def commission_of(line: dict[str, Any], units: int) -> Money:
    """A priced line's commission on ``units`` of it, by the percent and minimum it was priced with."""
    price = Money.parse(line["unitPrice"])
    terms = line.get("commission") or {}
    minimum = terms.get("minimum")
    return line_commission(
        price.times(units),
        money.decimal_of(terms.get("percent", 0)),
        None if minimum is None else Money.of(minimum, price.currency),
    )


def check_amounts(lines: list[dict[str, Any]]) -> str:
    """The one currency of an order's ``lines``; else 400 naming each line whose currency is not
    the first line's, and each price with more decimals than its currency has."""
    errors: list[FieldError] = []
    currency = str(lines[0]["unitPrice"]["currency"])
    for i, line in enumerate(lines):
        price = line["unitPrice"]
        if price["currency"] != currency:
            errors.append(FieldError(f"lines.{i}.unitPrice.currency",
                                     f"is {price['currency']}, but line 0 is {currency}: an order is in one currency"))  # fmt: skip
            continue
        try:
            Money.parse(price)
        except ValueError as error:
            errors.append(FieldError(f"lines.{i}.unitPrice.amount", str(error)))
    if errors:
        raise InvalidInput(errors)
    return currency


def price_order(
    tenant_id: str, lines: list[dict[str, Any]], read: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each supplier's part of an order's ``lines``, priced by the tenant's rules as they are now:
    ``{supplierId: {"lines", "subtotal", "commission", "supplierNet", "commissionRulesVersion"}}``,
    with ``commissionRulePackVersion`` when the rule pack's defaults priced one of its lines.
    ``read`` holds what the caller's one batch read of the order's records found: the lines'
    listings (their category) and the items of :func:`rules_keys`. A line whose listing is unknown
    gets its supplier's or the default percent (the intake flags it anyway)."""
    currency = check_amounts(lines)
    found = {(i["PK"], i["SK"]): i for i in read}
    rules_key, pack_key = rules_keys(tenant_id)
    rules = Rules.from_record(found.get(rules_key), rule_packs.active_of(found.get(pack_key)))
    categories = {key: i.get("category") for key, i in found.items() if i.get("entity") == "PRODUCT"}
    minimum = rules.minimum_for(currency)
    parts: dict[str, dict[str, Any]] = {}
    for line in lines:
        supplier_id = line["supplierId"]
        category = categories.get((keys.supplier_pk(tenant_id, supplier_id), keys.product_sk(line["sku"])))
        percent = rules.percent_for(supplier_id, category)
        amount = Money.parse(line["unitPrice"]).times(int(line["quantity"]))
        taken = line_commission(amount, percent, minimum)
        terms = {
            "percent": percent,
            **({"minimum": minimum.text()} if minimum else {}),
            "amount": taken.text(),
        }
        part = parts.setdefault(supplier_id, {"lines": [], "subtotal": Money.zero(currency),
                                              "commission": Money.zero(currency), "byPack": False})  # fmt: skip
        part["lines"].append({"sku": line["sku"], "quantity": line["quantity"], "unitPrice": line["unitPrice"],
                              "commission": terms})  # fmt: skip
        part["subtotal"] += amount
        part["commission"] += taken
        part["byPack"] = part["byPack"] or rules.by_pack(supplier_id, category, currency)
    return {
        supplier_id: {
            "lines": part["lines"],
            "subtotal": part["subtotal"].view(),
            "commission": part["commission"].view(),
            "supplierNet": (part["subtotal"] - part["commission"]).view(),
            "commissionRulesVersion": rules.version,
            **({"commissionRulePackVersion": rules.pack_version} if part["byPack"] else {}),
        }
        for supplier_id, part in parts.items()
    }


# The names of the rules' maps, checked here: OpenAPI 3.0 (which must say what schemas/ says) has no
# propertyNames. A category is named as a listing's (schemas/product.json); a minimum's currency, by
# money.minimum_errors.
_NAMES = {
    "categories": (re.compile(r"[a-z][a-z0-9-]{1,39}"), "is not a category name (a-z, 0-9, -; 2 to 40)"),
    "suppliers": (re.compile(r".{1,64}", re.DOTALL), "is not a supplier id (1 to 64 characters)"),
}


def _check_names(body: dict[str, Any]) -> None:
    errors = [
        FieldError(f"{field}.{name}"[:200], reason)
        for field, (pattern, reason) in _NAMES.items()
        for name in body.get(field) or {}
        if not pattern.fullmatch(name)
    ]
    errors += money.minimum_errors(body.get("minimumPerLine") or {}, "minimumPerLine")
    if errors:
        raise InvalidInput(errors)


def view(record: dict[str, Any] | None) -> dict[str, Any]:
    """The rules as the admin set them (what ``PUT`` takes back), with their version; version 0
    while none were set (the rule pack's commission defaults, if any, apply then)."""
    if record is None:
        return {"version": 0}
    shown = {k: record[k] for k in tenant_settings.RULE_FIELDS if k in record}
    return {**shown, "version": int(record["version"]), **{k: record[k] for k in ("updatedAt", "updatedBy")}}


def get_rules(table: Table, principal: Principal) -> dict[str, Any]:
    return view(tenant_settings.commission_rules_record(table, principal.tenant_id))


def put_rules(table: Table, principal: Principal, body: Any, expected_version: int | None) -> dict[str, Any]:
    """Validate ``body`` (400 naming each bad field) and write it as the rules' next version."""
    if not isinstance(body, dict):
        raise InvalidInput([FieldError("(body)", "must be a JSON object")])
    schemas.validate("commission_rules", body)
    _check_names(body)
    return view(tenant_settings.put_commission_rules(table, principal, body, expected_version))

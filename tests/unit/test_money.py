"""Amounts, their one rounding rule, the commission rules and the ledger's entries, with worked
examples computed by hand in each test (marketplace.money, marketplace.commission, marketplace.ledger)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from marketplace import commission, keys, ledger, rule_packs
from marketplace.commission import Rules, check_amounts, commission_of, line_commission
from marketplace.errors import Conflict, InvalidInput
from marketplace.money import Money, minor_unit, total
from marketplace.rule_packs import RulePack

EUR = "EUR"


def eur(text: str) -> Money:
    return Money(Decimal(text), EUR)


def test_rounding_is_half_to_even_at_the_currencys_minor_unit():
    # Ties go to the even last digit: 0.125 -> 0.12 (2 is even), 0.135 -> 0.14, 0.145 -> 0.14.
    assert [Money.rounded(Decimal(t), EUR).text() for t in ("0.125", "0.135", "0.145", "0.1451")] == [
        "0.12", "0.14", "0.14", "0.15"]  # fmt: skip
    # JPY has no minor unit (2.5 -> 2, 3.5 -> 4); KWD has three decimals (1.0005 -> 1.000, 1.0015 -> 1.002).
    assert [Money.rounded(Decimal(t), "JPY").text() for t in ("2.5", "3.5")] == ["2", "4"]
    assert [Money.rounded(Decimal(t), "KWD").text() for t in ("1.0005", "1.0015")] == ["1.000", "1.002"]
    assert (minor_unit(EUR), minor_unit("JPY"), minor_unit("BHD")) == (
        Decimal("0.01"),
        Decimal(1),
        Decimal("0.001"),
    )


def test_amounts_are_exact_decimals_never_floats():
    # A float read through its shortest text is the decimal written: 19.99, not 19.989999999999998...
    assert Money.of(19.99, EUR) == eur("19.99")
    # 3 x 1299.99 is 3899.97 exactly (in floats 3899.9700000000003); 0.1 x 3 is 0.30.
    assert Money.of(1299.99, EUR).times(3).text() == "3899.97"
    assert total([Money.of(0.1, EUR)] * 3, EUR).text() == "0.30"
    # A float sum that is not a decimal of the currency is refused, not rounded away.
    with pytest.raises(ValueError, match="more decimals than EUR"):
        Money.of(0.1 + 0.2, EUR)
    with pytest.raises(ValueError, match="more decimals than JPY"):
        Money.of(12.5, "JPY")
    with pytest.raises(ValueError, match="not an amount"):
        Money.of(float("nan"), EUR)
    with pytest.raises(Conflict, match="EUR and USD"):
        eur("1.00") + Money(Decimal(1), "USD")
    # Shown and stored as a string at the currency's scale: 12.3 is "12.30", a debit "-4.00".
    assert (eur("12.3").view(), (-eur("4")).text()) == ({"amount": "12.30", "currency": "EUR"}, "-4.00")


def test_a_lines_commission_is_its_percent_rounded_once_at_least_the_minimum_at_most_the_line():
    # 12.5 % of 19.99 = 2.49875 -> 2.50; 15 % of 0.30 = 0.045 -> 0.04 (a tie, to even; half-up would say 0.05).
    assert line_commission(eur("19.99"), Decimal("12.5"), None) == eur("2.50")
    assert line_commission(eur("0.30"), Decimal(15), None) == eur("0.04")
    # 10 % of 2.00 = 0.20, below the minimum 0.50: 0.50.
    assert line_commission(eur("2.00"), Decimal(10), eur("0.50")) == eur("0.50")
    # 10 % of 0.30 = 0.03, the minimum 0.50 is more than the line: the whole line, 0.30.
    assert line_commission(eur("0.30"), Decimal(10), eur("0.50")) == eur("0.30")
    assert line_commission(eur("0"), Decimal(10), eur("0.50")) == eur("0")


RULES = Rules(
    version=3, default_percent=Decimal(10), categories={"books": Decimal(5)},
    suppliers={"s-2": Decimal("7.5")}, minimum_per_line={EUR: Decimal("0.5")},
)  # fmt: skip


def test_the_suppliers_override_wins_over_the_categorys_which_wins_over_the_default():
    assert RULES.percent_for("s-1", "books") == Decimal(5)
    assert RULES.percent_for("s-1", "toys") == Decimal(10)
    assert RULES.percent_for("s-1", None) == Decimal(10)
    assert RULES.percent_for("s-2", "books") == Decimal("7.5")
    assert (RULES.minimum_for(EUR), RULES.minimum_for("USD")) == (eur("0.50"), None)
    assert Rules.from_record(None) == Rules()  # none set: version 0, no commission
    stored = {"version": 3, "defaultPercent": 10, "categories": {"books": 5}, "suppliers": {"s-2": 7.5},
              "minimumPerLine": {EUR: 0.5}}  # fmt: skip
    assert Rules.from_record(stored) == RULES


def pack(version: int, **commission_defaults) -> RulePack:
    return RulePack(version, {**rule_packs.default_document(), "commission": commission_defaults})


def test_the_rule_pack_s_commission_defaults_fill_in_what_the_rules_leave_out():
    """supplier > category > the rules' default > the pack's default > 0; a currency's minimum: the
    rules', else the pack's (D51)."""
    tenth = pack(4, defaultPercent=12.5, minimumPerLine={EUR: 1, "USD": 0.75})
    none_set = Rules.from_record(None, tenth)
    assert (none_set.version, none_set.percent_for("s-1", "books"), none_set.minimum_for(EUR)) == (
        0, Decimal("12.5"), eur("1.00"))  # fmt: skip
    assert none_set.by_pack("s-1", "books", EUR) and none_set.pack_version == 4
    # The rules' default wins over the pack's; their overrides over both; their minimum over the pack's.
    stored = {"version": 3, "defaultPercent": 10, "categories": {"books": 5}, "minimumPerLine": {EUR: 0.5}}
    rules = Rules.from_record(stored, tenth)
    assert [rules.percent_for("s-1", c) for c in ("toys", "books")] == [Decimal(10), Decimal(5)]
    assert (rules.minimum_for(EUR), rules.minimum_for("USD"), rules.minimum_for("GBP")) == (
        eur("0.50"), Money(Decimal("0.75"), "USD"), None)  # fmt: skip
    assert not rules.by_pack("s-1", "toys", EUR) and rules.by_pack("s-1", "toys", "USD")  # the pack's minimum
    # Rules without a default (it is optional): the pack's, under the overrides.
    overrides = Rules.from_record({"version": 1, "categories": {"books": 5}}, tenth)
    assert [overrides.percent_for("s-1", c) for c in ("toys", "books")] == [Decimal("12.5"), Decimal(5)]
    # No pack default, no rules: no commission, as before packs had any.
    assert Rules.from_record(None, rule_packs.default()).percent_for("s-1", None) == Decimal(0)
    assert Rules.from_record({"version": 1, "categories": {"books": 5}}).percent_for("s-1", "toys") == 0


def test_an_order_priced_by_the_pack_s_defaults_keeps_the_pack_s_version():
    """price_order reads the rules and the pack from the caller's batch read; a supplier's part that a
    pack default priced keeps ``commissionRulePackVersion``, one priced by the rules alone does not."""
    tenant = "t-1"
    settings = keys.tenant_settings_pk(tenant)
    pack_item = {"PK": settings, "SK": keys.RULE_PACK_SK, "activeVersion": 2,
                 "active": pack(2, defaultPercent=8, minimumPerLine={EUR: 0.5}).document}  # fmt: skip
    rules_item = {"PK": settings, "SK": keys.COMMISSION_RULES_SK, "version": 5, "suppliers": {"s-2": 3},
                  "minimumPerLine": {EUR: 0.1}}  # fmt: skip
    lines = [{"supplierId": "s-1", "sku": "A", "quantity": 2, "unitPrice": {"amount": 10, "currency": EUR}},
             {"supplierId": "s-2", "sku": "B", "quantity": 1, "unitPrice": {"amount": 20, "currency": EUR}}]  # fmt: skip
    by_pack = commission.price_order(tenant, lines, [pack_item])
    assert by_pack["s-1"]["lines"][0]["commission"] == {
        "percent": Decimal(8),
        "minimum": "0.50",
        "amount": "1.60",
    }
    assert (by_pack["s-1"]["commissionRulesVersion"], by_pack["s-1"]["commissionRulePackVersion"]) == (0, 2)
    both = commission.price_order(tenant, lines, [pack_item, rules_item])
    assert both["s-1"]["lines"][0]["commission"] == {
        "percent": Decimal(8),
        "minimum": "0.10",
        "amount": "1.60",
    }
    assert (both["s-1"]["commissionRulesVersion"], both["s-1"]["commissionRulePackVersion"]) == (5, 2)
    assert both["s-2"]["lines"][0]["commission"]["amount"] == "0.60"  # its own 3 %, the rules' minimum
    assert "commissionRulePackVersion" not in both["s-2"]
    # The default pack has no commission: no rules, no commission, no pack version.
    plain = commission.price_order(tenant, lines, [])
    assert plain["s-1"]["commission"] == {"amount": "0.00", "currency": EUR}
    assert "commissionRulePackVersion" not in plain["s-1"]


def test_an_order_priced_by_hand():
    """Lines (supplier, category, units x price) and their commission under RULES:
    s-1 books 3 x 4.99 = 14.97, 5 % = 0.7485 -> 0.75;  s-1 toys 1 x 2.00, 10 % = 0.20 -> minimum 0.50;
    s-1 unknown 1 x 0.30, 10 % = 0.03 -> minimum 0.50 -> at most the line, 0.30;
    s-2 books 2 x 10.10 = 20.20, its own 7.5 % = 1.515 -> 1.52 (a tie, to even).
    s-1: subtotal 17.27, commission 1.55, net 15.72; s-2: subtotal 20.20, commission 1.52, net 18.68."""
    lines = [("s-1", "books", 3, "4.99"), ("s-1", "toys", 1, "2.00"), ("s-1", None, 1, "0.30"),
             ("s-2", "books", 2, "10.10")]  # fmt: skip
    taken = [
        line_commission(eur(price).times(n), RULES.percent_for(s, c), RULES.minimum_for(EUR))
        for s, c, n, price in lines
    ]
    assert [m.text() for m in taken] == ["0.75", "0.50", "0.30", "1.52"]
    s1_subtotal = total((eur(p).times(n) for s, _, n, p in lines if s == "s-1"), EUR)
    s1_commission = total(taken[:3], EUR)
    assert (s1_subtotal.text(), s1_commission.text(), (s1_subtotal - s1_commission).text()) == (
        "17.27", "1.55", "15.72")  # fmt: skip


def test_an_order_in_two_currencies_is_refused_naming_the_line():
    lines = [{"unitPrice": {"amount": 10, "currency": EUR}}, {"unitPrice": {"amount": 5, "currency": EUR}},
             {"unitPrice": {"amount": 7, "currency": "USD"}}, {"unitPrice": {"amount": 1.5, "currency": "JPY"}}]  # fmt: skip
    with pytest.raises(InvalidInput) as refused:
        check_amounts(lines)
    assert [(f.field, f.reason) for f in refused.value.fields] == [
        ("lines.2.unitPrice.currency", "is USD, but line 0 is EUR: an order is in one currency"),
        ("lines.3.unitPrice.currency", "is JPY, but line 0 is EUR: an order is in one currency"),
    ]
    with pytest.raises(InvalidInput) as yen:
        check_amounts([{"unitPrice": {"amount": 1.5, "currency": "JPY"}}])
    assert [f.field for f in yen.value.fields] == ["lines.0.unitPrice.amount"]
    assert check_amounts(lines[:2]) == EUR


def test_the_rules_names_are_checked_where_the_schema_cannot():
    with pytest.raises(InvalidInput) as refused:
        commission.put_rules(None, None, {"defaultPercent": 10, "categories": {"Books!": 5},  # type: ignore[arg-type]
                                          "minimumPerLine": {"eur": 1, "JPY": 0.5}}, None)  # fmt: skip
    assert sorted((f.field, f.reason) for f in refused.value.fields) == [
        ("categories.Books!", "is not a category name (a-z, 0-9, -; 2 to 40)"),
        ("minimumPerLine.JPY", "has more decimals than JPY has"),
        ("minimumPerLine.eur", "is not an ISO 4217 currency code"),
    ]
    with pytest.raises(InvalidInput) as schema:
        commission.put_rules(None, None, {"defaultPercent": 100.5, "suppliers": {"s": 1.005}}, None)  # type: ignore[arg-type]
    assert sorted(f.field for f in schema.value.fields) == ["defaultPercent", "suppliers.s"]


def priced_line(sku: str, units: int, price: str, percent: str, minimum: str | None = None) -> dict:
    terms = {"percent": Decimal(percent), **({"minimum": minimum} if minimum else {})}
    return {"sku": sku, "quantity": units, "shipped": units, "unitPrice": {"amount": price, "currency": EUR},
            "commission": terms}  # fmt: skip


def test_a_delivery_is_a_sale_and_its_commission_on_the_units_shipped():
    """A: 3 of 3 shipped at 4.99, 5 % of 14.97 = 0.7485 -> 0.75; B: 1 of 2 shipped (one cancelled)
    at 2.00, 10 % = 0.20 -> the minimum 0.50. Sale 16.97, commission -1.25."""
    lines = [
        priced_line("A", 3, "4.99", "5", "0.50"),
        {**priced_line("B", 2, "2.00", "10", "0.50"), "shipped": 1},
    ]
    event = {"event": "supplier_order.delivered", "eventId": "so-1-v7", "tenantId": "t", "supplierId": "s-1",
             "supplierOrderId": "so-1", "orderId": "o-1", "lines": lines, "at": "2026-12-07T05:00:00.000Z"}  # fmt: skip
    sale, taken = ledger.entries_for(event, None)  # type: ignore[arg-type]
    assert (sale["type"], sale["amount"], sale["entryId"]) == (
        "SALE",
        {"amount": "16.97", "currency": EUR},
        "so-1-v7-sale",
    )
    assert (taken["type"], taken["amount"]) == ("COMMISSION", {"amount": "-1.25", "currency": EUR})
    assert sale["SK"] != taken["SK"] and sale["PK"] == taken["PK"]
    # The same event again makes the same keys: written once (the conditional put).
    assert [e["SK"] for e in ledger.entries_for(event, None)] == [sale["SK"], taken["SK"]]  # type: ignore[arg-type]
    assert ledger.entries_for({**event, "event": "supplier_order.shipped"}, None) == []  # type: ignore[arg-type]
    # An order placed before commissions (no terms on its lines) takes none.
    plain = [{k: v for k, v in line.items() if k != "commission"} for line in lines]
    assert commission_of(plain[0], 3) == eur("0")

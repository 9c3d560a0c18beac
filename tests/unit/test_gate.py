"""The change gate's scoring rules (marketplace.gate): worked examples, and the rule files checked."""

from __future__ import annotations

import json

import pytest

from marketplace import gate, schemas
from marketplace.errors import FieldError

SUPPLIER = {
    "supplierId": "s1", "legalName": "Globex GmbH", "taxId": "DE123456789", "country": "DE",
    "contactEmail": "einkauf@globex.de", "website": "https://globex.de", "phone": "+49 30 1234567",
    "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postalCode": "10115", "country": "DE"},
}  # fmt: skip
LISTING = {
    "sku": "TV-1", "title": "55 inch OLED TV", "category": "electronics",
    "price": {"amount": 100.00, "currency": "EUR"}, "quantity": 10,
    "images": ["https://cdn.example.com/a.jpg", "https://img.example.com/b.png"],
    "attributes": {"brand": "Acme", "model": "O55"},
}  # fmt: skip


def supplier_score(**changes):
    return gate.score(gate.rules_for("supplier"), SUPPLIER, changes)


def listing_score(**changes):
    return gate.score(gate.rules_for("listing"), LISTING, changes)


@pytest.mark.parametrize(
    "changes",
    [{"phone": "+49 30 7654321"},
     {"address": {**SUPPLIER["address"], "line1": "Nebenstr. 2"}},
     {"contactEmail": "verkauf@globex.de"},  # another mailbox, the same domain
     {"website": "https://globex.de/shop"},  # another page, the same domain
     {"website": "https://GLOBEX.de"},
     {"legalName": SUPPLIER["legalName"]}],  # no change at all
)  # fmt: skip
def test_a_supplier_change_that_keeps_who_it_is_is_low_risk(changes):
    assert supplier_score(**changes) == gate.Score(gate.LOW)


def test_a_supplier_change_of_identity_is_high_risk_with_a_reason_per_field():
    scored = supplier_score(taxId="DE12", contactEmail="globex@gmail.com", phone="+49 30 7654321")
    assert scored.high
    assert scored.reasons == (
        FieldError("contactEmail", "the contact email moves to another domain"),
        FieldError("taxId", "a new tax id is reviewed as a new registration"),
    )
    assert [r.field for r in supplier_score(legalName="Initech AG", country="AT").reasons] == [
        "country",
        "legalName",
    ]
    assert supplier_score(website="https://globex.com").reasons == (
        FieldError("website", "the website moves to another domain"),
    )


@pytest.mark.parametrize(
    "changes",
    [{"title": "55 inch OLED TV (2026)"}, {"quantity": 0}, {"attributes": {"brand": "Acme", "model": "O56"}},
     {"price": {"amount": 120.00, "currency": "EUR"}},  # +20 %: at the threshold
     {"price": {"amount": 80.00, "currency": "EUR"}},  # -20 %
     {"images": ["https://img.example.com/c.webp"]}],  # fewer images, on a host it uses
)  # fmt: skip
def test_a_listing_change_within_the_thresholds_is_low_risk(changes):
    assert listing_score(**changes) == gate.Score(gate.LOW)


def test_a_listing_change_beyond_the_thresholds_is_high_risk():
    assert listing_score(price={"amount": 120.01, "currency": "EUR"}).reasons == (
        FieldError("price", "the price moves 20.0%, beyond 20%"),
    )
    assert listing_score(price={"amount": 999999, "currency": "EUR"}).reasons == (
        FieldError("price", "the price moves 999899.0%, beyond 20%"),
    )
    assert listing_score(price={"amount": 100.00, "currency": "USD"}).reasons == (
        FieldError("price", "the currency changes"),
    )
    assert listing_score(category="weapons").reasons == (
        FieldError("category", "a new category is reviewed as a new listing"),
    )
    # The first observation: each of the three is a reason of its own.
    scored = listing_score(category="weapons", price={"amount": 999999, "currency": "EUR"},
                           images=["http://cheap.example.net/x.gif"])  # fmt: skip
    assert [r.field for r in scored.reasons] == ["category", "images", "price"]
    assert listing_score(images=[*LISTING["images"], "https://a]b/c.jpg"]).high  # no readable host


def test_a_field_the_rules_do_not_name_is_high_risk():
    assert gate.score(
        {"kind": "listing", "fields": {"title": {"test": "low"}}}, LISTING, {"sku": "TV-2"}
    ) == (gate.Score(gate.HIGH, (FieldError("sku", "has no change rule: every change is reviewed"),)))


def test_every_editable_field_has_a_rule_and_the_rule_files_follow_their_schema():
    from marketplace import products, suppliers

    assert set(gate.rules_for("supplier")["fields"]) == set(suppliers.EDITABLE_FIELDS)
    assert set(gate.rules_for("listing")["fields"]) == set(products.EDITABLE_FIELDS)
    broken = json.loads((schemas.SCHEMA_DIR / "listing_changes.json").read_text())
    del broken["fields"]["price"]["percent"]
    broken["fields"]["title"]["test"] = "sometimes"
    assert {e.field for e in schemas.field_errors("change_rules", broken)} == {
        "fields.price.percent",
        "fields.title.test",
    }


def test_a_pack_s_threshold_replaces_the_file_s_and_a_field_left_out_keeps_it():
    """A tenant's rule pack tunes the thresholds (``changes``, D51); which test a field has stays the file's."""
    rules = gate.rules_for("listing")
    tight = gate.tuned(rules, {"price": {"percent": 10}})
    fifteen = {"price": {"amount": 115.00, "currency": "EUR"}}
    assert gate.score(rules, LISTING, fifteen) == gate.Score(gate.LOW)
    assert gate.score(tight, LISTING, fifteen).reasons == (
        FieldError("price", "the price moves 15.0%, beyond 10%"),
    )
    assert {n: r for n, r in tight["fields"].items() if n != "price"} == {
        n: r for n, r in rules["fields"].items() if n != "price"
    }
    # Nothing set keeps the rules; the file's own rules are never changed.
    assert gate.tuned(rules, {}) == rules and rules["fields"]["price"]["percent"] == 20
    assert (gate.thresholds(rules["fields"]["price"]), gate.thresholds(rules["fields"]["title"])) == (
        {"percent"},
        set(),
    )


def test_a_pack_s_threshold_has_the_bounds_of_the_file_s():
    """schemas/rule_pack.json's thresholds and schemas/change_rules.json's are the same numbers."""
    pack = json.loads((schemas.SCHEMA_DIR / "rule_pack.json").read_text())["$defs"]["thresholds"]
    rules = json.loads((schemas.SCHEMA_DIR / "change_rules.json").read_text())
    file_rule = rules["properties"]["fields"]["additionalProperties"]["properties"]
    assert pack["additionalProperties"]["properties"] == {"percent": file_rule["percent"]}

"""Supplier onboarding rules (pure functions)."""

from __future__ import annotations

import pytest

from marketplace.suppliers import Verdict, domains_match, evaluate, tax_id_flag


def supplier(**overrides):
    record = {
        "supplierId": "s1", "legalName": "Acme Ltd", "taxId": "12-3456789", "country": "US",
        "contactEmail": "ops@acme.com", "website": "https://www.acme.com", "phone": "+1 5551234567",
        "address": {"line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"},
    }  # fmt: skip
    record.update(overrides)
    return record


@pytest.mark.parametrize(
    ("country", "tax_id"),
    [("US", "12-3456789"), ("GB", "GB123456789"), ("GB", "GB123456789012"), ("DE", "DE123456789"),
     ("FR", "FRAB123456789"), ("FR", "FR12123456789"), ("GB", "gb 123 456 789")],
)  # fmt: skip
def test_valid_tax_ids_pass(country, tax_id):
    assert tax_id_flag(country, tax_id) is None


@pytest.mark.parametrize(
    ("country", "tax_id"),
    [("US", "123456789"), ("US", "12-345678"), ("GB", "GB12345678"), ("GB", "GB1234567890"),
     ("DE", "DE12345678"), ("DE", "123456789"), ("FR", "FR123456789"), ("FR", "FRAB12345678")],
)  # fmt: skip
def test_malformed_tax_ids_are_flagged_with_the_rule(country, tax_id):
    flag = tax_id_flag(country, tax_id)
    assert flag is not None and flag.field == "taxId" and f"invalid format for {country}" in flag.reason


def test_a_country_without_a_rule_goes_to_manual_review():
    flag = tax_id_flag("JP", "T1234567890123")
    assert flag is not None and "manual review" in flag.reason


@pytest.mark.parametrize(
    ("email", "website", "match"),
    [("a@acme.com", "https://acme.com", True), ("a@acme.com", "https://www.acme.com/x", True),
     ("a@mail.acme.com", "https://acme.com", True), ("a@acme.com", "https://shop.acme.com", True),
     ("a@gmail.com", "https://acme.com", False), ("a@acme.co", "https://acme.com", False),
     ("a@notacme.com", "https://acme.com", False)],
)  # fmt: skip
def test_contact_domain_must_belong_to_the_website(email, website, match):
    assert domains_match(email, website) is match


def test_a_clean_supplier_is_approved():
    assert evaluate(supplier(), [], {}) == Verdict("APPROVED")


def test_every_flag_reason_is_reported_together():
    verdict = evaluate(supplier(taxId="12345", contactEmail="x@other.org"), ["s2"], {})
    assert verdict.outcome == "FLAGGED"
    reasons = {(f.field, f.reason.split(":")[0]) for f in verdict.flags}
    assert reasons == {("taxId", "invalid format for US"), ("taxId", "duplicate tax id"),
                       ("contactEmail", "the email domain other.org differs from the website's domain acme.com")}  # fmt: skip


def test_a_duplicate_tax_id_flag_names_no_other_supplier():
    """The applicant reads its flags: it learns the tax id is taken, not which supplier holds it."""
    verdict = evaluate(supplier(), ["7d0c3c8e-other-supplier"], {})
    assert [(f.field, f.reason) for f in verdict.flags] == [
        ("taxId", "duplicate tax id: this tax id is already registered")
    ]
    assert "7d0c3c8e" not in repr(verdict)


def test_the_blocked_list_rejects_before_any_other_rule():
    verdict = evaluate(supplier(taxId="bad"), [], {"taxId": "fraud case 42"})
    assert verdict.outcome == "REJECTED"
    assert verdict.flags[0].field == "taxId" and "fraud case 42" in verdict.flags[0].reason


def test_a_record_that_breaks_the_schema_is_flagged_with_each_field():
    verdict = evaluate(supplier(phone="call me", address={"line1": "x"}), [], {})
    assert verdict.outcome == "FLAGGED"
    fields = {f.field for f in verdict.flags}
    assert {"phone", "address.city", "address.postalCode", "address.country"} <= fields

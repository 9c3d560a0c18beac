"""Supplier onboarding rules (pure functions)."""

from __future__ import annotations

import pytest

from marketplace import blocklist, keys
from marketplace.errors import InvalidInput
from marketplace.principal import Principal
from marketplace.repository import Page
from marketplace.suppliers import Verdict, domains_match, evaluate, rules, schema_check, tax_id_flag


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


# ------------------------------------------------------------------------------- the blocked list
class BlockedList:
    """A tenant's blocked list as the table holds it: entries keyed as ``blocklist.add`` keys them
    (``entry_sort_key``), read by ``batch_get``; no other supplier claims the tax id."""

    def __init__(self, *entries: tuple[str, str]):
        self.stored = {(keys.blocklist_pk("t1"), blocklist.entry_sort_key(k, v, None)) for k, v in entries}

    def batch_get(self, wanted):
        return [{"PK": pk, "SK": sk, "reason": "fraud"} for pk, sk in wanted if (pk, sk) in self.stored]

    def query(self, *args, **kwargs):
        return Page(items=[], next_token=None)


CYRILLIC_E, CYRILLIC_A = "\u0435", "\u0410"
BLOCKED = BlockedList(("domain", "evil.example"), ("legalName", "Fraud Holdings Ltd"))


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"website": "https://shop.evil.example/"}, "website"),  # a subdomain
        ({"contactEmail": "ops@mail.shop.evil.example"}, "contactEmail"),  # a subdomain
        ({"website": f"https://{CYRILLIC_E}vil.example"}, "website"),  # a Cyrillic homoglyph
        ({"website": "https://xn--vil-qdd.example/"}, "website"),  # that homoglyph in punycode
        ({"website": "https://\uff45\uff56\uff49\uff4c\uff0e\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45/"}, "website"),
        ({"contactEmail": "ops@EVIL.example."}, "contactEmail"),  # case and a trailing dot
        ({"legalName": f"Fr{CYRILLIC_A.lower()}ud H\u043eldings LTD"}, "legalName"),  # Cyrillic homoglyphs
        ({"legalName": "\uff26raud  Holdings, Ltd."}, "legalName"),  # fullwidth, punctuation
    ],
)  # fmt: skip
def test_each_spelling_of_a_blocked_domain_or_name_is_rejected(over, field):
    verdict = rules(BLOCKED, "t1", supplier(**over))
    assert verdict.outcome == "REJECTED", verdict
    assert field in {f.field for f in verdict.flags}


def test_a_blocked_entry_in_punycode_blocks_the_unicode_spelling_and_back():
    for entry, website in [("xn--vil-qdd.example", f"https://{CYRILLIC_E}vil.example/"),
                           (f"{CYRILLIC_E}vil.example", "https://xn--vil-qdd.example/"),
                           ("b\u00fccher.example", "https://www.xn--bcher-kva.example/")]:  # fmt: skip
        verdict = rules(BlockedList(("domain", entry)), "t1", supplier(website=website))
        assert verdict.outcome == "REJECTED", (entry, website)


def test_a_parent_of_the_blocked_domain_and_a_lookalike_that_differs_pass():
    for website in ("https://example/", "https://devil.example/", "https://evil.example.org/"):
        verdict = rules(BLOCKED, "t1", supplier(website=website, contactEmail=f"ops@{website[8:-1]}"))
        assert verdict.outcome != "REJECTED", website


def test_a_schema_valid_website_that_urllib_cannot_read_is_flagged_not_a_crash():
    for website in ("https://bracket]shop.de/", "https://[shop.de/", "https://exa\u2100mple.com/"):
        assert schema_check(supplier(website=website)) == []  # the schema admits it
        verdict = rules(BLOCKED, "t1", supplier(website=website))
        assert verdict.outcome == "FLAGGED"
        assert ("website", "is not a URL with a valid host name") in {
            (f.field, f.reason) for f in verdict.flags
        }


def test_a_host_too_long_for_a_key_is_looked_up_without_failing():
    website = "https://" + "a" * 1500 + ".evil.example/"
    assert rules(BLOCKED, "t1", supplier(website=website)).outcome == "REJECTED"


@pytest.mark.parametrize(
    ("kind", "value"), [("domain", "."), ("domain", "\uff0e\u3002"), ("legalName", "---")]
)
def test_an_entry_with_nothing_left_once_normalised_is_refused(kind, value):
    """It would match nothing (or, as an empty key, every supplier whose field normalises to nothing)."""
    admin = Principal(subject="a", tenant_id="t1", roles=frozenset({"admin"}))
    with pytest.raises(InvalidInput) as info:
        blocklist.add(admin, {"kind": kind, "value": value, "reason": "fraud"})
    assert [f.field for f in info.value.fields] == ["value"]

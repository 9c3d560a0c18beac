"""Rule packs (docs/decisions.md D51): the defaults are today's rules, a draft is checked naming each
bad field, changes nothing until it is activated, and its what-if names the records whose status it
would change, and why, writing nothing. On a table shaped as the stack's, without its stream
(``quiet_table``): nothing here starts a workflow."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from marketplace import blocklist, keys, rule_packs, suppliers, suspension, what_if
from marketplace.errors import InvalidInput, NotFound, PreconditionFailed
from marketplace.principal import Principal
from marketplace.products import Products
from marketplace.repository import Table
from marketplace.suppliers import Suppliers, tax_id_flag
from marketplace_local import samples
from marketplace_local.samples import SUPPLIER

NL = {"formats": ["NL\\d{9}B\\d{2}"], "description": "a NL VAT number is NL, 9 digits, B, then 2 digits"}
FRAUD = {"kind": "taxId", "value": "DE123456789", "country": "DE", "reason": "fraud ring"}


def entry_id(body: dict[str, Any]) -> str:
    return blocklist.entry_id(blocklist.checked(body)[1])


def defaults() -> dict[str, Any]:
    return copy.deepcopy(rule_packs.default_document())


def supplier(table: Table, admin: Principal, status: str, **overrides: Any) -> str:
    body = {**SUPPLIER, "taxId": f"DE{uuid.uuid4().int % 10**9:09d}", **overrides}
    record = Suppliers(table).register(admin, body)
    table.update(record["PK"], record["SK"], 1, {"status": status})
    return str(record["supplierId"])


def listing(table: Table, admin: Principal, supplier_id: str, status: str, **overrides: Any) -> str:
    record = Products(table).register(admin, supplier_id, samples.listing(5, **overrides))
    table.update(record["PK"], record["SK"], 1, {"status": status})
    return f"{supplier_id}/{record['sku']}"


def items(table: Table, tenant: str) -> list[dict[str, Any]]:
    found, pages = [], table.client.get_paginator("scan").paginate(TableName=table.name, ConsistentRead=True)
    for page in pages:
        found += [i for i in page["Items"] if i["PK"]["S"].startswith(f"TENANT#{tenant}#")]
    return sorted(found, key=lambda i: (i["PK"]["S"], i["SK"]["S"]))


# ------------------------------------------------------------------------------------------- the pack
def test_the_defaults_are_a_valid_pack_with_todays_rules():
    assert rule_packs.check(defaults()) == defaults()
    assert rule_packs.default().version == 0
    assert sorted(rule_packs.default().document["taxIds"]) == ["DE", "FR", "GB", "US"]
    # FR's key excludes I and O, as the rule did before it became data.
    assert tax_id_flag("FR", "FRAB123456789") is None
    assert tax_id_flag("FR", "FRIO123456789").reason.startswith("invalid format for FR")
    assert tax_id_flag("GB", "GB123456789012") is None and tax_id_flag("GB", "GB1234567890") is not None


def test_a_pack_of_its_own_decides_the_tax_id_and_the_category_rules():
    document = defaults()
    document["taxIds"]["NL"] = NL
    del document["taxIds"]["DE"]
    pack = rule_packs.RulePack(3, document)
    assert tax_id_flag("NL", "NL123456789B01", pack) is None
    assert tax_id_flag("NL", "NL123456789", pack).reason == f"invalid format for NL: {NL['description']}"
    assert tax_id_flag("DE", "DE123456789", pack).reason == "no automatic check for country DE: manual review"


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda d: d["taxIds"].update(de=NL), "taxIds.de", "is not an ISO 3166 country code (two capital letters)"),
        (lambda d: d["categories"].update(Home={"prohibited": True}), "categories.Home", "is not a category name"),
        (lambda d: d["categories"]["home"]["price"].update(min=20000), "categories.home.price.min", "is more than its max"),
        (lambda d: d["categories"]["home"].update(images={"min": 5, "max": 1}), "categories.home.images.min", "is more than"),
        # Alternation and nested repetition are not formats: a pack never holds a slow expression.
        (lambda d: d["taxIds"]["DE"].update(formats=["(DE)+"]), "taxIds.DE.formats.0", "does not match"),
        (lambda d: d["taxIds"]["DE"].update(formats=["DE\\d+"]), "taxIds.DE.formats.0", "does not match"),
        (lambda d: d["categories"].update(toys={}), "categories.toys", "is not valid under any"),
        (lambda d: d.pop("categories"), "categories", "is required"),
        (lambda d: d["orders"].update(shipByHours=200), "orders.autoCancelUnshippedDays", "is less than shipByHours"),
        (lambda d: d["orders"].update(returnWindowDays=0), "orders.returnWindowDays", "less than the minimum"),
        (lambda d: d["orders"].update(shipBy=24), "orders.shipBy", "is not allowed"),
        (lambda d: d["orders"].update(acceptanceSlaHours=0), "orders.acceptanceSlaHours", "less than the minimum"),
        (lambda d: d["corrections"].update(maxRounds=11), "corrections.maxRounds", "greater than the maximum"),
        (lambda d: d["corrections"].update(rounds=2), "corrections.rounds", "is not allowed"),
        # The change thresholds: only a threshold the field's rule takes (the files say which test).
        (lambda d: d.update(changes={"listing": {"title": {"percent": 10}}}), "changes.listing.title.percent",
         "does not apply: the field's test (low) takes no percent"),
        (lambda d: d.update(changes={"supplier": {"website": {"percent": 10}}}), "changes.supplier.website.percent",
         "does not apply: the field's test (urlDomain)"),
        (lambda d: d.update(changes={"listing": {"sku": {"percent": 10}}}), "changes.listing.sku",
         "is not a field of the listing change rules"),
        (lambda d: d.update(changes={"listing": {"price": {"percent": 0}}}), "changes.listing.price.percent",
         "is less than the minimum of 0.01"),
        (lambda d: d.update(changes={"listing": {"price": {}}}), "changes.listing.price", "should be non-empty"),
        (lambda d: d.update(changes={"listing": {"price": {"amount": 5}}}), "changes.listing.price.amount",
         "is not allowed"),
        (lambda d: d.update(changes={"order": {}}), "changes.order", "is not allowed"),
        # The commission defaults: the shapes of the commission rules, the currencies checked.
        (lambda d: d.update(commission={"defaultPercent": 100.5}), "commission.defaultPercent", "maximum"),
        (lambda d: d.update(commission={"minimumPerLine": {"JPY": 0.5}}), "commission.minimumPerLine.JPY",
         "has more decimals than JPY has"),
        (lambda d: d.update(commission={"minimumPerLine": {"eur": 1}}), "commission.minimumPerLine.eur",
         "is not an ISO 4217 currency code"),
        (lambda d: d.update(commission={"suppliers": {"s-1": 5}}), "commission.suppliers", "is not allowed"),
        # The blocked-list changes: each added entry checked as POST /admin/blocklist checks it.
        (lambda d: d.update(blocklist={"add": [{"kind": "taxId", "value": "DE123456789", "reason": "fraud"}]}),
         "blocklist.add.0.country", "is required for a tax id"),
        (lambda d: d.update(blocklist={"add": [FRAUD, {**FRAUD, "kind": "iban"}]}), "blocklist.add.1.kind",
         "must be one of taxId, domain, legalName"),
        (lambda d: d.update(blocklist={"add": [{**FRAUD, "reason": " "}]}), "blocklist.add.0.reason", "is required"),
        (lambda d: d.update(blocklist={"add": [{**FRAUD, "note": "x"}]}), "blocklist.add.0.note", "is not allowed"),
        (lambda d: d.update(blocklist={"add": [{"kind": "domain", "value": ".", "reason": "x"}]}),
         "blocklist.add.0.value", "is no domain: empty or too long once normalised"),
        (lambda d: d.update(blocklist={"add": ["DE123456789"]}), "blocklist.add.0", "is not of type 'object'"),
        (lambda d: d.update(blocklist={"add": [FRAUD, {**FRAUD, "value": "de 123 456 789"}]}), "blocklist.add.1",
         "is the entry of blocklist.add.0"),
        (lambda d: d.update(blocklist={"remove": ["not-an-entry!"]}), "blocklist.remove.0",
         "is not a blocked-list entry id"),
        (lambda d: d.update(blocklist={"add": [FRAUD], "remove": [entry_id(FRAUD)]}), "blocklist.remove.0",
         "is the entry blocklist.add.0 adds"),
        (lambda d: d.update(blocklist={"add": [FRAUD] * 2}), "blocklist.add", "has non-unique elements"),
        (lambda d: d.update(blocklist={"keep": []}), "blocklist.keep", "is not allowed"),
        (lambda d: d.update(blocklist={"add": [{**FRAUD, "value": f"DE{i:09d}", "reason": "r" * 1000}
                                                for i in range(70)]}),
         "blocklist", "more than 65536: the draft shares one item with the pack in force"),
    ],
)  # fmt: skip
def test_a_bad_pack_is_refused_naming_the_field(change, field, reason):
    document = defaults()
    change(document)
    with pytest.raises(InvalidInput) as refused:
        rule_packs.check(document)
    assert [(f.field, reason in f.reason) for f in refused.value.fields] == [(field, True)], (
        refused.value.fields
    )


def test_the_order_timings_are_the_pack_s_and_a_field_left_out_keeps_the_default(table, admin):
    from marketplace.tenant_settings import DEFAULT_ORDER_SETTINGS, order_settings

    assert order_settings(admin.tenant_id, table) == DEFAULT_ORDER_SETTINGS
    assert DEFAULT_ORDER_SETTINGS.view() == rule_packs.default_document()["orders"]
    document = defaults()
    document["orders"] = {"shipByHours": 24, "restockOnReturn": True}  # the rest left out
    rule_packs.put_draft(table, admin, document, None)
    assert order_settings(admin.tenant_id, table) == DEFAULT_ORDER_SETTINGS  # a draft is not in force
    rule_packs.activate(table, admin, None)
    assert order_settings(admin.tenant_id, table).view() == {
        **rule_packs.default_document()["orders"],
        "shipByHours": 24,
        "restockOnReturn": True,
    }


def test_a_pack_s_price_threshold_holds_a_15_percent_move_for_its_tenant_only(table, admin):
    """The listing's price test (priceMove, 20 % in schemas/listing_changes.json) with the pack's 10 %:
    a 15 % move on an ACTIVE listing waits for review there, and applies at once for another tenant."""
    from marketplace.principal import Principal

    other = Principal("ada", f"{admin.tenant_id}-other", frozenset({"admin"}))
    document = defaults()
    document["changes"] = {"listing": {"price": {"percent": 10}}}
    rule_packs.put_draft(table, admin, document, None)
    rule_packs.activate(table, admin, None)
    fields = rule_packs.active(table, admin.tenant_id).change_rules("listing")["fields"]
    assert fields["price"] == {
        "test": "priceMove",
        "percent": 10,
        "reason": "the price moves beyond the threshold",
    }
    assert fields["images"] == rule_packs.default().change_rules("listing")["fields"]["images"]  # the file's

    def move_15_percent(principal: Principal) -> dict[str, Any]:
        supplier_id = supplier(table, principal, "APPROVED")
        sku = listing(table, principal, supplier_id, "ACTIVE").split("/")[1]
        price = {"amount": 57.39, "currency": "EUR"}  # 49.90 + 15 %
        return Products(table).update(principal, supplier_id, sku, {"price": price}, None)

    held = move_15_percent(admin)
    assert (held["entity"], held["status"], held["reasons"]) == (
        "PRODUCT_PROPOSAL", "PENDING", [{"field": "price", "reason": "the price moves 15.0%, beyond 10%"}],
    )  # fmt: skip
    applied = move_15_percent(other)  # the default pack: the file's 20 %
    assert (applied["entity"], applied["status"], applied["price"]) == (
        "PRODUCT", "ACTIVE", {"amount": 57.39, "currency": "EUR"},
    )  # fmt: skip


# ------------------------------------------------------------------------------------------- draft, activation
def test_a_draft_changes_nothing_until_it_is_activated_and_the_step_says_which_pack_decided(table, admin):
    tenant = admin.tenant_id
    dutch = supplier(table, admin, "FLAGGED", country="NL", taxId="NL123456789B01")
    assert rule_packs.active_view(rule_packs.record(table, tenant)) == {
        "version": 0, "pack": defaults(), "revision": 0,
    }  # fmt: skip
    with pytest.raises(NotFound):
        rule_packs.draft_view(rule_packs.record(table, tenant))
    step = Suppliers(table).validation_step(tenant, dutch)
    assert (step["outcome"], step["rulePackVersion"], step["maxRounds"]) == ("FLAGGED", 0, 3)

    document = defaults()
    document["taxIds"]["NL"] = NL
    del document["corrections"]  # left out: the default's rounds
    draft = rule_packs.put_draft(table, admin, document, expected_revision=0)
    assert (draft["version"], draft["revision"], draft["pack"], draft["updatedBy"]) == (
        1,
        1,
        document,
        admin.actor,
    )
    assert rule_packs.active(table, tenant).version == 0
    assert Suppliers(table).validation_step(tenant, dutch)["outcome"] == "FLAGGED"

    with pytest.raises(PreconditionFailed):
        rule_packs.put_draft(table, admin, document, expected_revision=0)
    with pytest.raises(PreconditionFailed):
        rule_packs.activate(table, admin, expected_revision=7)
    active = rule_packs.activate(table, admin, expected_revision=1)
    assert (active["version"], active["revision"], active["pack"], active["activatedBy"]) == (
        1,
        2,
        document,
        admin.actor,
    )
    step = Suppliers(table).validation_step(tenant, dutch)
    assert (step["outcome"], step["flags"], step["rulePackVersion"], step["maxRounds"]) == (
        "APPROVED",
        [],
        1,
        3,
    )
    with pytest.raises(NotFound):
        rule_packs.activate(table, admin, None)  # the draft became the pack: none is left

    # The next draft is version 2; another tenant still has the defaults.
    assert rule_packs.put_draft(table, admin, defaults(), None)["version"] == 2
    assert rule_packs.active(table, f"other-{tenant}").version == 0


# ------------------------------------------------------------------------------------------- what-if
def test_the_what_if_names_each_record_the_draft_would_move_and_why_and_writes_nothing(table, admin):
    tenant = admin.tenant_id
    german = supplier(table, admin, "APPROVED")
    lamp = listing(table, admin, german, "ACTIVE")
    cheap = listing(table, admin, german, "ACTIVE", sku="CUP-1", price={"amount": 4, "currency": "EUR"})
    unsold = listing(table, admin, german, "FLAGGED", sku="BOX-1", attributes={})  # flagged: no material
    dutch = supplier(table, admin, "FLAGGED", country="NL", taxId="NL123456789B01")
    supplier(table, admin, "PENDING", country="NL", taxId="NL123456789B02")  # its workflow decides
    supplier(table, admin, "REJECTED", country="NL", taxId="NL123456789B03")  # final
    document = defaults()
    document["taxIds"]["NL"] = NL
    document["categories"]["home"]["price"]["max"] = 10
    rule_packs.put_draft(table, admin, document, None)
    before = items(table, tenant)

    answer = what_if.replay(table, admin, expected_revision=1)

    assert items(table, tenant) == before, "the what-if writes nothing"
    assert (answer["revision"], answer["activeVersion"], answer["draftVersion"]) == (1, 0, 1)
    # Replayed: APPROVED and FLAGGED suppliers, ACTIVE and FLAGGED listings (not PENDING, REJECTED).
    assert answer["examined"] == {"suppliers": 2, "listings": 3} and answer["complete"]
    assert answer["unchanged"] == 3  # the German supplier, the cup, the box still flagged
    assert sorted(answer["changes"], key=lambda c: c["id"]) == sorted([
        {"kind": "listing", "id": lamp, "status": "ACTIVE", "wouldBe": "FLAGGED",
         "reasons": [{"field": "price.amount", "reason": "must be between 1 and 10 for home"}]},
        {"kind": "supplier", "id": dutch, "status": "FLAGGED", "wouldBe": "APPROVED", "reasons": []},
    ], key=lambda c: c["id"])  # fmt: skip
    assert unsold and cheap  # replayed, unchanged
    with pytest.raises(PreconditionFailed):
        what_if.replay(table, admin, expected_revision=0)


def test_the_what_if_needs_a_draft(table, admin):
    with pytest.raises(NotFound):
        what_if.replay(table, admin)


def test_a_bulk_import_knows_the_categories_of_the_tenant_s_pack():
    from marketplace import imports
    from tests.unit.test_imports import COLUMNS, row

    document = defaults()
    document["categories"]["spaceships"] = {"price": {"min": 1, "max": 10**6}}
    pack = rule_packs.RulePack(1, document)
    assert imports.row_to_listing(COLUMNS, row(category="spaceships"), pack)[1] == []
    (unknown,) = imports.row_to_listing(COLUMNS, row(category="spaceships"))[1]  # the defaults
    assert (unknown.field, unknown.reason.split(" (")[0]) == ("category", "unknown category 'spaceships'")


# ------------------------------------------------------------------------------------------- blocked-list changes
def blocked_list_scene(table: Table, admin: Principal) -> tuple[dict[str, str], dict[str, Any]]:
    """Three suppliers and a draft that adds the tax ids of two (one APPROVED, one FLAGGED) to the
    blocked list and removes the stored entry of the third (FLAGGED: on the list now)."""
    ids = {name: supplier(table, admin, status) for name, status in
           (("approved", "APPROVED"), ("flagged", "FLAGGED"), ("listed", "FLAGGED"))}  # fmt: skip
    tax_ids = {name: Suppliers(table).get(admin.tenant_id, i)["taxId"] for name, i in ids.items()}
    stored = {"kind": "taxId", "value": tax_ids["listed"], "country": "DE", "reason": "chargebacks"}
    blocklist.add(admin, stored, table)
    document = defaults()
    document["blocklist"] = {
        "add": [{**FRAUD, "value": tax_ids["approved"]}, {**FRAUD, "value": tax_ids["flagged"]}],
        "remove": [entry_id(stored)],
    }
    return ids, document


def test_the_what_if_replays_the_blocked_list_as_the_draft_would_leave_it_and_writes_nothing(table, admin):
    ids, document = blocked_list_scene(table, admin)
    rule_packs.put_draft(table, admin, document, None)
    before = items(table, admin.tenant_id)

    answer = what_if.replay(table, admin)

    assert items(table, admin.tenant_id) == before, "the what-if writes nothing"
    blocked = [{"field": "taxId", "reason": "on the tenant's blocked list: fraud ring"}]
    assert sorted(answer["changes"], key=lambda c: c["id"]) == sorted([
        # The activation suspends an approved supplier claiming an added tax id at once.
        {"kind": "supplier", "id": ids["approved"], "status": "APPROVED", "wouldBe": "SUSPENDED", "reasons": blocked},
        # A flagged one is rejected at its next validation, as the rules say.
        {"kind": "supplier", "id": ids["flagged"], "status": "FLAGGED", "wouldBe": "REJECTED", "reasons": blocked},
        # The entry removed, nothing flags the third any more.
        {"kind": "supplier", "id": ids["listed"], "status": "FLAGGED", "wouldBe": "APPROVED", "reasons": []},
    ], key=lambda c: c["id"])  # fmt: skip

    # The pack in force carries no changes: a validation now reads the stored list alone.
    active = rule_packs.active(table, admin.tenant_id)
    outcome = {name: suppliers.rules(table, admin.tenant_id, Suppliers(table).get(admin.tenant_id, i), active)
               for name, i in ids.items()}  # fmt: skip
    assert {name: verdict.outcome for name, verdict in outcome.items()} == {
        "approved": "APPROVED", "flagged": "APPROVED", "listed": "REJECTED",
    }  # fmt: skip


def test_the_activation_makes_the_blocked_list_changes_and_keeps_none_in_the_pack(table, admin):
    ids, document = blocked_list_scene(table, admin)
    rule_packs.put_draft(table, admin, document, None)
    pk = keys.blocklist_pk(admin.tenant_id)
    entries_before = {i["SK"] for i in table.partition(pk, "TAXID#")}

    active = rule_packs.activate(table, admin, expected_revision=1)

    assert active["blocklist"] == {"added": 2, "removed": 1, "suspendedSuppliers": [ids["approved"]]}
    without = {k: v for k, v in document.items() if k != "blocklist"}
    assert (active["version"], active["pack"]) == (1, without)
    assert rule_packs.active_view(rule_packs.record(table, admin.tenant_id))["pack"] == without
    assert "blocklist" not in rule_packs.active(table, admin.tenant_id).document
    status = {name: Suppliers(table).get(admin.tenant_id, i) for name, i in ids.items()}
    assert (status["approved"]["status"], status["approved"]["statusReason"]) == (
        "SUSPENDED", "on the tenant's blocked list: fraud ring",
    )  # fmt: skip
    # The others keep their status: their next validation decides.
    assert status["flagged"]["status"] == status["listed"]["status"] == "FLAGGED"
    entries = {i["SK"]: i for i in table.partition(pk, "TAXID#")}
    added = {blocklist.checked(body)[1] for body in document["blocklist"]["add"]}
    assert set(entries) == (entries_before - {blocklist.decoded(document["blocklist"]["remove"][0])}) | added
    assert {(entries[sk]["createdBy"], entries[sk]["reason"]) for sk in added} == {
        (admin.actor, "fraud ring")
    }

    # Made again (a retry after a failure before the pack was written): the same list, nothing new.
    again = suspension.apply_blocklist_changes(
        admin, rule_packs.RulePack(1, document).blocklist_changes, table
    )
    assert again == {"added": 2, "removed": 0, "suspendedSuppliers": [ids["approved"]]}
    assert {i["SK"] for i in table.partition(pk, "TAXID#")} == set(entries)
    assert Suppliers(table).get(admin.tenant_id, ids["approved"])["version"] == status["approved"]["version"]


def test_a_pack_too_large_for_its_item_is_refused_before_it_is_written():
    """Within the schema's bounds, text of 4-byte characters could make a pack and its draft larger
    than their one 400 KB item; the write would fail at DynamoDB, so the check refuses it."""
    document = defaults()
    attributes = ["\U0001f600" * 63 + f"{n}" for n in range(10)]  # 10 names of 64 characters, 253 bytes
    document["categories"] = {  # the schema's most: 100 categories of 10 such attributes each
        f"c-{n}": {"price": {"min": 1, "max": 2}, "requiredAttributes": attributes} for n in range(100)
    }
    with pytest.raises(InvalidInput) as refused:
        rule_packs.check(document)
    ((field, reason),) = [(f.field, f.reason) for f in refused.value.fields]
    assert field == "(body)" and "400 KB item" in reason

"""A tenant's rule pack: what its admin tunes of the review rules, as one document validated by
``schemas/rule_pack.json``, versioned, with a draft that a what-if replays before it goes live
(``marketplace.what_if``; docs/tenants.md, docs/decisions.md D51).

The pack holds the tax-id formats of the countries whose suppliers are checked automatically, the
listing rules of each category, the order timings (``orders``, read through
``marketplace.tenant_settings.order_settings``), the correction rounds (``corrections``, returned by
the validation steps to the reviewed-record workflow, which ends its loop there), and optionally the
change gate's thresholds (``changes``, :meth:`RulePack.change_rules`, read where a change is scored)
and the commission defaults (``commission``, which ``marketplace.commission.Rules`` takes where the
tenant's commission rules say nothing). A draft may also carry changes to the tenant's blocked list
(``blocklist``: entries to add, entry ids to remove), which the what-if replays and the activation
makes through the blocked list's own writes; the entries stay their own items, so the pack in force
never holds them. A tenant that never activated a pack has the defaults
(``schemas/default_rule_pack.json``, today's rules) as version 0, so it behaves as before.

One item per tenant (``keys.tenant_settings_pk`` / ``keys.RULE_PACK_SK``): ``active`` and
``activeVersion`` (the pack in force), ``draft`` (the next one, while there is one), and the item's
``version``, which every write moves (the ``If-Match`` of the routes, shown as ``revision``). The
table's stream audits each write as it audits every audited record, so the trail holds every draft
and every activation. The validation steps read the active pack with :func:`active` (one strongly
consistent read per step, beside the record's own reads: an activation applies to the next
validation, in every instance) and return its version, which the workflow's execution keeps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, cached_property
from typing import Any

from marketplace import blocklist, gate, keys, money, schemas
from marketplace.clock import now_iso
from marketplace.errors import Conflict, FieldError, InvalidInput, NotFound, PreconditionFailed
from marketplace.principal import Principal
from marketplace.repository import Table

ENTITY = "RULE_PACK"
DEFAULTS_FILE = "default_rule_pack.json"
# The names of the pack's maps, checked here: OpenAPI 3.0 (which must say what schemas/ says) has no
# propertyNames. A category is named as a listing's (schemas/product.json).
COUNTRY = re.compile(r"[A-Z]{2}")
# A draft's blocked-list changes in all (UTF-8 JSON): the draft shares one 400 KB item with the pack in
# force, each at most about 140 KB without them; 100 entries of usual length take about 15 KB.
MAX_BLOCKLIST_BYTES = 64 * 1024
# A whole pack (UTF-8 JSON): the pack in force and the draft share one item of DynamoDB's 400 KB. The
# schema's bounds keep an ASCII pack near 140 KB; text of 4-byte characters could pass them.
MAX_PACK_BYTES = 180 * 1024


@dataclass(frozen=True)
class TaxIdRule:
    pattern: re.Pattern[str]  # the formats, any of which a normalized tax id must match in full
    description: str


@dataclass(frozen=True)
class RulePack:
    """A pack as the rules read it: ``version`` 0 is the defaults; a draft replayed by the what-if
    carries the version it would get."""

    version: int
    document: Mapping[str, Any]

    def tax_id_rule(self, country: str) -> TaxIdRule | None:
        rule = self.document["taxIds"].get(country)
        if rule is None:
            return None
        return TaxIdRule(_compiled(tuple(rule["formats"])), rule["description"])

    def category(self, name: str) -> Mapping[str, Any] | None:
        return self.document["categories"].get(name)

    @property
    def categories(self) -> Mapping[str, Any]:
        return self.document["categories"]

    def section(self, name: str) -> dict[str, Any]:
        """The pack's ``name`` section (``orders``, ``corrections``) in full: :func:`filled`."""
        return filled(self.document, name)

    @property
    def max_rounds(self) -> int:
        """How many validations a flagged record's workflow runs (``corrections.maxRounds``)."""
        return int(self.section("corrections")["maxRounds"])

    def change_rules(self, kind: str) -> dict[str, Any]:
        """The change gate's rules of ``kind`` (``supplier``, ``listing``) with this pack's thresholds
        (``changes``): each one it sets replaces the file's, the file keeps everything else."""
        return gate.tuned(gate.rules_for(kind), self.document.get("changes", {}).get(kind, {}))

    @property
    def commission(self) -> Mapping[str, Any]:
        """The commission defaults (``defaultPercent``, ``minimumPerLine``); empty without any."""
        return self.document.get("commission", {})

    @cached_property
    def blocklist_changes(self) -> blocklist.Changes:
        """A draft's changes to the blocked list (``blocklist``), which ``suppliers.rules`` reads over
        the entries stored, so that the what-if replays the list as the activation would leave it;
        none in a pack in force (its activation made them)."""
        return blocklist.changes_of(self.document.get("blocklist"))


@cache
def _compiled(formats: tuple[str, ...]) -> re.Pattern[str]:
    """A pack's formats as one regular expression. The schema admits only literal characters, \\d
    and classes of letters and digits, each with an optional count: every format compiles, and
    matching takes time linear in the tax id (no alternation or nesting inside one)."""
    return re.compile("|".join(f"(?:{f})" for f in formats))


@cache
def default_document() -> dict[str, Any]:
    document = json.loads((schemas.SCHEMA_DIR / DEFAULTS_FILE).read_text())
    return {k: v for k, v in document.items() if not k.startswith("$")}


def filled(document: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A pack document's ``name`` section with each field it leaves out at the default pack's value
    (the one rule of the sections whose fields are optional: ``orders``, ``corrections``)."""
    return {**default_document()[name], **document.get(name, {})}


@cache
def default() -> RulePack:
    return RulePack(0, default_document())


# ------------------------------------------------------------------------------------------- reads
def record(table: Table, tenant_id: str) -> dict[str, Any] | None:
    """The tenant's rule pack item as stored, or None while its admin has written none."""
    return table.get(keys.tenant_settings_pk(tenant_id), keys.RULE_PACK_SK)


def active(table: Table, tenant_id: str) -> RulePack:
    """The pack in force for ``tenant_id``: the one its admin activated last, else the defaults."""
    return active_of(record(table, tenant_id))


def active_of(item: Mapping[str, Any] | None) -> RulePack:
    if item is None or not item.get("activeVersion"):
        return default()
    return RulePack(int(item["activeVersion"]), item["active"])


def draft_of(item: Mapping[str, Any] | None) -> RulePack:
    """The item's draft, as the version its activation would make it (404 without one)."""
    if item is None or item.get("draft") is None:
        raise NotFound("no draft rule pack: PUT /admin/rule-packs/draft writes one")
    return RulePack(int(item.get("activeVersion") or 0) + 1, item["draft"])


def active_view(item: Mapping[str, Any] | None) -> dict[str, Any]:
    """GET /admin/rule-packs/active: the pack in force (``pack``: the document a draft takes), its
    version, who activated it and when, and the item's ``revision`` (0 while none is stored)."""
    pack = active_of(item)
    shown: dict[str, Any] = {"version": pack.version, "pack": pack.document, "revision": _revision(item)}
    for name in ("activatedAt", "activatedBy"):
        if item is not None and item.get(name) and pack.version:
            shown[name] = item[name]
    return shown


def draft_view(item: Mapping[str, Any] | None) -> dict[str, Any]:
    """The draft, with the version its activation would make it and who wrote it last."""
    pack = draft_of(item)
    assert item is not None  # draft_of answered 404 otherwise
    return {
        "version": pack.version,
        "pack": pack.document,
        "revision": _revision(item),
        "updatedAt": item["draftUpdatedAt"],
        "updatedBy": item["draftUpdatedBy"],
    }


def _revision(item: Mapping[str, Any] | None) -> int:
    return int(item["version"]) if item is not None else 0


# ------------------------------------------------------------------------------------------- checks
def check(body: Any) -> dict[str, Any]:
    """``body`` as a valid pack, or 400 naming each bad field: the schema, then what OpenAPI 3.0
    cannot say (the names of the maps, each minimum at most its maximum, a change threshold only for
    a field whose rule takes it, the commission minimums' currencies)."""
    if not isinstance(body, dict):
        raise InvalidInput([FieldError("(body)", "must be a JSON object")])
    schemas.validate("rule_pack", body)
    size = len(json.dumps(body, ensure_ascii=False).encode())
    if size > MAX_PACK_BYTES:
        raise InvalidInput([FieldError("(body)", f"is {size} bytes as JSON, more than {MAX_PACK_BYTES}: the pack "
                                                 "in force and its draft share one 400 KB item")])  # fmt: skip
    errors = [
        FieldError(f"taxIds.{country}"[:200], "is not an ISO 3166 country code (two capital letters)")
        for country in body["taxIds"]
        if not COUNTRY.fullmatch(country)
    ]
    category = schemas.Validator(schemas.validator("product").schema["properties"]["category"])
    errors += [
        FieldError(f"categories.{name}"[:200], "is not a category name (a-z, 0-9, -; 2 to 40)")
        for name in body["categories"]
        if not category.is_valid(name)
    ]
    for name, rule in body["categories"].items():
        for bound in ("price", "images"):
            low, high = (rule.get(bound) or {}).get("min"), (rule.get(bound) or {}).get("max")
            if low is not None and high is not None and Decimal(str(low)) > Decimal(str(high)):
                errors.append(
                    FieldError(f"categories.{name}.{bound}.min"[:200], f"is more than its max ({high})")
                )
    for kind, fields in body.get("changes", {}).items():
        rules = gate.rules_for(kind)["fields"]
        for name, thresholds in fields.items():
            rule = rules.get(name)
            if rule is None:
                errors.append(
                    FieldError(f"changes.{kind}.{name}"[:200], f"is not a field of the {kind} change rules")
                )
                continue
            errors += [
                FieldError(f"changes.{kind}.{name}.{threshold}"[:200],
                           f"does not apply: the field's test ({rule['test']}) takes no {threshold}")
                for threshold in thresholds
                if threshold not in gate.thresholds(rule)
            ]  # fmt: skip
    errors += _blocklist_errors(body.get("blocklist", {}))
    errors += money.minimum_errors(
        body.get("commission", {}).get("minimumPerLine", {}), "commission.minimumPerLine"
    )
    timings = filled(body, "orders")
    if timings["autoCancelUnshippedDays"] * 24 < timings["shipByHours"]:
        errors.append(FieldError("orders.autoCancelUnshippedDays",
                                 f"is less than shipByHours ({timings['shipByHours']} hours): an order "
                                 "would be cancelled before it is due to ship"))  # fmt: skip
    if errors:
        raise InvalidInput(errors)
    return body


def _blocklist_errors(section: Mapping[str, Any]) -> list[FieldError]:
    """Each added entry checked as ``POST /admin/blocklist`` checks it (``blocklist.checked``), none
    twice, each removed id an entry's id that no added entry has, and the section at most
    :data:`MAX_BLOCKLIST_BYTES`."""
    size = len(json.dumps(section, ensure_ascii=False).encode())
    if size > MAX_BLOCKLIST_BYTES:
        return [FieldError("blocklist", f"is {size} bytes, more than {MAX_BLOCKLIST_BYTES}: the draft shares "
                                        "one item with the pack in force; make the rest in another draft")]  # fmt: skip
    errors: list[FieldError] = []
    added: dict[str, int] = {}
    for n, body in enumerate(section.get("add", [])):
        try:
            _, sort_key = blocklist.checked(body)
        except InvalidInput as refused:
            errors += [FieldError(f"blocklist.add.{n}.{f.field}"[:200], f.reason) for f in refused.fields]
            continue
        if sort_key in added:
            errors.append(
                FieldError(f"blocklist.add.{n}", f"is the entry of blocklist.add.{added[sort_key]}")
            )
        added.setdefault(sort_key, n)
    for n, entry_id in enumerate(section.get("remove", [])):
        sort_key = blocklist.decoded(entry_id)
        if sort_key is None:
            errors.append(FieldError(f"blocklist.remove.{n}", "is not a blocked-list entry id"))
        elif sort_key in added:
            errors.append(
                FieldError(f"blocklist.remove.{n}", f"is the entry blocklist.add.{added[sort_key]} adds")
            )
    return errors


# ------------------------------------------------------------------------------------------- writes
def put_draft(table: Table, principal: Principal, body: Any, expected_revision: int | None) -> dict[str, Any]:
    """Write ``body`` as the tenant's draft (400 naming each bad field). ``expected_revision`` (the
    caller's If-Match; 0 while none is stored) must be the item's, else 412; a write that loses a
    race is 409. The pack in force does not change."""
    pack = check(body)
    tenant_id, at = principal.tenant_id, now_iso()
    current = record(table, tenant_id)
    expect_revision(current, expected_revision)
    draft = {"draft": pack, "draftUpdatedAt": at, "draftUpdatedBy": principal.actor,
             "updatedAt": at, "updatedBy": principal.actor}  # fmt: skip
    try:
        if current is None:
            item = {
                "PK": keys.tenant_settings_pk(tenant_id), "SK": keys.RULE_PACK_SK, "entity": ENTITY,
                "tenantId": tenant_id, "activeVersion": 0, "version": 1, "createdAt": at,
                "createdBy": principal.actor, **draft,
            }  # fmt: skip
            table.put_new(item)
            return draft_view(item)
        return draft_view(table.update(current["PK"], current["SK"], int(current["version"]), draft))
    except Conflict:
        raise Conflict("the rule pack changed meanwhile; read it and try again") from None


def activate(table: Table, principal: Principal, expected_revision: int | None) -> dict[str, Any]:
    """Make the draft the pack in force, as the next version (404 without a draft; 412 when
    ``expected_revision``, the revision the caller's what-if replayed, is no longer the item's).
    Records keep their status: the new rules decide each record's next validation.

    A draft's blocked-list changes (``blocklist``) are made first, each as its own route makes it
    (``suspension.apply_blocklist_changes``: an added tax id suspends the suppliers claiming it), then
    the pack in force is written without them (the entries live in their own items). A failure in
    between leaves the draft as it was: a retry makes the changes again (each can be made again),
    then writes the pack. The answer is the pack in force, with what the changes made (``blocklist``)
    when the draft had any."""
    # Imported here: suspension imports suppliers, which imports this module.
    from marketplace import suspension

    current = record(table, principal.tenant_id)
    pack = draft_of(current)
    expect_revision(current, expected_revision)
    assert current is not None
    made = None
    if "blocklist" in pack.document:
        made = suspension.apply_blocklist_changes(principal, pack.blocklist_changes, table)
    document = {k: v for k, v in pack.document.items() if k != "blocklist"}
    at = now_iso()
    try:
        written = table.update(
            current["PK"], current["SK"], int(current["version"]),
            {"active": document, "activeVersion": pack.version, "activatedAt": at,
             "activatedBy": principal.actor, "updatedAt": at, "updatedBy": principal.actor},
            remove=("draft", "draftUpdatedAt", "draftUpdatedBy"),
        )  # fmt: skip
    except Conflict:
        raise Conflict("the rule pack changed meanwhile; read it and try again") from None
    return {**active_view(written), "blocklist": made} if made is not None else active_view(written)


def expect_revision(current: Mapping[str, Any] | None, expected_revision: int | None) -> None:
    revision = _revision(current)
    if expected_revision is not None and expected_revision != revision:
        raise PreconditionFailed(f"the rule pack is at revision {revision}, not {expected_revision}")

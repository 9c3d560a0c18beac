"""Suppliers: registration, the onboarding rules, and the tax id claim.

A supplier is a reviewed record (:mod:`marketplace.reviewed`): its lifecycle (validate, flag, fix,
resume, reject, retry) is the one every reviewed kind shares; this module holds what is a
supplier's own. Keys are built in :mod:`marketplace.keys`; beside each record:

* a tax id claim: who claims a tax id in the tenant (the duplicate rule reads it), written in the
  same transaction as the record;
* the append-only audit trail, written by the audit function from the table's stream;
* the tenant's blocked list (:mod:`marketplace.blocklist`).
"""

from __future__ import annotations

import uuid
from typing import Any

from marketplace import audit, blocklist, keys, normalize, proposals, rule_packs, schemas
from marketplace.clock import now_iso
from marketplace.errors import Conflict, FieldError, InvalidInput
from marketplace.principal import Principal
from marketplace.repository import Page, Table, to_item
from marketplace.reviewed import PENDING, Kind, Records, Verdict, record_view
from marketplace.rule_packs import RulePack

ENTITY = "SUPPLIER"
# SUSPENDED: an approved supplier an admin took out of the marketplace (docs/decisions.md D40).
SUSPENDED = "SUSPENDED"
STATUSES = ("PENDING", "APPROVED", "FLAGGED", "REJECTED", SUSPENDED)
DUPLICATE_TAX_ID = "duplicate tax id: this tax id is already registered"
EDITABLE_FIELDS = ("legalName", "taxId", "country", "contactEmail", "website", "phone", "address")


# ------------------------------------------------------------------------------------------- rules
def tax_id_flag(country: str, tax_id: str, pack: RulePack | None = None) -> FieldError | None:
    """The tax id's flag by the formats of ``pack`` (the tenant's rule pack; the defaults if None):
    a country the pack does not name goes to manual review."""
    rule = (pack or rule_packs.default()).tax_id_rule(country)
    if rule is None:
        return FieldError("taxId", f"no automatic check for country {country}: manual review")
    if not rule.pattern.fullmatch(normalize.tax_id(tax_id)):
        return FieldError("taxId", f"invalid format for {country}: {rule.description}")
    return None


def domains_match(email: str, website: str) -> bool:
    """The contact's mail domain is the website's domain or a parent/child of it."""
    mail, site = normalize.email_domain(email), normalize.website_domain(website)
    if not mail or not site:
        return False
    return mail == site or mail.endswith("." + site) or site.endswith("." + mail)


def schema_check(record: dict[str, Any]) -> list[FieldError]:
    """The JSON Schema errors of a supplier record's editable fields."""
    return schemas.field_errors("supplier", {k: record[k] for k in EDITABLE_FIELDS if k in record})


def evaluate(
    record: dict[str, Any],
    duplicate_of: list[str],
    blocked: dict[str, str],
    schema_errors: list[FieldError] | None = None,
    pack: RulePack | None = None,
) -> Verdict:
    """The onboarding verdict for one supplier record.

    ``duplicate_of``: other suppliers of the tenant with the same tax id;
    ``blocked``: field -> reason, for the record's fields that are on the tenant's blocked list;
    ``schema_errors``: the record's JSON Schema errors when the caller has them already (the
    schema check is most of the step's CPU time: it runs once per record, not twice);
    ``pack``: the tenant's rule pack (the defaults if None).
    """
    if blocked:
        return Verdict(
            "REJECTED",
            tuple(FieldError(f, blocklist.why(reason)) for f, reason in sorted(blocked.items())),
        )
    if schema_errors is None:
        schema_errors = schema_check(record)
    if schema_errors:
        return Verdict("FLAGGED", tuple(schema_errors))
    flags: list[FieldError] = []
    tax_flag = tax_id_flag(record["country"], record["taxId"], pack)
    if tax_flag:
        flags.append(tax_flag)
    if duplicate_of:
        # Says no more than that: the flag is shown to the applicant (the supplier portal), and
        # another supplier's id is not theirs to know. The admin finds the other one by the tax id.
        flags.append(FieldError("taxId", DUPLICATE_TAX_ID))
    if not normalize.website_domain(record["website"]):
        # The schema's pattern admits URLs that urllib cannot read ("https://bracket]shop.de/"): a
        # flag with a reason that a fix clears, never a crash that no retry can fix.
        flags.append(FieldError("website", "is not a URL with a valid host name"))
    elif not domains_match(record["contactEmail"], record["website"]):
        flags.append(
            FieldError(
                "contactEmail",
                f"the email domain {normalize.email_domain(record['contactEmail'])} differs from the website's "
                f"domain {normalize.website_domain(record['website'])}",
            )
        )
    return Verdict("FLAGGED", tuple(flags)) if flags else Verdict("APPROVED")


def rules(table: Table, tenant_id: str, record: dict[str, Any], pack: RulePack | None = None) -> Verdict:
    """The onboarding verdict by ``pack`` (the tenant's rule pack, which the validation step reads;
    the defaults if None) with its lookups: the tenant's blocked list (as a draft pack's blocked-list
    changes would leave it, when ``pack`` is a draft the what-if replays), then other suppliers
    claiming the same tax id (looked up only for a record that passes its schema)."""
    schema_errors = schema_check(record)
    duplicate_of = duplicates(table, tenant_id, record) if not schema_errors else []
    changes = pack.blocklist_changes if pack is not None else None
    blocked = blocklist.matches(table, tenant_id, record, changes)
    return evaluate(record, duplicate_of, blocked, schema_errors, pack)


def duplicates(table: Table, tenant_id: str, record: dict[str, Any]) -> list[str]:
    page = table.query(tax_claim_pk(tenant_id, record["country"], record["taxId"]), limit=100)
    return [i["supplierId"] for i in page.items if i.get("supplierId") != record["supplierId"]]


# ------------------------------------------------------------------------------------------- keys
def record_key(tenant_id: str, supplier_id: str) -> tuple[str, str]:
    return keys.supplier_pk(tenant_id, supplier_id), keys.RECORD_SK


def tax_claim_pk(tenant_id: str, country: str, tax_id: str) -> str:
    return keys.tax_claim_pk(tenant_id, country, normalize.tax_id(tax_id))


def _claim(tenant_id: str, supplier_id: str, country: str, tax_id: str) -> dict[str, Any]:
    return {"PK": tax_claim_pk(tenant_id, country, tax_id), "SK": keys.tax_claim_sk(supplier_id),
            "entity": "TAXID_CLAIM", "tenantId": tenant_id, "supplierId": supplier_id}  # fmt: skip


# ------------------------------------------------------------------------------------------- views
def view(record: dict[str, Any]) -> dict[str, Any]:
    """A supplier record as the API shows it."""
    return record_view(record)


KIND = Kind(
    name=ENTITY, label="supplier", approved="APPROVED", statuses=STATUSES, indexed=frozenset(STATUSES),
    state_machine_env="SUPPLIER_ONBOARDING_STATE_MACHINE_ARN", key=record_key,
    record_id=lambda record: str(record["supplierId"]), view=view,
    correction_fields=lambda record: {"supplierId": record["supplierId"]},
    rules=rules, withdrawn=SUSPENDED,
)  # fmt: skip


# A change of an APPROVED supplier's identity waits for review as a proposal (marketplace.proposals).
PROPOSAL_KIND = proposals.kind_for(KIND, lambda table, approved: Suppliers(table).proposals.apply(approved))


# ------------------------------------------------------------------------------------------- service
class Suppliers:
    def __init__(self, table: Table | None = None) -> None:
        self.table = table or Table()
        self.records = Records(KIND, self.table)
        self.proposals = proposals.Proposals(
            KIND, PROPOSAL_KIND, "supplier", EDITABLE_FIELDS, self.table, also=self._claim_moves
        )

    def _claim_moves(
        self, tenant_id: str, live: dict[str, Any], merged: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The transaction items that move a supplier's tax id claim when its country or tax id changes."""
        old = _claim(tenant_id, live["supplierId"], live["country"], live["taxId"])
        new = _claim(tenant_id, live["supplierId"], merged["country"], merged["taxId"])
        if old["PK"] == new["PK"]:
            return []
        return [
            {"Delete": {"TableName": self.table.name, "Key": to_item({"PK": old["PK"], "SK": old["SK"]})}},
            {"Put": {"TableName": self.table.name, "Item": to_item(new)}},
        ]

    # ---------------------------------------------------------------- reads
    def get(self, tenant_id: str, supplier_id: str) -> dict[str, Any]:
        return self.records.get(tenant_id, supplier_id)

    def shown(self, tenant_id: str, supplier_id: str) -> dict[str, Any]:
        """The supplier as the API shows it, with its pending proposal if it has one."""
        return self.proposals.shown_with(view(self.get(tenant_id, supplier_id)), tenant_id, supplier_id)

    def list(self, tenant_id: str, status: str | None, limit: int, next_token: str | None) -> Page:
        if status is not None:
            return self.records.list_by_status(tenant_id, status, limit, next_token)
        return self.table.query(
            keys.entity_pk(tenant_id, ENTITY), index="GSI2", pk_name="GSI2PK", sk_name="GSI2SK",
            limit=limit, next_token=next_token, newest_first=True,
        )  # fmt: skip

    def history(self, tenant_id: str, supplier_id: str, limit: int, next_token: str | None) -> Page:
        return self.records.history(tenant_id, supplier_id, limit, next_token)

    # ---------------------------------------------------------------- the onboarding step
    def validation_step(self, tenant_id: str, supplier_id: str) -> dict[str, Any]:
        return self.records.validation_step(tenant_id, supplier_id)

    def review_step(self, kind: str | None, tenant_id: str, supplier_id: str) -> dict[str, Any]:
        """The workflow's Validate step for the record its input names: the supplier, or its
        proposal (``kind``), which the same rules review."""
        if kind == PROPOSAL_KIND.name:
            return Records(PROPOSAL_KIND, self.table).validation_step(tenant_id, supplier_id)
        return self.validation_step(tenant_id, supplier_id)

    # ---------------------------------------------------------------- writes
    def register(self, principal: Principal, body: Any) -> dict[str, Any]:
        schemas.validate("supplier", body)
        tenant_id, supplier_id, now = principal.tenant_id, str(uuid.uuid4()), now_iso()
        pk, sk = record_key(tenant_id, supplier_id)
        record = {
            "PK": pk, "SK": sk, "entity": ENTITY, "tenantId": tenant_id, "supplierId": supplier_id,
            **{k: body[k] for k in EDITABLE_FIELDS if k in body},
            "status": PENDING, "version": 1, "createdAt": now, "updatedAt": now,
            "createdBy": principal.actor, "updatedBy": principal.actor, **principal.marker(),
            **KIND.index_changes(tenant_id, PENDING, now),
            "GSI2PK": keys.entity_pk(tenant_id, ENTITY), "GSI2SK": keys.created_sk(now, supplier_id),
        }  # fmt: skip
        claim = _claim(tenant_id, supplier_id, body["country"], body["taxId"])
        self.table.transact(
            [
                {"Put": {"TableName": self.table.name, "Item": to_item(record),
                         "ConditionExpression": "attribute_not_exists(PK)"}},
                {"Put": {"TableName": self.table.name, "Item": to_item(claim)}},
            ]
        )  # fmt: skip
        return record

    def update(
        self, principal: Principal, supplier_id: str, body: Any, expected_version: int | None
    ) -> dict[str, Any]:
        """A change of fields; on a FLAGGED record this is the human fix the drain looks for. On an
        APPROVED one a high-risk change (or one to a pending proposal's fields) is not applied: the
        proposal it makes or amends is returned instead (marketplace.proposals)."""
        if not isinstance(body, dict) or not body:
            raise InvalidInput([FieldError("(body)", "must be an object with at least one field to change")])
        unknown = sorted(set(body) - set(EDITABLE_FIELDS))
        if unknown:
            raise InvalidInput([FieldError(f, "cannot be changed") for f in unknown])
        current = self.get(principal.tenant_id, supplier_id)
        changes, version = self.records.change_fields(current, body, expected_version)
        merged = {**{k: current[k] for k in EDITABLE_FIELDS if k in current}, **body}
        schemas.validate("supplier", merged)
        proposal = self.proposals.gate(principal, current, body)
        if proposal is not None:
            return proposal
        if not changes:
            return current
        tenant_id = principal.tenant_id
        values = {":expected": version, ":one": 1, ":now": now_iso(), ":by": principal.actor}
        names = {"#version": "version"}
        sets = ["#version = #version + :one", "updatedAt = :now", "updatedBy = :by"]
        for i, (name, value) in enumerate(changes.items()):
            names[f"#f{i}"] = name
            values[f":v{i}"] = value
            sets.append(f"#f{i} = :v{i}")
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": to_item({"PK": current["PK"], "SK": current["SK"]}),
                    "UpdateExpression": "SET " + ", ".join(sets),
                    "ConditionExpression": "#version = :expected",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": to_item(values),
                }
            }
        ]
        items += self._claim_moves(tenant_id, current, merged)
        self.table.transact(items)
        return self.get(tenant_id, supplier_id)

    def request_retry(self, principal: Principal, supplier_id: str) -> dict[str, Any]:
        return self.records.request_retry(principal, supplier_id)

    def reject(self, principal: Principal, supplier_id: str, reason: str) -> dict[str, Any]:
        return self.records.reject(principal, supplier_id, reason)

    # ---------------------------------------------------------------- erasure (GDPR, D48)
    def erase(self, principal: Principal, supplier_id: str, reason: str) -> dict[str, Any]:
        """Remove the supplier's contact details from its record (one versioned write: its audit
        entry is the erasure, ``erasedAt``/``erasedBy``/``erasureReason``) and mask them in its
        audit entries (their commitments stay, so every hash still holds). Erasing again answers
        the supplier as it is. Refused (409) while its onboarding workflow runs (PENDING) or a
        change to it waits for review: either would carry the details on."""
        tenant_id = principal.tenant_id
        current = self.get(tenant_id, supplier_id)
        if current["status"] == PENDING:
            raise Conflict(
                f"the supplier is {PENDING}: its onboarding is running; erase it once decided",
                [FieldError("status", f"is {PENDING}")],
            )
        if self.proposals.current(tenant_id, supplier_id) is not None:
            raise Conflict("a change to the supplier waits for review; approve or reject it first",
                           [FieldError("proposal", "is pending")])  # fmt: skip
        personal = audit.AUDITED[ENTITY].personal
        record = current
        if any(current.get(name) is not None for name in personal) or not current.get(audit.ERASED_AT):
            at = now_iso()
            changes: dict[str, Any] = dict.fromkeys(personal)
            changes.update({audit.ERASED_AT: at, "erasedBy": principal.actor, "erasureReason": reason,
                            "updatedAt": at, "updatedBy": principal.actor})  # fmt: skip
            try:
                record = self.table.update(current["PK"], current["SK"], int(current["version"]), changes)
            except Conflict:
                raise Conflict("the supplier changed meanwhile; erase it again") from None
        masked = audit.mask_trail(self.table, current["PK"], current["SK"])
        return {"supplier": view(record), "maskedEntries": masked}

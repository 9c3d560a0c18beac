"""Suppliers: registration, the onboarding rules, the human fix, and the audit trail.

Records live in the single table under ``TENANT#<t>#SUPPLIER#<id>`` / ``RECORD``; beside each:

* ``TENANT#<t>#TAXID#<country>#<tax id>`` / ``SUPPLIER#<id>``: who claims a tax id in the tenant
  (the duplicate rule reads it), written in the same transaction as the record;
* ``TENANT#<t>#SUPPLIER#<id>`` / ``AUDIT#<time>#<event id>``: the append-only audit trail, written
  by the audit function from the table's stream;
* ``TENANT#<t>#BLOCKLIST`` / ``TAXID#…``, ``DOMAIN#…``, ``NAME#…``: the tenant's blocked list.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from marketplace import audit, keys, schemas
from marketplace.errors import Conflict, FieldError, InvalidInput, NotFound
from marketplace.principal import Principal
from marketplace.repository import Page, Table, _translate, to_item

ENTITY = "SUPPLIER"
STATUSES = ("PENDING", "APPROVED", "FLAGGED", "REJECTED")
EDITABLE_FIELDS = ("legalName", "taxId", "country", "contactEmail", "website", "phone", "address")
SYSTEM_FIELD = "(system)"

# Tax id formats by country; a country without a rule goes to manual review.
TAX_ID_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "US": (re.compile(r"\d{2}-\d{7}"), "a US EIN has the form NN-NNNNNNN"),
    "GB": (re.compile(r"GB(\d{9}|\d{12})"), "a GB VAT number is GB followed by 9 or 12 digits"),
    "DE": (re.compile(r"DE\d{9}"), "a DE VAT number is DE followed by 9 digits"),
    "FR": (re.compile(r"FR[0-9A-HJ-NP-Z]{2}\d{9}"), "a FR VAT number is FR, 2 characters, then 9 digits"),
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Verdict:
    outcome: str  # APPROVED | FLAGGED | REJECTED
    flags: tuple[FieldError, ...] = ()


def normalize_tax_id(tax_id: str) -> str:
    return re.sub(r"[\s]", "", tax_id).upper()


def tax_id_flag(country: str, tax_id: str) -> FieldError | None:
    rule = TAX_ID_RULES.get(country)
    if rule is None:
        return FieldError("taxId", f"no automatic check for country {country}: manual review")
    pattern, description = rule
    if not pattern.fullmatch(normalize_tax_id(tax_id)):
        return FieldError("taxId", f"invalid format for {country}: {description}")
    return None


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].strip().lower().rstrip(".")


def website_domain(website: str) -> str:
    host = (urlsplit(website.strip()).hostname or "").lower().rstrip(".")
    return host.removeprefix("www.")


def domains_match(email: str, website: str) -> bool:
    """The contact's mail domain is the website's domain or a parent/child of it."""
    mail, site = email_domain(email), website_domain(website)
    if not mail or not site:
        return False
    return mail == site or mail.endswith("." + site) or site.endswith("." + mail)


def normalize_name(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", " ", folded).strip()


def blocklist_keys(record: dict[str, Any]) -> dict[str, str]:
    """Blocked-list sort keys a record could match, by the field they come from."""
    found = {}
    if record.get("taxId") and record.get("country"):
        found["taxId"] = f"TAXID#{record['country']}#{normalize_tax_id(record['taxId'])}"
    if record.get("contactEmail"):
        found["contactEmail"] = f"DOMAIN#{email_domain(record['contactEmail'])}"
    if record.get("website"):
        found["website"] = f"DOMAIN#{website_domain(record['website'])}"
    if record.get("legalName"):
        found["legalName"] = f"NAME#{normalize_name(record['legalName'])}"
    return found


def schema_check(record: dict[str, Any]) -> list[FieldError]:
    """The JSON Schema errors of a supplier record's editable fields."""
    return schemas.field_errors("supplier", {k: record[k] for k in EDITABLE_FIELDS if k in record})


def evaluate(
    record: dict[str, Any],
    duplicate_of: list[str],
    blocked: dict[str, str],
    schema_errors: list[FieldError] | None = None,
) -> Verdict:
    """The onboarding verdict for one supplier record.

    ``duplicate_of``: other suppliers of the tenant with the same tax id;
    ``blocked``: field -> reason, for the record's fields that are on the tenant's blocked list;
    ``schema_errors``: the record's JSON Schema errors when the caller has them already (the
    schema check is most of the step's CPU time: it runs once per record, not twice).
    """
    if blocked:
        return Verdict(
            "REJECTED",
            tuple(
                FieldError(f, f"on the tenant's blocked list: {reason}")
                for f, reason in sorted(blocked.items())
            ),
        )
    if schema_errors is None:
        schema_errors = schema_check(record)
    if schema_errors:
        return Verdict("FLAGGED", tuple(schema_errors))
    flags: list[FieldError] = []
    tax_flag = tax_id_flag(record["country"], record["taxId"])
    if tax_flag:
        flags.append(tax_flag)
    if duplicate_of:
        flags.append(
            FieldError("taxId", f"duplicate tax id: also used by supplier {', '.join(sorted(duplicate_of))}")
        )
    if not domains_match(record["contactEmail"], record["website"]):
        flags.append(
            FieldError(
                "contactEmail",
                f"the email domain {email_domain(record['contactEmail'])} differs from the website's "
                f"domain {website_domain(record['website'])}",
            )
        )
    return Verdict("FLAGGED", tuple(flags)) if flags else Verdict("APPROVED")


# ------------------------------------------------------------------------------------------- keys
def record_key(tenant_id: str, supplier_id: str) -> tuple[str, str]:
    return keys.supplier_pk(tenant_id, supplier_id), keys.RECORD_SK


def tax_claim_pk(tenant_id: str, country: str, tax_id: str) -> str:
    return f"TENANT#{tenant_id}#TAXID#{country}#{normalize_tax_id(tax_id)}"


def blocklist_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}#BLOCKLIST"


def by_tenant_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}#{ENTITY}"


# ------------------------------------------------------------------------------------------- views
_INTERNAL = {"PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "entity", "tenantId", "expiresAt"}


def view(record: dict[str, Any]) -> dict[str, Any]:
    """A supplier record as the API shows it."""
    shown = {k: v for k, v in record.items() if k not in _INTERNAL}
    if record.get("status") != "FLAGGED" and record.get("status") != "REJECTED":
        shown.pop("flags", None)
    return shown


# ------------------------------------------------------------------------------------------- service
class Suppliers:
    def __init__(self, table: Table | None = None) -> None:
        self.table = table or Table()

    # ---------------------------------------------------------------- reads
    def get(self, tenant_id: str, supplier_id: str) -> dict[str, Any]:
        record = self.table.get(*record_key(tenant_id, supplier_id))
        if record is None or record.get("entity") != ENTITY or record.get("tenantId") != tenant_id:
            raise NotFound(f"no supplier {supplier_id}")
        return record

    def list(self, tenant_id: str, status: str | None, limit: int, next_token: str | None) -> Page:
        if status is not None:
            if status not in STATUSES:
                raise InvalidInput([FieldError("status", f"must be one of {', '.join(STATUSES)}")])
            return self.table.query(
                keys.status_gsi_pk(tenant_id, ENTITY, status),
                index="GSI1", pk_name="GSI1PK", sk_name="GSI1SK",
                limit=limit, next_token=next_token, newest_first=True,
            )  # fmt: skip
        return self.table.query(
            by_tenant_pk(tenant_id), index="GSI2", pk_name="GSI2PK", sk_name="GSI2SK",
            limit=limit, next_token=next_token, newest_first=True,
        )  # fmt: skip

    def history(self, tenant_id: str, supplier_id: str, limit: int, next_token: str | None) -> Page:
        self.get(tenant_id, supplier_id)  # 404 for unknown and other tenants' ids
        return self.table.query(
            keys.supplier_pk(tenant_id, supplier_id),
            sk_prefix=audit.trail_prefix(keys.RECORD_SK),
            limit=limit,
            next_token=next_token,
        )

    def duplicates(self, tenant_id: str, record: dict[str, Any]) -> list[str]:
        page = self.table.query(tax_claim_pk(tenant_id, record["country"], record["taxId"]), limit=100)
        return [i["supplierId"] for i in page.items if i.get("supplierId") != record["supplierId"]]

    def blocked(self, tenant_id: str, record: dict[str, Any]) -> dict[str, str]:
        candidates = blocklist_keys(record)
        found = {}
        for field_name, sort_key in candidates.items():
            entry = self.table.get(blocklist_pk(tenant_id), sort_key)
            if entry is not None:
                found[field_name] = entry.get("reason") or "blocked"
        return found

    # ---------------------------------------------------------------- the onboarding step
    def validation_step(self, tenant_id: str, supplier_id: str) -> dict[str, Any]:
        """What the state machine's Validate step returns: outcome, flags, and the version read.

        ``flagsAttribute`` is the flags as a DynamoDB attribute value, so that the state machine's
        DynamoDB integration can write it as it is.
        """
        record = self.get(tenant_id, supplier_id)
        schema_errors = schema_check(record)
        duplicate_of = self.duplicates(tenant_id, record) if not schema_errors else []
        verdict = evaluate(record, duplicate_of, self.blocked(tenant_id, record), schema_errors)
        flags = [f.as_dict() for f in verdict.flags]
        return {
            "outcome": verdict.outcome,
            "flags": flags,
            "flagsAttribute": to_item({"flags": flags})["flags"],
            "version": int(record["version"]),
        }

    # ---------------------------------------------------------------- writes
    def register(self, principal: Principal, body: Any) -> dict[str, Any]:
        principal.require("retailer", "admin")
        schemas.validate("supplier", body)
        tenant_id, supplier_id, now = principal.tenant_id, str(uuid.uuid4()), now_iso()
        pk, sk = record_key(tenant_id, supplier_id)
        record = {
            "PK": pk, "SK": sk, "entity": ENTITY, "tenantId": tenant_id, "supplierId": supplier_id,
            **{k: body[k] for k in EDITABLE_FIELDS if k in body},
            "status": "PENDING", "version": 1, "createdAt": now, "updatedAt": now,
            "createdBy": actor(principal), "updatedBy": actor(principal),
            "GSI1PK": keys.status_gsi_pk(tenant_id, ENTITY, "PENDING"), "GSI1SK": now,
            "GSI2PK": by_tenant_pk(tenant_id), "GSI2SK": f"{now}#{supplier_id}",
        }  # fmt: skip
        claim = {
            "PK": tax_claim_pk(tenant_id, body["country"], body["taxId"]),
            "SK": f"SUPPLIER#{supplier_id}", "entity": "TAXID_CLAIM", "tenantId": tenant_id,
            "supplierId": supplier_id,
        }  # fmt: skip
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table.name,
                        "Item": to_item(record),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                {"Put": {"TableName": self.table.name, "Item": to_item(claim)}},
            ]
        )
        return record

    def update(
        self, principal: Principal, supplier_id: str, body: Any, expected_version: int | None
    ) -> dict[str, Any]:
        """A change of fields; on a FLAGGED record this is the human fix the drain looks for."""
        principal.require("retailer", "admin")
        if not isinstance(body, dict) or not body:
            raise InvalidInput([FieldError("(body)", "must be an object with at least one field to change")])
        unknown = sorted(set(body) - set(EDITABLE_FIELDS))
        if unknown:
            raise InvalidInput([FieldError(f, "cannot be changed") for f in unknown])
        current = self.get(principal.tenant_id, supplier_id)
        if current["status"] == "REJECTED":
            raise Conflict("a rejected supplier cannot be changed")
        version = int(current["version"])
        if expected_version is not None and expected_version != version:
            raise Conflict(f"the supplier is at version {version}, not {expected_version}")
        merged = {**{k: current[k] for k in EDITABLE_FIELDS if k in current}, **body}
        schemas.validate("supplier", merged)
        now = now_iso()
        tenant_id = principal.tenant_id
        pk, sk = record_key(tenant_id, supplier_id)
        changes = {k: v for k, v in body.items() if current.get(k) != v}
        if not changes:
            return current
        values = {":expected": version, ":one": 1, ":now": now, ":by": actor(principal)}
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
                    "Key": to_item({"PK": pk, "SK": sk}),
                    "UpdateExpression": "SET " + ", ".join(sets),
                    "ConditionExpression": "#version = :expected",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": to_item(values),
                }
            }
        ]
        old_claim = tax_claim_pk(tenant_id, current["country"], current["taxId"])
        new_claim = tax_claim_pk(tenant_id, merged["country"], merged["taxId"])
        if old_claim != new_claim:
            items.append({"Delete": {"TableName": self.table.name,
                                     "Key": to_item({"PK": old_claim, "SK": f"SUPPLIER#{supplier_id}"})}})  # fmt: skip
            claim = {"PK": new_claim, "SK": f"SUPPLIER#{supplier_id}", "entity": "TAXID_CLAIM",
                     "tenantId": tenant_id, "supplierId": supplier_id}  # fmt: skip
            items.append({"Put": {"TableName": self.table.name, "Item": to_item(claim)}})
        self._transact(items)
        return self.get(tenant_id, supplier_id)

    def request_retry(self, principal: Principal, supplier_id: str) -> dict[str, Any]:
        """An admin asks for a flagged record to be validated again without changing a field
        (after a system error was cured): bumps the version, which is what the drain looks for."""
        principal.require("admin")
        current = self.get(principal.tenant_id, supplier_id)
        if current["status"] != "FLAGGED":
            raise Conflict(f"only a FLAGGED supplier can be retried; this one is {current['status']}")
        return self.table.update(
            *record_key(principal.tenant_id, supplier_id),
            expected_version=int(current["version"]),
            changes={"updatedAt": now_iso(), "updatedBy": actor(principal), "retryRequestedAt": now_iso()},
        )

    def flag_for_operator(
        self, tenant_id: str, supplier_id: str, expected_version: int, reason: str
    ) -> dict[str, Any]:
        """Flag a record whose workflow stopped on a system error before any verdict, so that it
        shows in the correction queue (Conflict if the record changed since it was read)."""
        now = now_iso()
        return self.table.update(
            *record_key(tenant_id, supplier_id),
            expected_version=expected_version,
            changes={
                "status": "FLAGGED",
                "flags": [{"field": SYSTEM_FIELD, "reason": reason}],
                "updatedAt": now,
                "updatedBy": "system:correction-drain",
                "GSI1PK": keys.status_gsi_pk(tenant_id, ENTITY, "FLAGGED"),
                "GSI1SK": now,
            },
        )

    def reject(self, principal: Principal, supplier_id: str, reason: str) -> dict[str, Any]:
        principal.require("admin")
        current = self.get(principal.tenant_id, supplier_id)
        if current["status"] == "REJECTED":
            return current
        if current["status"] == "APPROVED":
            raise Conflict("an approved supplier is not in the correction queue")
        now = now_iso()
        return self.table.update(
            *record_key(principal.tenant_id, supplier_id),
            expected_version=int(current["version"]),
            changes={
                "status": "REJECTED",
                "statusReason": reason,
                "updatedAt": now,
                "updatedBy": actor(principal),
                "GSI1PK": keys.status_gsi_pk(principal.tenant_id, ENTITY, "REJECTED"),
                "GSI1SK": now,
            },
        )

    def _transact(self, items: list[dict[str, Any]]) -> None:
        try:
            self.table.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            raise _translate(error) from error


def actor(principal: Principal) -> str:
    return f"{'+'.join(sorted(principal.roles)) or 'user'}:{principal.subject}"

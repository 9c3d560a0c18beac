"""A tenant's blocked list: suppliers matching an entry (tax id, domain or legal name) are rejected
by onboarding."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as default
from typing import Any

from marketplace import keys, normalize
from marketplace.clock import now_iso
from marketplace.errors import Conflict, FieldError, InvalidInput, NotFound
from marketplace.principal import Principal
from marketplace.repository import Page, Table

KINDS = ("taxId", "domain", "legalName")
# The sort keys' forms (``keys.blocked_tax_id_sk``, ``blocked_domain_sk``, ``blocked_name_sk``).
_PREFIXES = ("TAXID#", "DOMAIN#", "NAME#")


@dataclass(frozen=True)
class Changes:
    """Changes to the blocked list not yet made, as :func:`matches` reads them: a draft rule pack's
    ``blocklist`` section (``RulePack.blocklist_changes``), whose activation makes them. ``added``:
    the entries it adds (their fields, as :func:`checked` answers them) by sort key; ``removed``: the
    sort keys of the entries it removes."""

    added: Mapping[str, Mapping[str, Any]] = default(default_factory=dict)
    removed: frozenset[str] = frozenset()


def why(reason: str) -> str:
    """The flag's reason of a field on the blocked list, and a supplier's suspension's for it."""
    return f"on the tenant's blocked list: {reason}"


def changes_of(section: Mapping[str, Any] | None) -> Changes:
    """A pack's ``blocklist`` section (checked already: ``rule_packs.check``) as :class:`Changes`."""
    if not section:
        return Changes()
    added = {}
    for body in section.get("add", []):
        fields, sort_key = checked(body)
        added[sort_key] = fields
    removed = frozenset(filter(None, (decoded(i) for i in section.get("remove", []))))
    return Changes(added, removed)


def entry_sort_key(kind: str, value: str, country: str | None) -> str:
    if kind == "taxId":
        return keys.blocked_tax_id_sk(str(country), normalize.tax_id(value))
    if kind == "domain":
        return keys.blocked_domain_sk(normalize.domain(value))
    return keys.blocked_name_sk(normalize.name(value))


# DynamoDB's limit on a sort key: a longer key cannot be an entry, and asking for it would fail.
MAX_KEY_BYTES = 1024


def candidate_keys(record: dict[str, Any]) -> dict[str, list[str]]:
    """The blocked-list sort keys a supplier record could match, by the field they come from: each
    field in its normal form (``marketplace.normalize``), and a domain with every parent domain, so
    that an entry blocks its subdomains. Keys too long to be an entry are not asked for."""
    found: dict[str, list[str]] = {}
    if record.get("taxId") and record.get("country"):
        found["taxId"] = [keys.blocked_tax_id_sk(record["country"], normalize.tax_id(record["taxId"]))]
    if record.get("contactEmail"):
        found["contactEmail"] = _domain_keys(normalize.email_domain(record["contactEmail"]))
    if record.get("website"):
        found["website"] = _domain_keys(normalize.website_domain(record["website"]))
    name = normalize.name(record["legalName"]) if record.get("legalName") else ""
    if name:
        found["legalName"] = [keys.blocked_name_sk(name)]
    return {field: [k for k in sks if len(k.encode()) <= MAX_KEY_BYTES] for field, sks in found.items()}


def _domain_keys(normal: str) -> list[str]:
    return [keys.blocked_domain_sk(d) for d in normalize.domain_and_parents(normal)]


def matches(
    table: Table, tenant_id: str, record: dict[str, Any], changes: Changes | None = None
) -> dict[str, str]:
    """field -> reason, for the record's fields that are on the tenant's blocked list (a domain by
    its most specific entry); with ``changes``, on the list as they would leave it (an entry they
    add counts, one they remove does not)."""
    candidates = candidate_keys(record)
    wanted = [sk for sks in candidates.values() for sk in sks]
    entries = table.batch_get((keys.blocklist_pk(tenant_id), sk) for sk in wanted)
    reasons = {e["SK"]: e.get("reason") or "blocked" for e in entries}
    if changes is not None:
        reasons = {sk: reason for sk, reason in reasons.items() if sk not in changes.removed}
        reasons.update({sk: str(changes.added[sk]["reason"]) for sk in wanted if sk in changes.added})
    found = {}
    for field, sks in candidates.items():
        hit = next((sk for sk in sks if sk in reasons), None)
        if hit is not None:
            found[field] = reasons[hit]
    return found


def entry_id(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def decoded(entry_id_value: str) -> str | None:
    """The sort key an entry id names, or None when it names none (not an id :func:`entry_id` makes)."""
    try:
        sort_key = base64.urlsafe_b64decode(entry_id_value + "=" * (-len(entry_id_value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return sort_key if sort_key.startswith(_PREFIXES) and entry_id(sort_key) == entry_id_value else None


def _sort_key_of(entry_id_value: str) -> str:
    sort_key = decoded(entry_id_value)
    if sort_key is None:
        raise NotFound(f"no blocked-list entry {entry_id_value}")
    return sort_key


_COUNTRY = re.compile("[A-Z]{2}")  # "A1" is upper case to str.isupper()


def _controls(text: str, allowed: str = "") -> bool:
    return any(unicodedata.category(c) == "Cc" and c not in allowed for c in text)


def checked(body: Any) -> tuple[dict[str, Any], str]:
    """An entry as ``POST /admin/blocklist`` takes it (``kind``, ``value``, ``reason``, ``country`` for
    a tax id), as its stored fields (trimmed) and its sort key, or 400 naming each bad field. The one
    check of an entry: :func:`add` and a draft rule pack's ``blocklist.add`` (``marketplace.rule_packs``)."""
    if not isinstance(body, dict):
        raise InvalidInput([FieldError("(body)", "must be a JSON object")])
    errors = []
    kind, value, reason = body.get("kind"), body.get("value"), body.get("reason")
    country = body.get("country")
    if kind not in KINDS:
        errors.append(FieldError("kind", f"must be one of {', '.join(KINDS)}"))
    if not isinstance(value, str) or not value.strip() or len(value) > 200 or _controls(value):
        errors.append(FieldError("value", "is required: 1 to 200 characters, no control characters"))
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 1000 or _controls(reason, "\n\r\t"):
        errors.append(FieldError("reason", "is required: 1 to 1000 characters, no control characters"))
    if (kind == "taxId" or country is not None) and not (
        isinstance(country, str) and _COUNTRY.fullmatch(country)
    ):
        errors.append(FieldError("country", "is required for a tax id: ISO 3166-1 alpha-2"))
    extra = sorted(set(body) - {"kind", "value", "reason", "country"})
    errors.extend(FieldError(f, "is not allowed") for f in extra)
    if errors:
        raise InvalidInput(errors)
    assert isinstance(kind, str) and isinstance(value, str) and isinstance(reason, str)
    sort_key = entry_sort_key(kind, value, country)
    if sort_key.endswith("#") or len(sort_key.encode()) > MAX_KEY_BYTES:
        # Nothing left once normalised (".", "---"), or longer than a key: it could match nothing.
        raise InvalidInput([FieldError("value", f"is no {kind}: empty or too long once normalised")])
    fields = {"kind": kind, "value": value.strip(), "reason": reason.strip(),
              "country": country if kind == "taxId" else None}  # fmt: skip
    return fields, sort_key


def add(principal: Principal, body: dict[str, Any], table: Table | None = None) -> dict[str, Any]:
    """Write the entry (:func:`checked`); the same entry again is written over (by whom, when: the
    later call's)."""
    fields, sort_key = checked(body)
    now = now_iso()
    entry = {
        "PK": keys.blocklist_pk(principal.tenant_id), "SK": sort_key, "entity": "BLOCKLIST",
        "tenantId": principal.tenant_id, **fields, "createdAt": now, "createdBy": principal.actor,
        "version": 1, "updatedAt": now, "updatedBy": principal.actor,
    }  # fmt: skip
    (table or Table()).put(entry)
    return entry


def list_entries(tenant_id: str, limit: int, next_token: str | None) -> Page:
    # The partition also holds the entries' audit trail (D48), whose keys sort before every entry's.
    return Table().query(
        keys.blocklist_pk(tenant_id), limit=limit, next_token=next_token, sk_above=keys.after_audit()
    )


def remove(principal: Principal, entry_id_value: str, table: Table | None = None) -> None:
    """Who removes the entry is written on it first (one versioned write), so that the audit trail's
    deletion names them: a deletion carries nothing but the item as it was. 404 when there is none."""
    sort_key = _sort_key_of(entry_id_value)
    table, pk = table or Table(), keys.blocklist_pk(principal.tenant_id)
    existing = table.get(pk, sort_key)
    if existing is None:
        raise NotFound(f"no blocked-list entry {entry_id_value}")
    now = now_iso()
    try:
        table.update(pk, sort_key, int(existing.get("version", 1)),
                     {"removedAt": now, "removedBy": principal.actor, "updatedAt": now, "updatedBy": principal.actor})  # fmt: skip
    except Conflict:
        raise Conflict(f"blocked-list entry {entry_id_value} changed meanwhile; try again") from None
    table.delete(pk, sort_key)


def view(entry: dict[str, Any]) -> dict[str, Any]:
    shown = {k: entry.get(k) for k in ("kind", "value", "country", "reason", "createdAt", "createdBy")}
    return {"entryId": entry_id(entry["SK"]), **{k: v for k, v in shown.items() if v is not None}}

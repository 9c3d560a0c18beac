"""A tenant's blocked list: suppliers matching an entry (tax id, domain or legal name) are rejected
by onboarding."""

from __future__ import annotations

import base64
import binascii
import unicodedata
from typing import Any

from marketplace.errors import FieldError, InvalidInput, NotFound
from marketplace.principal import Principal
from marketplace.repository import Page, Table
from marketplace.suppliers import actor, blocklist_pk, normalize_name, normalize_tax_id, now_iso

KINDS = ("taxId", "domain", "legalName")


def _sort_key(kind: str, value: str, country: str | None) -> str:
    if kind == "taxId":
        return f"TAXID#{country}#{normalize_tax_id(value)}"
    if kind == "domain":
        return f"DOMAIN#{value.strip().lower().removeprefix('www.').rstrip('.')}"
    return f"NAME#{normalize_name(value)}"


def entry_id(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def _sort_key_of(entry_id_value: str) -> str:
    try:
        return base64.urlsafe_b64decode(entry_id_value + "=" * (-len(entry_id_value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise NotFound(f"no blocked-list entry {entry_id_value}") from None


def _controls(text: str, allowed: str = "") -> bool:
    return any(unicodedata.category(c) == "Cc" and c not in allowed for c in text)


def add(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
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
        isinstance(country, str) and len(country) == 2 and country.isascii() and country.isupper()
    ):
        errors.append(FieldError("country", "is required for a tax id: ISO 3166-1 alpha-2"))
    extra = sorted(set(body) - {"kind", "value", "reason", "country"})
    errors.extend(FieldError(f, "is not allowed") for f in extra)
    if errors:
        raise InvalidInput(errors)
    sort_key = _sort_key(kind, value, country)
    entry = {
        "PK": blocklist_pk(principal.tenant_id), "SK": sort_key, "entity": "BLOCKLIST",
        "tenantId": principal.tenant_id, "kind": kind, "value": value.strip(), "reason": reason.strip(),
        "country": country if kind == "taxId" else None, "createdAt": now_iso(), "createdBy": actor(principal),
    }  # fmt: skip
    Table().put(entry)
    return entry


def list_entries(tenant_id: str, limit: int, next_token: str | None) -> Page:
    return Table().query(blocklist_pk(tenant_id), limit=limit, next_token=next_token)


def remove(tenant_id: str, entry_id_value: str) -> None:
    sort_key = _sort_key_of(entry_id_value)
    table = Table()
    if table.get(blocklist_pk(tenant_id), sort_key) is None:
        raise NotFound(f"no blocked-list entry {entry_id_value}")
    table.client.delete_item(
        TableName=table.name, Key={"PK": {"S": blocklist_pk(tenant_id)}, "SK": {"S": sort_key}}
    )


def view(entry: dict[str, Any]) -> dict[str, Any]:
    shown = {k: entry.get(k) for k in ("kind", "value", "country", "reason", "createdAt", "createdBy")}
    return {"entryId": entry_id(entry["SK"]), **{k: v for k, v in shown.items() if v is not None}}

"""The append-only audit trail, written from the table's stream.

Each change of an audited record becomes one item beside the record
(``<record PK>`` / ``AUDIT#<record SK>#<when>#<stream event id>``): who made it, when, the action, and the
record before and after. The stream event id in the key makes a repeated delivery write the same
item, and the conditional put leaves the first one untouched: nothing is recorded twice.
"""

from __future__ import annotations

from typing import Any

from marketplace import keys
from marketplace.errors import Conflict
from marketplace.repository import Table

AUDITED_ENTITIES = frozenset({"SUPPLIER", "PRODUCT", "SUPPLIER_ORDER", "COMMISSION_RULES"})
_NOT_AUDITED_FIELDS = {
    "PK",
    "SK",
    "GSI1PK",
    "GSI1SK",
    "GSI2PK",
    "GSI2SK",
    "GSI3PK",
    "GSI3SK",
    "entity",
    "tenantId",
}


def _public(image: dict[str, Any] | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {k: v for k, v in image.items() if k not in _NOT_AUDITED_FIELDS}


def audit_entry(
    event_id: str, event_name: str, created_at: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The audit item for one stream record, or None when the record is not audited."""
    image = new or old
    if not image or image.get("entity") not in AUDITED_ENTITIES:
        return None
    before, after = _public(old), _public(new)
    changed = sorted(
        k for k in set(before or {}) | set(after or {}) if (before or {}).get(k) != (after or {}).get(k)
    )
    when = (new or {}).get("updatedAt") or created_at
    who = (new or {}).get("updatedBy") or (old or {}).get("updatedBy") or "unknown"
    return {
        "PK": image["PK"],
        "SK": keys.audit_sk(image["SK"], when, event_id),
        "entity": "AUDIT",
        "tenantId": image.get("tenantId"),
        "action": {"INSERT": "created", "MODIFY": "changed", "REMOVE": "deleted"}.get(event_name, event_name),
        "at": when,
        "by": who,
        "changed": changed,
        "before": before,
        "after": after,
    }


def record(table: Table, entry: dict[str, Any]) -> bool:
    """Write the entry once; False if this stream event was already recorded."""
    try:
        table.put_new(entry)
    except Conflict:
        return False
    return True


def view(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry.get(k) for k in ("at", "by", "action", "changed", "before", "after")}

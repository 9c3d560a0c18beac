"""Every kind of record that a workflow reviews or the correction queue holds, by name.

Adding a kind is adding its entry here (and its ``Kind`` beside its rules): the stream router, the
drain and the correction API find it by the name a record's ``entity`` or a message's ``kind``
carries, and never switch over the kinds themselves.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from marketplace import clock, orders, products, suppliers
from marketplace.errors import FieldError, InvalidInput, NotFound
from marketplace.principal import Principal
from marketplace.repository import Table
from marketplace.reviewed import Kind, Records

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (suppliers.KIND, products.KIND, orders.KIND, suppliers.PROPOSAL_KIND, products.PROPOSAL_KIND)
}
# What the admin's correction queue lists: every reviewed kind, and the incidents no workflow waits
# on (a refused return, decided by the admin: docs/decisions.md D35). The stream router and the
# drain start and resume workflows, so they know only KINDS.
QUEUED: dict[str, Kind] = {**KINDS, orders.RETURN_KIND.name: orders.RETURN_KIND}


def find(name: object) -> Kind | None:
    return KINDS.get(name) if isinstance(name, str) else None


def resolve(correction_id: str) -> tuple[Kind, str]:
    """(kind, record id) of a correction id (:meth:`Kind.correction_id`); NotFound if none. A caller
    that URL-encodes the path segment (the console, ``encodeURIComponent``) sends ``:`` as ``%3A``,
    and the gateway hands the segment on as it came: no id has a ``%`` of its own, so it is decoded."""
    correction_id = unquote(correction_id)
    for kind in QUEUED.values():
        record_id = kind.parse_correction_id(correction_id)
        if record_id is not None:
            return kind, record_id
    raise NotFound(f"no record {correction_id} in the correction queue")


def corrections_page(table: Table, tenant_id: str, limit: int, token: str | None) -> dict[str, Any]:
    """The tenant's flagged records of every kind, then its open incidents, one kind after the other
    in registry order; the page token names the kind it continues (``<KIND>.<that kind's own token>``)."""
    names = list(QUEUED)
    start, inner = 0, None
    if token:
        name, _, inner_token = token.partition(".")
        if name not in QUEUED:
            raise InvalidInput([FieldError("nextToken", "is not a token this listing issued")])
        start, inner = names.index(name), inner_token or None
    items: list[dict[str, Any]] = []
    now = clock.now()
    for name in names[start:]:
        kind = QUEUED[name]
        page = Records(kind, table).list_by_status(tenant_id, kind.queued, limit - len(items), inner)
        items += [kind.correction_item(r, now) for r in page.items]
        inner = None
        if page.next_token:
            return {"items": items, "nextToken": f"{name}.{page.next_token}"}
        if len(items) >= limit:
            following = names[names.index(name) + 1 :]
            return {"items": items, "nextToken": f"{following[0]}." if following else None}
    return {"items": items, "nextToken": None}


def reject(table: Table, principal: Principal, correction_id: str, reason: str) -> dict[str, Any]:
    """An admin rejects a queued record of any kind; the record as its kind shows it."""
    kind, record_id = resolve(correction_id)
    return kind.view(Records(kind, table).reject(principal, record_id, reason))


def retry(table: Table, principal: Principal, correction_id: str) -> dict[str, Any]:
    """An admin asks for a queued record of any kind to be validated again without a change."""
    kind, record_id = resolve(correction_id)
    return kind.view(Records(kind, table).request_retry(principal, record_id))

"""Taking an approved supplier or an active listing off sale, and putting it back (docs/decisions.md D40).

A supplier is SUSPENDED from APPROVED (an admin, with a reason, or the tenant's blocked list gaining
its tax id) and reinstated to APPROVED; a listing is DELISTED from ACTIVE (an admin, or its supplier)
and relisted to ACTIVE. Each is one versioned write of the record (:meth:`Records.withdraw`,
:meth:`Records.restore`), which the audit trail records with its actor and the stream announces
(``supplier.suspended``, ``supplier.approved``, ``listing.delisted``, ``listing.active``:
:mod:`marketplace.events`). Suspending a supplier also cancels its orders awaiting acceptance, each
with its stock released in the transaction that cancels it (``Orders.cancel_awaiting``); its
accepted orders go on. ``POST /orders`` refuses the lines of a suspended supplier or a delisted
listing (``Orders.place``).
"""

from __future__ import annotations

from typing import Any

from marketplace import blocklist, orders, products, suppliers
from marketplace.errors import FieldError, NotFound
from marketplace.principal import Principal
from marketplace.repository import Table
from marketplace.reviewed import Records


def suspend(
    principal: Principal, supplier_id: str, reason: str, table: Table | None = None
) -> dict[str, Any]:
    """The supplier SUSPENDED (from APPROVED; the same again answers it as it is), then its orders
    awaiting acceptance cancelled. A retry after a failure between the two finishes the second."""
    table = table or Table()
    record = Records(suppliers.KIND, table).withdraw(principal, supplier_id, reason, "suspend")
    orders.Orders(table).cancel_awaiting(principal, supplier_id, f"the supplier is suspended: {reason}")
    return record


def reinstate(
    principal: Principal, supplier_id: str, reason: str, table: Table | None = None
) -> dict[str, Any]:
    """The supplier APPROVED again (from SUSPENDED), once its onboarding rules pass again (a
    supplier still on the blocked list stays suspended)."""
    return Records(suppliers.KIND, table or Table()).restore(principal, supplier_id, reason, "reinstate")


def delist(
    principal: Principal, supplier_id: str, sku: str, reason: str, table: Table | None = None
) -> dict[str, Any]:
    """The listing DELISTED (from ACTIVE): it cannot be ordered; orders already placed go on."""
    listing_id = products.record_id(supplier_id, sku)
    return Records(products.KIND, table or Table()).withdraw(principal, listing_id, reason, "delist")


def relist(
    principal: Principal, supplier_id: str, sku: str, reason: str, table: Table | None = None
) -> dict[str, Any]:
    """The listing ACTIVE again (from DELISTED) once the listing rules pass again (its supplier
    APPROVED, its fields within its category's rules); one an admin delisted only an admin relists."""
    listing_id = products.record_id(supplier_id, sku)
    return Records(products.KIND, table or Table()).restore(principal, listing_id, reason, "relist")


# The statuses of the suppliers that a tax id entry added to the blocked list suspends (:func:`block`).
BLOCK_SUSPENDS = (suppliers.KIND.approved, suppliers.SUSPENDED)


def block(principal: Principal, body: dict[str, Any], table: Table | None = None) -> dict[str, Any]:
    """Add an entry to the tenant's blocked list; a tax id entry suspends every APPROVED supplier
    that claims that tax id. The entry with the ids of the suppliers it suspended
    (``suspendedSuppliers``). Adding the same entry again suspends any that a failed first call left."""
    table = table or Table()
    entry = blocklist.add(principal, body, table)
    suspended: list[str] = []
    if entry["kind"] == "taxId":
        why = blocklist.why(entry["reason"])
        pk, token = suppliers.tax_claim_pk(principal.tenant_id, entry["country"], entry["value"]), None
        while True:
            page = table.query(pk, limit=100, next_token=token)
            for claim in page.items:
                supplier_id = str(claim["supplierId"])
                status = suppliers.Suppliers(table).get(principal.tenant_id, supplier_id)["status"]
                if status in BLOCK_SUSPENDS:
                    suspend(principal, supplier_id, why, table)
                    suspended.append(supplier_id)
            token = page.next_token
            if not token:
                break
    return {**entry, "suspendedSuppliers": suspended}


def block_suspends(record: dict[str, Any], changes: blocklist.Changes) -> FieldError | None:
    """Why adding the entries of ``changes`` (each through :func:`block`, as a rule pack's activation
    does) would suspend the supplier ``record`` at once: it is APPROVED (or SUSPENDED) and claims the
    tax id of an added tax id entry. None otherwise: the rules decide it at its next validation."""
    if record.get("status") not in BLOCK_SUSPENDS:
        return None
    for sort_key in blocklist.candidate_keys(record).get("taxId", []):
        entry = changes.added.get(sort_key)
        if entry is not None:
            return FieldError("taxId", blocklist.why(str(entry["reason"])))
    return None


def apply_blocklist_changes(
    principal: Principal, changes: blocklist.Changes, table: Table | None = None
) -> dict[str, Any]:
    """Make ``changes`` (a draft rule pack's, on its activation): each added entry through
    :func:`block` (its suppliers suspended, their awaiting orders cancelled), each removed one
    through ``blocklist.remove`` (one already gone is not an error). Each step can be made again: a
    retry after a failure makes again what was made and finishes the rest. What it made: the entries
    added, the entries removed (not those already gone) and the suppliers suspended."""
    table = table or Table()
    suspended: list[str] = []
    for fields in changes.added.values():
        body = {k: v for k, v in fields.items() if v is not None}
        suspended += [s for s in block(principal, body, table)["suspendedSuppliers"] if s not in suspended]
    removed = 0
    for sort_key in sorted(changes.removed):
        try:
            blocklist.remove(principal, blocklist.entry_id(sort_key), table)
        except NotFound:
            continue
        removed += 1
    return {"added": len(changes.added), "removed": removed, "suspendedSuppliers": suspended}

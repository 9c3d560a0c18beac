"""The what-if of a draft rule pack: its blast radius before it goes live (D51, docs/tenants.md).

It replays the tenant's draft (``marketplace.rule_packs``) over the tenant's suppliers and their
listings with the rules the workflows run (``suppliers.rules``, ``products.evaluate``: one rule, one
place) and answers each record whose status the draft would change: its id, kind, current status,
the status it would get, and why (the flags). Read only: it writes nothing and starts nothing.

Which records: those a rule decided and a new validation may decide again, an APPROVED or FLAGGED
supplier and an ACTIVE or FLAGGED listing. A PENDING record's workflow is running (it reads the pack
in force when it validates); REJECTED is final; a SUSPENDED or DELISTED record was withdrawn by a
person, and its restoration runs the rules in force then. A listing is judged with its supplier's
current status, as its workflow reads it. The pack's order timings, change thresholds and commission
defaults decide no status (a deadline, whether the next change waits for review, the next order's
price), so a draft that changes only them has nothing to replay. A draft's blocked-list changes
(``blocklist``) are replayed over the entries stored (``RulePack.blocklist_changes``): a supplier an
added entry names would be REJECTED at its next validation, save an APPROVED one claiming an added
tax id, which the activation SUSPENDS at once (``suspension.block_suspends``); one whose entry the
draft removes is judged without it.

Reads: the tenant's suppliers page by page (``GSI2``), each supplier's listings (its partition), and
for each supplier the lookups of its rules (the blocked list, the tax id claim): about three reads per
supplier and one per page of listings. At most :data:`MAX_RECORDS` records are read, so that the
answer comes within API Gateway's 29 s; ``complete`` says whether every record was.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from marketplace import keys, products, rule_packs, suppliers, suspension
from marketplace.principal import Principal
from marketplace.repository import Table
from marketplace.rule_packs import RulePack

# The records read at most in one what-if (docs/tenants.md gives the time it takes).
# About 10 ms a record on the local stack (3 s for 100 suppliers with 2 listings each), so 1,000 stay
# well within API Gateway's 29 s even on a loaded machine; DynamoDB itself answers several times faster.
MAX_RECORDS = 1000
REPLAYED = {suppliers.KIND.label: ("APPROVED", "FLAGGED"), products.KIND.label: ("ACTIVE", "FLAGGED")}
_PAGE = 100


def replay(table: Table, principal: Principal, expected_revision: int | None = None) -> dict[str, Any]:
    """The draft's what-if for the caller's tenant (404 without a draft; 412 when
    ``expected_revision`` is given and the draft is no longer at it)."""
    started = time.monotonic()
    tenant_id = principal.tenant_id
    item = rule_packs.record(table, tenant_id)
    draft = rule_packs.draft_of(item)
    assert item is not None  # draft_of answered 404 otherwise
    rule_packs.expect_revision(item, expected_revision)
    changes: list[dict[str, Any]] = []
    examined = {"suppliers": 0, "listings": 0}  # the records replayed (in a status a rule decides)
    read, complete = 0, True
    for kind, record, supplier_status in _records(table, tenant_id):
        if read >= MAX_RECORDS:
            complete = False
            break
        read += 1
        if record.get("status") not in REPLAYED[kind]:
            continue
        examined["suppliers" if kind == suppliers.KIND.label else "listings"] += 1
        change = _change(table, tenant_id, kind, record, supplier_status, draft)
        if change is not None:
            changes.append(change)
    return {
        "revision": int(item["version"]),
        "activeVersion": rule_packs.active_of(item).version,
        "draftVersion": draft.version,
        "examined": examined,
        "complete": complete,
        "unchanged": sum(examined.values()) - len(changes),
        "changes": changes,
        "seconds": round(time.monotonic() - started, 3),
    }


def _records(table: Table, tenant_id: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(kind, record, its supplier's status): every supplier of the tenant, newest first, each
    followed by its listings."""
    store = suppliers.Suppliers(table)
    token = None
    while True:
        page = store.list(tenant_id, None, _PAGE, token)
        for supplier in page.items:
            yield suppliers.KIND.label, supplier, supplier["status"]
            listings_token = None
            while True:
                listed = table.query(
                    keys.supplier_pk(tenant_id, supplier["supplierId"]), sk_prefix=keys.PRODUCT_SK_PREFIX,
                    limit=_PAGE, next_token=listings_token,
                )  # fmt: skip
                for listing in listed.items:
                    if listing.get("entity") == products.ENTITY:
                        yield products.KIND.label, listing, supplier["status"]
                listings_token = listed.next_token
                if not listings_token:
                    break
        token = page.next_token
        if not token:
            return


def _change(
    table: Table, tenant_id: str, kind: str, record: dict[str, Any], supplier_status: str, draft: RulePack
) -> dict[str, Any] | None:
    """The record's line of the answer if the draft would give it another status, else None."""
    status = record["status"]
    if kind == suppliers.KIND.label:
        verdict = suppliers.rules(table, tenant_id, record, draft)
        outcome, flags, record_id = verdict.outcome, list(verdict.flags), str(record["supplierId"])
        suspended = suspension.block_suspends(record, draft.blocklist_changes)
        if suspended is not None:  # the activation suspends it at once, as POST /admin/blocklist would
            outcome, flags = suppliers.SUSPENDED, [suspended]
    else:
        outcome, flags = products.evaluate(record, supplier_status, draft)
        record_id = products.record_id(record["supplierId"], record["sku"])
    if outcome == status:
        return None
    return {
        "kind": kind,
        "id": record_id,
        "status": status,
        "wouldBe": outcome,
        "reasons": [flag.as_dict() for flag in flags],
    }

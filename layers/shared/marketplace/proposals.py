"""Proposed versions: a high-risk change to an APPROVED supplier or an ACTIVE listing, reviewed
while the live record stays as it is (the change gate, docs/decisions.md D41).

A PATCH of a live record is scored (:mod:`marketplace.gate`, with the thresholds of the tenant's rule
pack in force, D51). Low risk applies at once. High risk
writes a **proposal** beside the record (``keys.proposal_sk``): the record's fields as they would be,
``fields`` naming the ones it changes, the gate's ``reasons``, the live version it was proposed on.
A proposal is a reviewed record of its own kind (``SUPPLIER_PROPOSAL``, ``PRODUCT_PROPOSAL``, built
by :func:`kind_for` from its record's kind) that runs in its record's workflow: the same state
machine, the same rules, the same correction queue. Its INSERT starts it (marketplace.routing);
FLAGGED, it waits for a fix, which is a PATCH of the record while the proposal is pending
(:meth:`Proposals.gate` amends it); REJECTED, it is dropped: never applied, no longer shown. Approved,
the table's stream applies it (:meth:`Proposals.apply`): its fields are SET on the live record,
whose version moves, with ``appliedProposal`` saying which proposal (the audit trail and the
``<kind>.proposal_approved`` event read it).

One proposal per record: while one is pending (PENDING or FLAGGED) a high-risk PATCH, or one that
names a field the proposal changes, amends it rather than starting another; a finished one
(approved or rejected) is overwritten by the next, with the next version, so every proposal of a
record has its own execution name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from marketplace import gate, keys, rule_packs, schemas
from marketplace.clock import now_iso
from marketplace.errors import Conflict, FieldError, NotFound, TransientError
from marketplace.principal import Principal
from marketplace.repository import Table, to_item
from marketplace.reviewed import FLAGGED, PENDING, REJECTED, Kind, Records

log = logging.getLogger(__name__)

SUFFIX = "_PROPOSAL"
WAITING = (PENDING, FLAGGED)
ATTEMPTS = 3  # an approval that loses a race to a reservation (the version moved) reads again
# (tenant, live record, record as it will be) -> transaction items written with the approval (a
# supplier's tax id claim moves with its tax id).
Also = Callable[[str, Mapping[str, Any], Mapping[str, Any]], list[dict[str, Any]]]


def is_proposal(record: Mapping[str, Any]) -> bool:
    return str(record.get("entity", "")).endswith(SUFFIX)


def view(proposal: Mapping[str, Any]) -> dict[str, Any]:
    """A proposal as the API shows it: its version, status, the gate's reasons, what it changes,
    and, while they are why it waits or was dropped, its flags."""
    shown = {
        "version": proposal["version"],
        "status": proposal["status"],
        "reasons": proposal.get("reasons", []),
        "changes": {f: proposal[f] for f in proposal.get("fields", []) if f in proposal},
        "proposedAt": proposal.get("createdAt"),
        "proposedBy": proposal.get("createdBy"),
    }
    if proposal["status"] in (FLAGGED, REJECTED):
        shown["flags"] = proposal.get("flags", [])
    if proposal.get("statusReason"):  # an admin's rejection
        shown["statusReason"] = proposal["statusReason"]
    return shown


def kind_for(live: Kind, on_approval: Callable[[Table, dict[str, Any]], str]) -> Kind:
    """The proposal kind of a reviewed kind: reviewed by the same workflow and rules, keyed beside
    its record, in the correction queue while FLAGGED (the only status its index holds)."""

    def key(tenant_id: str, record_id: str) -> tuple[str, str]:
        pk, sk = live.key(tenant_id, record_id)
        return pk, keys.proposal_sk(sk)

    return Kind(
        name=live.name + SUFFIX, label=f"{live.label} proposal", approved=live.approved,
        statuses=(PENDING, live.approved, FLAGGED, REJECTED), indexed=frozenset({FLAGGED}),
        state_machine_env=live.state_machine_env, key=key, record_id=live.record_id,
        view=lambda record: {**live.correction_fields(record), **view(record)},
        correction_fields=live.correction_fields, rules=live.rules,
        correction_prefix=f"{live.name}{SUFFIX}:", input_ids=live.input_ids,
        event_prefix=f"{live.label}.proposal_", event_id_tag="-proposal",
        # Its approval is announced by its record's new version (proposal_approved), once applied;
        # its creation, as any record's, by the answer to the PATCH that made it.
        quiet=frozenset({PENDING, live.approved}), on_approval=on_approval,
    )  # fmt: skip


class Proposals:
    """The proposals of one reviewed kind."""

    def __init__(
        self,
        live: Kind,
        kind: Kind,
        schema: str,
        schema_fields: tuple[str, ...],
        table: Table,
        *,
        immediate: tuple[str, ...] = (),
        also: Also | None = None,
    ) -> None:
        self.live, self.kind, self.schema, self.table = live, kind, schema, table
        self.schema_fields = schema_fields  # the fields ``schema`` checks (the record's own, not its ids)
        self.immediate = immediate  # fields that never wait for review (a listing's stock)
        self.also = also

    # ---------------------------------------------------------------- reads
    def current(self, tenant_id: str, record_id: str) -> dict[str, Any] | None:
        item = self.table.get(*self.kind.key(tenant_id, record_id))
        return item if item and item.get("entity") == self.kind.name else None

    def shown_with(self, shown: dict[str, Any], tenant_id: str, record_id: str) -> dict[str, Any]:
        """A record's view with its pending proposal, if it has one (one more read)."""
        proposal = self.current(tenant_id, record_id)
        if proposal is not None and proposal["status"] in WAITING:
            return {**shown, "proposal": view(proposal)}
        return shown

    # ---------------------------------------------------------------- the gate
    def gate(
        self, principal: Principal, current: dict[str, Any], changes: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The proposal a change to ``current`` (the fields a PATCH sets, checked) makes or amends,
        or None when it applies at once: the record is not live, or the change is low risk and names
        no field of a pending proposal (a field set back to its live value amends it too)."""
        if current.get("status") != self.live.approved:
            return None
        tenant_id, record_id = principal.tenant_id, self.live.record_id(current)
        existing = self.current(tenant_id, record_id)
        pending = existing if existing is not None and existing["status"] in WAITING else None
        # The kind's change rules with the thresholds of the tenant's pack in force (one read, D51).
        rules = rule_packs.active(self.table, tenant_id).change_rules(self.live.label)
        scored = gate.score(rules, current, changes)
        if not scored.high and (pending is None or not set(changes) & set(pending["fields"])):
            return None
        proposed = {**({f: pending[f] for f in pending["fields"]} if pending else {}), **changes}
        if pending is None:
            proposed = {f: v for f, v in proposed.items() if current.get(f) != v}
        held = sorted(set(proposed) & set(self.immediate))
        if held:
            raise Conflict(
                f"this change to the {self.live.label} waits for review; {', '.join(held)} cannot wait",
                [FieldError(f, "applies at once: change it in a request of its own, not with a change "
                               "that waits for review") for f in held],
            )  # fmt: skip
        document = {k: current[k] for k in self.schema_fields if k in current}
        schemas.validate(self.schema, {**document, **proposed})
        reasons = [r.as_dict() for r in gate.score(rules, current, proposed).reasons]
        now = now_iso()
        if pending is not None:
            # The fix of a FLAGGED proposal (the drain resumes its workflow), or a change to a
            # PENDING one (its workflow's verdict no longer matches the version and it reads again).
            return self.table.update(
                pending["PK"], pending["SK"], int(pending["version"]),
                {**changes, "fields": sorted(proposed), "reasons": reasons, "baseVersion": current["version"],
                 "updatedAt": now, "updatedBy": principal.actor},
            )  # fmt: skip
        pk, sk = self.kind.key(tenant_id, record_id)
        proposal = {
            "PK": pk, "SK": sk, "entity": self.kind.name, "tenantId": tenant_id,
            **self.live.correction_fields(current), **document, **proposed, "fields": sorted(proposed), "reasons": reasons,
            "baseVersion": current["version"], "status": PENDING,
            "version": int(existing["version"]) + 1 if existing else 1,
            "createdAt": now, "createdBy": principal.actor, "updatedAt": now, "updatedBy": principal.actor,
        }  # fmt: skip
        try:
            self.table.put_at(proposal, int(existing["version"]) if existing else None)
        except Conflict:
            raise Conflict(
                f"another change to this {self.live.label} was proposed meanwhile; read it and try again"
            ) from None
        return proposal

    # ---------------------------------------------------------------- the approval
    def apply(self, approved: Mapping[str, Any]) -> str:
        """Make an approved proposal (its stream image) the live version: its fields SET on the
        record, the version moved, ``appliedProposal`` naming it. Idempotent: a repeated delivery
        finds the proposal applied. "applied", "duplicate", or "not live" when the record is gone
        or no longer in its approved status (the proposal then stays approved, not applied)."""
        tenant_id, record_id = str(approved["tenantId"]), self.live.record_id(approved)
        proposal_version = int(approved["version"])
        changes = {f: approved[f] for f in approved.get("fields", [])}
        records = Records(self.live, self.table)
        for _ in range(ATTEMPTS):
            try:
                live = records.get(tenant_id, record_id)
            except NotFound:
                return "not live"
            if int((live.get("appliedProposal") or {}).get("proposal", 0)) >= proposal_version:
                return "duplicate"
            if live.get("status") != self.live.approved:
                log.warning("approved proposal not applied: its record is not live",
                            extra={"kind": self.kind.name, "status": live.get("status")})  # fmt: skip
                return "not live"
            version = int(live["version"])
            marker = {"proposal": proposal_version, "version": version + 1, "fields": sorted(changes),
                      "proposedBy": approved.get("createdBy")}  # fmt: skip
            values = {**changes, "appliedProposal": marker, "updatedAt": now_iso(),
                      "updatedBy": approved.get("updatedBy")}  # fmt: skip
            items = [_versioned_update(self.table.name, live, version, values)]
            if self.also is not None:
                items += self.also(tenant_id, live, {**live, **changes})
            try:
                self.table.transact(items)
                return "applied"
            except Conflict:
                continue  # an order moved the version: read it again
        raise TransientError(f"the {self.live.label} kept changing while its proposal was applied")


def _versioned_update(
    table_name: str, record: Mapping[str, Any], version: int, values: Mapping[str, Any]
) -> dict[str, Any]:
    """A transaction item that SETs ``values`` on ``record`` and bumps its version, only while it
    is still at ``version``."""
    names = {"#version": "version"}
    params: dict[str, Any] = {":expected": version, ":one": 1}
    sets = ["#version = #version + :one"]
    for i, (name, value) in enumerate(values.items()):
        names[f"#f{i}"], params[f":v{i}"] = name, value
        sets.append(f"#f{i} = :v{i}")
    return {
        "Update": {
            "TableName": table_name,
            "Key": to_item({"PK": record["PK"], "SK": record["SK"]}),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": "#version = :expected",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_item(params),
        }
    }

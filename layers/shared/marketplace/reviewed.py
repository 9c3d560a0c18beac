"""The reviewed-record lifecycle, written once for every kind of record that a workflow reviews.

A reviewed record is created PENDING; its workflow (``statemachines/reviewed_record.asl.json``, one
definition for every kind) runs the kind's rules and writes the verdict: the kind's approved status,
REJECTED, or FLAGGED for a human, who fixes the record (a PATCH) while the workflow waits in the
correction queue; the drain resumes it and the rules run again. An admin may also reject a flagged
record, or ask for it to be validated again without a change (retry).

A kind is an entry (:class:`Kind`): its schema and rules, its key, its statuses and which of them
the status index holds, its state machine, and what the correction queue shows of it. Suppliers and
listings are two entries; the next kinds are added by writing an entry, not a module. The operations
here are the ones every kind shares; a kind's own module keeps only what is its own (a supplier's
tax id claim, a listing's stock). Who may call an operation is the API's decision (one policy per
route); these functions trust their caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marketplace import keys, rule_packs
from marketplace.access import ADMIN
from marketplace.clock import now_iso, parse_iso
from marketplace.errors import Conflict, FieldError, InvalidInput, PreconditionFailed
from marketplace.principal import Principal
from marketplace.repository import Page, Table, to_item
from marketplace.rule_packs import RulePack

SYSTEM_FIELD = "(system)"
# A withdrawal or restoration that loses a race to another write is read and decided again this often.
WITHDRAW_ATTEMPTS = 3
# Who took a record out of use, as whom, and when: kept while it is withdrawn.
WITHDRAWAL_FIELDS = ("withdrawnBy", "withdrawnAs", "withdrawnAt")
REJECTED, FLAGGED, PENDING = "REJECTED", "FLAGGED", "PENDING"


# What a record carries for the table's sake (keys, index keys, its type and tenant), never shown.
INTERNAL = frozenset({"PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "GSI3PK", "GSI3SK", "entity", "tenantId",
                      "expiresAt"})  # fmt: skip


# What a write leaves for the audit trail and the events, not a field of the record: the proposal an
# approval applied (marketplace.proposals).
MARKERS = frozenset({"appliedProposal"})


def record_view(
    record: Mapping[str, Any], flags_while: tuple[str, ...] = (FLAGGED, REJECTED)
) -> dict[str, Any]:
    """A record as the API shows it: no internal attributes, and its flags only while they are why
    it is in its status."""
    shown = {k: v for k, v in record.items() if k not in INTERNAL and k not in MARKERS}
    if record.get("status") not in flags_while:
        shown.pop("flags", None)
    return shown


def data_marker(record: Mapping[str, Any]) -> dict[str, bool]:
    """``{"testData": True}`` for a step's result about test data (a tenant's smoke test,
    marketplace.tenants), which the step's handler then leaves out of its metrics; else nothing."""
    return {"testData": True} if record.get("testData") else {}


@dataclass(frozen=True)
class Verdict:
    outcome: str  # the kind's approved status | FLAGGED | REJECTED
    flags: tuple[FieldError, ...] = ()


@dataclass(frozen=True)
class Kind:
    """One kind of reviewed (or correctable) record."""

    name: str  # the record's ``entity`` and the correction message's ``kind``: SUPPLIER, PRODUCT, ...
    label: str  # how messages name one: "supplier", "listing"
    approved: str  # APPROVED, ACTIVE
    statuses: tuple[str, ...]
    indexed: frozenset[str]  # the statuses the status index (GSI1) holds; ``queued`` always
    # The environment variable that names its state machine's ARN; None for a record no workflow
    # reviews (an incident: a refused return waits for the admin's decision, not for a workflow).
    state_machine_env: str | None
    key: Callable[[str, str], tuple[str, str]]  # (tenant, record id) -> (PK, SK)
    record_id: Callable[[Mapping[str, Any]], str]  # record -> its id in the correction queue
    view: Callable[[Mapping[str, Any]], dict[str, Any]]  # the record as the API shows it
    # The record's own fields in a correction item (supplierId, sku, ...).
    correction_fields: Callable[[Mapping[str, Any]], dict[str, Any]]
    # The rules: (table, tenant, record, the tenant's rule pack) -> Verdict. None for a kind whose
    # own workflow decides.
    rules: Callable[[Table, str, dict[str, Any], RulePack], Verdict] | None = None
    # How an admin rejects it from the correction queue, where that is more than a status change.
    reject_with: Callable[[Table, Principal, str, str], dict[str, Any]] | None = None
    # How the correction API names one record: "<prefix><id>" ("/" in an id as ":", so that it is
    # one path segment). The first kind has no prefix: its bare ids stay valid.
    correction_prefix: str = ""
    # What follows the record id in the state machine's input, for a workflow that reads its record
    # by its own names (the supplier-order intake reads ``supplierOrderId``).
    input_ids: Callable[[str], dict[str, str]] = field(default=lambda record_id: {})
    # The status in which the correction queue lists a record: FLAGGED, or INCIDENT for a return.
    queued: str = FLAGGED
    # Statuses listed in the status index under another's name: a refused and a disputed return are
    # both the admin's incidents, read from one partition (D44).
    index_as: tuple[tuple[str, str], ...] = ()  # (status, listed as)
    # The status an approved record is taken out of use in (a supplier SUSPENDED, a listing
    # DELISTED), and back from, by :meth:`Records.withdraw` and :meth:`Records.restore`; None for a
    # kind that has none (docs/decisions.md D40).
    withdrawn: str | None = None
    # Its events are named "<event_prefix><status>" ("supplier.approved"); the default is the label
    # and a dot. ``event_id_tag`` keeps its event ids apart from another kind's of the same record
    # (a proposal's from its record's). A status in ``quiet`` is announced by another record's change.
    event_prefix: str | None = None
    event_id_tag: str = ""
    quiet: frozenset[str] = frozenset()
    # What follows its approval, run from the table's stream (marketplace.routing): an approved
    # proposal becomes its record's live version. Returns what it did, for the log.
    on_approval: Callable[[Table, dict[str, Any]], str] | None = None

    def __post_init__(self) -> None:
        if self.queued not in self.indexed:
            raise ValueError(
                f"{self.name}: the correction queue lists {self.queued} records from the status index"
            )

    # ---------------------------------------------------------------- keys
    def index_changes(self, tenant_id: str, status: str, now: str) -> dict[str, Any]:
        """The status index attributes for a record entering ``status`` (None removes them)."""
        status = dict(self.index_as).get(status, status)
        if status in self.indexed:
            return {"GSI1PK": keys.status_gsi_pk(tenant_id, self.name, status), "GSI1SK": now}
        return {"GSI1PK": None, "GSI1SK": None}

    def start_input(self, tenant_id: str, record_id: str, version: int) -> dict[str, Any]:
        """The workflow's execution input: the record's keys come with it, so the state machine
        composes none (its status writes use ``keys.record`` and ``keys.statusIndex``)."""
        pk, sk = self.key(tenant_id, record_id)
        return {
            "kind": self.name, "tenantId": tenant_id, "recordId": record_id, "version": version,
            **self.input_ids(record_id),
            "keys": {
                "record": {"PK": {"S": pk}, "SK": {"S": sk}},
                "statusIndex": {s: keys.status_gsi_pk(tenant_id, self.name, s) for s in sorted(self.indexed)},
            },
        }  # fmt: skip

    def correction_id(self, record_id: str) -> str:
        return self.correction_prefix + record_id.replace("/", ":")

    def parse_correction_id(self, value: str) -> str | None:
        """The record id a correction id names, if it is one of this kind's."""
        if self.correction_prefix:
            if not value.startswith(self.correction_prefix):
                return None
            value = value[len(self.correction_prefix) :]
        elif ":" in value:
            return None
        return value.replace(":", "/") if value else None

    def correction_item(self, record: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """A flagged record as the correction queue lists it."""
        flagged_at = record.get("updatedAt")
        age = (now - parse_iso(flagged_at)).total_seconds() if flagged_at else None
        record_id = self.record_id(record)
        return {
            "recordType": self.name, "recordId": record_id, "correctionId": self.correction_id(record_id),
            **self.correction_fields(record), "version": record["version"], "flags": record.get("flags", []),
            "flaggedAt": flagged_at, "ageSeconds": int(age) if age is not None else None,
            "record": self.view(record),
        }  # fmt: skip

    def event_type(self, status: str) -> str:
        return f"{self.event_prefix if self.event_prefix is not None else self.label + '.'}{status.lower()}"

    def execution_name(self, record_id: str, version: int) -> str:
        return keys.execution_name(self.name, record_id, version)


def _acting_as(principal: Principal) -> str:
    """The role a caller withdraws a record in: an admin's decision outranks a supplier's own."""
    return ADMIN if ADMIN in principal.roles else "+".join(sorted(principal.roles))


class Records:
    """The operations every reviewed kind shares, on the single table."""

    def __init__(self, kind: Kind, table: Table | None = None) -> None:
        self.kind = kind
        self.table = table or Table()

    # ---------------------------------------------------------------- reads
    def get(self, tenant_id: str, record_id: str) -> dict[str, Any]:
        pk, sk = self.kind.key(tenant_id, record_id)
        return self.table.get_or_404(
            pk, sk, f"{self.kind.label} {record_id}", entity=self.kind.name, tenant_id=tenant_id
        )

    def list_by_status(self, tenant_id: str, status: str, limit: int, next_token: str | None) -> Page:
        """The tenant's records in ``status``, newest first, from the status index."""
        if status not in self.kind.indexed:
            raise InvalidInput(
                [FieldError("status", f"must be one of {', '.join(sorted(self.kind.indexed))}")]
            )
        return self.table.query(
            keys.status_gsi_pk(tenant_id, self.kind.name, status),
            index="GSI1", pk_name="GSI1PK", sk_name="GSI1SK",
            limit=limit, next_token=next_token, newest_first=True,
        )  # fmt: skip

    def history(self, tenant_id: str, record_id: str, limit: int, next_token: str | None) -> Page:
        return self.trail(self.get(tenant_id, record_id), limit, next_token)  # 404 for unknown ids

    def trail(self, record: Mapping[str, Any], limit: int, next_token: str | None) -> Page:
        """One page of a record's audit trail, oldest first."""
        return self.table.query(
            record["PK"], sk_prefix=keys.audit_prefix(record["SK"]), limit=limit, next_token=next_token
        )

    # ---------------------------------------------------------------- the workflow's Validate step
    def validation_step(self, tenant_id: str, record_id: str) -> dict[str, Any]:
        """What the state machine's Validate step returns: outcome, flags, the version read, the
        version of the tenant's rule pack that decided (``rulePackVersion``, 0 for the defaults),
        which the execution keeps (D51), and the pack's correction rounds (``maxRounds``), which
        bound the workflow's loop.

        ``flagsAttribute`` is the flags as a DynamoDB attribute value, so that the state machine's
        DynamoDB integration can write it as it is."""
        if self.kind.rules is None:
            raise TypeError(f"{self.kind.name} records are not validated by the reviewed-record workflow")
        record = self.get(tenant_id, record_id)
        pack = rule_packs.active(self.table, tenant_id)
        verdict = self.kind.rules(self.table, tenant_id, record, pack)
        flags = [f.as_dict() for f in verdict.flags]
        return {
            "outcome": verdict.outcome,
            "flags": flags,
            "flagsAttribute": to_item({"flags": flags})["flags"],
            "version": int(record["version"]),
            "rulePackVersion": pack.version,
            "maxRounds": pack.max_rounds,
            **data_marker(record),
        }

    # ---------------------------------------------------------------- changes
    def change_fields(
        self, record: dict[str, Any], body: Mapping[str, Any], expected_version: int | None
    ) -> tuple[dict[str, Any], int]:
        """The fields ``body`` really changes on ``record`` (checked: not rejected, at the expected
        version), with the version they apply to. On a FLAGGED record this is the human fix the
        drain looks for."""
        if record["status"] == REJECTED:
            raise Conflict(f"a rejected {self.kind.label} cannot be changed")
        version = int(record["version"])
        if expected_version is not None and expected_version != version:
            raise PreconditionFailed(f"the {self.kind.label} is at version {version}, not {expected_version}")
        return {k: v for k, v in body.items() if record.get(k) != v}, version

    def request_retry(self, principal: Principal, record_id: str) -> dict[str, Any]:
        """Validate a flagged record again without changing a field (after a system error was
        cured): bumps the version, which is what the drain looks for."""
        current = self.get(principal.tenant_id, record_id)
        if current["status"] != FLAGGED:
            raise Conflict(
                f"only a FLAGGED {self.kind.label} can be retried; this one is {current['status']}"
            )
        now = now_iso()
        return self.table.update(
            current["PK"], current["SK"], int(current["version"]),
            {"updatedAt": now, "updatedBy": principal.actor, "retryRequestedAt": now},
        )  # fmt: skip

    def reject(self, principal: Principal, record_id: str, reason: str) -> dict[str, Any]:
        """An admin ends a record's review: REJECTED with the reason (the drain then fails the
        waiting workflow with RecordRejected)."""
        if self.kind.reject_with is not None:
            return self.kind.reject_with(self.table, principal, record_id, reason)
        current = self.get(principal.tenant_id, record_id)
        if current["status"] == REJECTED:
            return current
        if current["status"] == self.kind.approved:
            raise Conflict(
                f"an {self.kind.approved.lower()} {self.kind.label} is not in the correction queue"
            )
        now = now_iso()
        return self.table.update(
            current["PK"], current["SK"], int(current["version"]),
            {"status": REJECTED, "statusReason": reason, "updatedAt": now, "updatedBy": principal.actor,
             **self.kind.index_changes(principal.tenant_id, REJECTED, now)},
        )  # fmt: skip

    def withdraw(self, principal: Principal, record_id: str, reason: str, action: str) -> dict[str, Any]:
        """Take an approved record out of use (``kind.withdrawn``) with the reason and who did it
        (``withdrawnBy``, the caller's role in ``withdrawnAs``). The same again answers the record
        as it is; from any other status, 409 naming it. A write that loses a race to another change
        (a reservation moves a listing's version) is read and decided again."""
        status = self._withdrawn()
        for _ in range(WITHDRAW_ATTEMPTS):
            current = self.get(principal.tenant_id, record_id)
            if current["status"] == status:
                return current
            if current["status"] != self.kind.approved:
                raise self._refused(current, action, self.kind.approved)
            now = now_iso()
            try:
                return self.table.update(
                    current["PK"], current["SK"], int(current["version"]),
                    {"status": status, "statusReason": reason, "withdrawnBy": principal.actor,
                     "withdrawnAs": _acting_as(principal), "withdrawnAt": now, "updatedAt": now,
                     "updatedBy": principal.actor, **self.kind.index_changes(principal.tenant_id, status, now)},
                )  # fmt: skip
            except Conflict:
                continue
        raise Conflict(f"the {self.kind.label} {record_id} keeps changing; read it and try again")

    def restore(self, principal: Principal, record_id: str, reason: str, action: str) -> dict[str, Any]:
        """Put a withdrawn record back in its approved status, with the reason. Its kind's rules
        run first, at once: a record changed while withdrawn, or one whose rules no longer pass (a
        supplier now on the blocked list, a listing whose supplier is suspended), stays withdrawn
        (409 with the flags). A record an admin withdrew only an admin restores. The same again
        answers the record as it is; from any other status, 409 naming it."""
        status = self._withdrawn()
        for _ in range(WITHDRAW_ATTEMPTS):
            current = self.get(principal.tenant_id, record_id)
            if current["status"] == self.kind.approved:
                return current
            if current["status"] != status:
                raise self._refused(current, action, status)
            if current.get("withdrawnAs") == ADMIN and _acting_as(principal) != ADMIN:
                raise Conflict(
                    f"the {self.kind.label} was {status.lower()} by an admin: only an admin may {action} it",
                    [FieldError("status", f"{status} by an admin")],
                )
            if self.kind.rules is not None:
                pack = rule_packs.active(self.table, principal.tenant_id)
                verdict = self.kind.rules(self.table, principal.tenant_id, current, pack)
                if verdict.outcome != self.kind.approved:
                    raise Conflict(
                        f"{action} refused: the {self.kind.label}'s rules say {verdict.outcome}",
                        list(verdict.flags),
                    )
            now = now_iso()
            try:
                return self.table.update(
                    current["PK"], current["SK"], int(current["version"]),
                    {"status": self.kind.approved, "statusReason": reason, "updatedAt": now,
                     "updatedBy": principal.actor,
                     **self.kind.index_changes(principal.tenant_id, self.kind.approved, now)},
                    remove=WITHDRAWAL_FIELDS,
                )  # fmt: skip
            except Conflict:
                continue
        raise Conflict(f"the {self.kind.label} {record_id} keeps changing; read it and try again")

    def _withdrawn(self) -> str:
        if self.kind.withdrawn is None:
            raise TypeError(f"{self.kind.name} records cannot be withdrawn")
        return self.kind.withdrawn

    def _refused(self, current: Mapping[str, Any], action: str, needed: str) -> Conflict:
        status = current["status"]
        return Conflict(
            f"the {self.kind.label} is {status}; {action} needs it {needed}",
            [FieldError("status", f"is {status}, not {needed}")],
        )

    def flag_for_operator(
        self, tenant_id: str, record_id: str, expected_version: int, reason: str
    ) -> dict[str, Any]:
        """Flag a record whose workflow stopped on a system error before any verdict, so that it
        shows in the correction queue (Conflict if the record changed since it was read)."""
        now = now_iso()
        pk, sk = self.kind.key(tenant_id, record_id)
        return self.table.update(
            pk, sk, expected_version,
            {"status": FLAGGED, "flags": [{"field": SYSTEM_FIELD, "reason": reason}], "updatedAt": now,
             "updatedBy": "system:correction-drain", **self.kind.index_changes(tenant_id, FLAGGED, now)},
        )  # fmt: skip

"""The manual-correction queue and its drain.

A workflow that needs a human puts a message on the correction queue: the record's kind, tenant,
id, the version it flagged (``flaggedVersion``), the flags, and — while the execution waits — its
task token. The queue is shared by every tenant, and SQS cannot receive one tenant's messages, so
the queue only carries them: its consumer (:func:`park`, an event source mapping with partial batch
failures) parks each message, body and task token as sent, in the table under its tenant's
partition (:class:`Parked`, one item per kind, record and flagged version, so a message delivered
twice parks one item), and the message leaves the queue only once its item is written. A tenant's
drain reads its own partition and nothing else (decisions.md D28); the scheduled drain reads every
tenant's, through the sparse ``GSI3`` shards. For each parked correction:

* record gone, approved or otherwise no longer FLAGGED: the correction is stale and is removed;
* record REJECTED by an admin: the waiting execution is failed with ``RecordRejected``; removed;
* record FLAGGED and unchanged since it was flagged: nobody fixed it yet; the waiting execution
  gets a heartbeat and the correction stays parked for the next drain;
* record FLAGGED and changed since (``version > flaggedVersion``): the human fixed it; the waiting
  execution is resumed with the new version, or, when its token has expired (or it never had one),
  the record is restarted by a new execution named from its id and version; removed;
* record still PENDING (its workflow stopped on an error before any verdict, and could not even
  flag it): the drain flags it with the error, so admins see it, and parks it again at the new
  version; once fixed (or retried) it is restarted like any other;
* a message that cannot be read: sent to the dead-letter queue with the reason when it is parked.

Resuming is idempotent per (kind, tenant, record, flaggedVersion): the caller wraps
:meth:`Drain.resume` with Powertools idempotency, so a message delivered twice resumes once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from marketplace import clock, keys, registry
from marketplace.errors import Conflict, NotFound
from marketplace.messages import PoisonMessage, json_object
from marketplace.repository import Table
from marketplace.reviewed import Records
from marketplace.routing import start

log = logging.getLogger(__name__)

_DEAD_TOKEN_ERRORS = {"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"}


@dataclass(frozen=True)
class Correction:
    kind: str
    tenant_id: str
    record_id: str
    flagged_version: int
    task_token: str | None
    flags: list[dict[str, Any]]
    system_error: dict[str, Any] | None = None

    @classmethod
    def parse(cls, body: str) -> Correction:
        data = json_object(body)
        kind = data.get("kind")
        if registry.find(kind) is None:
            raise PoisonMessage(f"unknown kind {kind!r}")
        tenant, record = data.get("tenantId"), data.get("recordId")
        if not isinstance(tenant, str) or not tenant or not isinstance(record, str) or not record:
            raise PoisonMessage("tenantId and recordId must be non-empty strings")
        version = data.get("flaggedVersion")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise PoisonMessage("flaggedVersion must be a positive integer")
        token = data.get("taskToken")
        flags = data.get("flags") if isinstance(data.get("flags"), list) else []
        system_error = data.get("systemError") if isinstance(data.get("systemError"), dict) else None
        token = token if isinstance(token, str) and token else None
        return cls(kind, tenant, record, version, token, flags, system_error)

    @property
    def key(self) -> tuple[str, str]:
        return keys.correction_pk(self.tenant_id), keys.correction_sk(
            self.kind, self.record_id, self.flagged_version
        )

    def idempotency_payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "tenantId": self.tenant_id, "recordId": self.record_id,
                "flaggedVersion": self.flagged_version, "taskToken": self.task_token}  # fmt: skip


@dataclass
class DrainReport:
    resumed: int = 0
    restarted: int = 0
    waiting: int = 0
    closed: int = 0  # rejected by an admin, or stale
    duplicates: int = 0  # a message whose resume had already been done
    requeued: int = 0  # a stuck PENDING record, now flagged and queued again
    # The drain stopped because its time ran short, not because the queue was empty: call it again.
    more: bool = False
    by_tenant: dict[str, Counter[str]] = field(default_factory=dict)

    def count(self, tenant: str | None, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        if tenant:
            self.by_tenant.setdefault(tenant, Counter())[outcome] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "resumed": self.resumed, "restarted": self.restarted, "waiting": self.waiting,
            "closed": self.closed, "duplicates": self.duplicates, "requeued": self.requeued,
            "more": self.more,
            "byTenant": {t: dict(c) for t, c in self.by_tenant.items()},
        }  # fmt: skip


# What one page of ten corrections may take to handle (a record read, a resume or a heartbeat each,
# plus the idempotency record): measured at well under a second on AWS, with room for retries.
BATCH_SECONDS = 3.0
PAGE_SIZE = 10
# How long a drain that ran out of time keeps the unfixed corrections it read hidden (see run).
WAITING_HIDDEN_SECONDS = 60
PARKED_ENTITY = "CORRECTION"


class Parked:
    """The parked corrections: one item per (kind, record, flagged version) in the tenant's
    partition (``keys.correction_pk``), holding the message body as the workflow sent it."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def park(self, correction: Correction, body: str) -> None:
        """Idempotent: the same message parked twice is one item (the later write wins, and both
        say the same; a restart message and the expired token's message of one flagged version
        differ only in the token, which the drain handles either way)."""
        pk, sk = correction.key
        now = clock.now_iso()
        self.table.put({
            "PK": pk, "SK": sk, "entity": PARKED_ENTITY, "tenantId": correction.tenant_id,
            "body": body, "parkedAt": now,
            "GSI3PK": keys.correction_shard_of(correction.tenant_id, correction.record_id), "GSI3SK": now,
        })  # fmt: skip

    def remove(self, correction: Correction) -> None:
        self.table.delete(*correction.key)

    def hide(self, item: dict[str, Any], seconds: int) -> None:
        """Skipped by drains until ``seconds`` from now (as SQS's visibility timeout hides a
        received message); never brings back an item another drain removed meanwhile."""
        until = clock.iso(clock.now() + timedelta(seconds=seconds))
        with contextlib.suppress(Conflict):
            self.table.replace({**item, "hiddenUntil": until})

    def pages(self, tenant_id: str | None, first_shard: int = 0) -> Iterator[list[dict[str, Any]]]:
        """Pages of parked items: the tenant's partition, or with no tenant every shard of GSI3,
        from ``first_shard`` round (a run that stops early has read the shards it began with)."""
        if tenant_id is not None:
            partitions = [(keys.correction_pk(tenant_id), None, "PK", "SK")]
        else:
            shards = keys.CORRECTION_SHARDS
            partitions = [(keys.correction_shard((first_shard + n) % shards), "GSI3", "GSI3PK", "GSI3SK")
                          for n in range(shards)]  # fmt: skip
        for pk, index, pk_name, sk_name in partitions:
            token = None
            while True:
                page = self.table.query(pk, index=index, pk_name=pk_name, sk_name=sk_name,
                                        limit=PAGE_SIZE, next_token=token)  # fmt: skip
                if page.items:
                    yield page.items
                token = page.next_token
                if not token:
                    break


def park(table: Table, body: str) -> Correction:
    """The queue consumer's work for one message; PoisonMessage when it cannot be read."""
    correction = Correction.parse(body)
    Parked(table).park(correction, body)
    return correction


class Drain:
    def __init__(
        self,
        sfn: Any,
        state_machine_arns: dict[str, str],
        table: Table | None = None,
    ) -> None:
        self.sfn = sfn
        self.state_machine_arns = state_machine_arns  # kind -> the ARN of its workflow
        self.table = table or Table()
        self.parked = Parked(self.table)

    def _records(self, correction: Correction) -> Records:
        """The correction's kind of record (Correction.parse has checked the kind is registered)."""
        return Records(registry.KINDS[correction.kind], self.table)

    def run(
        self,
        tenant_id: str | None,
        resume: Callable[[Correction, int], str] | None = None,
        max_messages: int = 1000,
        seconds_left: Callable[[], float] | None = None,
    ) -> DrainReport:
        """Drain the parked corrections of ``tenant_id`` (an admin's drain: no other tenant's item is
        read), or of every tenant when it is None (the scheduled drain). ``resume`` is
        :meth:`resume` wrapped for idempotency by the caller; it returns "resumed", "restarted", or
        "duplicates" for a resume that had already been done.

        ``seconds_left`` bounds the run: no new page is read once it says less than the time one
        page of ten may take (:data:`BATCH_SECONDS`, or twice the slowest page of this run when the
        services are slow), and the report says ``more``. A caller with a short timeout of its own
        (the API) drains what fits and is called again; nothing read is left unhandled, and what is
        not read stays parked for the next call."""
        resume = resume or self.resume
        report = DrainReport()
        still_waiting: list[dict[str, Any]] = []
        seen = 0
        slowest = 0.0
        now = clock.now_iso()
        # The scheduled drain begins with another shard each hour: were there more corrections than
        # one run reaches, each would still be read (and heartbeaten) within a few hours.
        pages = self.parked.pages(tenant_id, first_shard=clock.now().hour)
        while True:
            needed = max(BATCH_SECONDS, 2 * slowest)
            if seen >= max_messages or (seconds_left is not None and seconds_left() < needed):
                report.more = True
                break
            started = time.monotonic()
            items = next(pages, None)
            if items is None:
                break
            for item in items:
                if item.get("hiddenUntil", "") > now:
                    continue  # a drain that ran out of time read it a moment ago: see below
                seen += 1
                correction = Correction.parse(item["body"])
                outcome = self._handle(correction, resume)
                report.count(correction.tenant_id, outcome)
                if outcome == "waiting":
                    still_waiting.append(item)
                else:
                    self.parked.remove(correction)
            slowest = max(slowest, time.monotonic() - started)
        # Unfixed records stay parked. A drain that ran out of time (``more``) hides the ones it
        # read for a little while: the caller calls again right away, and that call must reach the
        # corrections this one did not, not read the same unfixed ones again.
        if report.more:
            for item in still_waiting:
                self.parked.hide(item, WAITING_HIDDEN_SECONDS)
        return report

    def _handle(self, correction: Correction, resume: Callable[[Correction, int], str]) -> str:
        try:
            record = self._records(correction).get(correction.tenant_id, correction.record_id)
        except NotFound:
            return "closed"
        status, version = record.get("status"), int(record.get("version", 0))
        replaced = (
            self._records(correction).kind.on_approval is not None and version > correction.flagged_version
        )
        if replaced and status != "FLAGGED":
            # The proposal this correction is about was rejected and a new one written over it,
            # which may be decided already (D41): the old one's wait ends as a rejection.
            self._fail_task(correction, record.get("statusReason") or "replaced by a newer proposal")
            return "closed"
        if status in ("REJECTED", "CANCELLED"):
            self._fail_task(correction, record.get("statusReason") or "rejected by an admin")
            return "closed"
        if status == "PENDING":
            return self._flag_stuck(correction, record)
        if status != "FLAGGED":  # APPROVED, ACTIVE: decided meanwhile
            return "closed"
        if version <= correction.flagged_version:
            self._heartbeat(correction)
            return "waiting"
        return resume(correction, version)

    def resume(self, correction: Correction, version: int) -> str:
        """Hand the fixed record back to its workflow; returns "resumed" or "restarted"."""
        if correction.task_token:
            try:
                self.sfn.send_task_success(
                    taskToken=correction.task_token, output=json.dumps({"version": version})
                )
                return "resumed"
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in _DEAD_TOKEN_ERRORS:
                    raise
                log.info(
                    "task token expired; restarting the record", extra={"recordId": correction.record_id}
                )
        kind = self._records(correction).kind
        start(
            self.state_machine_arns[correction.kind],
            kind.execution_name(correction.record_id, version),
            kind.start_input(correction.tenant_id, correction.record_id, version),
        )
        return "restarted"

    def _flag_stuck(self, correction: Correction, record: dict[str, Any]) -> str:
        error = correction.system_error or {}
        reason = (
            f"the workflow stopped before a verdict ({error.get('Error', 'unknown error')}): "
            "an operator must look at it, then retry or reject the record"
        )
        try:
            flagged = self._records(correction).flag_for_operator(
                correction.tenant_id, correction.record_id, int(record["version"]), reason
            )
        except Conflict:
            return "waiting"  # the record moved meanwhile: the next drain looks again
        body = {
            "kind": correction.kind, "tenantId": correction.tenant_id, "recordId": correction.record_id,
            "flaggedVersion": flagged["version"], "flags": flagged.get("flags", []), "systemError": error,
        }  # fmt: skip
        park(self.table, json.dumps(body, default=str))
        return "requeued"

    def _heartbeat(self, correction: Correction) -> None:
        if not correction.task_token:
            return
        try:
            self.sfn.send_task_heartbeat(taskToken=correction.task_token)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in _DEAD_TOKEN_ERRORS:
                raise

    def _fail_task(self, correction: Correction, reason: str) -> None:
        if not correction.task_token:
            return
        try:
            self.sfn.send_task_failure(
                taskToken=correction.task_token, error="RecordRejected", cause=reason[:32768]
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in _DEAD_TOKEN_ERRORS:
                raise


def to_dead_letter(sqs: Any, dead_letter_url: str, body: str, message_id: str, reason: str) -> None:
    """A correction message that cannot be read, kept with the reason for an operator."""
    sqs.send_message(
        QueueUrl=dead_letter_url,
        MessageBody=body or "(empty)",
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": reason[:1000]},
            "sourceMessageId": {"DataType": "String", "StringValue": message_id or "unknown"},
        },
    )

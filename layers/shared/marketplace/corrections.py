"""The manual-correction queue and its drain.

A workflow that needs a human puts a message on the correction queue: the record's kind, tenant,
id, the version it flagged (``flaggedVersion``), the flags, and — while the execution waits — its
task token. The drain reads the queue and, for each message:

* record gone, approved or otherwise no longer FLAGGED: the message is stale and is deleted;
* record REJECTED by an admin: the waiting execution is failed with ``RecordRejected``; deleted;
* record FLAGGED and unchanged since it was flagged: nobody fixed it yet; the waiting execution
  gets a heartbeat and the message stays queued (made visible again for the next drain);
* record FLAGGED and changed since (``version > flaggedVersion``): the human fixed it; the waiting
  execution is resumed with the new version, or, when its token has expired (or it never had one),
  the record is restarted by a new execution named from its id and version; deleted;
* record still PENDING (its workflow stopped on an error before any verdict, and could not even
  flag it): the drain flags it with the error, so admins see it, and queues it again at the new
  version; once fixed (or retried) it is restarted like any other;
* a message that cannot be read: sent to the dead-letter queue with the reason; deleted.

Resuming is idempotent per (kind, tenant, record, flaggedVersion): the caller wraps
:meth:`Drain.resume` with Powertools idempotency, so a message delivered twice resumes once.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from marketplace import registry
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
    poisoned: int = 0
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
            "poisoned": self.poisoned, "more": self.more,
            "byTenant": {t: dict(c) for t, c in self.by_tenant.items()},
        }  # fmt: skip


# What one received batch of ten messages may take to handle (a record read, a resume or a heartbeat
# each, plus the idempotency record): measured at well under a second on AWS, with room for retries.
BATCH_SECONDS = 3.0
# How long a drain that ran out of time keeps the unfixed messages it read hidden (see run).
WAITING_HIDDEN_SECONDS = 60


class Drain:
    def __init__(
        self,
        sqs: Any,
        sfn: Any,
        queue_url: str,
        dead_letter_url: str,
        state_machine_arns: dict[str, str],
        table: Table | None = None,
    ) -> None:
        self.sqs = sqs
        self.sfn = sfn
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url
        self.state_machine_arns = state_machine_arns  # kind -> the ARN of its workflow
        self.table = table or Table()

    def _records(self, correction: Correction) -> Records:
        """The message's kind of record (Correction.parse has checked the kind is registered)."""
        return Records(registry.KINDS[correction.kind], self.table)

    def run(
        self,
        resume: Callable[[Correction, int], str] | None = None,
        max_messages: int = 1000,
        seconds_left: Callable[[], float] | None = None,
    ) -> DrainReport:
        """Drain the queue once. ``resume`` is :meth:`resume` wrapped for idempotency by the caller;
        it returns "resumed", "restarted", or "duplicates" for a resume that had already been done.

        ``seconds_left`` bounds the run: no new batch is received once it says less than the time one
        batch of ten may take (:data:`BATCH_SECONDS`, or twice the slowest batch of this run when the
        services are slow), and the report says ``more``. A caller with a short timeout of its own
        (the API) drains what fits and is called again; nothing received is left unhandled, and what
        is not received stays queued for the next call."""
        resume = resume or self.resume
        report = DrainReport()
        still_waiting: list[dict[str, str]] = []
        seen = 0
        slowest = 0.0
        while True:
            needed = max(BATCH_SECONDS, 2 * slowest)
            if seen >= max_messages or (seconds_left is not None and seconds_left() < needed):
                report.more = True
                break
            started = time.monotonic()
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                AttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])  # fmt: skip
            if not messages:
                break
            for message in messages:
                seen += 1
                outcome, tenant = self._handle(message, resume)
                report.count(tenant, outcome)
                if outcome == "waiting":
                    still_waiting.append(message)
                else:
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            slowest = max(slowest, time.monotonic() - started)
        # Unfixed records stay queued. After a drain that reached the end of the queue they are
        # visible again at once, so the next drain sees a fix made meanwhile. After one that ran out
        # of time (``more``) they stay hidden a little while: the caller calls again right away, and
        # that call must reach the messages this one did not, not read the same unfixed ones again.
        hidden_for = WAITING_HIDDEN_SECONDS if report.more else 0
        for start_at in range(0, len(still_waiting), 10):
            batch = still_waiting[start_at : start_at + 10]
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": hidden_for}
                    for i, m in enumerate(batch)
                ],
            )
        return report

    def _handle(
        self, message: dict[str, Any], resume: Callable[[Correction, int], str]
    ) -> tuple[str, str | None]:
        try:
            correction = Correction.parse(message.get("Body", ""))
        except PoisonMessage as exc:
            self._to_dead_letter(message, str(exc))
            return "poisoned", None
        try:
            record = self._records(correction).get(correction.tenant_id, correction.record_id)
        except NotFound:
            return "closed", correction.tenant_id
        status, version = record.get("status"), int(record.get("version", 0))
        if status in ("REJECTED", "CANCELLED"):
            self._fail_task(correction, record.get("statusReason") or "rejected by an admin")
            return "closed", correction.tenant_id
        if status == "PENDING":
            return self._flag_stuck(correction, record), correction.tenant_id
        if status != "FLAGGED":  # APPROVED, ACTIVE: decided meanwhile
            return "closed", correction.tenant_id
        if version <= correction.flagged_version:
            self._heartbeat(correction)
            return "waiting", correction.tenant_id
        return resume(correction, version), correction.tenant_id

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
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body, default=str))
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

    def _to_dead_letter(self, message: dict[str, Any], reason: str) -> None:
        self.sqs.send_message(
            QueueUrl=self.dead_letter_url,
            MessageBody=message.get("Body") or "(empty)",
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": reason[:1000]},
                "sourceMessageId": {"DataType": "String", "StringValue": message.get("MessageId", "unknown")},
            },
        )

"""Writes the audit trail from the table's stream (see marketplace.audit).

A record's entries are chained in its order (D48): once one of its changes fails in a batch, its later
changes in the batch fail too (Lambda delivers them again after the failed one), so that no entry is
linked past one that is not written yet."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import audit, config
from marketplace.observability import count, observed
from marketplace.repository import Table

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
_failed: set[tuple[str, str]] = set()  # the records (PK, SK) with a failed change in this batch


def record_handler(record: DynamoDBRecord) -> None:
    stream = record.dynamodb
    image = (stream.new_image or stream.old_image or {}) if stream else {}
    item = (str(image.get("PK")), str(image.get("SK")))
    if item in _failed:
        raise RuntimeError("an earlier change of this record failed in this batch; retried after it")
    try:
        _record(record)
    except Exception:
        _failed.add(item)
        raise


def _record(record: DynamoDBRecord) -> None:
    stream = record.dynamodb
    created = stream.approximate_creation_date_time if stream else None
    created_at = (
        datetime.fromtimestamp(float(created), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if created is not None
        else ""
    )
    entry = audit.audit_entry(
        record.event_id or "",
        record.event_name.name if record.event_name else "",
        created_at,
        stream.old_image if stream else None,
        stream.new_image if stream else None,
    )
    if entry is None:
        return
    written = audit.record(Table(), entry)
    count(metrics, "AuditEntries" if written else "AuditDuplicates", entry["tenantId"])


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _failed.clear()
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

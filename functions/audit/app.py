"""Writes the audit trail from the table's stream (see marketplace.audit)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import audit, config
from marketplace.observability import observed
from marketplace.repository import Table

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def record_handler(record: DynamoDBRecord) -> None:
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
    metrics.add_metric(name="AuditEntries" if written else "AuditDuplicates", unit="Count", value=1)


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

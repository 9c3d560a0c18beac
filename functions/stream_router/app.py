"""Starts the workflow that a stream record needs, with a deterministic execution name, and
applies an approved proposal to its record (marketplace.routing.follow_approval).

The event source mapping's FilterCriteria already limit deliveries to the transitions that start a
workflow; the router checks again (the filter is an optimisation, not the rule). A duplicate
delivery finds the execution already started and succeeds; a failure is reported per record
(ReportBatchItemFailures) so the mapping retries from that record, not the whole batch.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import config, routing
from marketplace.observability import NO_TENANT, count, observed

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def record_handler(record: DynamoDBRecord) -> None:
    event_name = record.event_name.name if record.event_name else ""
    new_image, old_image = record.dynamodb.new_image, record.dynamodb.old_image
    tenant_id = (new_image or old_image or {}).get("tenantId") or NO_TENANT
    applied = routing.follow_approval(event_name, new_image, old_image)
    if applied is not None:
        logger.info("approved proposal", extra={"outcome": applied, "entity": new_image.get("entity")})
        count(metrics, "ProposalsApplied" if applied == "applied" else "ProposalsNotApplied", tenant_id)
    started = routing.route(event_name, new_image, old_image)
    if started is not None:
        logger.info("workflow started", extra={"execution": started.name, "duplicate": started.duplicate})
        count(metrics, "DuplicateStarts" if started.duplicate else "WorkflowsStarted", tenant_id)


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

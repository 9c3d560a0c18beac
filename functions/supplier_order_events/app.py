"""Publishes every status-change event: each status change of a supplier, a listing or a supplier
order after its creation (marketplace.events) becomes one message on the supplier-notifications topic (attributes
supplier_id, tenant_id, event_type, event_id) and one signed delivery to the supplier's webhook, if it
registered one (marketplace.webhooks); a delivery or a refund also writes the supplier's ledger
entries (marketplace.ledger), and a supplier order's change counts in its supplier's performance
(marketplace.performance), each once per event id.

Driven by the table's stream, so every writer (workflow, API, sweeper) is covered and nothing
has to remember to notify (the onboarding workflow's own welcome publish is gone: D39).
``event_id`` is the record's id and version: a repeated stream delivery
publishes a message with the same id, which subscribers use to drop duplicates.

The batch's events are published first, 10 to a PublishBatch request (D22); then each record queues
its webhook delivery. A record whose event SNS refused is reported as a batch item failure and comes
back, with the records after it, in the mapping's retry.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBStreamEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import config, ledger, performance
from marketplace.adapters import aws
from marketplace.errors import TransientError
from marketplace.events import event_for, publish_all
from marketplace.observability import count, observed
from marketplace.repository import Table, plain
from marketplace.webhooks import Webhooks

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
webhooks = Webhooks()


def _images(record: DynamoDBRecord) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    stream = record.dynamodb
    # The images in plain JSON types: SNS and the webhook carry the same numbers (a version 2, not "2").
    return (plain(stream.old_image) if stream else None, plain(stream.new_image) if stream else None)


def _event(record: DynamoDBRecord) -> dict[str, Any] | None:
    return event_for(*_images(record))


def _sequence(record: DynamoDBRecord) -> str:
    return str(record.dynamodb.sequence_number if record.dynamodb else record.event_id)


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    events = {_sequence(r): e for r in DynamoDBStreamEvent(event).records if (e := _event(r)) is not None}
    refused = publish_all(aws.client("sns"), os.environ["SUPPLIER_NOTIFICATIONS_TOPIC_ARN"], events)

    def record_handler(record: DynamoDBRecord) -> None:
        sequence = _sequence(record)
        found = events.get(sequence)
        if found is None:
            return
        # The supplier's ledger (a delivery's sale, a refund): each entry once per event id.
        tenant_id = found["body"]["tenantId"]
        entries = ledger.record(Table(), found["body"])
        if entries:
            count(metrics, "LedgerEntries", tenant_id, entries)
        # The supplier's performance counters: each change counted once per event id.
        if performance.record(Table(), found["id"], *_images(record)):
            count(metrics, "PerformanceChangesCounted", tenant_id)
        if sequence in refused:
            raise TransientError(f"event {found['id']} not published: {refused[sequence]}")
        delivery = webhooks.enqueue(
            tenant_id,
            found["body"]["supplierId"],
            found["type"],
            found["body"],
            dedupe_key=found["id"],
        )
        logger.info(
            "status event published",
            extra={"event_type": found["type"], "event_id": found["id"], "webhook_delivery": delivery},
        )
        count(metrics, "SupplierOrderEvents", tenant_id)

    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

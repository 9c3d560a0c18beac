"""Publishes every supplier-order event: each status change of a supplier order becomes one message
on the supplier-notifications topic (attributes supplier_id, tenant_id, event_type, event_id) and
one signed delivery to the supplier's webhook, if it registered one (marketplace.webhooks).

Driven by the table's stream, so every writer (workflow, API, sweeper) is covered and nothing
has to remember to notify. ``event_id`` is the order's id and version: a repeated stream delivery
publishes a message with the same id, which subscribers use to drop duplicates.
"""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import config
from marketplace.adapters import aws
from marketplace.order_events import event_for
from marketplace.webhooks import Webhooks

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
webhooks = Webhooks()


def record_handler(record: DynamoDBRecord) -> None:
    stream = record.dynamodb
    event = event_for(stream.old_image if stream else None, stream.new_image if stream else None)
    if event is None:
        return
    aws.client("sns").publish(
        TopicArn=os.environ["SUPPLIER_NOTIFICATIONS_TOPIC_ARN"],
        Message=json.dumps(event["body"], default=str),
        MessageAttributes={
            k: {"DataType": "String", "StringValue": v} for k, v in event["attributes"].items()
        },
    )
    delivery = webhooks.enqueue(
        event["body"]["tenantId"],
        event["body"]["supplierId"],
        event["type"],
        event["body"],
        dedupe_key=event["id"],
    )
    logger.info(
        "supplier order event published",
        extra={"event_type": event["type"], "event_id": event["id"], "webhook_delivery": delivery},
    )
    metrics.add_metric(name="SupplierOrderEvents", unit="Count", value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

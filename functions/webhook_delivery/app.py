"""Webhook delivery: POSTs each supplier-order event to the supplier's webhook, from the webhook
delivery queue (see marketplace.webhooks for the retries, the dead letters and why the delivery
id is what receivers dedupe on).

Each SQS record is one attempt of one delivery. A failed attempt is not an error here: the next
attempt is queued with its delay and the record succeeds. Only our own infrastructure failing
(DynamoDB, SQS) fails a record, which Powertools reports in ``batchItemFailures`` so that SQS
redelivers just that message. Logs name the delivery, event, attempt and status code; never the
body (order data) or the secret.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import config
from marketplace.observability import observed
from marketplace.webhooks import Webhooks

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)

_METRICS = {
    "delivered": "WebhooksDelivered",
    "retrying": "WebhookAttemptsFailed",
    "failed": "WebhooksFailed",
    "refused": "WebhooksRefused",  # the URL does not lead to a public address: not sent, dead-lettered
    "duplicate": "WebhookDuplicatesSkipped",
    "missing": "WebhookDeliveriesMissing",
    "poison": "WebhookMessagesPoisoned",
}


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    result = Webhooks().process(record.body)
    fields = {"messageId": record.message_id, **result.log_fields()}
    if result.outcome in ("failed", "refused", "poison", "missing"):
        logger.warning("webhook delivery", extra=fields)
    else:
        logger.info("webhook delivery", extra=fields)
    metrics.add_metric(name=_METRICS.get(result.outcome, "WebhookOther"), unit="Count", value=1)


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

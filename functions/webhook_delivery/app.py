"""Webhook delivery: POSTs each supplier-order event to the supplier's webhook, from the webhook
delivery queue (see marketplace.webhooks for the retries, the dead letters and why the delivery
id is what receivers dedupe on).

Each SQS record is one attempt of one delivery. A failed attempt is not an error here: the next
attempt is queued with its delay and the record succeeds. Only our own infrastructure failing
(DynamoDB, SQS) fails a record, which Powertools reports in ``batchItemFailures`` so that SQS
redelivers just that message.

The records of a batch are delivered at once, not one after another: a batch holds several
suppliers' deliveries, and a slow receiver must not hold back the others (each POST has its own
timeout, ``marketplace.webhooks.DELIVERY_TIMEOUT_SECONDS``). Powertools' ``AsyncBatchProcessor``
runs the records together and keeps the partial-failure report; each delivery, which blocks on
its HTTP call, runs in a bounded thread pool (``DELIVERY_CONCURRENCY``). Logs name the delivery, event, attempt and status code; never the
body (order data) or the secret.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import (
    AsyncBatchProcessor,
    EventType,
    async_process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import config
from marketplace.observability import NO_TENANT, count, observed
from marketplace.webhooks import DELIVERY_CONCURRENCY, Processed, Webhooks

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()
processor = AsyncBatchProcessor(event_type=EventType.SQS)
# Kept for the container's life, as the clients are: threads are started once, not per batch.
pool = ThreadPoolExecutor(max_workers=DELIVERY_CONCURRENCY, thread_name_prefix="webhook")

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
def deliver(hooks: Webhooks, body: str) -> Processed:
    """One record's delivery, in a pool thread: it waits on its receiver, not on the others."""
    return hooks.process(body)


async def record_handler(hooks: Webhooks, record: SQSRecord) -> None:
    # An exception (our own infrastructure failing) fails this record only, as before.
    result = await asyncio.get_running_loop().run_in_executor(pool, deliver, hooks, record.body)
    # Logged and counted here, on the event loop's one thread (Metrics is not shared across threads).
    fields = {"messageId": record.message_id, **result.log_fields()}
    if result.outcome in ("failed", "refused", "poison", "missing"):
        logger.warning("webhook delivery", extra=fields)
    else:
        logger.info("webhook delivery", extra=fields)
    count(metrics, _METRICS.get(result.outcome, "WebhookOther"), result.tenant_id or NO_TENANT)


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    hooks = Webhooks.for_delivery()

    async def handle(record: SQSRecord) -> None:
        await record_handler(hooks, record)

    return async_process_partial_response(
        event=event, record_handler=handle, processor=processor, context=context
    )

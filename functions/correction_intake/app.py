"""The correction queue's consumer: parks each message in the table under its tenant's partition
(marketplace.corrections.park), where that tenant's drain finds it without reading any other
tenant's. A message leaves the queue only once its item is written: a failed write is reported as a
batch item failure and SQS delivers the message again; parking twice writes the same item.
A message that cannot be read goes to the correction dead-letter queue with the reason."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import config
from marketplace.adapters import aws
from marketplace.corrections import park, to_dead_letter
from marketplace.messages import PoisonMessage
from marketplace.observability import NO_TENANT, count, observed
from marketplace.repository import Table

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    try:
        correction = park(Table(), record.body)
    except PoisonMessage as exc:
        to_dead_letter(
            aws.client("sqs"), os.environ["CORRECTION_DLQ_URL"], record.body, record.message_id, str(exc)
        )
        count(metrics, "CorrectionsPoisoned", NO_TENANT)
        return
    count(metrics, "CorrectionsParked", correction.tenant_id)


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

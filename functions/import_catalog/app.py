"""Bulk catalog import: each SQS message names an import (its CSV's key in the import bucket and
the row to go on from); ``marketplace.imports`` streams the file, writes the valid rows as
listings in parallel transactions and commits progress per chunk. When the invocation's time
runs short the rest is re-queued with its offset, so a file of any length fits Lambda's timeout.

A message fails (and SQS redelivers it, then dead-letters it) only when our own infrastructure
fails; redelivery is safe because the import is idempotent (see the domain module)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import config
from marketplace.imports import Imports
from marketplace.observability import count, observed

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)
_context: dict[str, LambdaContext] = {}


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    message = json.loads(record.body)
    context = _context["current"]
    outcome = Imports().process(message, lambda: context.get_remaining_time_in_millis() / 1000)
    logger.info(
        "import chunk",
        extra={"importId": message.get("importId"), "offset": message.get("offset"), "status": outcome.status,
               "chunks": outcome.chunks, "requeuedAt": outcome.requeued_at, "skipped": outcome.skipped},
    )  # fmt: skip
    count(metrics, "ImportChunks", message["tenantId"], outcome.chunks)


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _context["current"] = context
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

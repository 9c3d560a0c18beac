"""What every Lambda handler wears: Powertools' logger context, tracer and metrics, in one order.

    @observed(logger, tracer, metrics)
    def handler(event, context): ...

The objects stay the function's own module-level ``logger``, ``tracer`` and ``metrics`` (a
function's metrics must be flushed by the function that added them); only the order and the
options are decided here once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

Handler = Callable[[Any, Any], Any]


def observed(
    logger: Logger, tracer: Tracer, metrics: Metrics, correlation_id_path: str | None = None
) -> Callable[[Handler], Handler]:
    """The logger's Lambda context (and correlation id), an X-Ray segment, and the metrics flushed
    after each invocation, outermost first."""

    def wrap(handler: Handler) -> Handler:
        with_metrics = metrics.log_metrics(handler)
        traced = tracer.capture_lambda_handler(with_metrics)
        return logger.inject_lambda_context(traced, correlation_id_path=correlation_id_path)

    return wrap

"""What every Lambda handler wears: Powertools' logger context, tracer and metrics, in one order.

    @observed(logger, tracer, metrics)
    def handler(event, context): ...

The objects stay the function's own module-level ``logger``, ``tracer`` and ``metrics`` (a
function's metrics must be flushed by the function that added them); only the order and the
options are decided here once.

Every metric carries the tenant it counts as the dimension ``tenant`` (D52): a handler counts with
:func:`count`, never ``metrics.add_metric``. An invocation's metrics are one EMF document per flush,
with one set of dimensions, so the first tenant counted in an invocation is the document's, and a
count for another tenant of the same invocation (a stream or queue batch mixes tenants) is written
at once as a document of its own (Powertools' ``single_metric``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit

Handler = Callable[[Any, Any], Any]
# An invocation that counted nothing (a read-only route, a sweep with nothing due, a drain of an empty
# queue) publishes no metric: a metric of 0 would be one more per tenant to pay for (D52), and
# Powertools warns on every such invocation otherwise.
warnings.filterwarnings("ignore", message="No application metrics to publish")
TENANT = "tenant"  # the dimension every metric carries
NO_TENANT = "-"  # its value for what names no tenant (a message too broken to read; no tenant id has it)


def count(metrics: Metrics, name: str, tenant_id: str, value: float = 1) -> None:
    """Count ``value`` of ``name`` (a CamelCase fact, unit Count) for ``tenant_id``."""
    if TENANT not in metrics.dimension_set:
        metrics.add_dimension(name=TENANT, value=tenant_id)
    if metrics.dimension_set[TENANT] == tenant_id:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return
    provider = metrics.provider
    default = {**provider.default_dimensions, TENANT: tenant_id}
    if provider.service:
        default.setdefault("service", provider.service)
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=provider.namespace,
                       default_dimensions=default):  # fmt: skip
        pass


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

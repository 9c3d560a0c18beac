"""The supplier-order intake workflow's Lambda steps: ``validate`` and ``reserve``.

One function for both steps keeps one warm container for the order path. Errors surface to the
state machine by class name (``TransientError`` is retried, ``NotFound`` ends the workflow).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import clock, config
from marketplace.errors import UnknownStep
from marketplace.observability import count, observed
from marketplace.orders import Orders

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step, tenant_id, supplier_order_id = event.get("step"), event["tenantId"], event["supplierOrderId"]
    logger.append_keys(tenant_id=tenant_id, supplier_order_id=supplier_order_id, step=step)
    orders = Orders()
    if step == "validate":
        result = orders.validation_step(tenant_id, supplier_order_id)
    elif step == "reserve":
        result = orders.reserve(tenant_id, supplier_order_id, int(event["version"]), clock.now())
    else:
        raise UnknownStep(f"unknown step {step!r}")
    logger.info("supplier order step done", extra={"outcome": result["outcome"]})
    if result.get("testData"):  # a tenant's smoke test is no business (D47)
        return result
    count(metrics, f"SupplierOrder{step.title()}{result['outcome'].title().replace('_', '')}", tenant_id)
    return result

"""Expires the supplier orders whose supplier did not decide within the SLA, releasing their stock.

Runs every minute on a schedule; "now" is the scheduled event's ``time``, so a late or replayed
run expires exactly what was due at its scheduled time.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import clock, config
from marketplace.clock import parse_iso
from marketplace.observability import observed
from marketplace.orders import Orders

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = parse_iso(event["time"]) if isinstance(event, dict) and event.get("time") else clock.now()
    expired = Orders().expire_due(now)
    logger.info("expiry sweep", extra={"as_of": now.isoformat(), "expired": len(expired)})
    metrics.add_metric(name="SupplierOrdersExpired", unit="Count", value=len(expired))
    return {"expired": expired}

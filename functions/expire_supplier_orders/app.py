"""Fires the supplier orders' timed transitions: expires the orders whose supplier did not decide
within the SLA (their stock back), and after acceptance marks an order late, cancels it unshipped,
delivers it shipped, closes it after the return window (``marketplace.order_lifecycle.TIMERS``).

Runs every minute on a schedule over the sparse deadline index (each order's one next deadline);
"now" is the scheduled event's ``time``, so a late or replayed run fires exactly what was due at its
scheduled time, and a run repeated fires nothing twice (each transition is conditional on the version).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import clock, config
from marketplace.observability import count, observed
from marketplace.orders import Orders

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = clock.scheduled(event)
    by_tenant: Counter[tuple[str, str]] = Counter()  # (transition, tenant) -> orders fired
    fired = Orders().sweep_due(now, on_fired=lambda name, tenant_id: by_tenant.update([(name, tenant_id)]))
    logger.info("deadline sweep", extra={"as_of": now.isoformat(), **{k: len(v) for k, v in fired.items()}})
    for (name, tenant_id), fired_here in sorted(by_tenant.items()):
        if name == "expire":
            count(metrics, "SupplierOrdersExpired", tenant_id, fired_here)
        count(metrics, "SupplierOrderDeadlinesFired", tenant_id, fired_here)
    return {"expired": fired.get("expire", []), "fired": fired}

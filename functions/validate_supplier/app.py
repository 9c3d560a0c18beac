"""Supplier onboarding's Validate step: JSON Schema, then the business rules.

Returns ``{"outcome", "flags", "flagsAttribute", "version", "rulePackVersion"}``: the tenant's rule pack
(``marketplace.rule_packs``) decides, and its version stays in the execution (D51). Errors surface to the state machine
by class name: ``TransientError`` is retried, ``NotFound`` ends the workflow, anything else goes
to the correction queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import config
from marketplace.observability import count, observed
from marketplace.suppliers import Suppliers

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(tenant_id=event.get("tenantId"), supplier_id=event.get("recordId"))
    result = Suppliers().review_step(event.get("kind"), event["tenantId"], event["recordId"])
    logger.info("supplier validated", extra={"outcome": result["outcome"], "round": event.get("round"),
                                             "kind": event.get("kind"), "rule_pack": result["rulePackVersion"],
                                             "flagged_fields": [f["field"] for f in result["flags"]]})  # fmt: skip
    if not result.get("testData"):  # a tenant's smoke test is no business (D47)
        count(metrics, f"Suppliers{result['outcome'].title()}", event["tenantId"])
    return result

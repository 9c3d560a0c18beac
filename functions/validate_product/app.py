"""Product listing's Validate step: the supplier must be APPROVED, then schemas/product.json and
the category's rules in the tenant's rule pack (``marketplace.rule_packs``).

Returns ``{"outcome", "flags", "flagsAttribute", "version", "rulePackVersion"}`` (the pack's version
stays in the execution, D51); ``TransientError`` is retried by the
state machine, ``NotFound`` ends it, anything else goes to the correction queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import config
from marketplace.observability import count, observed
from marketplace.products import Products, split_record_id

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    supplier_id, sku = split_record_id(event["recordId"])
    logger.append_keys(tenant_id=event.get("tenantId"), supplier_id=supplier_id, sku=sku)
    result = Products().review_step(event.get("kind"), event["tenantId"], supplier_id, sku)
    logger.info(
        "listing validated",
        extra={"outcome": result["outcome"], "round": event.get("round"), "kind": event.get("kind"),
               "rule_pack": result["rulePackVersion"],
               "flagged_fields": [f["field"] for f in result["flags"]]},
    )  # fmt: skip
    if not result.get("testData"):  # a tenant's smoke test is no business (D47)
        count(metrics, f"Listings{result['outcome'].title()}", event["tenantId"])
    return result

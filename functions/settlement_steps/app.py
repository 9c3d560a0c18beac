"""The settlement workflow's Lambda steps (statemachines/settlement.asl.json): ``page`` lists one page of
the tenant's suppliers in batches, ``settle`` writes the period's statement of each supplier of a batch
that has ledger entries in it (marketplace.statements; a statement already written is kept as is).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import config, statements
from marketplace.errors import UnknownStep
from marketplace.imports import ImportStore
from marketplace.observability import count, observed
from marketplace.repository import Table

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step, tenant_id, period_id = event.get("step"), event["tenantId"], event["periodId"]
    logger.append_keys(tenant_id=tenant_id, period=period_id, step=step)
    if step == "page":
        per_page = int(config.require("SUPPLIERS_PER_PAGE"))
        return statements.supplier_page(Table(), tenant_id, event.get("nextToken"), per_page)
    if step == "settle":
        store = ImportStore(config.require("STATEMENT_BUCKET_NAME"))
        result = statements.settle_batch(Table(), store, tenant_id, period_id, list(event["supplierIds"]))
        logger.info("settlement batch", extra=result)
        count(metrics, "SettlementStatements", tenant_id, result["statements"])
        return result
    raise UnknownStep(f"unknown step {step!r}")

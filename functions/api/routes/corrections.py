"""The admin's correction queue: the flagged records of every kind in one list, the drain that
resumes the fixed ones, and any of them rejected or retried by its correction id."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import registry
from marketplace.adapters import aws
from marketplace.errors import TransientError
from marketplace.repository import Table
from routes import logger, request
from routes.policy import allow, caller

router = APIGatewayRouter()
# Of this function's time, what the drain may not use: the drain function's own start (a cold one
# takes a second or two) and this answer.
DRAIN_MARGIN_MS = 4000


@router.get("/admin/corrections", middlewares=[allow("admin")])
def list_corrections() -> dict[str, Any]:
    """Every kind's flagged records, one kind after the other (marketplace.registry)."""
    limit, token = request.page_args(router.current_event)
    return registry.corrections_page(Table(), caller(router).tenant_id, limit, token)


@router.post("/admin/corrections/drain", middlewares=[allow("admin")])
def drain_corrections() -> dict[str, Any]:
    principal = caller(router)
    # The drain reads the caller's tenant's corrections only (decisions.md D28). It must answer
    # within this function's own timeout (and API Gateway's 29 s): it drains what fits in the time
    # left here, less a margin for the answer, and says "more" when the tenant had more than that;
    # the caller asks again.
    budget_ms = router.lambda_context.get_remaining_time_in_millis() - DRAIN_MARGIN_MS
    if budget_ms <= 0:
        raise TransientError("no time left to run the drain; try again")
    response = aws.client("lambda").invoke(
        FunctionName=os.environ["CORRECTION_DRAIN_FUNCTION_NAME"],
        InvocationType="RequestResponse",
        Payload=json.dumps(
            {
                "source": "api",
                "requestedBy": principal.subject,
                "tenantId": principal.tenant_id,
                # when the drain must stop: this answer's own deadline, less the margin
                "deadlineMs": int(time.time() * 1000) + budget_ms,
            }
        ).encode(),
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError") or not isinstance(payload, dict):
        logger.error("drain failed", extra={"payload": payload})
        raise TransientError("the drain failed; the correction queue is unchanged, try again")
    mine = payload.get("byTenant", {}).get(principal.tenant_id, {})
    resumed = int(mine.get("resumed", 0)) + int(mine.get("restarted", 0))
    waiting = int(mine.get("waiting", 0)) + int(mine.get("requeued", 0))
    return {"resumed": resumed, "waiting": waiting, "more": bool(payload.get("more", False))}


@router.post("/admin/corrections/<recordId>/reject", middlewares=[allow("admin")])
def reject_correction(recordId: str) -> dict[str, Any]:
    """Any kind, by the correction id the queue lists (a supplier's bare id too)."""
    why = request.reason(router.current_event)
    return registry.reject(Table(), caller(router), recordId, why)


@router.post("/admin/corrections/<recordId>/retry", middlewares=[allow("admin")])
def retry_correction(recordId: str) -> dict[str, Any]:
    return registry.retry(Table(), caller(router), recordId)

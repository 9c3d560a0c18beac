"""The admin's correction queue: flagged suppliers, listings and supplier orders in one list; the
drain that resumes the fixed ones; a flagged supplier rejected or retried."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import keys, orders, products
from marketplace.adapters import aws
from marketplace.errors import TransientError
from marketplace.suppliers import Suppliers, view
from routes import logger, request
from routes.policy import allow, caller

router = APIGatewayRouter()
# Of this function's time, what the drain may not use: the drain function's own start (a cold one
# takes a second or two) and this answer.
DRAIN_MARGIN_MS = 4000


def _correction(record: dict[str, Any], now: datetime) -> dict[str, Any]:
    flagged_at = record.get("updatedAt")
    age = (
        (now - datetime.fromisoformat(flagged_at.replace("Z", "+00:00"))).total_seconds()
        if flagged_at
        else None
    )
    if record.get("entity") == orders.ENTITY:
        return {
            "recordType": "SUPPLIER_ORDER",
            "recordId": record["supplierOrderId"],
            "supplierId": record["supplierId"],
            "version": record["version"],
            "flags": record.get("flags", []),
            "flaggedAt": flagged_at,
            "ageSeconds": int(age) if age is not None else None,
            "record": orders.view(record),
        }
    is_product = record.get("entity") == products.ENTITY
    return {
        "recordType": "PRODUCT" if is_product else "SUPPLIER",
        "recordId": products.record_id(record["supplierId"], record["sku"])
        if is_product
        else record["supplierId"],
        "supplierId": record["supplierId"],
        **({"sku": record["sku"]} if is_product else {}),
        "version": record["version"],
        "flags": record.get("flags", []),
        "flaggedAt": flagged_at,
        "ageSeconds": int(age) if age is not None else None,
        "record": products.view(record) if is_product else view(record),
    }


@router.get("/admin/corrections", middlewares=[allow("admin")])
def list_corrections() -> dict[str, Any]:
    """Flagged suppliers, then listings, then supplier orders; the page token says which list it
    continues (S., P. or O.)."""
    tenant_id = caller(router).tenant_id
    limit, token = request.page_args(router.current_event)
    kind, inner = "SUPPLIER", token
    if token and token.startswith("O."):
        kind, inner = "SUPPLIER_ORDER", token[2:] or None
    elif token and token.startswith("P."):
        kind, inner = "PRODUCT", token[2:] or None
    elif token and token.startswith("S."):
        inner = token[2:]
    items: list[dict[str, Any]] = []
    next_token = None
    now = datetime.now(UTC)
    if kind == "SUPPLIER":
        page = Suppliers().list(tenant_id, "FLAGGED", limit, inner)
        items = [_correction(r, now) for r in page.items]
        next_token = f"S.{page.next_token}" if page.next_token else None
        if next_token is None and len(items) < limit:
            kind, inner = "PRODUCT", None
    if kind == "PRODUCT":
        page = products.Products().list_by_status(tenant_id, "FLAGGED", limit - len(items), inner)
        items += [_correction(r, now) for r in page.items]
        next_token = f"P.{page.next_token}" if page.next_token else None
        if next_token is None and len(items) < limit:
            kind, inner = "SUPPLIER_ORDER", None
    if kind == "SUPPLIER_ORDER":
        # The one raw index query left in the API: it belongs in the domain, as Orders'
        # counterpart of Products.list_by_status (marketplace.orders is not this module's to edit).
        page = orders.Orders().table.query(
            keys.status_gsi_pk(tenant_id, orders.ENTITY, "FLAGGED"),
            index="GSI1", pk_name="GSI1PK", sk_name="GSI1SK", limit=limit - len(items), next_token=inner,
            newest_first=True,
        )  # fmt: skip
        items += [_correction(r, now) for r in page.items]
        next_token = f"O.{page.next_token}" if page.next_token else None
    return {"items": items, "nextToken": next_token}


@router.post("/admin/corrections/drain", middlewares=[allow("admin")])
def drain_corrections() -> dict[str, Any]:
    principal = caller(router)
    # The drain must answer within this function's own timeout (and API Gateway's 29 s): it drains
    # what fits in the time left here, less a margin for the answer, and says "more" when the
    # queue held more than that; the caller asks again.
    budget_ms = router.lambda_context.get_remaining_time_in_millis() - DRAIN_MARGIN_MS
    if budget_ms <= 0:
        raise TransientError("no time left to run the drain; try again")
    response = aws.client("lambda").invoke(
        FunctionName=os.environ["CORRECTION_DRAIN_FUNCTION_NAME"],
        InvocationType="RequestResponse",
        Payload=json.dumps(
            {"source": "api", "requestedBy": principal.subject, "budgetMs": budget_ms}
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
    why = request.reason(router.current_event)
    return view(Suppliers().reject(caller(router), recordId, why))


@router.post("/admin/corrections/<recordId>/retry", middlewares=[allow("admin")])
def retry_correction(recordId: str) -> dict[str, Any]:
    return view(Suppliers().request_retry(caller(router), recordId))

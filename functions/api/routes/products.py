"""A supplier's listings: register one (its approval workflow starts), list, read, change, adjust
its stock, its audit trail; an admin rejects or retries a flagged one; an admin or its supplier delists
and relists one (docs/decisions.md D40)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import audit, products, proposals, suspension
from marketplace.observability import count
from marketplace.principal import Principal
from routes import metrics, request
from routes.policy import allow, caller

router = APIGatewayRouter()


@router.post("/suppliers/<supplierId>/products", middlewares=[allow("supplier", "retailer", "admin")])
def register_product(supplierId: str) -> Response:
    body = request.object_body(router.current_event)
    principal = caller(router)
    record = products.Products().register(principal, supplierId, body)
    count(metrics, "ListingsRegistered", principal.tenant_id)
    shown = {"sku": record["sku"], "status": record["status"], "version": record["version"]}
    return request.located(202, shown, f"/suppliers/{supplierId}/products/{record['sku']}")


@router.get("/suppliers/<supplierId>/products", middlewares=[allow("supplier", "retailer", "admin")])
def list_products(supplierId: str) -> dict[str, Any]:
    limit, token = request.page_args(router.current_event)
    page = products.Products().list_for(caller(router), supplierId, limit, token)
    return {"items": [products.view(i) for i in page.items], "nextToken": page.next_token}


@router.get("/suppliers/<supplierId>/products/<sku>", middlewares=[allow("supplier", "retailer", "admin")])
def get_product(supplierId: str, sku: str) -> dict[str, Any]:
    return products.Products().shown_for(caller(router), supplierId, sku)


@router.patch("/suppliers/<supplierId>/products/<sku>", middlewares=[allow("supplier", "retailer", "admin")])
def update_product(supplierId: str, sku: str) -> dict[str, Any] | Response:
    """200 with the listing when the change applied; 202 with the proposal when it waits for review."""
    event = router.current_event
    changes, version = request.object_body(event), request.expected_version(event)
    record = products.Products().update(caller(router), supplierId, sku, changes, version)
    if proposals.is_proposal(record):
        return request.proposed(record, f"/suppliers/{supplierId}/products/{sku}")
    return products.view(record)


# The stock is the supplier's (its warehouse): the supplier and an admin adjust it, the retailer
# sells what they say it is (docs/decisions.md D38).
@router.post(
    "/suppliers/<supplierId>/products/<sku>/stock-adjustments", middlewares=[allow("supplier", "admin")]
)
def adjust_stock(supplierId: str, sku: str) -> dict[str, Any]:
    """Units added or removed once per Idempotency-Key (a key per listing), answered as the listing."""

    def adjust(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        return products.view(products.Products().adjust_stock(principal, supplierId, sku, body))

    event = router.current_event
    route = f"POST /suppliers/{supplierId}/products/{sku}/stock-adjustments"
    principal = caller(router)
    answer = request.create(event, principal, route, request.object_body(event), adjust)
    count(metrics, "StockAdjusted", principal.tenant_id)
    return answer


@router.get(
    "/suppliers/<supplierId>/products/<sku>/history", middlewares=[allow("supplier", "retailer", "admin")]
)
def product_history(supplierId: str, sku: str) -> dict[str, Any]:
    listings = products.Products()
    record = listings.get_for(caller(router), supplierId, sku)
    limit, token = request.page_args(router.current_event)
    page = listings.records.trail(record, limit, token)
    return {"items": [audit.view(i) for i in page.items], "nextToken": page.next_token}


@router.post("/suppliers/<supplierId>/products/<sku>/reject", middlewares=[allow("admin")])
def reject_product(supplierId: str, sku: str) -> dict[str, Any]:
    why = request.reason(router.current_event)
    return products.view(products.Products().reject(caller(router), supplierId, sku, why))


@router.post("/suppliers/<supplierId>/products/<sku>/retry", middlewares=[allow("admin")])
def retry_product(supplierId: str, sku: str) -> dict[str, Any]:
    return products.view(products.Products().request_retry(caller(router), supplierId, sku))


def _once(route: str, change: Any) -> dict[str, Any]:
    """``change(principal, reason)`` once per Idempotency-Key (a key per listing, as the route names
    it), answered as the listing after it."""
    reason = request.reason(router.current_event)

    def make(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        return products.view(change(principal, body["reason"]))

    return request.create(router.current_event, caller(router), route, {"reason": reason}, make)


@router.post("/suppliers/<supplierId>/products/<sku>/delist", middlewares=[allow("supplier", "admin")])
def delist_product(supplierId: str, sku: str) -> dict[str, Any]:
    return _once(
        f"POST /suppliers/{supplierId}/products/{sku}/delist",
        lambda principal, reason: suspension.delist(principal, supplierId, sku, reason),
    )


@router.post("/suppliers/<supplierId>/products/<sku>/relist", middlewares=[allow("supplier", "admin")])
def relist_product(supplierId: str, sku: str) -> dict[str, Any]:
    return _once(
        f"POST /suppliers/{supplierId}/products/{sku}/relist",
        lambda principal, reason: suspension.relist(principal, supplierId, sku, reason),
    )

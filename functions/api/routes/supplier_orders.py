"""Supplier orders: the supplier reads, accepts or rejects its own (another's is 404, by the record
it names: ``marketplace.orders``), and reads where to ship one it has accepted; an admin cancels or
retries a flagged one."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import orders
from routes import request
from routes.policy import allow, caller

router = APIGatewayRouter()


@router.get("/supplier-orders", middlewares=[allow("supplier", "retailer", "admin")])
def list_supplier_orders() -> dict[str, Any]:
    event = router.current_event
    limit, token = request.page_args(event)
    supplier_id = event.get_query_string_value("supplierId")
    status = event.get_query_string_value("status")
    page = orders.Orders().list_for_supplier(caller(router), supplier_id, status, limit, token)
    return {"items": [orders.view(i) for i in page.items], "nextToken": page.next_token}


@router.get("/supplier-orders/<supplierOrderId>", middlewares=[allow("supplier", "retailer", "admin")])
def get_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    principal, store = caller(router), orders.Orders()
    return orders.view(store.with_ship_to(principal, store.get_for(principal, supplierOrderId)))


@router.post("/supplier-orders/<supplierOrderId>/accept", middlewares=[allow("supplier")])
def accept_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    principal, store = caller(router), orders.Orders()
    return orders.view(store.with_ship_to(principal, store.accept(principal, supplierOrderId)))


@router.post("/supplier-orders/<supplierOrderId>/reject", middlewares=[allow("supplier")])
def reject_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    why = request.reason(router.current_event)
    return orders.view(orders.Orders().reject(caller(router), supplierOrderId, why))


@router.post("/supplier-orders/<supplierOrderId>/cancel", middlewares=[allow("admin")])
def cancel_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    why = request.reason(router.current_event)
    return orders.view(orders.Orders().cancel(caller(router), supplierOrderId, why))


@router.post("/supplier-orders/<supplierOrderId>/retry", middlewares=[allow("admin")])
def retry_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    return orders.view(orders.Orders().request_retry(caller(router), supplierOrderId))

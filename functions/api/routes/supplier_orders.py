"""Supplier orders: the supplier reads, accepts (whole or line by line) or rejects its own (another's
is 404, by the record it names: ``marketplace.orders``), and reads where to ship one it has accepted;
the lifecycle after acceptance (delivered, cancel) and the order's history; an admin retries a
flagged one. The roles of each transition's route are the lifecycle's (``marketplace.order_lifecycle``):
who may fire a transition is said there once. Shipments have their own router (``routes.shipments``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import audit, orders, schemas
from marketplace import order_lifecycle as lifecycle
from marketplace.principal import Principal
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


def _transition(route: str, supplier_order_id: str, payload: dict[str, Any], fire: Any) -> dict[str, Any]:
    """``fire(principal, payload)`` once per Idempotency-Key (as every POST that creates), answered
    as the order after it, with where to ship it once accepted."""
    store = orders.Orders()

    def make(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        return orders.view(store.with_ship_to(principal, fire(store, principal, body)))

    return request.create(router.current_event, caller(router), route, payload, make)


@router.post("/supplier-orders/<supplierOrderId>/accept", middlewares=[allow(*lifecycle.roles("accept"))])
def accept_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    event = router.current_event
    payload = request.object_body(event) if request.has_body(event) else None
    if payload is not None:
        schemas.validate("acceptance", payload)
    return _transition(
        "POST /supplier-orders/{supplierOrderId}/accept", supplierOrderId, payload or {},
        lambda store, principal, body: store.accept(principal, supplierOrderId, body.get("lines")),
    )  # fmt: skip


@router.post("/supplier-orders/<supplierOrderId>/reject", middlewares=[allow(*lifecycle.roles("reject"))])
def reject_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    why = request.reason(router.current_event)
    return orders.view(orders.Orders().reject(caller(router), supplierOrderId, why))


@router.post(
    "/supplier-orders/<supplierOrderId>/cancel",
    middlewares=[allow(*lifecycle.roles("cancel", "cancel_lines", "cancel_unshipped"))],
)
def cancel_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    payload = request.object_body(router.current_event)
    schemas.validate("cancellation", payload)
    reason = payload["reason"].strip()
    return _transition(
        "POST /supplier-orders/{supplierOrderId}/cancel", supplierOrderId, payload,
        lambda store, principal, body: store.cancel(
            principal, supplierOrderId, reason, body.get("lines")
        ),
    )  # fmt: skip


@router.post("/supplier-orders/<supplierOrderId>/delivered", middlewares=[allow(*lifecycle.roles("deliver"))])
def deliver_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    return _transition(
        "POST /supplier-orders/{supplierOrderId}/delivered", supplierOrderId, {},
        lambda store, principal, body: store.deliver(principal, supplierOrderId),
    )  # fmt: skip


@router.get(
    "/supplier-orders/<supplierOrderId>/history", middlewares=[allow("supplier", "retailer", "admin")]
)
def supplier_order_history(supplierOrderId: str) -> dict[str, Any]:
    limit, token = request.page_args(router.current_event)
    page = orders.Orders().history(caller(router), supplierOrderId, limit, token)
    return {"items": [audit.view(i) for i in page.items], "nextToken": page.next_token}


@router.post("/supplier-orders/<supplierOrderId>/retry", middlewares=[allow("admin")])
def retry_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    return orders.view(orders.Orders().request_retry(caller(router), supplierOrderId))

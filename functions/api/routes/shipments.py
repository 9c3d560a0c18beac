"""Shipments of a supplier order: its supplier sends them (``POST``, once per Idempotency-Key), its
supplier and the tenant's staff read them. Another supplier's order is 404 (``marketplace.orders``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import order_lifecycle as lifecycle
from marketplace import orders
from marketplace.principal import Principal
from routes import request
from routes.policy import allow, caller

router = APIGatewayRouter()


@router.post("/supplier-orders/<supplierOrderId>/shipments", middlewares=[allow(*lifecycle.roles("ship"))])
def add_shipment(supplierOrderId: str) -> Response:
    def ship(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        return orders.Orders().ship(principal, supplierOrderId, body)

    route, location = (
        "POST /supplier-orders/{supplierOrderId}/shipments",
        "/supplier-orders/{supplierOrderId}/shipments",
    )
    return request.accepted_once(router, route, ship, "ShipmentsAdded", location, status=201)


@router.get(
    "/supplier-orders/<supplierOrderId>/shipments", middlewares=[allow("supplier", "retailer", "admin")]
)
def list_shipments(supplierOrderId: str) -> dict[str, Any]:
    return {"items": orders.Orders().shipments(caller(router), supplierOrderId)}

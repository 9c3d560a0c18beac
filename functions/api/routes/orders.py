"""Customer orders: a retailer places one (split into one supplier order per supplier) and reads it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import orders
from marketplace.principal import Principal
from routes import request
from routes.policy import allow, caller

router = APIGatewayRouter()


def _place(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    order = orders.Orders().place(principal, body)
    return {
        "orderId": order["orderId"],
        "customerOrderId": order["customerOrderId"],
        "supplierOrders": [
            {
                k: s[k]
                for k in ("supplierOrderId", "supplierId", "status", "subtotal", "commission", "supplierNet")
            }
            for s in order["supplierOrders"]
        ],
    }


@router.post("/orders", middlewares=[allow("retailer")])
def place_order() -> Response:
    return request.accepted_once(router, "POST /orders", _place, "OrdersPlaced", "/orders/{orderId}")


@router.get("/orders/<orderId>", middlewares=[allow("retailer", "admin")])
def get_order(orderId: str) -> dict[str, Any]:
    order = orders.Orders().get_order(caller(router), orderId)
    shown = {
        k: order[k] for k in ("orderId", "customerOrderId", "shipTo", "createdAt", "createdBy") if k in order
    }
    return {**shown, "supplierOrders": [orders.view(s) for s in order["supplierOrders"]]}

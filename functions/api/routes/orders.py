"""Customer orders: a retailer places one (split into one supplier order per supplier) and reads it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import orders
from marketplace.principal import Principal
from routes import metrics, request
from routes.policy import allow, caller

router = APIGatewayRouter()


def _place(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    order = orders.Orders().place(principal, body)
    return {
        "orderId": order["orderId"],
        "customerOrderId": order["customerOrderId"],
        "supplierOrders": [
            {"supplierOrderId": s["supplierOrderId"], "supplierId": s["supplierId"], "status": s["status"]}
            for s in order["supplierOrders"]
        ],
    }


@router.post("/orders", middlewares=[allow("retailer")])
def place_order() -> Response:
    event = router.current_event
    result = request.create(event, caller(router), "POST /orders", request.object_body(event), _place)
    metrics.add_metric(name="OrdersPlaced", unit="Count", value=1)
    return request.located(202, result, f"/orders/{result['orderId']}")


@router.get("/orders/<orderId>", middlewares=[allow("retailer", "admin")])
def get_order(orderId: str) -> dict[str, Any]:
    order = orders.Orders().get_order(caller(router), orderId)
    shown = {
        k: order[k] for k in ("orderId", "customerOrderId", "shipTo", "createdAt", "createdBy") if k in order
    }
    return {**shown, "supplierOrders": [orders.view(s) for s in order["supplierOrders"]]}

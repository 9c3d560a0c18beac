"""Returns of a delivered supplier order: the retailer asks (``POST``, once per Idempotency-Key) within
the tenant's return window; the order's supplier accepts or refuses it, then says the units came back
(the refund is recorded). A refused return, or an accepted one either side disputes, is an incident
the admin decides, refund or not (all of its units or some), with a reason. The roles of each route
are the lifecycle's (``marketplace.order_lifecycle``); another supplier's or tenant's return is 404
(``marketplace.orders``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import order_lifecycle as lifecycle
from marketplace import orders, schemas
from marketplace.errors import FieldError, InvalidInput
from marketplace.principal import Principal
from routes import request
from routes.policy import allow, caller

router = APIGatewayRouter()


@router.post(
    "/supplier-orders/<supplierOrderId>/returns", middlewares=[allow(*lifecycle.roles("request_return"))]
)
def request_return(supplierOrderId: str) -> Response:
    def ask(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        return orders.Orders().request_return(principal, supplierOrderId, body)

    route = "POST /supplier-orders/{supplierOrderId}/returns"
    return request.accepted_once(router, route, ask, "ReturnsRequested", "/returns/{returnId}", status=201)


@router.get("/returns/<returnId>", middlewares=[allow("supplier", "retailer", "admin")])
def get_return(returnId: str) -> dict[str, Any]:
    return orders.Orders().get_return(caller(router), returnId)


def _answer(route: str, return_id: str, name: str, reason: str | None = None) -> dict[str, Any]:
    payload = {"reason": reason} if reason is not None else {}

    def answer(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        return orders.Orders().answer_return(principal, return_id, name, body.get("reason"))

    return request.create(router.current_event, caller(router), route, payload, answer)


@router.post("/returns/<returnId>/accept", middlewares=[allow(*lifecycle.roles("accept_return"))])
def accept_return(returnId: str) -> dict[str, Any]:
    return _answer("POST /returns/{returnId}/accept", returnId, "accept_return")


@router.post("/returns/<returnId>/refuse", middlewares=[allow(*lifecycle.roles("refuse_return"))])
def refuse_return(returnId: str) -> dict[str, Any]:
    why = request.reason(router.current_event)
    return _answer("POST /returns/{returnId}/refuse", returnId, "refuse_return", why)


@router.post("/returns/<returnId>/received", middlewares=[allow(*lifecycle.roles("receive_return"))])
def receive_return(returnId: str) -> dict[str, Any]:
    return _answer("POST /returns/{returnId}/received", returnId, "receive_return")


@router.post("/returns/<returnId>/dispute", middlewares=[allow(*lifecycle.roles("dispute_return"))])
def dispute_return(returnId: str) -> dict[str, Any]:
    """Either side contests an accepted return (``{"reason"}``): an incident for the admin (D44)."""
    why = request.reason(router.current_event)
    return _answer("POST /returns/{returnId}/dispute", returnId, "dispute_return", why)


@router.post("/returns/<returnId>/decide", middlewares=[allow(*lifecycle.roles("decide_return"))])
def decide_return(returnId: str) -> dict[str, Any]:
    """The admin's decision of an incident (a refused or disputed return): ``{"refund": true|false,
    "reason", "lines"?}``, ``lines`` refunding only some of its units."""
    payload = request.object_body(router.current_event)
    if "lines" in payload and payload.get("refund") is not True:  # the schema's anyOf, named
        raise InvalidInput([FieldError("lines", "names units to refund: only with refund true")])
    schemas.validate("return_decision", payload)

    def decide(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        return orders.Orders().decide_return(
            principal, returnId, body["refund"], body["reason"].strip(), body.get("lines")
        )

    route = "POST /returns/{returnId}/decide"
    return request.create(router.current_event, caller(router), route, payload, decide)

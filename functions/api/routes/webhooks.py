"""A supplier's webhook (registered by the supplier itself) and its deliveries, which staff and the
supplier read and redrive."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import webhooks
from marketplace.suppliers import Suppliers
from routes import request
from routes.policy import allow, caller

router = APIGatewayRouter()


@router.put("/suppliers/<supplierId>/webhook", middlewares=[allow("supplier")])
def register_webhook(supplierId: str) -> dict[str, Any]:
    event = router.current_event
    body, version = request.object_body(event), request.expected_version(event)
    return webhooks.Webhooks().register(caller(router), supplierId, body, version)


@router.get("/suppliers/<supplierId>/webhook", middlewares=[allow("supplier", "retailer", "admin")])
def get_webhook(supplierId: str) -> dict[str, Any]:
    return webhooks.Webhooks().get_webhook(caller(router), supplierId)


@router.get("/suppliers/<supplierId>/deliveries", middlewares=[allow("supplier", "retailer", "admin")])
def list_deliveries(supplierId: str) -> dict[str, Any]:
    principal = caller(router)
    limit, token = request.page_args(router.current_event)
    status = router.current_event.get_query_string_value("status")
    Suppliers().get(principal.tenant_id, supplierId)  # an unknown or another tenant's supplier: 404
    page = webhooks.Webhooks().list_deliveries(principal, supplierId, status, limit, token)
    return {"items": page.items, "nextToken": page.next_token}


@router.get(
    "/suppliers/<supplierId>/deliveries/<deliveryId>", middlewares=[allow("supplier", "retailer", "admin")]
)
def get_delivery(supplierId: str, deliveryId: str) -> dict[str, Any]:
    return webhooks.Webhooks().get_delivery(caller(router), supplierId, deliveryId)


@router.post(
    "/suppliers/<supplierId>/deliveries/<deliveryId>/redrive",
    middlewares=[allow("supplier", "retailer", "admin")],
)
def redrive_delivery(supplierId: str, deliveryId: str) -> dict[str, Any]:
    return webhooks.Webhooks().redrive(caller(router), supplierId, deliveryId)

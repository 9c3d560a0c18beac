"""Bulk catalog import routes (docs/import.md): create an import and its upload URL, start it,
follow it. The rules are in ``marketplace.imports``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import imports, schemas
from routes import request
from routes.policy import allow, caller

router = APIGatewayRouter()


@router.post("/suppliers/<supplierId>/imports", middlewares=[allow("supplier", "retailer", "admin")])
def create_import(supplierId: str) -> Response:
    event = router.current_event
    body = request.body(event) if request.has_body(event) else {}
    created = imports.Imports().create(caller(router), supplierId, body)
    return request.located(201, created, f"/suppliers/{supplierId}/imports/{created['importId']}")


@router.post(
    "/suppliers/<supplierId>/imports/<importId>/start", middlewares=[allow("supplier", "retailer", "admin")]
)
def start_import(supplierId: str, importId: str) -> Response:
    service = imports.Imports()
    record = service.start(caller(router), supplierId, importId)
    return Response(
        status_code=202, content_type=content_types.APPLICATION_JSON, body=imports.view(record, service.store)
    )


@router.get(
    "/suppliers/<supplierId>/imports/<importId>", middlewares=[allow("supplier", "retailer", "admin")]
)
def get_import(supplierId: str, importId: str) -> dict[str, Any]:
    event = router.current_event
    include = event.get_query_string_value("include")
    if include is not None:
        schemas.check_parameter("include", "include", include, "must be 'listings' or absent")
    token = request.page_token(event, "listingsToken")
    principal = caller(router)
    service = imports.Imports()
    shown = imports.view(service.get_for(principal, supplierId, importId), service.store)
    if include == "listings":
        shown["listings"], shown["listingsNextToken"] = service.listing_statuses(
            principal.tenant_id, supplierId, importId, token
        )
    return shown

"""Bulk catalog import routes (docs/import.md): create an import and its upload URL, start it,
follow it. The rules are in ``marketplace.imports``; app.py includes this router, so its error
handlers (field-level 400s, 404 for another tenant's ids) apply here too."""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import imports, schemas
from marketplace.errors import FieldError, InvalidInput
from marketplace.principal import Principal

router = APIGatewayRouter()


def _principal() -> Principal:
    return Principal.from_claims(router.current_event.request_context.authorizer.claims)


def _optional_body() -> Any:
    """The body is optional here; when there is one, it is parsed as app.py parses every body."""
    event = router.current_event
    raw: str | bytes | None = event.body
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if event.is_base64_encoded:
        raw = base64.b64decode(raw)
    return schemas.parse_body(raw)


@router.post("/suppliers/<supplierId>/imports")
def create_import(supplierId: str) -> Response:
    created = imports.Imports().create(_principal(), supplierId, _optional_body())
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body=created,
        headers={"Location": f"/suppliers/{supplierId}/imports/{created['importId']}"},
    )


@router.post("/suppliers/<supplierId>/imports/<importId>/start")
def start_import(supplierId: str, importId: str) -> Response:
    service = imports.Imports()
    record = service.start(_principal(), supplierId, importId)
    return Response(
        status_code=202, content_type=content_types.APPLICATION_JSON, body=imports.view(record, service.store)
    )


@router.get("/suppliers/<supplierId>/imports/<importId>")
def get_import(supplierId: str, importId: str) -> dict[str, Any]:
    principal = _principal()
    service = imports.Imports()
    record = service.get_for(principal, supplierId, importId)
    shown = imports.view(record, service.store)
    include = router.current_event.get_query_string_value("include")
    if include not in (None, "", "listings"):
        raise InvalidInput([FieldError("include", "must be 'listings' or absent")])
    if include == "listings":
        token = router.current_event.get_query_string_value("listingsToken") or None
        shown["listings"], shown["listingsNextToken"] = service.listing_statuses(
            principal.tenant_id, supplierId, importId, token
        )
    return shown

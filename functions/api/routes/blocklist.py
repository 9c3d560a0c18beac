"""The tenant's blocked list (tax ids, domains, ...): an admin lists, adds and removes entries; a tax id
added suspends the approved suppliers that claim it (``marketplace.suspension.block``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import blocklist, suspension
from routes import request
from routes.policy import allow, caller

router = APIGatewayRouter()


@router.get("/admin/blocklist", middlewares=[allow("admin")])
def list_blocklist() -> dict[str, Any]:
    limit, token = request.page_args(router.current_event)
    page = blocklist.list_entries(caller(router).tenant_id, limit, token)
    return {"items": [blocklist.view(i) for i in page.items], "nextToken": page.next_token}


@router.post("/admin/blocklist", middlewares=[allow("admin")])
def add_blocklist() -> Response:
    entry = suspension.block(caller(router), request.object_body(router.current_event))
    shown = {**blocklist.view(entry), "suspendedSuppliers": entry["suspendedSuppliers"]}
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=shown)


@router.delete("/admin/blocklist/<entryId>", middlewares=[allow("admin")])
def delete_blocklist(entryId: str) -> Response:
    blocklist.remove(caller(router), entryId)
    return Response(status_code=204, content_type=content_types.APPLICATION_JSON, body="")

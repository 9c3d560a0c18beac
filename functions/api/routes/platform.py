"""The platform's tenants, the operator's only (docs/tenants.md, D47): create one (its first admins,
then its smoke test; a premium one on the pool is only recorded, served by its own stack: D53), list
and read them, suspend and reinstate one."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import tenants
from marketplace.adapters.cognito import TenantAdmins
from marketplace.observability import count
from routes import metrics, request
from routes.policy import allow, caller

router = APIGatewayRouter()


@router.post("/platform/tenants", middlewares=[allow("operator")])
def create_tenant() -> Response:
    record = tenants.Tenants().provision(
        caller(router), request.object_body(router.current_event), TenantAdmins().create
    )
    outcome = {tenants.LIVE: "TenantsLive", tenants.SILOED: "TenantsSiloed"}.get(
        record["status"], "TenantsFailed"
    )
    count(metrics, outcome, record["tenantId"])
    return request.located(201, tenants.view(record), f"/platform/tenants/{record['tenantId']}")


@router.get("/platform/tenants", middlewares=[allow("operator")])
def list_tenants() -> dict[str, Any]:
    limit, token = request.page_args(router.current_event)
    page = tenants.Tenants().list(limit, token)
    return {"items": [tenants.view(i) for i in page.items], "nextToken": page.next_token}


@router.get("/platform/tenants/<tenantId>", middlewares=[allow("operator")])
def get_tenant(tenantId: str) -> dict[str, Any]:
    return tenants.view(tenants.Tenants().get(tenantId))


@router.post("/platform/tenants/<tenantId>/suspend", middlewares=[allow("operator")])
def suspend_tenant(tenantId: str) -> dict[str, Any]:
    why = request.reason(router.current_event)
    return tenants.view(tenants.Tenants().suspend(caller(router), tenantId, why))


@router.post("/platform/tenants/<tenantId>/reinstate", middlewares=[allow("operator")])
def reinstate_tenant(tenantId: str) -> dict[str, Any]:
    why = request.reason(router.current_event)
    return tenants.view(tenants.Tenants().reinstate(caller(router), tenantId, why))

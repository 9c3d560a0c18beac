"""Suppliers: onboard one (its workflow starts), list, read, change, its audit trail, its performance
(docs/decisions.md D46); an admin suspends and reinstates one (docs/decisions.md D40), and erases its
contact details on request (D48)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import audit, performance, proposals, suspension
from marketplace.principal import Principal
from marketplace.suppliers import Suppliers, view
from routes import request
from routes.policy import allow, caller

router = APIGatewayRouter()


def _register(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    record = Suppliers().register(principal, body)
    return {"supplierId": record["supplierId"], "status": record["status"], "version": record["version"]}


@router.post("/suppliers", middlewares=[allow("retailer", "admin")])
def register_supplier() -> Response:
    return request.accepted_once(
        router, "POST /suppliers", _register, "SuppliersRegistered", "/suppliers/{supplierId}"
    )


@router.get("/suppliers", middlewares=[allow("retailer", "admin")])
def list_suppliers() -> dict[str, Any]:
    limit, token = request.page_args(router.current_event)
    status = router.current_event.get_query_string_value("status")
    page = Suppliers().list(caller(router).tenant_id, status, limit, token)
    return {"items": [view(i) for i in page.items], "nextToken": page.next_token}


@router.get("/suppliers/<supplierId>", middlewares=[allow("retailer", "admin", "supplier")])
def get_supplier(supplierId: str) -> dict[str, Any]:
    return Suppliers().shown(caller(router).tenant_id, supplierId)


@router.patch("/suppliers/<supplierId>", middlewares=[allow("retailer", "admin")])
def update_supplier(supplierId: str) -> dict[str, Any] | Response:
    """200 with the supplier when the change applied; 202 with the proposal when it waits for review."""
    event = router.current_event
    changes, version = request.object_body(event), request.expected_version(event)
    record = Suppliers().update(caller(router), supplierId, changes, version)
    if proposals.is_proposal(record):
        return request.proposed(record, f"/suppliers/{supplierId}")
    return view(record)


@router.get("/suppliers/<supplierId>/history", middlewares=[allow("retailer", "admin", "supplier")])
def supplier_history(supplierId: str) -> dict[str, Any]:
    limit, token = request.page_args(router.current_event)
    page = Suppliers().history(caller(router).tenant_id, supplierId, limit, token)
    return {"items": [audit.view(i) for i in page.items], "nextToken": page.next_token}


@router.get("/suppliers/<supplierId>/performance", middlewares=[allow("retailer", "admin", "supplier")])
def supplier_performance(supplierId: str) -> dict[str, Any]:
    return performance.read(caller(router), supplierId)


def _once(route: str, supplier_id: str, change: Any) -> dict[str, Any]:
    """``change(principal, supplier_id, reason)`` once per Idempotency-Key (as every POST that
    changes a record), answered as the supplier after it."""
    reason = request.reason(router.current_event)

    def make(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        return view(change(principal, supplier_id, body["reason"]))

    return request.create(router.current_event, caller(router), route, {"reason": reason}, make)


@router.post("/suppliers/<supplierId>/suspend", middlewares=[allow("admin")])
def suspend_supplier(supplierId: str) -> dict[str, Any]:
    return _once(f"POST /suppliers/{supplierId}/suspend", supplierId, suspension.suspend)


@router.post("/suppliers/<supplierId>/reinstate", middlewares=[allow("admin")])
def reinstate_supplier(supplierId: str) -> dict[str, Any]:
    return _once(f"POST /suppliers/{supplierId}/reinstate", supplierId, suspension.reinstate)


@router.post("/admin/suppliers/<supplierId>/erase", middlewares=[allow("admin")])
def erase_supplier(supplierId: str) -> dict[str, Any]:
    """GDPR: the supplier's contact details out of its record and masked in its audit trail."""
    reason = request.reason(router.current_event)

    def make(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        return Suppliers().erase(principal, supplierId, body["reason"])

    route = f"POST /admin/suppliers/{supplierId}/erase"
    return request.create(router.current_event, caller(router), route, {"reason": reason}, make)

"""Money: the tenant's commission rules (its admin reads and sets them, versioned), a supplier's
ledger and its settlement statements (the supplier itself and the tenant's staff read them; an admin
marks a statement paid). The rules are ``marketplace.commission``, the ledger ``marketplace.ledger``,
the statements ``marketplace.statements`` (docs/money.md)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import commission, config, ledger, schemas, statements, tenant_settings
from marketplace.imports import ImportStore
from marketplace.observability import count
from marketplace.principal import Principal
from marketplace.repository import Table
from routes import metrics, request
from routes.policy import allow, caller

router = APIGatewayRouter()


@router.get("/admin/commission-rules", middlewares=[allow("admin")])
def get_commission_rules() -> dict[str, Any]:
    return commission.get_rules(Table(), caller(router))


@router.put("/admin/commission-rules", middlewares=[allow("admin")])
def put_commission_rules() -> dict[str, Any]:
    event = router.current_event
    rules = commission.put_rules(
        Table(), caller(router), request.body(event), request.expected_version(event)
    )
    count(metrics, "CommissionRulesChanged", caller(router).tenant_id)
    return rules


@router.get("/suppliers/<supplierId>/ledger", middlewares=[allow("supplier", "retailer", "admin")])
def get_ledger(supplierId: str) -> dict[str, Any]:
    limit, token = request.page_args(router.current_event)
    return ledger.read(caller(router), supplierId, limit, token)


@router.get("/admin/settlement-settings", middlewares=[allow("admin")])
def get_settlement_settings() -> dict[str, Any]:
    return tenant_settings.settlement_settings(Table(), caller(router).tenant_id)


@router.put("/admin/settlement-settings", middlewares=[allow("admin")])
def put_settlement_settings() -> dict[str, Any]:
    """``{"period": "weekly" | "monthly"}``, versioned (``If-Match``)."""
    event = router.current_event
    body = request.object_body(event)
    schemas.validate("settlement_settings", body)
    settings = tenant_settings.put_settlement_settings(
        Table(), caller(router), body["period"], request.expected_version(event)
    )
    count(metrics, "SettlementSettingsChanged", caller(router).tenant_id)
    return settings


@router.get("/suppliers/<supplierId>/statements", middlewares=[allow("supplier", "retailer", "admin")])
def list_statements(supplierId: str) -> dict[str, Any]:
    limit, token = request.page_args(router.current_event)
    return statements.list_for(caller(router), supplierId, limit, token, Table())


@router.get(
    "/suppliers/<supplierId>/statements/<period>", middlewares=[allow("supplier", "retailer", "admin")]
)
def get_statement(supplierId: str, period: str) -> dict[str, Any]:
    store = ImportStore(config.require("STATEMENT_BUCKET_NAME"))
    return statements.get_for(caller(router), supplierId, period, Table(), store)


@router.post("/admin/statements/<statementId>/paid", middlewares=[allow("admin")])
def mark_statement_paid(statementId: str) -> dict[str, Any]:
    """``{"reference"}``: the payment's reference; once per Idempotency-Key."""
    payload = request.object_body(router.current_event)
    schemas.validate("statement_payment", payload)

    def pay(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        return statements.mark_paid(principal, statementId, body["reference"].strip(), Table())

    route = "POST /admin/statements/{statementId}/paid"
    paid = request.create(router.current_event, caller(router), route, payload, pay)
    count(metrics, "StatementsPaid", caller(router).tenant_id)
    return paid

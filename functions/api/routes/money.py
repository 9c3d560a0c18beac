"""Money: the tenant's commission rules (its admin reads and sets them, versioned) and a supplier's
ledger (the supplier itself and the tenant's staff read it). The rules are ``marketplace.commission``,
the ledger ``marketplace.ledger`` (docs/money.md)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import commission, ledger
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
    metrics.add_metric(name="CommissionRulesChanged", unit="Count", value=1)
    return rules


@router.get("/suppliers/<supplierId>/ledger", middlewares=[allow("supplier", "retailer", "admin")])
def get_ledger(supplierId: str) -> dict[str, Any]:
    limit, token = request.page_args(router.current_event)
    return ledger.read(caller(router), supplierId, limit, token)

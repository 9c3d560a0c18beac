"""The tenant's rule pack (docs/tenants.md, D51): its admin reads the pack in force, writes a draft,
replays the draft over the tenant's suppliers and listings (the what-if, read only), then activates
it. The pack is ``marketplace.rule_packs``, the replay ``marketplace.what_if``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from marketplace import rule_packs, what_if
from marketplace.observability import count
from marketplace.repository import Table
from routes import metrics, request
from routes.policy import allow, caller

router = APIGatewayRouter()


@router.get("/admin/rule-packs/active", middlewares=[allow("admin")])
def get_active_rule_pack() -> dict[str, Any]:
    return rule_packs.active_view(rule_packs.record(Table(), caller(router).tenant_id))


@router.get("/admin/rule-packs/draft", middlewares=[allow("admin")])
def get_draft_rule_pack() -> dict[str, Any]:
    return rule_packs.draft_view(rule_packs.record(Table(), caller(router).tenant_id))


@router.put("/admin/rule-packs/draft", middlewares=[allow("admin")])
def put_draft_rule_pack() -> dict[str, Any]:
    event, principal = router.current_event, caller(router)
    draft = rule_packs.put_draft(Table(), principal, request.body(event), request.expected_version(event))
    count(metrics, "RulePackDraftsWritten", principal.tenant_id)
    return draft


@router.post("/admin/rule-packs/draft/what-if", middlewares=[allow("admin")])
def what_if_rule_pack() -> dict[str, Any]:
    """Read only: no metric, as every read."""
    return what_if.replay(Table(), caller(router), request.expected_version(router.current_event))


@router.post("/admin/rule-packs/draft/activate", middlewares=[allow("admin")])
def activate_rule_pack() -> dict[str, Any]:
    principal = caller(router)
    active = rule_packs.activate(Table(), principal, request.expected_version(router.current_event))
    count(metrics, "RulePacksActivated", principal.tenant_id)
    return active

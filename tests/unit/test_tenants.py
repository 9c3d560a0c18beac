"""The platform's tenants, the rules without the stack (D47): the operator's token, the tenant status
read once per period, the test data that is never announced, the tenant body's rules."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace import access, config, keys, schemas, tenants
from marketplace.errors import Forbidden, InvalidInput, Unauthorized
from marketplace.events import event_for
from marketplace.principal import Principal


def claims(**changes: Any) -> dict[str, Any]:
    found = {"sub": "u-1", "cognito:groups": "operator", **changes}
    return {k: v for k, v in found.items() if v is not None}


def test_an_operator_token_is_a_principal_of_no_tenant_that_no_tenant_route_lets_in():
    principal = Principal.from_claims(claims())
    assert principal.is_operator and principal.tenant_id == "" and principal.roles == {"operator"}
    for roles in ({"admin"}, {"retailer", "admin", "supplier"}):
        with pytest.raises(Forbidden):
            access.authorize(principal, roles)
    access.authorize(principal, {"operator"})


@pytest.mark.parametrize(
    "changes",
    [{"custom:tenant_id": "t-1"}, {"cognito:groups": "operator,admin"}, {"cognito:groups": "admin"}],
    ids=["operator with a tenant", "operator and a tenant role", "a tenant role without a tenant"],
)
def test_an_operator_token_with_a_tenant_or_a_tenant_role_is_refused_as_a_bad_token(changes):
    with pytest.raises(Unauthorized):
        Principal.from_claims(claims(**changes))


class CountingTable:
    """A table of one tenant record that counts its reads."""

    def __init__(self, record: dict[str, Any] | None) -> None:
        self.record, self.reads = record, 0

    def get(self, pk: str, sk: str, consistent: bool = True) -> dict[str, Any] | None:
        self.reads += 1
        assert (pk, sk) == (keys.PLATFORM_TENANTS_PK, keys.tenant_sk("t-cache"))
        return self.record


@pytest.fixture
def monotonic(monkeypatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(tenants.time, "monotonic", lambda: now[0])
    tenants.forget("t-cache")
    yield now
    tenants.forget("t-cache")


def test_a_tenant_s_status_is_read_once_per_period_and_a_suspension_names_the_tenant_and_reason(monotonic):
    table = CountingTable({"tenantId": "t-cache", "status": "LIVE"})
    assert [tenants.refusal("t-cache", table) for _ in range(100)] == [None] * 100
    assert table.reads == 1, "one read per period, not one per request"
    table.record = {"tenantId": "t-cache", "status": "SUSPENDED", "reason": "unpaid invoice"}
    monotonic[0] += tenants.STATUS_TTL_SECONDS - 0.1
    assert tenants.refusal("t-cache", table) is None, "within the period the status read is trusted"
    monotonic[0] += 0.2
    why = tenants.refusal("t-cache", table)
    assert why == "tenant t-cache is suspended by the platform operator: unpaid invoice"
    assert table.reads == 2


def test_a_tenant_with_no_record_is_served_and_its_absence_is_cached_too(monotonic):
    table = CountingTable(None)
    assert tenants.refusal("t-cache", table) is None and tenants.refusal("t-cache", table) is None
    assert table.reads == 1


@pytest.fixture
def pinned(monkeypatch) -> str:
    """This process as a silo's API: the template's PinnedTenant in the function's environment."""
    monkeypatch.setenv(config.PINNED_TENANT_VARIABLE, "t-silo")
    return "t-silo"


def test_a_silo_refuses_every_other_tenant_without_a_read_and_serves_its_own(monotonic, pinned):
    table = CountingTable(None)
    why = tenants.refusal("t-cache", table)
    assert (
        why
        == "this stack serves only tenant t-silo (its own stack, premium tier); tenant t-cache is not served here"
    )
    assert table.reads == 0, "the pin is the function's environment: nothing to read"
    assert tenants.pin_refusal("t-silo") is None
    with pytest.raises(Forbidden, match="serves only tenant t-silo"):
        tenants.require_active("t-cache")


def test_the_pool_refuses_a_siloed_tenant_naming_its_own_stack(monotonic):
    table = CountingTable(
        {"tenantId": "t-cache", "status": "SILOED", "silo": {"stackName": "marketplace-t-cache"}}
    )
    assert tenants.refusal("t-cache", table) == (
        "tenant t-cache is served by its own stack marketplace-t-cache (premium tier), not by this one"
    )
    assert tenants.silo_stack_name("t-cache") == "marketplace-t-cache"


class NoWrites:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the table was called: {name}")


def test_a_silo_creates_no_other_tenant_and_writes_nothing(pinned):
    principal = Principal.from_claims(claims())
    with pytest.raises(Forbidden, match="serves only tenant t-silo"):
        tenants.Tenants(NoWrites()).provision(principal, {**GOOD, "tenantId": "t-other"}, make_admin=None)


def test_a_tenant_s_request_limit_is_its_tier_s_read_with_its_status(monotonic):
    table = CountingTable({"tenantId": "t-cache", "status": "LIVE", "tier": "premium"})
    tenants.standing("t-cache", table)
    assert tenants.request_limit("t-cache") == (tenants.REQUEST_LIMITS["premium"], "premium")
    assert table.reads == 1, "the tier comes with the status, in the same read"
    tenants.forget("t-cache")
    tenants.standing("t-cache", CountingTable(None))
    assert tenants.request_limit("t-cache") == (tenants.REQUEST_LIMITS["standard"], "standard")


def test_test_data_is_never_announced():
    old = {"entity": "SUPPLIER", "tenantId": "t", "supplierId": "s", "status": "PENDING", "version": 1}
    new = {**old, "status": "APPROVED", "version": 2}
    assert event_for(old, new)["type"] == "supplier.approved"
    assert event_for({**old, "testData": True}, {**new, "testData": True}) is None


def test_a_smoke_test_principal_marks_what_it_creates():
    staff = Principal("smoke", "t", frozenset({"retailer"}), test_data=True)
    assert staff.marker() == {"testData": True}
    assert Principal("u", "t", frozenset({"retailer"})).marker() == {}


GOOD = {"tenantId": "shop-1", "name": "Shop", "tier": "standard", "admins": ["boss@shop.example"]}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tenantId": "Shop"}, "tenantId"), ({"tenantId": "ab"}, "tenantId"), ({"tenantId": "shop-"}, "tenantId"),
        ({"tenantId": "shop#1"}, "tenantId"), ({"name": "  "}, "name"), ({"tier": "gold"}, "tier"),
        ({"admins": []}, "admins"), ({"admins": ["boss"]}, "admins.0"), ({"admins": ["a@b.c", "a@b.c"]}, "admins"),
        ({"admins": ["boss@shop.example\n"]}, "admins.0"), ({"extra": 1}, "extra"),
    ],
)  # fmt: skip
def test_a_tenant_body_is_refused_naming_the_field(changes, field):
    with pytest.raises(InvalidInput) as refused:
        schemas.validate("tenant", {**GOOD, **changes})
    assert field in [f.field for f in refused.value.fields], refused.value.fields
    schemas.validate("tenant", GOOD)


def test_a_workflow_step_about_test_data_says_so(quiet_table):
    """The validate step's result carries ``testData`` for a smoke-test record, which its handler
    leaves out of the business metrics; a real record's result does not."""
    from marketplace import suppliers as supplier_module

    staff = Principal("smoke", "t-metrics", frozenset({"retailer"}), test_data=True)
    body = {**tenants.SMOKE_SUPPLIER, "taxId": "DE123123123"}
    smoke = supplier_module.Suppliers(quiet_table).register(staff, body)
    real = supplier_module.Suppliers(quiet_table).register(
        Principal("u", "t-metrics", frozenset({"retailer"})), {**body, "taxId": "DE321321321"}
    )
    smoke_step = supplier_module.Suppliers(quiet_table).validation_step("t-metrics", smoke["supplierId"])
    real_step = supplier_module.Suppliers(quiet_table).validation_step("t-metrics", real["supplierId"])
    assert smoke_step.get("testData") is True and "testData" not in real_step
    assert smoke["testData"] is True and "testData" not in real

"""A new tenant, end to end over HTTP against the local stack (docs/tenants.md, D47): the operator
creates it (its admins in the user pool, its smoke test through the workflows), lists it, suspends
and reinstates it; the CLI does the same."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from marketplace import keys, tenants
from marketplace.repository import Table
from marketplace_local import cli
from marketplace_local.samples import SUPPLIER
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


def bearer(stack: Any, tenant: str | None, role: str, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.issuer.mint(tenant, role, **kwargs)}"}


def operator(stack: Any) -> dict[str, str]:
    return bearer(stack, None, "operator", subject="operator-1")


def new_id() -> str:
    return f"shop-{uuid.uuid4().hex[:10]}"


def create(stack: Any, tenant_id: str, **overrides: Any) -> requests.Response:
    body = {"tenantId": tenant_id, "name": "Shop & Co", "tier": "standard",
            "admins": [f"boss@{tenant_id}.example"], **overrides}  # fmt: skip
    return requests.post(f"{stack.api_url}/platform/tenants", json=body, headers=operator(stack), timeout=60)


@pytest.fixture(scope="module", autouse=True)
def warm(stack: Any) -> None:
    """One tenant first, whatever becomes of it: the first smoke test after the stack starts pays
    every function's first import (up to ~25 s on a loaded machine, the smoke test's bound); the
    tests measure a tenant as the platform serves it once running (on AWS a cold start is ~1 s)."""
    create(stack, new_id())


def test_a_new_tenant_is_live_in_under_a_minute_with_its_admin_and_no_trace_of_its_smoke_test(stack):
    tenant_id = new_id()
    response = create(stack, tenant_id)
    assert response.status_code == 201, response.text
    tenant = response.json()
    assert tenant["status"] == "LIVE", tenant
    assert 0 < tenant["goLiveSeconds"] < 60
    print(f"tenant live in {tenant['goLiveSeconds']:.2f} s; steps {tenant['smokeTest']['steps']}")
    assert [s["step"] for s in tenant["smokeTest"]["steps"]] == [
        "supplier APPROVED", "listing ACTIVE", "order AWAITING_ACCEPTANCE", "order ACCEPTED"
    ]  # fmt: skip
    assert tenant["settings"]["orders"]["shipByHours"] == 72
    # The admin is a user of the pool, in the admin group, of this tenant.
    (admin,) = tenant["admins"]
    cognito, pool = stack.client("cognito-idp"), stack.physical_id("UserPool")
    user = cognito.admin_get_user(UserPoolId=pool, Username=admin["email"])
    assert {"Name": "custom:tenant_id", "Value": tenant_id} in user["UserAttributes"]
    groups = cognito.admin_list_groups_for_user(UserPoolId=pool, Username=admin["email"])["Groups"]
    assert [g["GroupName"] for g in groups] == ["admin"]
    # Its admin works in it, and sees no smoke-test supplier: the test data is removed.
    as_admin = bearer(stack, tenant_id, "admin", subject=admin["subject"])
    suppliers = requests.get(f"{stack.api_url}/suppliers", headers=as_admin, timeout=30)
    assert suppliers.status_code == 200 and suppliers.json()["items"] == [], suppliers.text
    smoke = tenant["smokeTest"]
    gone = requests.get(f"{stack.api_url}/suppliers/{smoke['supplierId']}", headers=as_admin, timeout=30)
    assert gone.status_code == 404
    stack.wait_for_streams(timeout=30)
    table = Table(stack.physical_id("MarketplaceTable"), stack.client("dynamodb"))
    left = table.client.scan(TableName=table.name, FilterExpression="begins_with(PK, :t)",
                             ExpressionAttributeValues={":t": {"S": keys.tenant_prefix(tenant_id) + "#"}})["Items"]  # fmt: skip
    # Only the audit trail of what the smoke test did stays; no ledger entry, no webhook delivery.
    assert left and all(i["SK"]["S"].startswith(keys.AUDIT_SK_PREFIX) for i in left), left
    # The operator lists it and reads it.
    listed = requests.get(f"{stack.api_url}/platform/tenants", headers=operator(stack), timeout=30).json()
    assert tenant_id in [t["tenantId"] for t in listed["items"]]
    read = requests.get(f"{stack.api_url}/platform/tenants/{tenant_id}", headers=operator(stack), timeout=30)
    assert read.json()["status"] == "LIVE"


def test_a_suspended_tenant_s_tokens_get_403_naming_the_suspension_and_work_again_once_reinstated(stack):
    tenant_id = new_id()
    assert create(stack, tenant_id).json()["status"] == "LIVE"
    admin = bearer(stack, tenant_id, "admin")
    registered = requests.post(f"{stack.api_url}/suppliers", json={**SUPPLIER, "taxId": "DE987654321"},
                               headers=admin, timeout=30)  # fmt: skip
    assert registered.status_code == 202, registered.text
    supplier_id = registered.json()["supplierId"]
    supplier = bearer(stack, tenant_id, "supplier", supplier_id=supplier_id)
    calls = {
        "admin": ("GET", "/suppliers", admin),
        "supplier": ("GET", f"/suppliers/{supplier_id}", supplier),
    }

    def statuses() -> dict[str, requests.Response]:
        return {
            who: requests.request(m, stack.api_url + p, headers=h, timeout=30)
            for who, (m, p, h) in calls.items()
        }

    assert {w: r.status_code for w, r in statuses().items()} == {"admin": 200, "supplier": 200}
    url = f"{stack.api_url}/platform/tenants/{tenant_id}"
    suspended = requests.post(
        f"{url}/suspend", json={"reason": "unpaid invoice"}, headers=operator(stack), timeout=30
    )
    assert suspended.status_code == 200 and suspended.json()["status"] == "SUSPENDED", suspended.text

    # Every API instance refuses it within the status cache's bound.
    def all_refused() -> dict[str, requests.Response] | None:
        answers = statuses()
        return answers if all(r.status_code == 403 for r in answers.values()) else None

    refused = wait_until(
        all_refused, timeout=tenants.STATUS_TTL_SECONDS + 5, what="the tenant's tokens refused"
    )
    for response in refused.values():
        message = response.json()["error"]["message"]
        assert tenant_id in message and "suspended" in message and "unpaid invoice" in message, message
    again = requests.post(f"{url}/suspend", json={"reason": "twice"}, headers=operator(stack), timeout=30)
    assert again.json()["reason"] == "unpaid invoice", "a second suspension answers the first as it is"
    reinstated = requests.post(
        f"{url}/reinstate", json={"reason": "paid"}, headers=operator(stack), timeout=30
    )
    assert reinstated.json()["status"] == "LIVE"
    wait_until(lambda: all(r.status_code == 200 for r in statuses().values()),
               timeout=tenants.STATUS_TTL_SECONDS + 5, what="the tenant's tokens work again")  # fmt: skip
    # The tenant record's changes are in the audit trail, by the operator, with their reasons.
    table = Table(stack.physical_id("MarketplaceTable"), stack.client("dynamodb"))

    def audited() -> list[dict[str, Any]] | None:
        found = list(table.partition(keys.PLATFORM_TENANTS_PK, keys.audit_prefix(keys.tenant_sk(tenant_id))))
        return (
            found
            if found and (found[-1].get("after") or {}).get("status") == "LIVE" and len(found) >= 4
            else None
        )

    entries = wait_until(audited, what="the tenant's audit trail up to its reinstatement")
    assert [(e["after"] or {}).get("status") for e in entries][-2:] == ["SUSPENDED", "LIVE"]
    assert {e["by"].split(":")[0] for e in entries[-2:]} == {"operator"}


def test_the_operator_reads_no_tenant_data_and_tenants_reach_no_platform_route(stack):
    tenant_id = new_id()
    for path in ("/suppliers", "/admin/blocklist", "/admin/corrections", "/admin/commission-rules"):
        response = requests.get(stack.api_url + path, headers=operator(stack), timeout=30)
        assert response.status_code == 403, (path, response.text)
    for role in ("admin", "retailer"):
        response = requests.get(
            f"{stack.api_url}/platform/tenants", headers=bearer(stack, tenant_id, role), timeout=30
        )
        assert response.status_code == 403, (role, response.text)


def test_a_tenant_that_exists_or_a_bad_body_is_refused_naming_the_field(stack):
    tenant_id = new_id()
    assert create(stack, tenant_id).status_code == 201
    again = create(stack, tenant_id)
    assert again.status_code == 409 and tenant_id in again.json()["error"]["message"]
    for overrides, field in (({"tier": "gold"}, "tier"), ({"admins": []}, "admins"),
                             ({"tenantId": "Bad Id"}, "tenantId"), ({"admins": ["not-an-email"]}, "admins.0")):  # fmt: skip
        response = create(stack, new_id(), **overrides)
        assert response.status_code == 400, response.text
        assert field in [f["field"] for f in response.json()["error"]["fields"]], response.text
    # An admin of another tenant cannot be made this one's; the refused creation leaves no record.
    refused_id = new_id()
    taken = create(stack, refused_id, admins=[f"boss@{tenant_id}.example"])
    assert taken.status_code == 409 and "admins.0" in taken.json()["error"]["message"], taken.text
    assert create(stack, refused_id).json()["status"] == "LIVE"


def test_a_failed_smoke_test_says_where_and_why_and_the_creation_can_be_taken_again(stack):
    tenant_id = new_id()
    # The tenant's own blocked list (a tenant with no record yet is served) rejects the smoke supplier.
    admin = bearer(stack, tenant_id, "admin")
    entry = {"kind": "domain", "value": "smoke-test.example", "reason": "blocks the smoke test"}
    added = requests.post(f"{stack.api_url}/admin/blocklist", json=entry, headers=admin, timeout=30)
    assert added.status_code == 201, added.text
    failed = create(stack, tenant_id)
    assert failed.status_code == 201, failed.text
    assert failed.json()["status"] == "FAILED"
    assert failed.json()["smokeTest"]["error"] == "supplier APPROVED: reached REJECTED, not APPROVED"
    removed = requests.delete(
        f"{stack.api_url}/admin/blocklist/{added.json()['entryId']}", headers=admin, timeout=30
    )
    assert removed.status_code == 204
    again = create(stack, tenant_id)
    assert again.status_code == 201 and again.json()["status"] == "LIVE", again.text
    assert "error" not in again.json()["smokeTest"]


def test_marketplace_tenant_create_prints_the_time_to_go_live_and_an_admin_token(stack, monkeypatch, capsys):
    monkeypatch.setenv("MARKETPLACE_STATE_DIR", str(stack.config.state_dir))
    tenant_id = new_id()
    code = cli.main(["tenant", "create", tenant_id, "--name", "Shop", "--tier", "standard",
                     "--admin", f"a@{tenant_id}.example", "--api", stack.api_url])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"tenant {tenant_id} LIVE in " in out
    token = next(line.split(" token ")[1] for line in out.splitlines() if line.startswith("admin "))
    mine = requests.get(
        f"{stack.api_url}/suppliers", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert mine.status_code == 200, mine.text
    assert cli.main(["tenant", "suspend", tenant_id, "--reason", "test", "--api", stack.api_url]) == 0
    assert f"{tenant_id}: SUSPENDED" in capsys.readouterr().out
    assert cli.main(["tenant", "list", "--api", stack.api_url]) == 0
    assert f"{tenant_id}\tSUSPENDED\tstandard\tShop" in capsys.readouterr().out
    assert cli.main(["tenant", "create", "Bad Id", "--name", "x", "--tier", "standard",
                     "--admin", "a@b.example", "--api", stack.api_url]) == 1  # fmt: skip
    assert "tenantId" in capsys.readouterr().err

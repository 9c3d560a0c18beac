"""The silo tier end to end (docs/deploy.md, D53): a premium tenant is recorded by the pool as served
by its own stack, gets its samconfig environment, and its own stack (the same template, pinned to it)
runs beside the pool: its supplier is in its own table, never in the pool's; the pool refuses its
tokens; the silo refuses every other tenant's.

The pool is the session's stack; the silo is `marketplace run --tenant` in its own process, as a
user starts it (one more stack start, so the module is one xdist group)."""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from marketplace import keys
from marketplace_local import cli
from marketplace_local.auth import TokenIssuer
from tests.e2e.test_local_stack import SUPPLIER, RunningStack, marketplace_running, status_of

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-silo")]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def premium(tenant_id: str) -> dict[str, Any]:
    return {
        "tenantId": tenant_id,
        "name": "Acme Premium",
        "tier": "premium",
        "admins": [f"ops@{tenant_id}.example"],
    }


def items_of(client: Any, table: str, tenant_id: str) -> list[dict[str, Any]]:
    return client.scan(TableName=table, FilterExpression="begins_with(PK, :t)",
                       ExpressionAttributeValues={":t": {"S": keys.tenant_prefix(tenant_id) + "#"}})["Items"]  # fmt: skip


def test_a_premium_tenant_is_recorded_as_siloed_and_gets_its_own_samconfig_environment(
    stack, tmp_path, capsys
):
    tenant_id = f"acme-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "samconfig.toml"
    # An existing file: its environments and comments stay.
    config.write_text(
        '# the pool\nversion = 0.1\n\n[default.deploy.parameters]\nstack_name = "marketplace-dev"\n'
    )
    operator = stack.issuer.mint(None, "operator", subject="operator-silo")
    code = cli.main(["tenant", "create", tenant_id, "--name", "Acme Premium", "--tier", "premium",
                     "--admin", f"ops@{tenant_id}.example", "--api", stack.api_url, "--token", operator,
                     "--region", "eu-west-1", "--profile", "acme-prod", "--samconfig", str(config)])  # fmt: skip
    # The command's lines (the in-process pool prints its metrics, JSON lines, to the same stdout).
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("{")]
    assert code == 0, printed
    stack_name = f"marketplace-{tenant_id}"
    assert printed == [
        f"tenant {tenant_id} SILOED: served by its own stack {stack_name}, not this one",
        f"{config} [{tenant_id}]: stack {stack_name}, region eu-west-1, profile acme-prod",
        f"deploy it: sam build && sam deploy --config-env {tenant_id}",
    ]
    written = tomllib.loads(config.read_text())
    assert written["default"] == {"deploy": {"parameters": {"stack_name": "marketplace-dev"}}}
    assert config.read_text().startswith("# the pool\n")
    assert written[tenant_id] == {
        "global": {"parameters": {"stack_name": stack_name, "region": "eu-west-1", "profile": "acme-prod"}},
        "deploy": {"parameters": {
            "capabilities": "CAPABILITY_IAM", "resolve_s3": True, "confirm_changeset": True,
            "parameter_overrides": f'PinnedTenant="{tenant_id}" Stage="prod"',
            "tags": f'app="marketplace" tenant="{tenant_id}" stage="prod"',
        }},
    }  # fmt: skip
    # The pool's registry knows where it lives; no admin of it in the pool's user pool, no smoke test.
    answer = requests.get(
        f"{stack.api_url}/platform/tenants/{tenant_id}", headers=bearer(operator), timeout=30
    )
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert (record["status"], record["tier"], record["silo"]) == (
        "SILOED",
        "premium",
        {"stackName": stack_name},
    )
    assert "smokeTest" not in record and record["admins"] == [{"email": f"ops@{tenant_id}.example"}]
    cognito = stack.client("cognito-idp")
    with pytest.raises(cognito.exceptions.UserNotFoundException):
        cognito.admin_get_user(UserPoolId=stack.physical_id("UserPool"), Username=f"ops@{tenant_id}.example")
    # Created again: 409 naming its status.
    again = requests.post(f"{stack.api_url}/platform/tenants", json=premium(tenant_id), headers=bearer(operator),
                          timeout=30)  # fmt: skip
    assert again.status_code == 409 and "SILOED" in again.json()["error"]["message"], again.text


@pytest.fixture(scope="module")
def silo(tmp_path_factory) -> Iterator[tuple[str, RunningStack]]:
    tenant_id = f"silo-{uuid.uuid4().hex[:8]}"
    with marketplace_running(
        tmp_path_factory.mktemp("silo-state"), webhook_receivers=0, tenant=tenant_id
    ) as running:
        yield tenant_id, running


def test_a_silo_stack_beside_the_pool_keeps_its_tenant_s_data_and_serves_no_other_tenant(stack, silo):
    tenant_id, running = silo
    operator = stack.issuer.mint(None, "operator", subject="operator-silo")
    created = requests.post(f"{stack.api_url}/platform/tenants", json=premium(tenant_id), headers=bearer(operator),
                            timeout=30)  # fmt: skip
    assert created.status_code == 201 and created.json()["status"] == "SILOED", created.text

    # Its admin onboards a supplier on its own stack, whose own workflows approve it.
    admin = running.token(tenant_id, "admin")
    registered = requests.post(f"{running.url}/suppliers", json=SUPPLIER, headers=admin, timeout=30)
    assert registered.status_code == 202, registered.text
    supplier_id = registered.json()["supplierId"]
    status_of(running, admin, supplier_id, "APPROVED")

    # The supplier is in the silo's own table (named after the silo's stack), not in the pool's.
    silo_table = running.resources["MarketplaceTable"]["ref"]
    pool_table = stack.physical_id("MarketplaceTable")
    assert silo_table.startswith(f"marketplace-{tenant_id}-") and silo_table != pool_table
    silo_dynamodb = boto3.client("dynamodb", endpoint_url=running.aws_endpoint, region_name="us-east-1",
                                 aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip
    record_pk = keys.tenant_prefix(tenant_id) + f"#SUPPLIER#{supplier_id}"
    assert {i["PK"]["S"] for i in items_of(silo_dynamodb, silo_table, tenant_id)} >= {record_pk}
    assert items_of(stack.client("dynamodb"), pool_table, tenant_id) == []

    # The pool refuses the tenant's tokens, naming its own stack, on every route.
    as_tenant_on_pool = bearer(stack.issuer.mint(tenant_id, "admin"))
    for method, path in (("GET", f"/suppliers/{supplier_id}"), ("GET", "/suppliers"), ("POST", "/suppliers")):
        answer = requests.request(method, f"{stack.api_url}{path}", json=SUPPLIER if method == "POST" else None,
                                  headers=as_tenant_on_pool, timeout=30)  # fmt: skip
        assert answer.status_code == 403, (path, answer.text)
        assert answer.json()["error"]["message"] == (
            f"tenant {tenant_id} is served by its own stack marketplace-{tenant_id} (premium tier), not by this one"
        )

    # The silo refuses another tenant's token, even one its own key signed (a user of its own pool).
    other = f"t-{uuid.uuid4().hex[:10]}"
    refused = requests.get(f"{running.url}/suppliers", headers=running.token(other, "admin"), timeout=30)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["message"] == (
        f"this stack serves only tenant {tenant_id} (its own stack, premium tier); tenant {other} is not served here"
    )
    # The pool's tokens are not the silo's: its own user pool (its own key here) signs them.
    pool_token = bearer(stack.issuer.mint(other, "admin"))
    assert requests.get(f"{running.url}/suppliers", headers=pool_token, timeout=30).status_code == 401
    # Its operator creates no other tenant on it.
    silo_operator = bearer(TokenIssuer.load_or_create(running.state_dir).mint(None, "operator", subject="op"))
    elsewhere = requests.post(f"{running.url}/platform/tenants", headers=silo_operator, timeout=30,
                              json={**premium(other), "tier": "standard"})  # fmt: skip
    assert elsewhere.status_code == 403 and "serves only tenant" in elsewhere.json()["error"]["message"]

    # ... and its own tenant, created on it, is provisioned as any: its admin in the silo's user
    # pool, its smoke test through the silo's workflows, LIVE (docs/deploy.md, step 3).
    def create_here() -> requests.Response:
        return requests.post(f"{running.url}/platform/tenants", json=premium(tenant_id), headers=silo_operator,
                             timeout=60)  # fmt: skip

    live = create_here()
    if live.status_code == 201 and live.json()["status"] == "FAILED":  # a cold function past the 25 s bound
        live = create_here()  # the documented retry (docs/tenants.md)
    assert live.status_code == 201 and live.json()["status"] == "LIVE", live.text
    cognito = running.client("cognito-idp")
    user = cognito.admin_get_user(
        UserPoolId=running.resources["UserPool"]["ref"], Username=f"ops@{tenant_id}.example"
    )
    assert {"Name": "custom:tenant_id", "Value": tenant_id} in user["UserAttributes"]

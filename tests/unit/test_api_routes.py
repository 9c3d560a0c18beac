"""The API's routes as the local stack loads them (functions/api/app.py and its routers, the way
Lambda imports them): every route declares who may call it, and those roles are the ones the
OpenAPI body names for the operation, so the router and the spec cannot drift apart."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from tools.docgen import _roles as summary_roles

from marketplace.access import ROLES
from marketplace_local.template import load_sam

# Operations whose OpenAPI summary names no role yet (docs/api.md shows no "who" for them). Their
# roles are declared by the router only; when the spec names them, they leave this set (the test
# below fails until they do, so the set only shrinks).
UNNAMED_IN_OPENAPI = {
    "GET /suppliers/{supplierId}/history",
    "GET /suppliers/{supplierId}/products/{sku}",
    "PATCH /suppliers/{supplierId}/products/{sku}",
    "GET /suppliers/{supplierId}/products/{sku}/history",
    "POST /suppliers/{supplierId}/imports/{importId}/start",
    "GET /suppliers/{supplierId}/imports/{importId}",
    "POST /supplier-orders/{supplierOrderId}/reject",
    "GET /suppliers/{supplierId}/webhook",
    "GET /suppliers/{supplierId}/deliveries",
    "GET /suppliers/{supplierId}/deliveries/{deliveryId}",
    "POST /suppliers/{supplierId}/deliveries/{deliveryId}/redrive",
}


@pytest.fixture(scope="module")
def api(stack) -> Any:
    """The API function's module, loaded by the stack's Lambda runtime on a first request."""
    assert requests.get(f"{stack.api_url}/health", timeout=30).json() == {"status": "ok"}
    module = stack.runtime.by_logical_id("ApiFunction").module
    assert module is not None
    return module


def declared(api: Any) -> dict[str, Any]:
    """``"METHOD /path"`` -> the route's policies (Powertools keeps routes in two private lists)."""
    routes = api.app._static_routes + api.app._dynamic_routes
    policies = {}
    for route in routes:
        name = f"{route.method} {route.openapi_path}"
        assert name not in policies, f"{name} is routed twice"
        policies[name] = [m for m in route.middlewares if type(m).__name__ == "Policy"]
    return policies


def openapi_operations() -> dict[str, dict[str, Any]]:
    body = load_sam()["Resources"]["MarketplaceApi"]["Properties"]["DefinitionBody"]
    return {
        f"{method.upper()} {path}": operation
        for path, item in body["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "patch", "delete")
    }


def test_every_route_declares_once_who_may_call_it(api):
    policies = declared(api)
    assert len(policies) > 30, sorted(policies)
    wrong = {name: found for name, found in policies.items() if len(found) != 1}
    assert not wrong, f"routes without exactly one allow(...)/public() in middlewares=[...]: {wrong}"


def test_the_routes_are_the_operations_of_the_openapi_body(api):
    assert sorted(declared(api)) == sorted(openapi_operations())


def test_each_routes_roles_are_the_ones_the_openapi_names(api):
    operations = openapi_operations()
    wrong, unnamed = [], set()
    for name, (policy,) in declared(api).items():
        operation = operations[name]
        roles = set(policy.roles)
        if not roles:  # public: the spec must not ask for a token either
            if operation.get("security") != []:
                wrong.append(f"{name}: public in the router, needs a token in the OpenAPI body")
            continue
        if operation.get("security") == []:
            wrong.append(f"{name}: the OpenAPI body asks for no token, the router for {sorted(roles)}")
        text = (
            " ".join(str(operation.get("summary", "")).split()) + " " + str(operation.get("description", ""))
        )
        who = summary_roles(text, sorted(ROLES))
        named = {role for role in ROLES if re.search(rf"\b{role}s?\b", who)}
        if not named:
            unnamed.add(name)
        elif named != roles:
            wrong.append(
                f"{name}: the router allows {sorted(roles)}, the OpenAPI summary names {sorted(named)}"
            )
    assert not wrong, "\n".join(wrong)
    assert unnamed == UNNAMED_IN_OPENAPI, (
        f"now naming roles: {sorted(UNNAMED_IN_OPENAPI - unnamed)}; "
        f"naming none: {sorted(unnamed - UNNAMED_IN_OPENAPI)}"
    )

"""The OpenAPI body in template.yaml is complete and agrees with schemas/*.json.

The request body schemas are written out in the OpenAPI (API Gateway, schemathesis and the docs read
them there) and in schemas/*.json (what the API function and the workflows validate with). These tests
keep the two from drifting: each OpenAPI request schema, its $refs resolved and OpenAPI 3.0's spellings
turned back into JSON Schema's, must equal its schemas/*.json file, descriptions aside.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from marketplace_local.template import load_sam
from tests.conftest import ROOT

BODY = load_sam()["Resources"]["MarketplaceApi"]["Properties"]["DefinitionBody"]
COMPONENTS = BODY["components"]["schemas"]
OPERATIONS = [
    (method, path, operation)
    for path, item in BODY["paths"].items()
    for method, operation in item.items()
    if method in ("get", "put", "post", "patch", "delete")
]
IGNORED = {"description", "$schema", "$id", "title", "$comment", "$defs"}


def from_openapi(node: Any) -> Any:
    """An OpenAPI 3.0 schema as the JSON Schema 2020-12 it stands for, $refs inlined."""
    if isinstance(node, list):
        return [from_openapi(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return from_openapi(COMPONENTS[node["$ref"].rsplit("/", 1)[-1]])
    out = {k: from_openapi(v) for k, v in node.items() if k not in IGNORED}
    if "properties" in node:
        out["properties"] = {name: from_openapi(s) for name, s in node["properties"].items()}
    if out.pop("exclusiveMinimum", False) is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    return out


def from_file(name: str) -> Any:
    document = json.loads((ROOT / "schemas" / f"{name}.json").read_text())
    defs = document.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(n) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
        out = {k: inline(v) for k, v in node.items() if k not in IGNORED}
        if "properties" in node:
            out["properties"] = {n: inline(s) for n, s in node["properties"].items()}
        return out

    return inline(document)


def as_change(schema: dict[str, Any], fixed: tuple[str, ...] = ()) -> dict[str, Any]:
    """The PATCH form of a registration schema: any non-empty subset of its changeable fields."""
    properties = {k: v for k, v in schema["properties"].items() if k not in fixed}
    return {
        **{k: v for k, v in schema.items() if k != "required"},
        "minProperties": 1,
        "properties": properties,
    }


@pytest.mark.parametrize(
    ("component", "expected"),
    [
        ("SupplierRegistration", from_file("supplier")),
        ("SupplierChange", as_change(from_file("supplier"))),
        ("ProductListing", from_file("product")),
        ("ProductChange", as_change(from_file("product"), fixed=("sku",))),
        ("OrderRequest", from_file("order")),
        ("Rejection", from_file("rejection")),
        ("ImportRequest", from_file("import")),
        ("Acceptance", from_file("acceptance")),
        ("Cancellation", from_file("cancellation")),
        ("ShipmentRequest", from_file("shipment")),
        ("ReturnRequest", from_file("return_request")),
        ("ReturnDecision", from_file("return_decision")),
        ("StockAdjustment", from_file("stock_adjustment")),
        ("CommissionRules", from_file("commission_rules")),
        ("TenantInput", from_file("tenant")),
        ("StatementPayment", from_file("statement_payment")),
        ("SettlementSettings", from_file("settlement_settings")),
        ("RulePack", from_file("rule_pack")),
    ],
)
def test_request_schemas_match_schemas_folder(component: str, expected: dict[str, Any]) -> None:
    assert from_openapi(COMPONENTS[component]) == expected


PARAMETERS = BODY["components"]["parameters"]
PARAMETER_DEFS = json.loads((ROOT / "schemas" / "parameters.json").read_text())["$defs"]


@pytest.mark.parametrize(
    ("component", "definition"),
    [
        ("Limit", "limit"),
        ("NextToken", "pageToken"),
        ("ListingsToken", "pageToken"),
        ("IfMatch", "ifMatch"),
        ("IdempotencyKey", "idempotencyKey"),
        ("Include", "include"),
        ("Period", "period"),
    ],
)
def test_parameters_match_schemas_folder(component: str, definition: str) -> None:
    """The parameters the API function validates with schemas/parameters.json are the document's."""
    assert from_openapi(PARAMETERS[component]["schema"]) == from_openapi(PARAMETER_DEFS[definition])


def test_every_operation_uses_the_shared_parameters() -> None:
    """A parameter the API reads through schemas/parameters.json is never written out inline."""
    shared = {p["name"] for p in PARAMETERS.values()}
    inline = [
        f"{method.upper()} {path}: {parameter['name']}"
        for method, path, operation in OPERATIONS
        for parameter in operation.get("parameters", [])
        if "$ref" not in parameter and parameter["name"] in shared
    ]
    assert not inline


@pytest.mark.parametrize(
    ("method", "path", "operation"), OPERATIONS, ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_operation_documents_its_answers(method: str, path: str, operation: dict[str, Any]) -> None:
    responses = operation["responses"]
    assert operation.get("operationId"), "every operation has an operationId"
    assert any(code.startswith("2") for code in responses), "a success answer"
    secured = operation.get("security", BODY.get("security")) != []
    expected = set()
    if secured:
        expected |= {"401", "429"}
    if "requestBody" in operation:
        expected |= {"400", "413"}
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        resolved = COMPONENTS[body["$ref"].rsplit("/", 1)[-1]] if "$ref" in body else body
        assert resolved.get("additionalProperties") is False, "request bodies forbid unknown fields"
    if "{" in path:
        expected.add("404")
    assert expected <= set(responses), f"undocumented: {sorted(expected - set(responses))}"
    for code, response in responses.items():
        if code.startswith(("4", "5")):
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, f"{code} answers the one error shape"
        elif code != "204":
            assert "application/json" in response["content"], code

"""Contract fuzzing: schemathesis drives every operation of the OpenAPI body that the local API
serves at /openapi.json (the one in template.yaml) with every one of its checks on: no 5xx; every
status, content type, header and body the documented one; every request the document allows is
accepted (``positive_data_acceptance``: a 400 for it means the document says less than the API) and
every request it forbids is refused (``negative_data_rejection``: a 2xx for it means the API accepts
what the document rules out); a secured operation refuses a call without its token
(``ignored_auth``). ``unsupported_method`` is off (API Gateway answers an undeclared method 404);
``use_after_free`` and the other checks that follow links between calls are on but find nothing to
check, as the stateful phase is off (the workflows' state changes are the e2e tests' business).
docs/decisions.md D29.

Each operation is called as each role its route allows (``allow(...)`` beside the route), in turn
from one generated case to the next. Path parameters are the generated values or, as often, ids of
the seeded tenant's real records and another tenant's, so the checks cover the found and the
not-found answers. Generation is seeded and derandomized: the same cases every run.
"""

from __future__ import annotations

import collections
import itertools
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig

from marketplace import blocklist, keys
from tests.contract.conftest import World

# One worker takes the contract modules: they share the session's seeded world (conftest.py).
pytestmark = pytest.mark.xdist_group("contract")

MAX_EXAMPLES = 4  # random cases per operation and mode, besides the coverage phase's


def existing_ids(world: World) -> dict[str, list[str]]:
    """Real ids per path parameter: the tenant's own records first, then another tenant's."""
    return {
        "supplierId": [world.supplier_id, world.flagged_supplier_id, world.other_supplier_id],
        "sku": [world.sku, world.flagged_sku],
        "orderId": [world.order_id],
        "supplierOrderId": [
            world.supplier_order_id,
            world.flagged_supplier_order_id,
            world.other_supplier_order_id,
        ],
        "recordId": [world.flagged_supplier_id, world.supplier_id, world.other_supplier_id],
        "entryId": [world.entry_id],
        "deliveryId": world.delivery_ids,
    }


@pytest.fixture(scope="session")
def route_roles(world: World) -> dict[str, Iterator[str]]:
    """``"METHOD /path"`` -> the roles its route allows (the router's ``allow(...)``), cycled."""
    assert requests.get(f"{world.url}/health", timeout=30).status_code == 200
    api = world.stack.runtime.by_logical_id("ApiFunction").module
    roles = {}
    for route in api.app._static_routes + api.app._dynamic_routes:
        (policy,) = (m for m in route.middlewares if type(m).__name__ == "Policy")
        roles[f"{route.method} {route.openapi_path}"] = itertools.cycle(sorted(policy.roles) or ["retailer"])
    return roles


@pytest.fixture(scope="session")
def contract_schema(world: World) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "seed": 20261123,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                # The token is the caller's role's; ignored_auth checks the call without it.
                "with-security-parameters": False,
            },
            # Every built-in check (the default), and the coverage phase's boundary values (one
            # under and over each length, range and pattern) besides the examples drawn at random.
            # API Gateway answers a method the document does not declare with its
            # MISSING_AUTHENTICATION_TOKEN response (404 here), never 405: unsupported_method is
            # the one check off, and no undeclared method is sent.
            "phases": {
                "coverage": {"enabled": True, "unexpected-methods": []},
                "stateful": {"enabled": False},
            },
            # 422 is the API's answer to one thing only, an Idempotency-Key reused with another
            # body: it depends on the calls before, not on the request, as a 409 does; so does 412,
            # an If-Match the record has moved past (the commission rules' version moves with each
            # PUT a case before made).
            "checks": {
                "unsupported_method": {"enabled": False},
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429"]
                },
            },
        }
    )
    schema = schemathesis.openapi.from_url(f"{world.url}/openapi.json", config=config)
    ids = existing_ids(world)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
        """The generated ids; or the seeded tenant's own records (the first of each list, which
        belong together: the token's supplier, its listing, its order); or any mix of real ids."""
        if not path_parameters:
            return st.just(path_parameters)
        known = {name: ids.get(name) or [value] for name, value in path_parameters.items()}
        own = {name: values[0] for name, values in known.items()}
        mixed = st.fixed_dictionaries({name: st.sampled_from([path_parameters[name], *values])
                                       for name, values in known.items()})  # fmt: skip
        return st.one_of(st.just(path_parameters), st.just(own), mixed)

    return schema


schema = schemathesis.pytest.from_fixture("contract_schema")


def gateway_size(sent: requests.PreparedRequest) -> int:
    """The bytes API Gateway counts against its limit: the request line and the header values."""
    url = urlsplit(sent.url)
    target = url.path + (f"?{url.query}" if url.query else "")
    line = f"{sent.method} {target} HTTP/1.1"
    return len(line.encode()) + len(url.netloc) + sum(len(str(v).encode()) for v in sent.headers.values())


def answers_as_documented(case: Any, world: World, route_roles: dict[str, Iterator[str]]) -> None:
    label = f"{case.operation.method.upper()} {case.operation.path}"
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and case.query:
        # A page token is opaque: one that matches its documented form but was never issued is a
        # 400, which no schema can foretell. Positive cases read the first page; negative ones
        # still send malformed tokens.
        for name in ("nextToken", "listingsToken"):
            case.query.pop(name, None)
    role = next(route_roles[label])
    if label == "GET /supplier-orders" and role != "supplier" and positive:
        # A supplier lists its own orders; staff name the supplier (OpenAPI 3.0 has no parameter
        # required for some callers only: the operation's description says so).
        case.query = {**(case.query or {}), "supplierId": world.supplier_id}
    if (
        positive
        and isinstance(case.body, dict)
        and isinstance(case.body.get("lines"), list)
        and label.startswith("POST /supplier-orders/")
    ):
        # An order's decision, shipment, cancellation or return names lines the order holds (the
        # seeded orders hold one sku): a sku the order lacks is a 400 naming the line, which no
        # schema can foretell. Negative cases still send any sku.
        case.body = {**case.body, "lines": [{**line, "sku": world.sku} for line in case.body["lines"][:1]]}
        if label.endswith("/cancel") and "quantity" in case.body["lines"][0]:
            # Likewise the units a cancellation names: more than the line has left is a 400 naming
            # the line; one unit is within what a seeded line holds while it is still to ship.
            case.body["lines"][0]["quantity"] = 1
    if (
        positive
        and label == "POST /orders"
        and isinstance(case.body, dict)
        and isinstance(case.body.get("lines"), list)
    ):
        # An order is in one currency: a line priced in another than line 0's is a 400 naming the line
        # (docs/money.md), which OpenAPI 3.0 cannot say. Negative cases still mix them.
        lines = [line for line in case.body["lines"] if isinstance(line, dict)]
        currency = lines[0].get("unitPrice", {}).get("currency") if lines else None
        case.body = {**case.body, "lines": [
            {**line, "unitPrice": {**line["unitPrice"], "currency": currency}}
            if isinstance(line, dict) and isinstance(line.get("unitPrice"), dict) else line
            for line in case.body["lines"]]}  # fmt: skip
    if positive and label == "PUT /admin/commission-rules" and isinstance(case.body, dict):
        # The names of the rules' maps (a category, a supplier id, a currency code) are checked by the
        # API: OpenAPI 3.0 has no propertyNames (the document's descriptions say so). Positive cases
        # name valid ones; negative cases still send any.
        named = {"categories": lambda i: f"category-{i}", "suppliers": lambda i: f"supplier-{i}",
                 "minimumPerLine": lambda i: ("EUR", "USD", "GBP", "CHF", "SEK")[i]}  # fmt: skip
        for field, name in named.items():
            if isinstance(case.body.get(field), dict):
                values = list(case.body[field].values())[:5]
                case.body = {**case.body, field: {name(i): v for i, v in enumerate(values)}}
    if positive and label == "PUT /admin/rule-packs/draft" and isinstance(case.body, dict):
        # As the commission rules': the names of the pack's maps (a country code, a category), each
        # minimum at most its maximum and the auto-cancel at least the ship-by are checked by the API
        # (the document's descriptions say so).
        # Positive cases name valid ones and order the bounds; negative cases still send any.
        case.body = {**case.body}
        if isinstance(case.body.get("taxIds"), dict):
            values = list(case.body["taxIds"].values())[:5]
            case.body["taxIds"] = {("DE", "FR", "GB", "US", "NL")[i]: v for i, v in enumerate(values)}
        if isinstance(case.body.get("categories"), dict):
            rules = list(case.body["categories"].values())[:5]
            for rule in rules:
                for bound in ("price", "images"):
                    if isinstance(rule, dict) and isinstance(rule.get(bound), dict):
                        low, high = rule[bound].get("min"), rule[bound].get("max")
                        if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
                            rule[bound] = {**rule[bound], "min": high, "max": low}
            case.body["categories"] = {f"category-{i}": rule for i, rule in enumerate(rules)}
        timings = case.body.get("orders")
        if isinstance(timings, dict):
            # The order timings: an auto-cancel at least the ship-by (the description says so; a
            # field left out is the default's: 7 days, 72 hours).
            ship_by = timings["shipByHours"] if isinstance(timings.get("shipByHours"), int) else 72
            days = max(timings.get("autoCancelUnshippedDays") or 7, -(-ship_by // 24))
            case.body["orders"] = {**timings, "autoCancelUnshippedDays": days}
        changes = case.body.get("changes")
        if isinstance(changes, dict):
            # The change thresholds: only a field whose rule takes one (the description says so):
            # a listing's price; no supplier field has a threshold.
            listing = (
                list(changes["listing"].values())[:1] if isinstance(changes.get("listing"), dict) else []
            )
            case.body["changes"] = {
                **({"supplier": {}} if "supplier" in changes else {}),
                **({"listing": {"price": listing[0]} if listing else {}} if "listing" in changes else {}),
            }
        defaults = case.body.get("commission")
        if isinstance(defaults, dict) and isinstance(defaults.get("minimumPerLine"), dict):
            values = list(defaults["minimumPerLine"].values())[:5]
            minimums = {("EUR", "USD", "GBP", "CHF", "SEK")[i]: v for i, v in enumerate(values)}
            case.body["commission"] = {**defaults, "minimumPerLine": minimums}
        blocked = case.body.get("blocklist")
        if isinstance(blocked, dict):
            # The blocked-list changes: each added entry is checked as POST /admin/blocklist checks it,
            # and each removed id is an entry's id (the description says so). Positive cases add and
            # remove as many valid ones, distinct; negative cases still send any.
            case.body["blocklist"] = {
                **({"add": [{"kind": "domain", "value": f"added-{i}.example", "reason": "contract"}
                            for i, _ in enumerate(blocked["add"])]} if isinstance(blocked.get("add"), list) else {}),
                **({"remove": [blocklist.entry_id(keys.blocked_domain_sk(f"removed-{i}.example"))
                               for i, _ in enumerate(blocked["remove"])]} if isinstance(blocked.get("remove"), list) else {}),
            }  # fmt: skip
    if label == "POST /admin/rule-packs/draft/activate":
        # An activated random draft would be the seeded tenant's rules for every later case and
        # module of the session: the draft activated is the defaults it reads (its what-if, its
        # 404 without a draft and its If-Match still answer as documented).
        active = world.call("GET", "/admin/rule-packs/active", "admin").json()["pack"]
        world.call("PUT", "/admin/rule-packs/draft", "admin", json=active)
    if positive and label == "POST /platform/tenants" and isinstance(case.body, dict):
        # Each new tenant runs its smoke test through the workflows (seconds): positive cases name one
        # tenant, so the first creates it and the rest meet it (409), and one admin Cognito takes
        # (the pattern lets through addresses it refuses). Negative cases still send anything.
        case.body = {**case.body, "tenantId": "contract-shop", "admins": ["ops@contract-shop.example"]}
    response = case.call(headers=world.headers(role), timeout=30)
    ANSWERS.setdefault(label, []).append(response.status_code)
    if response.status_code == 431:
        # API Gateway refuses a request line and header values over 10,240 bytes before any
        # operation sees it (percent-encoding triples a generated value's bytes): its answer, in
        # the error shape, and only for a request that really is over the limit.
        assert gateway_size(response.request) > 10240, response.text
        assert response.json()["error"]["code"] == "bad_request"
        return
    case.validate_response(response, headers=world.headers(role))


# Three tests of about equal length, so that pytest -n 2 spreads them over both workers and none
# nears the 300 s timeout on a loaded machine.
@schema.include(method="GET").parametrize()
def test_every_read_answers_as_documented(
    case: Any, world: World, route_roles: dict[str, Iterator[str]]
) -> None:
    answers_as_documented(case, world, route_roles)


@schema.include(method="POST").parametrize()
def test_every_post_answers_as_documented(
    case: Any, world: World, route_roles: dict[str, Iterator[str]]
) -> None:
    answers_as_documented(case, world, route_roles)


@schema.include(method=["PATCH", "PUT", "DELETE"]).parametrize()
def test_every_change_answers_as_documented(
    case: Any, world: World, route_roles: dict[str, Iterator[str]]
) -> None:
    answers_as_documented(case, world, route_roles)


ANSWERS: dict[str, list[int]] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_answers() -> Iterator[None]:
    """For the record (pytest -s): the status codes each operation answered."""
    yield
    total = sum(len(codes) for codes in ANSWERS.values())
    print(f"\n{len(ANSWERS)} operations, {total} calls", file=sys.stderr)
    for label, codes in sorted(ANSWERS.items()):
        print(f"  {label}: {dict(sorted(collections.Counter(codes).items()))}", file=sys.stderr)

"""Bad input on every write route: each answer is a clear 4xx in the one error shape, naming the field
and the reason where there is one, and neither the caller's tenant nor the other tenant's items change.

The routes act on a seeded tenant's real records (an approved supplier with an active listing, a
supplier order awaiting acceptance, a flagged supplier, a blocked-list entry); another tenant's ids
must answer 404 exactly like unknown ones.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from marketplace import keys
from tests.conftest import wait_until
from tests.contract.conftest import LISTING, SHIP_TO, SUPPLIER, World

# One worker takes the contract modules: they share the session's seeded world (conftest.py).
pytestmark = pytest.mark.xdist_group("contract")

GATEWAY_LIMIT = 10 * 1024 * 1024  # API Gateway's request payload limit
RECORD_LIMIT = 400 * 1024  # DynamoDB's item size limit


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # {s} own supplier, {sku}, {so} supplier order, {flagged} flagged supplier, {entry}
    role: str
    body: dict[str, Any] | None  # a valid body, or None for routes that take none

    def url(self, world: World, **ids: str) -> str:
        values = {
            "s": world.supplier_id,
            "sku": world.sku,
            "so": world.supplier_order_id,
            "flagged": world.flagged_supplier_id,
            "entry": world.entry_id,
            "fsku": world.flagged_sku,
            "d": "no-such-delivery",
            "imp": "no-such-import",
            "r": "no-such-return",
            "t": "no-such-tenant",
            "st": "2026-W01.no-such-supplier",
            **ids,
        }
        return world.url + self.path.format(**values)


def order_body(world: World | None = None) -> dict[str, Any]:
    line = {
        "supplierId": world.supplier_id if world else "S",
        "sku": LISTING["sku"],
        "quantity": 1,
        "unitPrice": {"amount": 49.9, "currency": "EUR"},
    }
    return {"customerOrderId": "web-bad-input", "lines": [line], "shipTo": SHIP_TO}


REASON = {"reason": "could not verify"}
ROUTES = {
    "register-supplier": Route("POST", "/suppliers", "retailer", {**SUPPLIER, "taxId": "DE555555555"}),
    "update-supplier": Route("PATCH", "/suppliers/{s}", "retailer", {"legalName": "Globex AG"}),
    "register-product": Route("POST", "/suppliers/{s}/products", "supplier", {**LISTING, "sku": "NEW-1"}),
    "update-product": Route("PATCH", "/suppliers/{s}/products/{sku}", "supplier", {"quantity": 7}),
    "adjust-stock": Route(
        "POST",
        "/suppliers/{s}/products/{sku}/stock-adjustments",
        "supplier",
        {"delta": 1, "reason": "delivery"},
    ),
    "reject-product": Route("POST", "/suppliers/{s}/products/{fsku}/reject", "admin", REASON),
    "retry-product": Route("POST", "/suppliers/{s}/products/{fsku}/retry", "admin", None),
    "suspend-supplier": Route("POST", "/suppliers/{s}/suspend", "admin", REASON),
    "reinstate-supplier": Route("POST", "/suppliers/{s}/reinstate", "admin", REASON),
    "erase-supplier": Route("POST", "/admin/suppliers/{s}/erase", "admin", REASON),
    "delist-product": Route("POST", "/suppliers/{s}/products/{sku}/delist", "supplier", REASON),
    "relist-product": Route("POST", "/suppliers/{s}/products/{sku}/relist", "supplier", REASON),
    "place-order": Route("POST", "/orders", "retailer", order_body()),
    "accept-supplier-order": Route("POST", "/supplier-orders/{so}/accept", "supplier", None),
    "reject-supplier-order": Route("POST", "/supplier-orders/{so}/reject", "supplier", REASON),
    "cancel-supplier-order": Route("POST", "/supplier-orders/{so}/cancel", "admin", REASON),
    "retry-supplier-order": Route("POST", "/supplier-orders/{so}/retry", "admin", None),
    "add-shipment": Route(
        "POST",
        "/supplier-orders/{so}/shipments",
        "supplier",
        {"carrier": "DHL", "trackingNumber": "JD0001", "lines": [{"sku": LISTING["sku"], "quantity": 1}]},
    ),
    "deliver-supplier-order": Route("POST", "/supplier-orders/{so}/delivered", "supplier", None),
    "request-return": Route(
        "POST",
        "/supplier-orders/{so}/returns",
        "retailer",
        {"lines": [{"sku": LISTING["sku"], "quantity": 1}], "reason": "broken"},
    ),
    "accept-return": Route("POST", "/returns/{r}/accept", "supplier", None),
    "refuse-return": Route("POST", "/returns/{r}/refuse", "supplier", REASON),
    "dispute-return": Route("POST", "/returns/{r}/dispute", "retailer", REASON),
    "receive-return": Route("POST", "/returns/{r}/received", "supplier", None),
    "decide-return": Route("POST", "/returns/{r}/decide", "admin", {"refund": True, **REASON}),
    "register-webhook": Route(
        "PUT",
        "/suppliers/{s}/webhook",
        "supplier",
        {"url": "https://hooks.example.com/in", "secret": "0123456789abcdef-secret"},
    ),
    "reject-correction": Route("POST", "/admin/corrections/{flagged}/reject", "admin", REASON),
    "retry-correction": Route("POST", "/admin/corrections/{flagged}/retry", "admin", None),
    "add-blocklist-entry": Route(
        "POST", "/admin/blocklist", "admin", {"kind": "domain", "value": "bad.example", "reason": "fraud"}
    ),
    "delete-blocklist-entry": Route("DELETE", "/admin/blocklist/{entry}", "admin", None),
    "redrive-delivery": Route("POST", "/suppliers/{s}/deliveries/{d}/redrive", "supplier", None),
    "create-import": Route("POST", "/suppliers/{s}/imports", "supplier", {"fileName": "catalog.csv"}),
    "start-import": Route("POST", "/suppliers/{s}/imports/{imp}/start", "supplier", None),
    "put-commission-rules": Route("PUT", "/admin/commission-rules", "admin", {"defaultPercent": 10}),
    "create-tenant": Route(
        "POST",
        "/platform/tenants",
        "operator",
        {"tenantId": "bad-input-shop", "name": "Shop", "tier": "standard", "admins": ["a@shop.example"]},
    ),
    "suspend-tenant": Route("POST", "/platform/tenants/{t}/suspend", "operator", REASON),
    "reinstate-tenant": Route("POST", "/platform/tenants/{t}/reinstate", "operator", REASON),
    "mark-statement-paid": Route(
        "POST", "/admin/statements/{st}/paid", "admin", {"reference": "SEPA-2026-1"}
    ),
    "put-settlement-settings": Route("PUT", "/admin/settlement-settings", "admin", {"period": "weekly"}),
    "put-draft-rule-pack": Route("PUT", "/admin/rule-packs/draft", "admin", {"taxIds": {}, "categories": {}}),
    # No body: what they read is If-Match (test_if_match_... below).
    "what-if-rule-pack": Route("POST", "/admin/rule-packs/draft/what-if", "admin", None),
    "activate-rule-pack": Route("POST", "/admin/rule-packs/draft/activate", "admin", None),
}
OPTIONAL_BODY = {"create-import"}  # no body (or null) is a valid request there
BODY_ROUTES = {name: r for name, r in ROUTES.items() if r.body is not None}

# A field of each body route to break, with a value of the wrong type.
FIELD = {
    "register-supplier": "legalName",
    "update-supplier": "legalName",
    "register-product": "title",
    "update-product": "quantity",
    "reject-product": "reason",
    "suspend-supplier": "reason",
    "reinstate-supplier": "reason",
    "erase-supplier": "reason",
    "delist-product": "reason",
    "relist-product": "reason",
    "adjust-stock": "reason",
    "place-order": "customerOrderId",
    "reject-supplier-order": "reason",
    "cancel-supplier-order": "reason",
    "add-shipment": "carrier",
    "request-return": "reason",
    "refuse-return": "reason",
    "dispute-return": "reason",
    "decide-return": "reason",
    "register-webhook": "url",
    "reject-correction": "reason",
    "add-blocklist-entry": "value",
    "create-import": "fileName",
    "put-commission-rules": "defaultPercent",
    "create-tenant": "name",
    "suspend-tenant": "reason",
    "reinstate-tenant": "reason",
    "mark-statement-paid": "reference",
    "put-settlement-settings": "period",
    "put-draft-rule-pack": "taxIds",
}
INJECTIONS = [
    "' OR '1'='1' --",
    "Robert'); DROP TABLE suppliers;--",
    '{"$ne": null}',
    "attribute_exists(PK) OR #status = :s",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "${jndi:ldap://x/a}",
]


@dataclass(frozen=True)
class Case:
    route: str
    what: str
    data: bytes | None
    status: int
    field: str | None = None  # the field the error must name
    ids: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return f"{self.route}: {self.what}"


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _cases() -> list[Case]:
    cases: list[Case] = []
    for name, route in BODY_ROUTES.items():
        body, field = route.body, FIELD[name]
        assert body is not None
        cases += [
            Case(name, "malformed JSON", b'{"a": ', 400, "(body)"),
            *(
                ()
                if name in OPTIONAL_BODY
                else (
                    Case(name, "an empty body", b"", 400, "(body)"),
                    Case(name, "JSON null", b"null", 400, "(body)"),
                )
            ),
            Case(name, "a JSON array", b"[]", 400, "(body)"),
            Case(name, "NaN", b'{"x": NaN}', 400, "(body)"),
            Case(name, "a lone surrogate", b'{"x": "\\ud800"}', 400, "x"),
            Case(name, "nesting 100000 deep", b"[" * 100_000 + b"]" * 100_000, 400, "(body)"),
            Case(name, "not UTF-8", b'{"x": "\xff\xfe"}', 400, "(body)"),
            Case(name, f"{field} of the wrong type", _json({**body, field: {"$ne": None}}), 400, field),
            Case(name, "an extra field", _json({**body, "isAdmin": True}), 400, "isAdmin"),
            Case(name, f"{field} with a NUL", _json({**body, field: "a\u0000b"}), 400, field),
            Case(name, f"{field} with an escape sequence", _json({**body, field: "a\u001b[2Jb"}), 400, field),
            Case(name, f"{field} of 100 KB", _json({**body, field: "x" * 100 * 1024}), 400, field),
            Case(name, "a body of 1 MB", _json({**body, "pad": "x" * 1024 * 1024}), 413, "(body)"),
            Case(name, "a body over 10 MB", _json({**body, "pad": "x" * GATEWAY_LIMIT}), 413),
        ]
        if len(body) > 1 or name.startswith("register-") or name in ("place-order", "add-blocklist-entry"):
            missing = next(iter(body))
            cases.append(
                Case(
                    name,
                    f"{missing} missing",
                    _json({k: v for k, v in body.items() if k != missing}),
                    400,
                    missing,
                )
            )
    supplier = BODY_ROUTES["register-supplier"].body
    listing = BODY_ROUTES["register-product"].body
    assert supplier is not None and listing is not None
    for text in INJECTIONS:
        cases.append(
            Case("register-supplier", f"taxId {text!r}", _json({**supplier, "taxId": text}), 400, "taxId")
        )
        cases.append(Case("register-product", f"sku {text!r}", _json({**listing, "sku": text}), 400, "sku"))
        cases.append(
            Case(
                "place-order",
                f"customerOrderId {text!r}",
                _json({**order_body(), "customerOrderId": text}),
                400,
                "customerOrderId",
            )
        )
    big_attributes = {f"k{i}-" + "x" * 10_000: "v" for i in range(45)}  # ~450 KB of attribute names
    cases += [
        # A record over DynamoDB's 400 KB needs a body over 256 KB: the function refuses it whole.
        Case(
            "register-product",
            "a listing over 400 KB",
            _json({**listing, "attributes": big_attributes}),
            413,
            "(body)",
        ),
        Case(
            "update-product",
            "a change making the listing over 400 KB",
            _json({"attributes": big_attributes}),
            413,
            "(body)",
        ),
        Case(
            "register-product",
            "an attribute name of 5 KB",
            _json({**listing, "attributes": {"k" * 5000: "v"}}),
            400,
            "attributes",
        ),
        Case(
            "update-product",
            "an attribute name of 65 characters",
            _json({"attributes": {"k" * 65: "v"}}),
            400,
            "attributes",
        ),
        Case("register-product", "a negative quantity", _json({**listing, "quantity": -1}), 400, "quantity"),
        Case("register-product", "a huge quantity", _json({**listing, "quantity": 10**30}), 400, "quantity"),
        Case("register-product", "a float quantity", _json({**listing, "quantity": 1.5}), 400, "quantity"),
        Case(
            "register-product",
            "a negative price",
            _json({**listing, "price": {"amount": -5, "currency": "EUR"}}),
            400,
            "price.amount",
        ),
        Case(
            "register-product",
            "a price of 1e308",
            b'{"price": {"amount": 1e308, "currency": "EUR"}}',
            400,
            "price.amount",
        ),
        Case("register-product", "a price of 1e999", _json(listing)[:-1] + b', "x": 1e999}', 400, "x"),
        Case(
            "register-product",
            "a price of 5e-324",
            _json({**listing, "price": {"amount": 5e-324, "currency": "EUR"}}),
            400,
            "price.amount",
        ),
        Case(
            "place-order",
            "a unit price of 5e-324 (found by schemathesis: a 502)",
            _json(
                {
                    **order_body(),
                    "lines": [
                        {**order_body()["lines"][0], "unitPrice": {"amount": 5e-324, "currency": "EUR"}}
                    ],
                }
            ),
            400,
            "lines.0.unitPrice.amount",
        ),
        Case(
            "register-product",
            "an attribute of 1e200",
            _json({**listing, "attributes": {"n": 1e200}}),
            400,
            "attributes.n",
        ),
        Case("update-product", "quantity -1", _json({"quantity": -1}), 400, "quantity"),
        Case("update-product", "quantity 2**63", _json({"quantity": 2**63}), 400, "quantity"),
        Case("update-product", "quantity true", _json({"quantity": True}), 400, "quantity"),
        Case("update-product", "sku cannot change", _json({"sku": "OTHER"}), 400, "sku"),
        Case("decide-return", "refund as a string", _json({**REASON, "refund": "yes"}), 400, "refund"),
        Case("decide-return", "refund as 1", _json({**REASON, "refund": 1}), 400, "refund"),
        Case("decide-return", "reason missing", _json({"refund": False}), 400, "reason"),
        Case(
            "decide-return",
            "units to refund with no refund",
            _json({**REASON, "refund": False, "lines": [{"sku": "A-1", "quantity": 1}]}),
            400,
            "lines",
        ),
        Case(
            "decide-return",
            "a refund of 0 units",
            _json({**REASON, "refund": True, "lines": [{"sku": "A-1", "quantity": 0}]}),
            400,
            "lines.0.quantity",
        ),
        Case("adjust-stock", "delta 0", _json({"delta": 0, "reason": "x"}), 400, "delta"),
        *(
            Case("create-tenant", what, _json({**ROUTES["create-tenant"].body, **change}), 400, field)
            for what, change, field in (
                ("an upper-case tenant id", {"tenantId": "Shop"}, "tenantId"),
                ("a tenant id with a #", {"tenantId": "shop#1"}, "tenantId"),
                ("a tier of gold", {"tier": "gold"}, "tier"),
                ("no admins", {"admins": []}, "admins"),
                ("an admin that is no e-mail", {"admins": ["boss"]}, "admins.0"),
            )
        ),
        Case("adjust-stock", "delta 1.5", _json({"delta": 1.5, "reason": "x"}), 400, "delta"),
        Case("adjust-stock", "delta 2**63", _json({"delta": 2**63, "reason": "x"}), 400, "delta"),
        Case("adjust-stock", "delta as a string", _json({"delta": "5", "reason": "x"}), 400, "delta"),
        Case("adjust-stock", "delta true", _json({"delta": True, "reason": "x"}), 400, "delta"),
        Case("adjust-stock", "a blank reason", _json({"delta": 1, "reason": "  "}), 400, "reason"),
        Case(
            "put-commission-rules",
            "a percent over 100",
            _json({"defaultPercent": 100.01}),
            400,
            "defaultPercent",
        ),
        Case(
            "put-commission-rules",
            "a percent of 1.001",
            _json({"defaultPercent": 1.001}),
            400,
            "defaultPercent",
        ),
        Case(
            "put-commission-rules",
            "a category name no listing has",
            _json({"defaultPercent": 10, "categories": {"Home!": 5}}),
            400,
            "categories.Home!",
        ),
        Case(
            "put-commission-rules",
            "a minimum in cents of a currency without them",
            _json({"defaultPercent": 10, "minimumPerLine": {"JPY": 0.5}}),
            400,
            "minimumPerLine.JPY",
        ),
        Case("put-settlement-settings", "a yearly period", _json({"period": "yearly"}), 400, "period"),
        Case(
            "put-draft-rule-pack",
            "a country that is no ISO code",
            _json({"taxIds": {"de": {"formats": ["DE\\d{9}"], "description": "x"}}, "categories": {}}),
            400,
            "taxIds.de",
        ),
        Case(
            "put-draft-rule-pack",
            "a format with a repeated group (a slow expression)",
            _json({"taxIds": {"DE": {"formats": ["(DE\\d)+"], "description": "x"}}, "categories": {}}),
            400,
            "taxIds.DE.formats.0",
        ),
        Case(
            "put-draft-rule-pack",
            "a price minimum over its maximum",
            _json({"taxIds": {}, "categories": {"home": {"price": {"min": 9, "max": 1}}}}),
            400,
            "categories.home.price.min",
        ),
        Case(
            "put-draft-rule-pack",
            "a category with no rule",
            _json({"taxIds": {}, "categories": {"home": {}}}),
            400,
            "categories.home",
        ),
        Case("mark-statement-paid", "a blank reference", _json({"reference": "  "}), 400, "reference"),
        Case(
            "mark-statement-paid",
            "a reference of 101 characters",
            _json({"reference": "R" * 101}),
            400,
            "reference",
        ),
        Case(
            "mark-statement-paid",
            "a formula as the reference",
            _json({"reference": "=HYPERLINK(1)"}),
            400,
            "reference",
        ),
        # Valid, but more than the listing has: refused whole, naming the field, nothing written.
        Case(
            "adjust-stock",
            "more units removed than available",
            _json({"delta": -1000000, "reason": "x"}),
            409,
            "delta",
        ),
    ]
    for what, ids in (
        ("an unknown supplier", (("s", "00000000-0000-0000-0000-000000000000"),)),
        ("another tenant's supplier", (("s", "OTHER_SUPPLIER"),)),
        ("an injection-looking supplier id", (("s", "' OR '1'='1"),)),
        ("an unknown supplier order", (("so", "no-such-order"),)),
        ("another tenant's supplier order", (("so", "OTHER_SUPPLIER_ORDER"),)),
        ("an unknown sku", (("sku", "NO-SUCH-SKU"), ("fsku", "NO-SUCH-SKU"))),
        ("an unknown flagged record", (("flagged", "no-such-record"),)),
        ("another tenant's flagged record", (("flagged", "OTHER_SUPPLIER"),)),
        ("an unknown blocked-list entry", (("entry", "bm8tc3VjaA"),)),
        ("an unknown return", (("r", "00000000-0000-0000-0000-000000000000"),)),
        ("an unknown tenant", (("t", "no-such-shop"),)),
        ("an unknown statement", (("st", "2026-W01.00000000-0000-0000-0000-000000000000"),)),
        ("a statement id that names no period", (("st", "' OR '1'='1"),)),
        ("another tenant's supplier's statement", (("st", "2026-W01.OTHER_SUPPLIER"),)),
    ):
        for name, route in ROUTES.items():
            if any("{" + key + "}" in route.path for key, _ in ids):
                data = _json(route.body) if route.body is not None else None
                cases.append(Case(name, what, data, 404, ids=ids))
    for name, route in ROUTES.items():
        if route.body is None:
            cases.append(Case(name, "a body over 10 MB", b"x" * (GATEWAY_LIMIT + 1), 413))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def bad_world(world: World) -> World:
    """The seeded tenants, settled; if a test before this module changed them, settle again."""
    settled: list[Any] = [None]

    def quiet() -> bool:
        now = (world.items(), world.items(world.other_tenant))
        same, settled[0] = now == settled[0], now
        return same

    wait_until(quiet, timeout=60, interval=0.5, what="the seeded tenants to stop changing")
    world.baseline = settled[0]
    return world


PLACEHOLDERS = {
    "{s}": "{supplierId}",
    "{sku}": "{sku}",
    "{fsku}": "{sku}",
    "{so}": "{supplierOrderId}",
    "{flagged}": "{recordId}",
    "{entry}": "{entryId}",
    "{d}": "{deliveryId}",
    "{imp}": "{importId}",
    "{r}": "{returnId}",
    "{t}": "{tenantId}",
    "{st}": "{statementId}",
}
# Write routes this matrix leaves out, and why.
EXEMPT = {
    ("POST", "/admin/corrections/drain"),  # takes no input: nothing to break
}


def test_every_write_route_is_covered(stack) -> None:
    """The matrix names every write operation of the API (so a new one needs a row here)."""
    body = requests.get(f"{stack.api_url}/openapi.json", timeout=10).json()
    writes = {
        (method.upper(), path)
        for path, item in body["paths"].items()
        for method in item
        if method in ("post", "put", "patch", "delete")
    }
    covered = set()
    for route in ROUTES.values():
        path = route.path
        for mine, theirs in PLACEHOLDERS.items():
            path = path.replace(mine, theirs)
        covered.add((route.method, path))
    missing = writes - covered - EXEMPT
    assert not missing, f"write routes without bad-input cases: {sorted(missing)}"


BY_ROUTE: dict[str, list[Case]] = {}
for _case in CASES:
    BY_ROUTE.setdefault(_case.route, []).append(_case)


@pytest.mark.parametrize("route_name", sorted(BY_ROUTE))
def test_bad_input_gets_a_clear_4xx_and_changes_nothing(bad_world: World, route_name: str) -> None:
    """Every case of the route in turn; then neither tenant's items have changed at all."""
    world = bad_world
    problems = [problem for case in BY_ROUTE[route_name] if (problem := _check(world, case))]
    assert not problems, "\n".join(problems)
    assert (world.items(), world.items(world.other_tenant)) == world.baseline, "the table changed"


def _check(world: World, case: Case) -> str | None:
    route = ROUTES[case.route]
    others = {
        "OTHER_SUPPLIER": world.other_supplier_id,
        "OTHER_SUPPLIER_ORDER": world.other_supplier_order_id,
    }
    ids = {k: others.get(v, v) for k, v in case.ids}
    ids = {
        k: v.replace("OTHER_SUPPLIER", world.other_supplier_id) if k == "st" else v for k, v in ids.items()
    }
    data = case.data
    if data is not None and b'"supplierId": "S"' in data:
        data = data.replace(b'"supplierId": "S"', f'"supplierId": "{world.supplier_id}"'.encode())
    headers = {**world.headers(route.role), "Content-Type": "application/json"}
    try:
        response = requests.request(
            route.method, route.url(world, **ids), data=data, headers=headers, timeout=60
        )
    except requests.ConnectionError as exc:
        return f"{case}: connection failed: {exc}"
    text = response.text[:300]
    if response.status_code != case.status:
        return f"{case}: {response.status_code}, not {case.status}: {text}"
    try:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
    except (ValueError, KeyError, TypeError, AssertionError):
        return f"{case}: not the error shape: {text}"
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return f"{case}: content type {response.headers.get('Content-Type')}"
    if len(response.content) > 20_000:
        return f"{case}: the error echoes the input back ({len(response.content)} bytes)"
    if case.field is not None:
        fields = error.get("fields") or []
        if not any(f["field"] == case.field or f["field"].startswith(f"{case.field}.") for f in fields):
            return f"{case}: the error does not name {case.field}: {text}"
        if not all(f.get("reason") for f in fields):
            return f"{case}: a field without a reason: {text}"
    return None


# ------------------------------------------------------------------------------------- list routes
LIST_ROUTES = {
    "/suppliers": "retailer",
    "/suppliers/{s}/history": "retailer",
    "/suppliers/{s}/products": "supplier",
    "/suppliers/{s}/products/{sku}/history": "supplier",
    "/supplier-orders": "supplier",
    "/suppliers/{s}/deliveries": "supplier",
    "/admin/blocklist": "admin",
    "/admin/corrections": "admin",
    "/suppliers/{s}/statements": "supplier",
}
# str.isdigit() takes each of these, int() refuses them or reads more digits than it may.
BAD_LIMITS = ["\u00b2", "\u0661\u0660", "\uff15", "1" * 5000]
# The seeded tenant has two or more items in these listings, so a page of one has a real token.
PAGED = set(LIST_ROUTES) - {"/admin/blocklist", "/admin/corrections", "/suppliers/{s}/statements"}


def _list_url(world: World, path: str) -> str:
    return world.url + path.format(s=world.supplier_id, sku=world.sku)


def _token(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _malformed_tokens(token: str) -> list[tuple[str, str]]:
    """A real page token's key with the right partition but a key DynamoDB refuses."""
    prefix, dot, inner = token.rpartition(".") if "." in token else ("", "", token)
    key = json.loads(base64.urlsafe_b64decode(inner + "=" * (-len(inner) % 4)))
    sort = next(name for name in key if name.endswith("SK"))
    broken = {
        "a number where the key is a string": {**key, sort: {"N": "1"}},
        "the sort key missing": {k: v for k, v in key.items() if k != sort},
        "an extra attribute": {**key, "extra": {"S": "x"}},
        "an empty sort key": {**key, sort: {"S": ""}},
        "a sort key over 1024 bytes": {**key, sort: {"S": "x" * 1100}},
    }
    if len(key) > 2:
        table_keys = {k: v for k, v in key.items() if k in ("PK", "SK")}
        broken["the index keys missing"] = table_keys if table_keys else {}
    return [(what, prefix + dot + _token(value)) for what, value in broken.items()]


@pytest.mark.parametrize("path", sorted(LIST_ROUTES))
def test_a_list_route_answers_400_for_a_crafted_limit_or_page_token(bad_world: World, path: str) -> None:
    world, role = bad_world, LIST_ROUTES[path]
    headers = world.headers(role)
    problems = []
    cases = [("limit", {"limit": value}) for value in BAD_LIMITS]
    first = requests.get(_list_url(world, path), params={"limit": 1}, headers=headers, timeout=60)
    assert first.status_code == 200, first.text
    token = first.json().get("nextToken")
    while token and token.endswith("."):  # the corrections listing's "next kind" token carries no key
        page = requests.get(
            _list_url(world, path), params={"limit": 1, "nextToken": token}, headers=headers, timeout=60
        )
        token = page.json().get("nextToken")
    assert bool(token) == (path in PAGED), f"{path}: a page of one has token {token!r}"
    if path == "/admin/corrections":  # one flagged record of each kind: a token as the listing makes one
        status_pk = {"S": keys.status_gsi_pk(world.tenant, "SUPPLIER", "FLAGGED")}
        key = {"PK": {"S": "x"}, "SK": {"S": "RECORD"}, "GSI1PK": status_pk, "GSI1SK": {"S": "2026"}}
        token = "SUPPLIER." + _token(key)
    if token:
        cases += [("nextToken", {"nextToken": bad}) for _, bad in _malformed_tokens(token)]
    for field, params in cases:
        response = requests.get(_list_url(world, path), params=params, headers=headers, timeout=60)
        try:
            names = [f.get("field") for f in (response.json().get("error", {}).get("fields") or [])]
        except ValueError:
            names = []
        if response.status_code != 400 or field not in names:
            problems.append(f"{params!r:.80}: {response.status_code} {response.text[:200]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("value", ["\u00b2", "1" * 5000])  # a header is Latin-1: no other digits
def test_if_match_with_a_unicode_digit_or_too_many_digits_is_a_400(bad_world: World, value: str) -> None:
    world = bad_world
    for route in (ROUTES["update-supplier"], ROUTES["update-product"], ROUTES["put-draft-rule-pack"],
                  ROUTES["what-if-rule-pack"], ROUTES["activate-rule-pack"]):  # fmt: skip
        headers = {**world.headers(route.role), "Content-Type": "application/json", "If-Match": value}
        response = requests.request(
            route.method, route.url(world), json=route.body, headers=headers, timeout=60
        )
        assert response.status_code == 400, response.text
        assert [f["field"] for f in response.json()["error"]["fields"]] == ["If-Match"]
    assert (world.items(), world.items(world.other_tenant)) == world.baseline, "the table changed"


@pytest.mark.parametrize(
    ("what", "method", "path", "params", "body", "field"),
    [
        ("a JSON null body", "POST", "/suppliers/{s}/imports", {}, "null", "(body)"),
        ("a null fileName", "POST", "/suppliers/{s}/imports", {}, '{"fileName": null}', "fileName"),
        ("an unknown mode", "POST", "/suppliers/{s}/imports", {}, '{"mode": "upsert"}', "mode"),
        ("an empty include", "GET", "/suppliers/{s}/imports/{imp}", {"include": ""}, None, "include"),
        ("a malformed listingsToken", "GET", "/suppliers/{s}/imports/{imp}", {"listingsToken": "a b"}, None,
         "listingsToken"),
    ],
)  # fmt: skip
def test_an_invalid_import_request_is_a_400_naming_the_field(
    bad_world: World, what: str, method: str, path: str, params: dict[str, str], body: str | None, field: str
) -> None:
    """The import requests the OpenAPI document forbids: four the API used to accept (D29), and a mode
    that is neither create nor update."""
    world = bad_world
    url = Route(method, path, "supplier", None).url(world)  # refused before any import is looked up
    headers = {**world.headers("supplier"), "Content-Type": "application/json"}
    response = requests.request(method, url, params=params, data=body, headers=headers, timeout=60)
    assert response.status_code == 400, f"{what}: {response.status_code} {response.text}"
    assert [f["field"] for f in response.json()["error"]["fields"]] == [field], response.text
    assert (world.items(), world.items(world.other_tenant)) == world.baseline, "the table changed"

"""Access control: every route of the API x every caller, over HTTP against the local stack.

The routes come from the OpenAPI body in template.yaml; ``EXPECTED`` says, for each one, what each
role of the route's own tenant gets: ``OK`` (2xx and the effect happened) or the status of the
refusal. A route with no entry fails the test: a new route needs its row here first.

Callers: no token; in the tenant that owns the records (``own``) and in another tenant
(``other``): a retailer, an admin, the supplier that owns the records (``supplier``) and a second
supplier of the same tenant (``other_supplier``); and the platform's ``operator``, a member of no
tenant: only the /platform/ routes let it in, every tenant route refuses it (403, D47), and no
tenant's caller reaches a /platform/ route. Every refusal is a JSON error of the documented
shape and leaves the table as it was (snapshots of both tenants' items before and after). Another
tenant's ids are 404 (never 403) unless the caller's role is refused on that route whatever the id.

Records are set up first, through the API: in the own tenant an approved supplier with an active
listing, a webhook, supplier orders (awaiting, flagged) and deliveries (delivered, failed), a second
approved supplier, flagged suppliers and listings, and a blocked-list entry; the same basics in the
other tenant. Refused calls all run before any allowed one, so each refusal meets a record in the
state in which the allowed caller's call then succeeds.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from marketplace import clock, keys, rule_packs, statements
from marketplace.imports import ImportStore
from marketplace.repository import Table
from marketplace.webhooks import MAX_ATTEMPTS, DeliveryMessage, HttpResult, Webhooks
from marketplace_local.auth import AUDIENCE, ISSUER
from marketplace_local.samples import SHIP_TO, SUPPLIER
from marketplace_local.template import load_sam
from tests.conftest import wait_until
from tests.receivers import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("access-matrix")]

OK = "ok"
ROLES = ("retailer", "admin", "supplier", "other_supplier")
CALLERS = ("anonymous", *(f"{scope}:{role}" for scope in ("own", "other") for role in ROLES), "operator")
ERROR_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found"}
SECRET = "access-matrix-secret-0123456789"


def own(retailer: Any, admin: Any, supplier: Any, other_supplier: Any) -> dict[str, Any]:
    return {"retailer": retailer, "admin": admin, "supplier": supplier, "other_supplier": other_supplier}


# Delivered orders for the return routes: "returns" gets the request, the others a return each
# (named by the return route that answers it).
RETURNED = ("returns", "return:accept", "return:refuse", "return:received", "return:dispute", "return:decide")
ADMIN_ONLY = own(403, 403, 403, 403)
ADMIN_ONLY["admin"] = OK
TENANT_READERS = own(OK, OK, OK, 404)  # retailers, admins and the supplier itself; another supplier: 404
# The platform's routes: the operator's only (every tenant role: 403). A tenant route refuses the
# operator (a row without an "operator" key).
PLATFORM = {**own(403, 403, 403, 403), "operator": OK}

# What each role of the records' own tenant gets. Another tenant's callers get 404 where the role may
# use the route (the id is unknown to them), the same 403 where the role may not; on the routes that
# name no record (collections, creations) they act in their own tenant, and never see or touch ours.
EXPECTED: dict[str, dict[str, Any]] = {
    "POST /suppliers": own(OK, OK, 403, 403),
    "GET /suppliers": own(OK, OK, 403, 403),
    "GET /suppliers/{supplierId}": TENANT_READERS,
    "PATCH /suppliers/{supplierId}": own(OK, OK, 403, 403),
    "GET /suppliers/{supplierId}/history": TENANT_READERS,
    "GET /suppliers/{supplierId}/performance": TENANT_READERS,
    "POST /suppliers/{supplierId}/products": TENANT_READERS,
    "GET /suppliers/{supplierId}/products": TENANT_READERS,
    "GET /suppliers/{supplierId}/products/{sku}": TENANT_READERS,
    "PATCH /suppliers/{supplierId}/products/{sku}": TENANT_READERS,
    "GET /suppliers/{supplierId}/products/{sku}/history": TENANT_READERS,
    # The stock is the supplier's: the supplier and an admin adjust it, not the retailer (D38).
    "POST /suppliers/{supplierId}/products/{sku}/stock-adjustments": own(403, OK, OK, 404),
    "POST /suppliers/{supplierId}/products/{sku}/reject": ADMIN_ONLY,
    "POST /suppliers/{supplierId}/suspend": ADMIN_ONLY,
    "POST /suppliers/{supplierId}/reinstate": ADMIN_ONLY,
    "POST /admin/suppliers/{supplierId}/erase": ADMIN_ONLY,
    "POST /suppliers/{supplierId}/products/{sku}/delist": own(403, OK, OK, 404),
    "POST /suppliers/{supplierId}/products/{sku}/relist": own(403, OK, OK, 404),
    "POST /suppliers/{supplierId}/products/{sku}/retry": ADMIN_ONLY,
    "POST /orders": own(OK, 403, 403, 403),
    "GET /orders/{orderId}": own(OK, OK, 403, 403),
    "GET /supplier-orders": TENANT_READERS,  # ?supplierId= names the record
    "GET /supplier-orders/{supplierOrderId}": TENANT_READERS,
    "POST /supplier-orders/{supplierOrderId}/accept": own(403, 403, OK, 404),
    "POST /supplier-orders/{supplierOrderId}/reject": own(403, 403, OK, 404),
    # An accepted order: the retailer cancels it; the admin's and the supplier's cancel meet it
    # cancelled and answer it as it is (a cancel is idempotent).
    "POST /supplier-orders/{supplierOrderId}/cancel": own(OK, OK, OK, 404),
    "POST /supplier-orders/{supplierOrderId}/shipments": own(403, 403, OK, 404),
    "GET /supplier-orders/{supplierOrderId}/shipments": TENANT_READERS,
    "POST /supplier-orders/{supplierOrderId}/delivered": own(OK, 403, OK, 404),
    "GET /supplier-orders/{supplierOrderId}/history": TENANT_READERS,
    "POST /supplier-orders/{supplierOrderId}/returns": own(OK, 403, 403, 403),
    "GET /returns/{returnId}": TENANT_READERS,
    "POST /returns/{returnId}/accept": own(403, 403, OK, 404),
    "POST /returns/{returnId}/refuse": own(403, 403, OK, 404),
    "POST /returns/{returnId}/received": own(403, 403, OK, 404),
    # An accepted return: the retailer disputes it; the supplier's dispute meets it disputed (as is).
    "POST /returns/{returnId}/dispute": own(OK, 403, OK, 404),
    "POST /returns/{returnId}/decide": ADMIN_ONLY,
    "POST /supplier-orders/{supplierOrderId}/retry": ADMIN_ONLY,
    "PUT /suppliers/{supplierId}/webhook": own(403, 403, OK, 404),
    "GET /suppliers/{supplierId}/webhook": TENANT_READERS,
    "GET /suppliers/{supplierId}/deliveries": TENANT_READERS,
    "GET /suppliers/{supplierId}/deliveries/{deliveryId}": TENANT_READERS,
    "POST /suppliers/{supplierId}/deliveries/{deliveryId}/redrive": TENANT_READERS,
    "GET /admin/corrections": ADMIN_ONLY,
    "POST /admin/corrections/drain": ADMIN_ONLY,
    "POST /admin/corrections/{recordId}/reject": ADMIN_ONLY,
    "POST /admin/corrections/{recordId}/retry": ADMIN_ONLY,
    "GET /admin/blocklist": ADMIN_ONLY,
    "POST /admin/blocklist": ADMIN_ONLY,
    "DELETE /admin/blocklist/{entryId}": ADMIN_ONLY,
    "POST /suppliers/{supplierId}/imports": TENANT_READERS,
    "POST /suppliers/{supplierId}/imports/{importId}/start": TENANT_READERS,
    "GET /suppliers/{supplierId}/imports/{importId}": TENANT_READERS,
    "GET /admin/commission-rules": ADMIN_ONLY,
    "PUT /admin/commission-rules": ADMIN_ONLY,
    "GET /suppliers/{supplierId}/ledger": TENANT_READERS,
    "POST /platform/tenants": PLATFORM,
    "GET /platform/tenants": PLATFORM,
    "GET /platform/tenants/{tenantId}": PLATFORM,
    "POST /platform/tenants/{tenantId}/suspend": PLATFORM,
    "POST /platform/tenants/{tenantId}/reinstate": PLATFORM,
    "GET /suppliers/{supplierId}/statements": TENANT_READERS,
    "GET /suppliers/{supplierId}/statements/{period}": TENANT_READERS,
    "POST /admin/statements/{statementId}/paid": ADMIN_ONLY,
    "GET /admin/settlement-settings": ADMIN_ONLY,
    "PUT /admin/settlement-settings": ADMIN_ONLY,
    # Each tenant has a draft (the defaults: its rules stay as they are) from the setup on.
    "GET /admin/rule-packs/active": ADMIN_ONLY,
    "GET /admin/rule-packs/draft": ADMIN_ONLY,
    "PUT /admin/rule-packs/draft": ADMIN_ONLY,
    "POST /admin/rule-packs/draft/what-if": ADMIN_ONLY,
    "POST /admin/rule-packs/draft/activate": ADMIN_ONLY,
}
# Routes that name no record of a tenant: another tenant's caller acts in its own tenant.
TENANT_LESS = {
    "POST /suppliers", "GET /suppliers", "POST /orders", "GET /admin/corrections",
    "POST /admin/corrections/drain", "GET /admin/blocklist", "POST /admin/blocklist",
    "GET /admin/commission-rules", "PUT /admin/commission-rules",
    "GET /admin/settlement-settings", "PUT /admin/settlement-settings",
    "GET /admin/rule-packs/active", "GET /admin/rule-packs/draft", "PUT /admin/rule-packs/draft",
    "POST /admin/rule-packs/draft/what-if", "POST /admin/rule-packs/draft/activate",
}  # fmt: skip


def expected(route: str, caller: str) -> Any:
    if caller == "anonymous":
        return 401
    if caller == "operator":
        return EXPECTED[route].get("operator", 403)
    scope, role = caller.split(":")
    outcome = EXPECTED[route][role]
    if scope == "own" or route in TENANT_LESS:
        return outcome
    return 404 if outcome in (OK, 404) else outcome


def template_routes() -> list[str]:
    body = load_sam()["Resources"]["MarketplaceApi"]["Properties"]["DefinitionBody"]
    routes = []
    for path, item in body["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "patch", "delete") and operation.get("security", True) != []:
                routes.append(f"{method.upper()} {path}")
    return routes


ROUTES = template_routes()


def test_every_route_of_the_template_has_a_row_in_the_expectation_table():
    missing = [r for r in ROUTES if r not in EXPECTED]
    assert not missing, (
        f"no access expectation for {missing}: add a row to EXPECTED in {__file__} (and a request in "
        "World.request) saying what each role gets"
    )
    stale = sorted(set(EXPECTED) - set(ROUTES))
    assert not stale, f"EXPECTED names routes that template.yaml no longer has: {stale}"


# ------------------------------------------------------------------------------------ the world
PRICE = {"amount": 49.9, "currency": "EUR"}
SHIPMENT = {"carrier": "DHL", "trackingNumber": "JD0001", "lines": [{"sku": "LAMP-1", "quantity": 1}]}


def listing(sku: str, **overrides: Any) -> dict[str, Any]:
    return {"sku": sku, "title": "Desk lamp", "category": "home", "price": PRICE, "quantity": 50,
            "images": ["https://cdn.example.com/lamp.webp"], "attributes": {"material": "steel"}, **overrides}  # fmt: skip


def platform_tenant(tenant_id: str) -> dict[str, Any]:
    return {
        "tenantId": tenant_id,
        "name": "Matrix shop",
        "tier": "standard",
        "admins": [f"a@{tenant_id}.example"],
    }


def tax_id() -> str:
    return f"DE{uuid.uuid4().int % 10**9:09d}"


@dataclass
class Tenant:
    id: str
    supplier: str = ""  # the supplier that owns the records below
    other_supplier: str = ""  # a second approved supplier of the same tenant
    order: str = ""
    supplier_orders: dict[str, str] = field(default_factory=dict)  # purpose -> id
    returns: dict[str, str] = field(default_factory=dict)  # purpose (the route's last word) -> id
    flagged_suppliers: dict[str, str] = field(default_factory=dict)
    flagged_skus: dict[str, str] = field(default_factory=dict)
    # Approved suppliers and active listings for the suspend and delist routes (by the route's last
    # word); the "reinstate" supplier and the "relist" listing are taken off sale first.
    held_suppliers: dict[str, str] = field(default_factory=dict)
    held_skus: dict[str, str] = field(default_factory=dict)
    delivered: str = ""
    failed: dict[str, str] = field(default_factory=dict)  # caller role -> a FAILED delivery
    blocklist_entry: str = ""
    imports: dict[str, str] = field(default_factory=dict)  # "read" or the caller role that starts it
    # Platform tenants (not this one) by the route's last word: "suspend" (LIVE, also the one read)
    # and "reinstate" (suspended first).
    platform: dict[str, str] = field(default_factory=dict)
    statement: dict[str, Any] = field(default_factory=dict)  # the supplier's statement of this week


class World:
    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.url = stack.api_url
        self.http = requests.Session()
        self.own = Tenant(f"t-own-{uuid.uuid4().hex[:8]}")
        self.other = Tenant(f"t-other-{uuid.uuid4().hex[:8]}")
        self.receiver = Receiver(stack)
        self.table = Table(stack.physical_id("MarketplaceTable"), stack.client("dynamodb"))
        self.subjects: dict[str, str] = {}
        self.timings: dict[str, float] = {}  # seconds spent, reported by the matrix test

    # ---------------------------------------------------------------- calls
    def tenant(self, scope: str) -> Tenant:
        return self.own if scope == "own" else self.other

    def headers(self, caller: str) -> dict[str, str]:
        if caller == "anonymous":
            return {}
        if caller == "operator":
            subject = self.subjects.setdefault(caller, f"operator-{uuid.uuid4().hex[:6]}")
            return {"Authorization": f"Bearer {self.stack.issuer.mint(None, 'operator', subject=subject)}"}
        scope, role = caller.split(":")
        tenant = self.tenant(scope)
        subject = self.subjects.setdefault(caller, f"{caller.replace(':', '-')}-{uuid.uuid4().hex[:6]}")
        if role in ("supplier", "other_supplier"):
            token = self.stack.issuer.mint(tenant.id, "supplier", getattr(tenant, role), subject=subject)
        else:
            token = self.stack.issuer.mint(tenant.id, role, subject=subject)
        return {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, caller: str, body: Any = None, **params: str) -> requests.Response:
        started = time.perf_counter()
        try:
            return self._call(method, path, caller, body, **params)
        finally:
            self.timings["http"] = self.timings.get("http", 0.0) + time.perf_counter() - started

    def _call(
        self, method: str, path: str, caller: str, body: Any = None, **params: str
    ) -> requests.Response:
        return self.http.request(method, self.url + path, headers=self.headers(caller),
                                 json=body, params=params or None, timeout=30)  # fmt: skip

    def ok(self, method: str, path: str, caller: str, body: Any = None, **params: str) -> Any:
        response = self.call(method, path, caller, body, **params)
        assert response.status_code < 300, (method, path, caller, response.status_code, response.text)
        return response.json() if response.content else None

    # ---------------------------------------------------------------- setup
    def build(self) -> World:
        """Both tenants at once, stage by stage: each stage's workflows run while the next tenant's
        requests are made, and the waits come after."""
        full = {"own": True, "other": False}
        for scope, tenant in self._tenants():
            tenant.supplier, tenant.other_supplier = self._register(scope), self._register(scope)
            if full[scope]:  # flagged for an invalid tax id: they wait in the correction queue
                tenant.flagged_suppliers = {
                    p: self._register(scope, taxId="DE12345") for p in ("reject", "retry")
                }
                tenant.held_suppliers = {p: self._register(scope) for p in ("suspend", "reinstate", "erase")}
        for scope, tenant in self._tenants():
            for supplier_id in (tenant.supplier, tenant.other_supplier, *tenant.held_suppliers.values()):
                self._wait(scope, f"/suppliers/{supplier_id}", "APPROVED")
            for supplier_id in tenant.flagged_suppliers.values():
                self._wait(scope, f"/suppliers/{supplier_id}", "FLAGGED")
        for scope, tenant in self._tenants():
            owner = f"{scope}:supplier"
            if full[scope]:
                hook = {"url": self.receiver.url, "secret": SECRET}
                self.ok("PUT", f"/suppliers/{tenant.supplier}/webhook", owner, hook)
                # A "home" listing needs attributes.material: these are flagged.
                tenant.flagged_skus = {p: f"FLAG-{p}" for p in ("reject", "retry")}
                tenant.held_skus = {p: f"HELD-{p}" for p in ("delist", "relist")}
            for sku in ("LAMP-1", *tenant.flagged_skus.values(), *tenant.held_skus.values()):
                attributes = {} if sku.startswith("FLAG-") else {"material": "steel"}
                self.ok(
                    "POST",
                    f"/suppliers/{tenant.supplier}/products",
                    owner,
                    listing(sku, attributes=attributes),
                )
        for scope, tenant in self._tenants():
            for sku in ("LAMP-1", *tenant.held_skus.values()):
                self._wait(scope, f"/suppliers/{tenant.supplier}/products/{sku}", "ACTIVE")
            for sku in tenant.flagged_skus.values():
                self._wait(scope, f"/suppliers/{tenant.supplier}/products/{sku}", "FLAGGED")
        for scope, tenant in self._tenants():
            self.ok("PUT", "/admin/rule-packs/draft", f"{scope}:admin", rule_packs.default_document())
            first = self._place(scope, tenant.supplier)
            tenant.order = first["orderId"]
            tenant.supplier_orders["read"] = first["supplierOrders"][0]["supplierOrderId"]
            if full[scope]:
                for purpose in ("accept", "reject", "cancel", "shipments", "delivered", *RETURNED):
                    placed = self._place(scope, tenant.supplier)
                    tenant.supplier_orders[purpose] = placed["supplierOrders"][0]["supplierOrderId"]
                wrong_price = {"amount": 1.0, "currency": "EUR"}  # not the listing's price: flagged
                placed = self._place(scope, tenant.supplier, wrong_price)
                tenant.supplier_orders["retry"] = placed["supplierOrders"][0]["supplierOrderId"]
                entry = {
                    "kind": "domain",
                    "value": f"blocked-{uuid.uuid4().hex[:8]}.example",
                    "reason": "fraud",
                }
                tenant.blocklist_entry = self.ok("POST", "/admin/blocklist", f"{scope}:admin", entry)[
                    "entryId"
                ]
                tenant.failed = {
                    role: self._failed_delivery(tenant) for role in ("retailer", "admin", "supplier")
                }
        for scope, tenant in self._tenants():
            for purpose, supplier_order_id in tenant.supplier_orders.items():
                status = "FLAGGED" if purpose == "retry" else "AWAITING_ACCEPTANCE"
                self._wait(scope, f"/supplier-orders/{supplier_order_id}", status)
        own, owner = self.own, "own:supplier"
        held = {"reason": "taken off sale for the matrix"}
        self.ok("POST", f"/suppliers/{own.held_suppliers['reinstate']}/suspend", "own:admin", held)
        self.ok("POST", f"/suppliers/{own.supplier}/products/{own.held_skus['relist']}/delist", owner, held)
        for purpose in ("cancel", "shipments", "delivered", *RETURNED):  # accepted; the rest shipped in full
            self.ok("POST", f"/supplier-orders/{own.supplier_orders[purpose]}/accept", owner)
        for purpose in ("delivered", *RETURNED):
            self.ok("POST", f"/supplier-orders/{own.supplier_orders[purpose]}/shipments", owner, SHIPMENT)
        for purpose in RETURNED:  # delivered; all but "returns" with a return requested ("received" accepted)
            self.ok("POST", f"/supplier-orders/{own.supplier_orders[purpose]}/delivered", "own:retailer")
            if purpose != "returns":
                asked = {"lines": [{"sku": "LAMP-1", "quantity": 1}], "reason": "broken"}
                path = f"/supplier-orders/{own.supplier_orders[purpose]}/returns"
                own.returns[purpose.split(":")[1]] = self.ok("POST", path, "own:retailer", asked)["returnId"]
        self.ok("POST", f"/returns/{own.returns['received']}/accept", owner)
        self.ok("POST", f"/returns/{own.returns['dispute']}/accept", owner)
        self.ok(
            "POST", f"/returns/{own.returns['decide']}/refuse", owner, {"reason": "not ours"}
        )  # an incident
        for purpose in ("read", "retailer", "admin", "supplier"):  # a catalog file with no rows
            created = self.ok(
                "POST", f"/suppliers/{own.supplier}/imports", owner, {"fileName": "catalog.csv"}
            )
            upload = self.http.put(
                created["uploadUrl"], data=b"sku,title,category,price,currency,quantity\n", timeout=30
            )
            assert upload.status_code == 200, upload.text
            own.imports[purpose] = created["importId"]

        def delivered() -> list[dict[str, Any]] | None:
            items = self.ok("GET", f"/suppliers/{own.supplier}/deliveries", owner, limit="100")["items"]
            sent = [d for d in items if d["deliveryId"] not in own.failed.values()]
            return sent if len(sent) >= 4 and all(d["status"] == "DELIVERED" for d in sent) else None

        # awaiting_acceptance for each of the 4 awaiting orders (and flagged for the fifth)
        own.delivered = wait_until(delivered, timeout=30, what="the webhook deliveries")[0]["deliveryId"]
        own.statement = self._statement(own)
        # Platform tenants last: their smoke tests run on functions the records above have warmed.
        for purpose in ("suspend", "reinstate"):
            tenant_id = f"t-platform-{purpose}-{uuid.uuid4().hex[:8]}"
            created = self.ok("POST", "/platform/tenants", "operator", platform_tenant(tenant_id))
            assert created["status"] == "LIVE", created
            own.platform[purpose] = tenant_id
        self.ok("POST", f"/platform/tenants/{own.platform['reinstate']}/suspend", "operator",
                {"reason": "suspended for the matrix"})  # fmt: skip
        self.settle()
        return self

    def _statement(self, tenant: Tenant) -> dict[str, Any]:
        """The supplier's statement of this week, settled as the workflow settles it once the week
        has closed (its delivered orders' ledger entries written first)."""
        period = statements.period_of(clock.now(), statements.WEEKLY)
        pk = keys.ledger_pk(tenant.id, tenant.supplier)
        wait_until(lambda: self.table.query(pk, sk_prefix=keys.LEDGER_SK_PREFIX, limit=1).items,
                   timeout=30, what="the ledger's first entries")  # fmt: skip
        store = ImportStore(self.stack.physical_id("ImportBucket"))
        written = statements.settle(self.table, store, tenant.id, period, tenant.supplier)
        assert written is not None
        return written

    def _check_platform(self, route: str, body: Any, answer: Any) -> None:
        if route == "POST /platform/tenants":
            assert (answer["tenantId"], answer["status"]) == (body["tenantId"], "LIVE"), answer
        elif route == "GET /platform/tenants":
            seen, token = [t["tenantId"] for t in answer["items"]], answer.get("nextToken")
            while token:
                page = self.ok("GET", "/platform/tenants", "operator", nextToken=token)
                seen, token = seen + [t["tenantId"] for t in page["items"]], page.get("nextToken")
            assert set(self.own.platform.values()) <= set(seen), seen
        elif route.endswith("/suspend"):
            assert (answer["tenantId"], answer["status"]) == (self.own.platform["suspend"], "SUSPENDED")
        elif route.endswith("/reinstate"):
            assert (answer["tenantId"], answer["status"]) == (self.own.platform["reinstate"], "LIVE")
        else:
            assert answer["tenantId"] == self.own.platform["suspend"], answer

    def _tenants(self) -> list[tuple[str, Tenant]]:
        return [("own", self.own), ("other", self.other)]

    def _register(self, scope: str, **overrides: Any) -> str:
        body = {**SUPPLIER, "taxId": tax_id(), **overrides}
        return self.ok("POST", "/suppliers", f"{scope}:retailer", body)["supplierId"]

    def _wait(self, scope: str, path: str, status: str) -> None:
        wait_until(lambda: self.ok("GET", path, f"{scope}:retailer")["status"] == status,
                   timeout=30, what=f"{path} {status}")  # fmt: skip

    def _place(self, scope: str, supplier_id: str, price: dict[str, Any] = PRICE) -> dict[str, Any]:
        body = {"customerOrderId": f"c-{uuid.uuid4().hex[:10]}", "shipTo": SHIP_TO,
                "lines": [{"supplierId": supplier_id, "sku": "LAMP-1", "quantity": 1, "unitPrice": price}]}  # fmt: skip
        return self.ok("POST", "/orders", f"{scope}:retailer", body)

    def _failed_delivery(self, tenant: Tenant) -> str:
        """A delivery whose every attempt failed. The retries are minutes apart, so the domain code
        runs the last attempt here, on queues of its own (the stack's delivery function would take
        the first attempt from the stack's queue and deliver it)."""
        sqs = self.stack.client("sqs")
        queue, dlq = (sqs.create_queue(QueueName=f"access-{n}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
                      for n in ("hooks", "dlq"))  # fmt: skip
        hooks = Webhooks(self.table, sqs, queue, dlq, http_post=lambda *_: HttpResult(503))
        delivery_id = hooks.enqueue(
            tenant.id, tenant.supplier, "supplier_order.awaiting_acceptance", {"test": "failed"}
        )
        assert delivery_id is not None
        outcome = hooks.process(DeliveryMessage(tenant.id, tenant.supplier, delivery_id, MAX_ATTEMPTS).body())
        assert outcome.outcome == "failed", outcome
        return delivery_id

    # ---------------------------------------------------------------- the table
    def snapshot(self) -> dict[tuple[str, str], str]:
        """Every item of both tenants (their keys all start with TENANT#<id>#), and the platform's
        tenant records."""
        started = time.perf_counter()
        try:
            return self._snapshot()
        finally:
            self.timings["snapshot"] = self.timings.get("snapshot", 0.0) + time.perf_counter() - started

    def _snapshot(self) -> dict[tuple[str, str], str]:
        client, name = self.stack.client("dynamodb"), self.stack.physical_id("MarketplaceTable")
        values = {":a": {"S": f"TENANT#{self.own.id}#"}, ":b": {"S": f"TENANT#{self.other.id}#"},
                  ":p": {"S": keys.PLATFORM_TENANTS_PK}}  # fmt: skip
        items: dict[tuple[str, str], str] = {}
        for page in client.get_paginator("scan").paginate(
            TableName=name, FilterExpression="begins_with(PK, :a) OR begins_with(PK, :b) OR PK = :p",
            ExpressionAttributeValues=values,
        ):  # fmt: skip
            for item in page["Items"]:
                items[(item["PK"]["S"], item["SK"]["S"])] = json.dumps(item, sort_keys=True)
        return items

    def settle(self, timeout: float = 30.0) -> dict[tuple[str, str], str]:
        """Until the stream consumers are idle and the table stands still."""
        deadline = time.monotonic() + timeout
        before = self.snapshot()
        while time.monotonic() < deadline:
            self.stack.wait_for_streams(timeout=max(1.0, deadline - time.monotonic()))
            after = self.snapshot()
            if after == before:
                return after
            before = after
        raise AssertionError(f"the table still changes after {timeout}s")

    # ---------------------------------------------------------------- the request of each route
    def request(self, route: str, caller: str) -> tuple[str, str, Any, dict[str, str]]:
        """(method, path, body, query) for ``caller`` on ``route``. Record ids are always the own
        tenant's; a refused caller gets the request of the role that succeeds, so that the only
        difference is who asks."""
        method, template = route.split(" ", 1)
        role = caller.split(":")[-1]
        t, unique = self.own, uuid.uuid4().hex[:8]
        ids = {
            "supplierId": t.supplier, "sku": "LAMP-1", "orderId": t.order, "deliveryId": t.delivered,
            "supplierOrderId": t.supplier_orders["read"], "entryId": t.blocklist_entry,
            "importId": t.imports.get("read", "none"), "returnId": t.returns.get("accept", "none"),
            "tenantId": t.platform.get("suspend", "none"),
            "period": t.statement.get("period", "none"), "statementId": t.statement.get("statementId", "none"),
        }  # fmt: skip
        body: Any = None
        query: dict[str, str] = {}
        if route.endswith("/products/{sku}/reject") or route.endswith("/products/{sku}/retry"):
            ids["sku"] = t.flagged_skus[template.rsplit("/", 1)[-1]]
        if route.endswith("/products/{sku}/delist") or route.endswith("/products/{sku}/relist"):
            ids["sku"] = t.held_skus[template.rsplit("/", 1)[-1]]
        if route.endswith(("{supplierId}/suspend", "{supplierId}/reinstate", "{supplierId}/erase")):
            ids["supplierId"] = t.held_suppliers[template.rsplit("/", 1)[-1]]
        if route.startswith("POST /supplier-orders/{supplierOrderId}/"):
            ids["supplierOrderId"] = t.supplier_orders[template.rsplit("/", 1)[-1]]
        if route == "GET /supplier-orders/{supplierOrderId}/shipments":  # one with a shipment
            ids["supplierOrderId"] = t.supplier_orders["delivered"]
        if route.endswith("{tenantId}/suspend") or route.endswith("{tenantId}/reinstate"):
            ids["tenantId"] = t.platform[template.rsplit("/", 1)[-1]]
        if route.startswith("POST /returns/{returnId}/"):
            ids["returnId"] = t.returns[template.rsplit("/", 1)[-1]]
        if route.startswith("POST /admin/corrections/{recordId}/"):
            ids["recordId"] = t.flagged_suppliers[template.rsplit("/", 1)[-1]]
        if route.endswith("/redrive"):
            ids["deliveryId"] = t.failed.get(role, t.failed["supplier"])
        if route.endswith("/imports/{importId}/start"):
            ids["importId"] = t.imports.get(role, t.imports.get("supplier", "none"))
        if route == "GET /supplier-orders":
            query = {"supplierId": t.supplier}
        if route.endswith(
            (
                "/reject",
                "/cancel",
                "/refuse",
                "/dispute",
                "/suspend",
                "/reinstate",
                "/delist",
                "/relist",
                "/erase",
            )
        ):
            body = {"reason": f"refused by {caller}"}
        if route.endswith("/decide"):
            body = {"refund": True, "reason": f"decided by {caller}"}
        bodies = {
            "POST /suppliers": {**SUPPLIER, "taxId": tax_id()},
            # A low-risk change, applied at once: a new legal name would wait for review (D41).
            "PATCH /suppliers/{supplierId}": {"phone": f"+49 30 {int(unique, 16) % 10**7:07d}"},
            "POST /suppliers/{supplierId}/products": listing(f"SKU-{unique}"),
            "PATCH /suppliers/{supplierId}/products/{sku}": {"title": f"Lamp {unique}"},
            "POST /suppliers/{supplierId}/products/{sku}/stock-adjustments": {"delta": 2, "reason": f"delivery {unique}"},
            "POST /orders": {"customerOrderId": f"c-{unique}", "shipTo": SHIP_TO,
                             "lines": [{"supplierId": t.supplier, "sku": "LAMP-1", "quantity": 1, "unitPrice": PRICE}]},
            "PUT /suppliers/{supplierId}/webhook": {"url": self.receiver.url, "secret": f"{SECRET}-{unique}"},
            "POST /admin/blocklist": {"kind": "domain", "value": f"b-{unique}.example", "reason": "fraud"},
            "PUT /admin/commission-rules": {"defaultPercent": 7.5, "suppliers": {t.supplier: 5}},
            "POST /admin/statements/{statementId}/paid": {"reference": f"SEPA-{unique}"},
            "PUT /admin/settlement-settings": {"period": "monthly"},
            "PUT /admin/rule-packs/draft": rule_packs.default_document(),
            "POST /suppliers/{supplierId}/imports": {"fileName": f"catalog-{unique}.csv"},
            "POST /platform/tenants": platform_tenant(f"t-platform-{unique}"),
            "POST /supplier-orders/{supplierOrderId}/shipments": SHIPMENT,
            "POST /supplier-orders/{supplierOrderId}/returns": {"lines": [{"sku": "LAMP-1", "quantity": 1}],
                                                               "reason": "broken"},
        }  # fmt: skip
        body = bodies.get(route, body)
        # A route without a row in EXPECTED (only the bad-token test calls it) gets made-up ids.
        path = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), f"unknown-{unique}"), template)
        return method, path, body, query

    # ---------------------------------------------------------------- what an allowed call did
    def check_effect(
        self, route: str, caller: str, body: Any, answer: Any, response: requests.Response
    ) -> None:
        scope = caller.split(":")[0]
        t = self.own
        # The own tenant's record ids (another tenant's records may name our supplier ids: an order
        # line typed by its retailer; they are still its records, not ours).
        foreign = {*t.flagged_suppliers.values(), *t.supplier_orders.values(), t.supplier, t.other_supplier,
                   *t.held_suppliers.values(),
                   *(f"{t.supplier}/{sku}" for sku in (*t.flagged_skus.values(), *t.held_skus.values()))}  # fmt: skip
        text = response.text
        if route.startswith(("POST /platform/", "GET /platform/")):
            self._check_platform(route, body, answer)
        elif route == "POST /suppliers":
            created = self.ok("GET", f"/suppliers/{answer['supplierId']}", f"{scope}:retailer")
            assert created["taxId"] == body["taxId"]
            if scope == "other":
                assert (
                    self.call("GET", f"/suppliers/{answer['supplierId']}", "own:retailer").status_code == 404
                )
        elif route == "GET /suppliers" or route == "GET /admin/corrections":
            ids = {i.get("recordId", i.get("supplierId")) for i in answer["items"]}
            if scope == "own":
                wanted = {t.supplier} if route == "GET /suppliers" else set(t.flagged_suppliers.values())
                assert wanted <= ids, (wanted, ids)
            else:
                assert not ids & foreign, ids
        elif route in ("PATCH /suppliers/{supplierId}", "PATCH /suppliers/{supplierId}/products/{sku}"):
            key = "phone" if "phone" in body else "title"
            assert answer[key] == body[key]
        elif route.endswith("/stock-adjustments"):
            # The listing's trail (written from the stream) has the change with its reason; orders move
            # the quantity meanwhile, so the version the answer names is what identifies it.
            history = f"/suppliers/{t.supplier}/products/LAMP-1/history?limit=100"

            def entry() -> list[Any] | None:
                found, token = [], ""
                while True:
                    page = self.ok("GET", f"{history}&nextToken={token}", caller)
                    found += [e["after"].get("stockChange") for e in page["items"]
                              if e["after"].get("version") == answer["version"]]  # fmt: skip
                    token = page.get("nextToken") or ""
                    if not token:
                        return found or None

            changes = wait_until(entry, timeout=30, what="the stock adjustment's audit entry")
            assert changes == [{"delta": 2, "reason": body["reason"]}], (changes, answer)
        elif route == "POST /suppliers/{supplierId}/products":
            assert (
                self.ok("GET", f"/suppliers/{t.supplier}/products/{body['sku']}", caller)["sku"]
                == body["sku"]
            )
        elif route.endswith("/products/{sku}/reject") or route.endswith("{recordId}/reject"):
            assert answer["status"] == "REJECTED"
        elif route.endswith("/retry"):
            assert answer.get("retryRequestedAt"), answer
        elif route.endswith(("/suspend", "/reinstate", "/delist", "/relist")):
            action = route.rsplit("/", 1)[-1]
            wanted = {
                "suspend": "SUSPENDED",
                "reinstate": "APPROVED",
                "delist": "DELISTED",
                "relist": "ACTIVE",
            }
            assert answer["status"] == wanted[action], answer
            record = f"/suppliers/{answer['supplierId']}" + (
                f"/products/{answer['sku']}" if "sku" in answer else ""
            )
            assert self.ok("GET", record, caller)["status"] == wanted[action]
        elif route == "POST /admin/suppliers/{supplierId}/erase":
            # Out of the record and masked in every entry of its trail written so far (D48).
            erased = t.held_suppliers["erase"]
            assert answer["maskedEntries"] >= 1 and "contactEmail" not in answer["supplier"], answer
            shown = self.call("GET", f"/suppliers/{erased}", caller).text
            trail = self.call("GET", f"/suppliers/{erased}/history", caller).text
            assert SUPPLIER["contactEmail"] not in shown + trail and "[erased]" in trail, trail
        elif route == "POST /orders":
            order = self.ok("GET", f"/orders/{answer['orderId']}", f"{scope}:retailer")
            assert order["customerOrderId"] == body["customerOrderId"]
            if scope == "other":  # ordered our supplier's sku: never reaches our stock
                assert self.call("GET", f"/orders/{answer['orderId']}", "own:retailer").status_code == 404
        elif route == "POST /supplier-orders/{supplierOrderId}/shipments":
            assert answer["shipmentId"] and answer["lines"] == body["lines"], answer
            shown = self.ok("GET", f"/supplier-orders/{t.supplier_orders['shipments']}", caller)
            assert shown["status"] == "SHIPPED", shown
        elif route == "POST /supplier-orders/{supplierOrderId}/returns":
            assert answer["status"] == "REQUESTED", answer
            shown = self.ok("GET", f"/returns/{answer['returnId']}", caller)
            assert shown["supplierOrderId"] == t.supplier_orders["returns"], shown
        elif route.startswith("POST /returns/"):
            action = route.rsplit("/", 1)[-1]
            assert (
                answer["status"]
                == {"accept": "ACCEPTED", "refuse": "REFUSED", "received": "RECEIVED", "dispute": "DISPUTED",
                    "decide": "REFUNDED"}[action]
            )  # fmt: skip
            if action in ("received", "decide"):
                assert answer["refund"] == {"amount": PRICE["amount"], "currency": PRICE["currency"],
                                            "lines": [{"sku": "LAMP-1", "quantity": 1, "amount": PRICE["amount"]}]}  # fmt: skip
        elif route.startswith("POST /supplier-orders/"):
            action = route.rsplit("/", 1)[-1]
            assert answer["status"] == {
                "accept": "ACCEPTED", "reject": "REJECTED", "cancel": "CANCELLED", "delivered": "DELIVERED"
            }[action]  # fmt: skip
        elif route == "PUT /suppliers/{supplierId}/webhook":
            assert answer["url"] == body["url"] and body["secret"] not in text
        elif route.endswith("/redrive"):
            assert (answer["status"], answer["redrives"]) == ("PENDING", 1), answer
        elif route == "POST /admin/corrections/drain":
            assert set(answer) == {"resumed", "waiting", "more"}
        elif route == "GET /admin/blocklist":
            ids = {i["entryId"] for i in answer["items"]}
            assert (t.blocklist_entry in ids) == (scope == "own"), ids
        elif route == "POST /admin/blocklist":
            assert answer["value"] == body["value"]
        elif route in ("GET /admin/commission-rules", "PUT /admin/commission-rules"):
            shown = self.ok("GET", "/admin/commission-rules", caller)
            assert shown == answer, (answer, shown)  # what the PUT wrote, or the rules as set
            if body is not None:
                assert (answer["defaultPercent"], answer["suppliers"]) == (
                    body["defaultPercent"],
                    body["suppliers"],
                )
        elif route.startswith(("GET /admin/rule-packs/", "PUT /admin/rule-packs/")):
            shown = self.ok("GET", route.split(" ", 1)[1], caller)
            assert shown["pack"] == rule_packs.default_document() and shown["revision"] == answer["revision"]
        elif route == "POST /admin/rule-packs/draft/what-if":
            # Each tenant's own suppliers and listings are replayed, never another's.
            assert answer["complete"] and answer["examined"]["suppliers"] > 0, answer
            assert scope == "own" or not {c["id"] for c in answer["changes"]} & foreign, answer
        elif route == "POST /admin/rule-packs/draft/activate":
            shown = self.ok("GET", "/admin/rule-packs/active", caller)
            assert shown == answer and answer["version"] >= 1 and answer["activatedBy"], answer
            assert self.call("GET", "/admin/rule-packs/draft", caller).status_code == 404
        elif route == "DELETE /admin/blocklist/{entryId}":
            listed = self.ok("GET", "/admin/blocklist", caller)["items"]
            assert t.blocklist_entry not in {i["entryId"] for i in listed}
        elif route == "POST /suppliers/{supplierId}/imports":
            shown = self.ok("GET", f"/suppliers/{t.supplier}/imports/{answer['importId']}", caller)
            assert (shown["status"], shown["fileName"]) == ("AWAITING_UPLOAD", body["fileName"]), shown
        elif route.endswith("/imports/{importId}/start"):
            assert answer["status"] != "AWAITING_UPLOAD", answer
        elif route == "GET /suppliers/{supplierId}/deliveries":
            assert t.delivered in {d["deliveryId"] for d in answer["items"]}
        elif route == "GET /supplier-orders":
            assert t.supplier_orders["read"] in {o["supplierOrderId"] for o in answer["items"]}
        elif route in ("GET /admin/settlement-settings", "PUT /admin/settlement-settings"):
            shown = self.ok("GET", "/admin/settlement-settings", caller)
            assert shown == answer and shown["period"] == (body or {}).get("period", shown["period"]), shown
        elif route == "POST /admin/statements/{statementId}/paid":
            assert (answer["status"], answer["reference"]) == ("PAID", body["reference"]), answer
            pk = keys.ledger_pk(t.id, t.supplier)
            entries = self.table.query(pk, sk_prefix=keys.LEDGER_SK_PREFIX, limit=100).items
            assert [e["reference"] for e in entries if e["type"] == "PAYOUT"] == [body["reference"]]
        elif route == "GET /suppliers/{supplierId}/statements/{period}":
            assert answer["statementId"] == t.statement["statementId"] and answer["csvUrl"], answer
            assert self.http.get(answer["csvUrl"], timeout=30).text.startswith('"at","type"')
            # Announced as every status change: statement.ready reached the supplier's webhook.
            hooks = self.ok("GET", f"/suppliers/{t.supplier}/deliveries", "own:supplier", limit="100")[
                "items"
            ]
            assert "statement.ready" in {d["event"] for d in hooks}, hooks
        else:  # a read of the own tenant's record: it is the one asked for
            _method, path, _, query = self.request(route, caller)
            wanted = [v for v in (*path.split("/"), *query.values()) if v in text and len(v) > 8]
            assert wanted, (route, text[:300])
            assert response.status_code == 200


@pytest.fixture(scope="module")
def world(stack) -> Iterator[World]:
    built = World(stack).build()
    yield built
    built.receiver.server.shutdown()


def assert_refused(response: requests.Response, status: int, where: str) -> None:
    assert response.status_code == status, (
        f"{where}: expected {status}, got {response.status_code} {response.text[:300]}"
    )
    error = response.json().get("error")
    assert isinstance(error, dict), f"{where}: no error object in {response.text[:300]}"
    assert error.get("code") == ERROR_CODES[status] and error.get("message"), f"{where}: {error}"


def changed(before: dict[tuple[str, str], str], after: dict[tuple[str, str], str]) -> list[str]:
    """The items that differ, each with who wrote it (every caller has its own token subject)."""
    out = []
    for key in sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)):
        item = json.loads(after.get(key) or before[key])
        who = {k: item[k].get("S") for k in ("createdBy", "updatedBy") if k in item}
        out.append(
            f"{key} {'changed' if key in before and key in after else 'appeared' if key in after else 'vanished'} {who}"
        )
    return out


# ------------------------------------------------------------------------------------ bad tokens
def _claims(world: World, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": f"u-{uuid.uuid4().hex[:6]}", "iss": ISSUER, "aud": AUDIENCE, "token_use": "id",
              "cognito:groups": ["admin"], "custom:tenant_id": world.own.id, "iat": now, "exp": now + 600}  # fmt: skip
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


BAD_TOKENS: dict[str, Callable[[World], str]] = {
    "signed by another key": lambda w: jwt.encode(
        _claims(w), rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256"
    ),
    "expired": lambda w: jwt.encode(_claims(w, exp=int(time.time()) - 60), w.stack.issuer.private_key, algorithm="RS256"),
    "no tenant claim": lambda w: jwt.encode(_claims(w, **{"custom:tenant_id": None}), w.stack.issuer.private_key, algorithm="RS256"),
    "no sub": lambda w: jwt.encode(_claims(w, sub=None), w.stack.issuer.private_key, algorithm="RS256"),
    "supplier without supplier_id": lambda w: jwt.encode(
        _claims(w, **{"cognito:groups": ["supplier"]}), w.stack.issuer.private_key, algorithm="RS256"
    ),
    "unknown group": lambda w: jwt.encode(
        _claims(w, **{"cognito:groups": ["superuser"]}), w.stack.issuer.private_key, algorithm="RS256"
    ),
    # One group whose name holds a comma: the REST authorizer's claim reads "x,admin", two groups.
    "a group named 'x,admin'": lambda w: jwt.encode(
        _claims(w, **{"cognito:groups": ["x,admin"]}), w.stack.issuer.private_key, algorithm="RS256"
    ),
    "no group": lambda w: jwt.encode(_claims(w, **{"cognito:groups": None}), w.stack.issuer.private_key, algorithm="RS256"),
    # The operator belongs to no tenant (D47): with a tenant, or with a tenant role too, it is nobody.
    "operator with a tenant": lambda w: jwt.encode(
        _claims(w, **{"cognito:groups": ["operator"]}), w.stack.issuer.private_key, algorithm="RS256"
    ),
    "operator and admin at once": lambda w: jwt.encode(
        _claims(w, **{"cognito:groups": ["operator", "admin"], "custom:tenant_id": None}),
        w.stack.issuer.private_key, algorithm="RS256",
    ),
    "garbage": lambda w: "not.a.jwt",
    "unsigned (alg none)": lambda w: jwt.encode(_claims(w), None, algorithm="none"),
}  # fmt: skip


def test_a_bad_token_gets_401_on_every_route_and_changes_nothing(world):
    """Every kind of bad token on every route (the template's, with or without a row in EXPECTED)."""
    before = world.settle()
    wrong = []
    for kind, make in BAD_TOKENS.items():
        token = make(world)
        for route in ROUTES:
            method, path, body, query = world.request(route, "own:admin")
            response = world.http.request(method, world.url + path, json=body, params=query or None,
                                          timeout=30, headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            try:
                assert_refused(response, 401, f"{kind}: {route}")
            except AssertionError as exc:
                wrong.append(str(exc))
    assert not wrong, f"{len(wrong)} of {len(BAD_TOKENS) * len(ROUTES)} calls:\n" + "\n".join(wrong)
    assert not changed(before, world.snapshot())


# ------------------------------------------------------------------------------------ the matrix
def test_every_route_for_every_caller(world):
    """Refusals first (each against the state in which the allowed call then succeeds), then the
    allowed calls with their effects. Reports every wrong cell at once."""
    routes = [r for r in ROUTES if r in EXPECTED]  # a route with no row fails the test above
    wrong: list[str] = []
    before = world.settle()
    refused = allowed = 0
    for route in routes:
        for caller in CALLERS:
            status = expected(route, caller)
            if status == OK:
                continue
            method, path, body, query = world.request(route, caller)
            response = world.call(method, path, caller, body, **query)
            refused += 1
            try:
                assert_refused(response, status, f"{route} as {caller}")
            except AssertionError as exc:
                wrong.append(str(exc))
    # One snapshot after all refusals (a scan costs ~1 s in moto): an item a refused call wrote
    # names its writer, and every caller has its own token subject.
    wrong += [
        f"a refused call wrote {c}; subjects: {world.subjects}" for c in changed(before, world.snapshot())
    ]
    for route in routes:
        for caller in CALLERS:
            if expected(route, caller) != OK:
                continue
            method, path, body, query = world.request(route, caller)
            response = world.call(method, path, caller, body, **query)
            allowed += 1
            if response.status_code >= 300:
                wrong.append(
                    f"{route} as {caller}: expected 2xx, got {response.status_code} {response.text[:300]}"
                )
                continue
            try:
                answer = response.json() if response.content else None
                world.check_effect(route, caller, body, answer, response)
            except AssertionError as exc:
                wrong.append(f"{route} as {caller}: 2xx but {exc}")
    spent = {k: round(v, 1) for k, v in world.timings.items()}
    print(f"access matrix: {len(routes)} routes x {len(CALLERS)} callers: {refused} refused, {allowed} allowed; "
          f"seconds since setup began: {spent}")  # fmt: skip
    assert refused + allowed == len(routes) * len(CALLERS)
    assert not wrong, f"{len(wrong)} wrong cells:\n" + "\n".join(wrong)

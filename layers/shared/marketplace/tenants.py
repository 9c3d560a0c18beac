"""The platform's tenants: the registry the operator keeps, a new tenant's provisioning with its smoke
test, and the suspension that refuses a tenant's tokens (docs/tenants.md, docs/decisions.md D47).

A tenant's record lives in the platform's partition (``keys.PLATFORM_TENANTS_PK``), outside every
tenant's keys. Its status: ``PROVISIONING`` while it is created, then ``LIVE`` once its smoke test
passed (``FAILED`` if it did not, with the step and the reason), ``SUSPENDED`` and back to ``LIVE``
by the operator. A tenant with no record (one that predates the registry) is served as before.

A premium tenant is served by a stack of its own (the silo tier, D53): the same template deployed
with ``PinnedTenant`` set. The pool's registry records it ``SILOED`` with its stack's name, and the
pool refuses its tokens naming that stack; the silo refuses every other tenant's tokens.

The smoke test runs the new tenant's first supplier, listing and order through the stack's own
workflows (onboarding to APPROVED, listing to ACTIVE, order to AWAITING_ACCEPTANCE, then accepted by
its supplier), every record marked ``testData: true`` (``Principal.test_data``), then deletes them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marketplace import access, config, keys, schemas
from marketplace.clock import now_iso
from marketplace.errors import Conflict, Forbidden, NotFound
from marketplace.order_lifecycle import ACCEPTED, AWAITING
from marketplace.orders import Orders
from marketplace.principal import Principal
from marketplace.products import Products
from marketplace.repository import Page, Table, plain
from marketplace.suppliers import Suppliers, tax_claim_pk
from marketplace.tenant_settings import order_settings

ENTITY = "TENANT"
PROVISIONING, LIVE, FAILED, SUSPENDED = "PROVISIONING", "LIVE", "FAILED", "SUSPENDED"
# A premium tenant in the pool's registry: served by its own stack, never by the pool (D53).
SILOED = "SILOED"
# How long an API instance trusts a tenant's status it read (D47): a suspension refuses the
# tenant's tokens in every instance at most this long after it is written (at once in the instance
# that wrote it), for one read per tenant per instance per period instead of one per request.
STATUS_TTL_SECONDS = 5.0
# The smoke test's wait for the workflows: under API Gateway's 29 s integration timeout.
SMOKE_DEADLINE_SECONDS = 25.0
_FIELDS = ("tenantId", "name", "tier", "status", "version", "admins", "createdAt", "createdBy",
           "updatedAt", "updatedBy", "liveAt", "goLiveSeconds", "smokeTest", "reason", "silo")  # fmt: skip

# The smoke test's records: valid for every tenant's default rules (D47).
SMOKE_SUPPLIER: dict[str, Any] = {
    "legalName": "Smoke Test GmbH", "country": "DE", "contactEmail": "smoke@smoke-test.example",
    "website": "https://smoke-test.example", "phone": "+49 30 0000000",
    "address": {"line1": "Teststr. 1", "city": "Berlin", "postalCode": "10115", "country": "DE"},
}  # fmt: skip
SMOKE_LISTING: dict[str, Any] = {
    "sku": "SMOKE-1", "title": "Smoke test item", "category": "home", "price": {"amount": 1, "currency": "EUR"},
    "quantity": 1, "images": ["https://cdn.example.com/smoke.webp"], "attributes": {"material": "steel"},
}  # fmt: skip
SMOKE_SHIP_TO: dict[str, Any] = {
    "name": "Smoke Test", "line1": "Teststr. 1", "city": "Berlin", "postalCode": "10115", "country": "DE",
}  # fmt: skip


def view(record: dict[str, Any]) -> dict[str, Any]:
    """The tenant as the operator sees it, with the default rules in force for it (its rule pack,
    read from ``marketplace.tenant_settings``: not a copy)."""
    shown = {k: plain(record[k]) for k in _FIELDS if k in record}
    shown["settings"] = {"orders": order_settings(record["tenantId"]).view()}
    return shown


def silo_stack_name(tenant_id: str) -> str:
    """The name of a premium tenant's own stack: its samconfig environment deploys it, and the local
    stack runs it under this name (``marketplace run --tenant``)."""
    return f"marketplace-{tenant_id}"


# ---------------------------------------------------------------------------------------------- tiers
STANDARD, PREMIUM = "standard", "premium"  # the tiers; a premium tenant is served by its own stack (D53)
# API requests per second a tenant's callers may make, by its tier: the one place the fair share's
# limits are set (D52). A standard tenant's 1,000 orders/s take 2,000 requests/s (an order is placed,
# then accepted); the half more covers the leases instances hold unused when a second ends (with
# 200 API instances, a tenant offering 2,000 a second is let in 2,000 under 3,000 and ~1,900 under
# 2,500: python -m bench.fair_share).
# A tenant with no record (one that predates the registry) is standard. The stage's own limit
# (template.yaml, MarketplaceApi) is the sum the pool serves at once.
REQUEST_LIMITS = {STANDARD: 3000, PREMIUM: 6000}


# ---------------------------------------------------------------------------------------------- status
def pin_refusal(tenant_id: str) -> str | None:
    """Why a stack pinned to one tenant (a silo) refuses ``tenant_id``, or None: from the function's
    environment, no read."""
    pinned = config.pinned_tenant()
    if pinned is None or tenant_id == pinned:
        return None
    return f"this stack serves only tenant {pinned} (its own stack, premium tier); tenant {tenant_id} is not served here"


@dataclass(frozen=True)
class Standing:
    """What an API instance knows of a tenant for :data:`STATUS_TTL_SECONDS`: why its tokens are
    refused (its own silo, its suspension, or None) and its tier."""

    until: float
    refused: str | None
    tier: str


_statuses: dict[str, Standing] = {}  # tenant -> its standing, trusted until ``until``


def standing(tenant_id: str, table: Table | None = None) -> Standing:
    """The tenant's standing, read at most once per :data:`STATUS_TTL_SECONDS` per tenant in this
    process: a dictionary look-up per request."""
    moment = time.monotonic()
    cached = _statuses.get(tenant_id)
    if cached is None or cached.until <= moment:
        # Eventually consistent: half a read unit, and at most about a second older than the TTL says.
        record = (table or Table()).get(keys.PLATFORM_TENANTS_PK, keys.tenant_sk(tenant_id), consistent=False)
        why = None
        if record is not None and record.get("status") == SUSPENDED:
            why = f"tenant {tenant_id} is suspended by the platform operator: {record.get('reason') or 'no reason given'}"
        elif record is not None and record.get("status") == SILOED:
            stack = (record.get("silo") or {}).get("stackName") or silo_stack_name(tenant_id)
            why = f"tenant {tenant_id} is served by its own stack {stack} (premium tier), not by this one"
        tier = (record or {}).get("tier")
        cached = Standing(moment + STATUS_TTL_SECONDS, why, tier if tier in REQUEST_LIMITS else STANDARD)
        _statuses[tenant_id] = cached
    return cached


def refusal(tenant_id: str, table: Table | None = None) -> str | None:
    """Why ``tenant_id``'s tokens are refused now (another tenant's silo, its own silo, its
    suspension), or None."""
    return pin_refusal(tenant_id) or standing(tenant_id, table).refused


def request_limit(tenant_id: str) -> tuple[int, str]:
    """The requests per second ``tenant_id``'s callers may make, and its tier (D52)."""
    tier = standing(tenant_id).tier
    return REQUEST_LIMITS[tier], tier


def require_active(tenant_id: str) -> None:
    """403 naming the suspension while ``tenant_id`` is suspended."""
    why = refusal(tenant_id)
    if why is not None:
        raise Forbidden(why)


def forget(tenant_id: str) -> None:
    """This process reads the tenant's status again on its next request (after its own change)."""
    _statuses.pop(tenant_id, None)


# ---------------------------------------------------------------------------------------------- registry
@dataclass
class SmokeStep:
    name: str
    seconds: float


class Tenants:
    def __init__(self, table: Table | None = None) -> None:
        self.table = table or Table()

    def get(self, tenant_id: str) -> dict[str, Any]:
        record = self.table.get(keys.PLATFORM_TENANTS_PK, keys.tenant_sk(tenant_id))
        if record is None or record.get("entity") != ENTITY:
            raise NotFound(f"no tenant {tenant_id}")
        return record

    def list(self, limit: int, next_token: str | None) -> Page:
        return self.table.query(
            keys.PLATFORM_TENANTS_PK, sk_prefix=keys.TENANT_SK_PREFIX, limit=limit, next_token=next_token
        )

    def create(
        self, principal: Principal, body: Any, make_admin: Callable[[str, str, str], str]
    ) -> dict[str, Any]:
        """The tenant's record (PROVISIONING), then its first admins (``make_admin(tenant, email,
        field)`` answers the user's subject). 409 if the tenant exists, unless it is FAILED: its
        creation is then taken again. An admin that cannot be made leaves no new record behind (the
        request can be sent again once it is fixed)."""
        schemas.validate("tenant", body)
        tenant_id, at = body["tenantId"], now_iso()
        fields = {"name": body["name"].strip(), "tier": body["tier"], "status": PROVISIONING,
                  "admins": [{"email": email} for email in body["admins"]]}  # fmt: skip
        record: dict[str, Any] = {
            "PK": keys.PLATFORM_TENANTS_PK, "SK": keys.tenant_sk(tenant_id), "entity": ENTITY,
            "tenantId": tenant_id, **fields, "version": 1,
            "createdAt": at, "createdBy": principal.actor, "updatedAt": at, "updatedBy": principal.actor,
        }  # fmt: skip
        try:
            self.table.put_new(record)
            fresh = True
        except Conflict:
            existing = self.get(tenant_id)
            if existing["status"] != FAILED:
                raise Conflict(f"tenant {tenant_id} already exists ({existing['status']})") from None
            record, fresh = self._set(principal, existing, {**fields, "smokeTest": None}), False
        try:
            admins = [
                {"email": email, "subject": make_admin(tenant_id, email, f"admins.{i}")}
                for i, email in enumerate(body["admins"])
            ]
        except Exception:
            if fresh:
                self.table.delete(record["PK"], record["SK"])
            else:
                self._set(principal, record, {"status": FAILED})
            raise
        return self._set(principal, record, {"admins": admins})

    def provision(
        self, principal: Principal, body: Any, make_admin: Callable[[str, str, str], str]
    ) -> dict[str, Any]:
        """Create the tenant and run its smoke test: LIVE with ``goLiveSeconds`` (from the request to
        the smoke test's end), or FAILED with the step that failed and why. On the pool a premium
        tenant is only recorded, SILOED (:meth:`silo`); a silo creates its own tenant only (403
        for another)."""
        started = time.monotonic()
        schemas.validate("tenant", body)
        why = pin_refusal(body["tenantId"])
        if why is not None:
            raise Forbidden(why)
        if body["tier"] == PREMIUM and config.pinned_tenant() is None:
            return self.silo(principal, body)
        record = self.create(principal, body, make_admin)
        smoke = SmokeTest(self.table, record["tenantId"], principal.subject)
        try:
            outcome = smoke.run()
        except Exception as exc:  # the tenant is FAILED with the reason, whatever the step met
            outcome = {**smoke.report(), "error": f"{smoke.step}: {exc}"}
            return self._set(principal, record, {"status": FAILED, "smokeTest": outcome})
        finally:
            smoke.remove()
        took = round(time.monotonic() - started, 3)
        changes = {"status": LIVE, "smokeTest": outcome, "liveAt": now_iso(), "goLiveSeconds": took}
        return self._set(principal, record, changes)

    def silo(self, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """A premium tenant in the pool's registry: SILOED, with the name of its own stack. No admin
        and no smoke test here: both are its own stack's, once deployed (``tenant create`` against
        it). 409 if the tenant exists."""
        tenant_id, at = body["tenantId"], now_iso()
        record: dict[str, Any] = {
            "PK": keys.PLATFORM_TENANTS_PK, "SK": keys.tenant_sk(tenant_id), "entity": ENTITY,
            "tenantId": tenant_id, "name": body["name"].strip(), "tier": PREMIUM, "status": SILOED,
            "admins": [{"email": email} for email in body["admins"]],
            "silo": {"stackName": silo_stack_name(tenant_id)}, "version": 1,
            "createdAt": at, "createdBy": principal.actor, "updatedAt": at, "updatedBy": principal.actor,
        }  # fmt: skip
        try:
            self.table.put_new(record)
        except Conflict:
            existing = self.get(tenant_id)
            raise Conflict(f"tenant {tenant_id} already exists ({existing['status']})") from None
        forget(tenant_id)
        return record

    def suspend(self, principal: Principal, tenant_id: str, reason: str) -> dict[str, Any]:
        return self._move(principal, tenant_id, reason, LIVE, SUSPENDED, "suspended")

    def reinstate(self, principal: Principal, tenant_id: str, reason: str) -> dict[str, Any]:
        return self._move(principal, tenant_id, reason, SUSPENDED, LIVE, "reinstated")

    def _move(
        self, principal: Principal, tenant_id: str, reason: str, source: str, target: str, verb: str
    ) -> dict[str, Any]:
        """``source`` -> ``target`` with the operator's reason; already there answers it as it is."""
        record = self.get(tenant_id)
        if record["status"] == target:
            return record
        if record["status"] != source:
            raise Conflict(f"tenant {tenant_id} is {record['status']}; only a {source} tenant is {verb}")
        return self._set(principal, record, {"status": target, "reason": reason})

    def _set(self, principal: Principal, record: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        try:
            written = self.table.update(
                record["PK"], record["SK"], int(record["version"]),
                {**changes, "updatedAt": now_iso(), "updatedBy": principal.actor},
            )  # fmt: skip
        except Conflict:
            raise Conflict(f"tenant {record['tenantId']} changed meanwhile; read it and try again") from None
        forget(record["tenantId"])
        return written


# ---------------------------------------------------------------------------------------------- smoke test
class SmokeTest:
    """A supplier, a listing and an order of the new tenant through the stack's workflows, as test data."""

    def __init__(
        self, table: Table, tenant_id: str, subject: str, deadline: float = SMOKE_DEADLINE_SECONDS
    ) -> None:
        self.table, self.tenant_id = table, tenant_id
        self.deadline = time.monotonic() + deadline
        self.step = "start"
        self.steps: list[SmokeStep] = []
        self.created: list[str] = []  # the partitions to remove
        self.ids: dict[str, str] = {}
        self.staff = Principal(f"smoke-{subject}", tenant_id, frozenset({access.RETAILER}), test_data=True)

    def report(self) -> dict[str, Any]:
        return {
            **self.ids,
            "testData": True,
            "steps": [{"step": s.name, "seconds": s.seconds} for s in self.steps],
        }

    def run(self) -> dict[str, Any]:
        suppliers, products, orders = Suppliers(self.table), Products(self.table), Orders(self.table)
        tax_id = f"DE{uuid.uuid4().int % 10**9:09d}"
        supplier = self._do(
            "supplier APPROVED", lambda: suppliers.register(self.staff, {**SMOKE_SUPPLIER, "taxId": tax_id})
        )
        supplier_id = self.ids["supplierId"] = supplier["supplierId"]
        self.created += [supplier["PK"], tax_claim_pk(self.tenant_id, "DE", tax_id)]
        self._wait(lambda: suppliers.get(self.tenant_id, supplier_id)["status"], "APPROVED")
        owner = Principal(f"smoke-supplier-{supplier_id}", self.tenant_id, frozenset({access.SUPPLIER}),
                          supplier_id=supplier_id, test_data=True)  # fmt: skip
        self._do("listing ACTIVE", lambda: products.register(owner, supplier_id, SMOKE_LISTING))
        self.ids["sku"] = SMOKE_LISTING["sku"]
        self._wait(
            lambda: products.get(self.tenant_id, supplier_id, SMOKE_LISTING["sku"])["status"], "ACTIVE"
        )
        line = {
            "supplierId": supplier_id,
            "sku": SMOKE_LISTING["sku"],
            "quantity": 1,
            "unitPrice": SMOKE_LISTING["price"],
        }
        order = self._do("order AWAITING_ACCEPTANCE", lambda: orders.place(
            self.staff, {"customerOrderId": f"smoke-{uuid.uuid4().hex}", "shipTo": SMOKE_SHIP_TO, "lines": [line]}
        ))  # fmt: skip
        self.ids["orderId"] = order["orderId"]
        self.created += [order["PK"], keys.customer_order_pk(self.tenant_id, order["customerOrderId"])]
        self.created += [s["PK"] for s in order["supplierOrders"]]
        supplier_order_id = self.ids["supplierOrderId"] = order["supplierOrders"][0]["supplierOrderId"]
        self._wait(lambda: orders.get(self.tenant_id, supplier_order_id)["status"], AWAITING)
        accepted = self._do("order ACCEPTED", lambda: orders.accept(owner, supplier_order_id))
        if accepted["status"] != ACCEPTED:
            raise RuntimeError(f"the order is {accepted['status']}, not {ACCEPTED}")
        self.steps[-1].seconds = round(time.monotonic() - self._began, 3)
        return self.report()

    def _do(self, step: str, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        self.step, self._began = step, time.monotonic()
        self.steps.append(SmokeStep(step, 0.0))
        return action()

    def _wait(self, status: Callable[[], str], wanted: str) -> None:
        while (seen := status()) != wanted:
            if seen != "PENDING":  # the workflow decided otherwise (FLAGGED, REJECTED, ...)
                raise RuntimeError(f"reached {seen}, not {wanted}")
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"still {seen} after the smoke test's {SMOKE_DEADLINE_SECONDS:.0f} s")
            time.sleep(0.02)
        self.steps[-1].seconds = round(time.monotonic() - self._began, 3)

    def remove(self) -> None:
        """Delete every item the smoke test wrote (the records, their claims, the order's parts).
        The audit entries the stream writes for them stay, marked by ``testData`` in their images."""
        for pk in self.created:
            token = None
            while True:
                page = self.table.query(pk, limit=100, next_token=token)
                for item in page.items:
                    if not str(item["SK"]).startswith(keys.AUDIT_SK_PREFIX):
                        self.table.delete(item["PK"], item["SK"])
                token = page.next_token
                if not token:
                    break

"""The API's races, run as on AWS: many calls at once, each in an instance of the API function of
its own (the local Lambda runtime's pool, marketplace_local.lambdas), through the local gateway.

Each test asserts what the callers see (no unit sold twice, one decision per order, a fixed record
resumed once) and that the API function really ran those calls at the same time (more than one
invocation in flight): a runtime that ran them one after another would prove nothing."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.conftest import wait_until
from tests.workflow.conftest import unique_ein
from tests.workflow.test_supplier_orders import SHIP_TO, Shop

pytestmark = pytest.mark.workflow


class Api:
    """The local gateway, called over HTTP with a token of each role."""

    def __init__(self, stack: Any, tenant: str) -> None:
        self.stack, self.tenant = stack, tenant
        self.spec = stack.runtime.by_logical_id("ApiFunction")

    def call(
        self, method: str, path: str, role: str, supplier_id: str | None = None, **kwargs: Any
    ) -> requests.Response:
        token = self.stack.issuer.mint(self.tenant, role, supplier_id=supplier_id)
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.stack.api_url}{path}", headers=headers, timeout=60, **kwargs)

    def at_once(self, calls: list[tuple[Any, ...]]) -> tuple[list[requests.Response], int]:
        """Make every call at the same moment (each client waits for the others before sending); the
        answers in order, and the most API invocations that were in flight at once meanwhile."""
        start = threading.Barrier(len(calls))

        def one(call: tuple[Any, ...]) -> requests.Response:
            method, path, role, supplier_id, kwargs = call
            start.wait(timeout=30)
            return self.call(method, path, role, supplier_id, **kwargs)

        with self.spec.watch() as peak, ThreadPoolExecutor(len(calls)) as pool:
            answers = list(pool.map(one, calls))
        return answers, peak.value


def order_body(supplier_id: str, sku: str) -> dict[str, Any]:
    return {
        "customerOrderId": f"c-{uuid.uuid4().hex[:10]}",
        "lines": [{"supplierId": supplier_id, "sku": sku, "quantity": 1, "unitPrice": {"amount": 1299.99, "currency": "EUR"}}],
        "shipTo": SHIP_TO,
    }  # fmt: skip


def test_fifty_orders_for_the_last_five_units_sell_five(shop: Shop, api: Api):
    supplier_id, sku = shop.supplier_with_listing(quantity=5)
    calls = [("POST", "/orders", "retailer", None, {"json": order_body(supplier_id, sku)}) for _ in range(50)]
    answers, in_flight = api.at_once(calls)
    assert [a.status_code for a in answers] == [202] * 50, [a.text for a in answers if a.status_code != 202]
    assert in_flight > 1, "the 50 calls ran one after another"
    parts = [a.json()["supplierOrders"][0]["supplierOrderId"] for a in answers]
    assert len(set(parts)) == 50
    finals = [shop.wait_status(p, "AWAITING_ACCEPTANCE", "REJECTED") for p in parts]
    assert Counter(f["status"] for f in finals) == {"AWAITING_ACCEPTANCE": 5, "REJECTED": 45}
    assert {f["statusReason"] for f in finals if f["status"] == "REJECTED"} == {"out of stock"}
    assert shop.stock(supplier_id, sku) == 0


def test_accept_against_reject_decides_each_order_once(shop: Shop, api: Api):
    supplier_id, sku = shop.supplier_with_listing(quantity=10)
    parts = [shop.place((supplier_id, sku, 1))["supplierOrders"][0]["supplierOrderId"] for _ in range(4)]
    for part in parts:
        shop.wait_status(part, "AWAITING_ACCEPTANCE")
    calls = []
    for part in parts:
        calls.append(("POST", f"/supplier-orders/{part}/accept", "supplier", supplier_id, {}))
        calls.append(("POST", f"/supplier-orders/{part}/reject", "supplier", supplier_id, {"json": {"reason": "no stock left"}}))  # fmt: skip
    answers, in_flight = api.at_once(calls)
    assert in_flight > 1, "the 8 calls ran one after another"
    accepted = 0
    for index, part in enumerate(parts):
        accept, reject = answers[2 * index], answers[2 * index + 1]
        # One decision wins, the other is refused as a conflict; the record holds the winner's.
        assert sorted([accept.status_code, reject.status_code]) == [200, 409], (accept.text, reject.text)
        winner = accept if accept.status_code == 200 else reject
        record = shop.orders.get(shop.tenant, part)
        assert record["status"] == winner.json()["status"] in ("ACCEPTED", "REJECTED")
        assert record["version"] == winner.json()["version"]
        accepted += record["status"] == "ACCEPTED"
    # A rejected order's unit is released once, an accepted one's kept.
    assert shop.stock(supplier_id, sku) == 10 - accepted


def test_two_drains_at_once_resume_a_fixed_record_once(onboarding, api: Api, stack):
    supplier_id = onboarding.register(taxId="12345")
    onboarding.wait_status(supplier_id, "FLAGGED")
    arn = onboarding.execution_arn(supplier_id)
    onboarding.wait_entered(arn, "WaitForFix")
    wait_until(lambda: onboarding.queued(supplier_id), what="correction message")
    onboarding.fix(supplier_id, taxId=unique_ein())
    answers, in_flight = api.at_once([("POST", "/admin/corrections/drain", "admin", None, {})] * 2)
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert in_flight == 2, "the two drains ran one after another"
    assert sum(a.json()["resumed"] for a in answers) == 1
    onboarding.wait_status(supplier_id, "APPROVED")
    onboarding.wait_execution(arn, "SUCCEEDED")
    assert onboarding.entered(arn).count("Validate") == 2
    assert onboarding.queued(supplier_id) == []


def test_one_idempotency_key_sent_twice_at_once_places_one_order(shop: Shop, api: Api):
    supplier_id, sku = shop.supplier_with_listing(quantity=10)
    # Each try is a race with a key of its own; a loaded machine may run a try's two calls one after
    # the other (one order too, but no race): tried again until one try's calls were in flight at once.
    for tries in range(1, 6):
        body, key = order_body(supplier_id, sku), {"Idempotency-Key": f"race-{uuid.uuid4().hex}"}
        answers, in_flight = api.at_once(
            [("POST", "/orders", "retailer", None, {"json": body, "headers": key})] * 2
        )
        made = {a.json()["orderId"] for a in answers if a.status_code == 202}
        # Both get the one order, or the second is told the first is still being made (409, retry).
        assert len(made) == 1 and all(a.status_code in (202, 409) for a in answers), [a.text for a in answers]
        (order_id,) = made
        part = next(a.json() for a in answers if a.status_code == 202)["supplierOrders"][0]["supplierOrderId"]
        shop.wait_status(part, "AWAITING_ACCEPTANCE")
        assert shop.stock(supplier_id, sku) == 10 - tries
        if in_flight == 2:
            break
    else:
        pytest.fail("in five tries the two calls never ran at once")
    assert api.call("GET", f"/orders/{order_id}", "retailer").status_code == 200

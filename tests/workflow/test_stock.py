"""Stock that reservations protect (docs/decisions.md D38), over HTTP through the local gateway.

Every stock change moves the listing's version, reservations and releases included, so a stock push
conditional on a version read before an order (``If-Match``) is refused; a supplier's system adds or
removes units with a stock adjustment, which never races a reservation; and the listing's audit
trail names who changed the stock, when and why (the order, for a reservation)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.workflow.test_api_races import Api, order_body
from tests.workflow.test_supplier_orders import Shop

pytestmark = pytest.mark.workflow


def listing_path(supplier_id: str, sku: str) -> str:
    return f"/suppliers/{supplier_id}/products/{sku}"


def read(api: Api, supplier_id: str, sku: str) -> dict[str, Any]:
    answer = api.call("GET", listing_path(supplier_id, sku), "supplier", supplier_id)
    assert answer.status_code == 200, answer.text
    return answer.json()


def trail(api: Api, supplier_id: str, sku: str) -> list[dict[str, Any]]:
    """The listing's audit trail, every page, oldest first."""
    entries: list[dict[str, Any]] = []
    token = ""
    while True:
        answer = api.call("GET", f"{listing_path(supplier_id, sku)}/history?limit=100&nextToken={token}",
                          "supplier", supplier_id)  # fmt: skip
        assert answer.status_code == 200, answer.text
        entries += answer.json()["items"]
        token = answer.json().get("nextToken") or ""
        if not token:
            return entries


def entry_of_version(api: Api, supplier_id: str, sku: str, version: int) -> dict[str, Any]:
    """The audit entry of the change that made ``version`` (the trail is written from the stream)."""

    def found() -> dict[str, Any] | None:
        return next((e for e in trail(api, supplier_id, sku) if e["after"]["version"] == version), None)

    return wait_until(found, what=f"the audit entry of version {version}")


def adjust(api: Api, supplier_id: str, sku: str, delta: int, reason: str, **kwargs: Any) -> Any:
    return api.call("POST", f"{listing_path(supplier_id, sku)}/stock-adjustments", "supplier", supplier_id,
                    json={"delta": delta, "reason": reason}, **kwargs)  # fmt: skip


def test_a_stock_push_read_before_an_order_is_refused_and_the_trail_names_the_order(shop: Shop, api: Api):
    """The issue's observation: a listing read with quantity 4, an order for 2, then ``PATCH quantity 4``
    with the ``If-Match`` read before the order. It used to succeed (the order did not move the
    version) and put the 2 reserved units on sale again; now it is 412 and the 2 stay reserved."""
    supplier_id, sku = shop.supplier_with_listing(quantity=4)
    before = read(api, supplier_id, sku)
    assert before["quantity"] == 4
    placed = api.call("POST", "/orders", "retailer", json={**order_body(supplier_id, sku), "lines": [
        {**order_body(supplier_id, sku)["lines"][0], "quantity": 2}]})  # fmt: skip
    assert placed.status_code == 202, placed.text
    part = placed.json()["supplierOrders"][0]["supplierOrderId"]
    reserved = shop.wait_status(part, "AWAITING_ACCEPTANCE")

    after = read(api, supplier_id, sku)
    assert (after["quantity"], after["version"]) == (2, before["version"] + 1)
    push = api.call("PATCH", listing_path(supplier_id, sku), "supplier", supplier_id,
                    json={"quantity": 4}, headers={"If-Match": str(before["version"])})  # fmt: skip
    assert push.status_code == 412, push.text
    assert push.json()["error"]["code"] == "precondition_failed"
    assert read(api, supplier_id, sku)["quantity"] == 2  # the reserved units are not for sale again

    # The reservation's audit entry names the order, at the reservation's time, not the previous writer.
    taken = entry_of_version(api, supplier_id, sku, after["version"])
    assert (taken["by"], taken["at"]) == (f"order:{part}", reserved["updatedAt"])
    assert taken["after"]["stockChange"] == {"delta": -2, "reason": "reserve", "supplierOrderId": part}
    assert {"quantity", "version", "updatedBy", "updatedAt"} <= set(taken["changed"])

    # The supplier rejects: the release moves the version too and is credited to the supplier.
    rejected = api.call("POST", f"/supplier-orders/{part}/reject", "supplier", supplier_id,
                        json={"reason": "cannot ship"})  # fmt: skip
    assert rejected.status_code == 200, rejected.text
    released = read(api, supplier_id, sku)
    assert (released["quantity"], released["version"]) == (4, after["version"] + 1)
    given = entry_of_version(api, supplier_id, sku, released["version"])
    assert given["by"] == rejected.json()["updatedBy"] and given["by"].startswith("supplier:")
    assert given["at"] == rejected.json()["updatedAt"]
    assert given["after"]["stockChange"] == {"delta": 2, "reason": "reject", "supplierOrderId": part}

    # A push with the version read now applies.
    push = api.call("PATCH", listing_path(supplier_id, sku), "supplier", supplier_id,
                    json={"quantity": 6}, headers={"If-Match": str(released["version"])})  # fmt: skip
    assert push.status_code == 200, push.text
    assert (push.json()["quantity"], push.json()["version"]) == (6, released["version"] + 1)


def test_stock_adjustments_and_orders_at_once_never_oversell_and_lose_no_delta(shop: Shop, api: Api):
    supplier_id, sku = shop.supplier_with_listing(quantity=5)
    start = read(api, supplier_id, sku)
    calls = [("POST", "/orders", "retailer", None, {"json": order_body(supplier_id, sku)}) for _ in range(16)]
    for i in range(6):
        calls.append(("POST", f"{listing_path(supplier_id, sku)}/stock-adjustments", "supplier", supplier_id,
                      {"json": {"delta": 2, "reason": f"delivery {i}"}}))  # fmt: skip
        calls.append(("POST", f"{listing_path(supplier_id, sku)}/stock-adjustments", "supplier", supplier_id,
                      {"json": {"delta": -2, "reason": f"breakage {i}"}}))  # fmt: skip
    answers, in_flight = api.at_once(calls)
    assert in_flight > 1, "the calls ran one after another"
    orders, adjustments = answers[:16], answers[16:]
    assert [a.status_code for a in orders] == [202] * 16, [a.text for a in orders if a.status_code != 202]
    # An adjustment lands whole or is refused naming delta (never below zero); none fails otherwise.
    assert {a.status_code for a in adjustments} <= {200, 409}, [a.text for a in adjustments]
    for refused in (a for a in adjustments if a.status_code == 409):
        assert [f["field"] for f in refused.json()["error"]["fields"]] == ["delta"], refused.text
    parts = [a.json()["supplierOrders"][0]["supplierOrderId"] for a in orders]
    finals = [shop.wait_status(p, "AWAITING_ACCEPTANCE", "REJECTED") for p in parts]
    reserved = sum(f["status"] == "AWAITING_ACCEPTANCE" for f in finals)
    applied = [
        (call[4]["json"]["delta"])
        for call, a in zip(calls[16:], adjustments, strict=True)
        if a.status_code == 200
    ]
    end = read(api, supplier_id, sku)
    # Every applied delta and every reservation is in the quantity, and each moved the version once.
    assert end["quantity"] == start["quantity"] + sum(applied) - reserved >= 0, (end, applied, reserved)
    assert end["version"] == start["version"] + len(applied) + reserved
    assert reserved and applied, (reserved, applied)  # both kinds of change landed
    assert {f["statusReason"] for f in finals if f["status"] == "REJECTED"} <= {"out of stock"}


def test_a_stock_adjustment_is_made_once_per_idempotency_key_and_never_takes_reserved_units(
    shop: Shop, api: Api
):
    supplier_id, sku = shop.supplier_with_listing(quantity=3)
    key = {"headers": {"Idempotency-Key": f"restock-{uuid.uuid4().hex[:8]}"}}
    first = adjust(api, supplier_id, sku, 5, "delivery 4711", **key)
    again = adjust(api, supplier_id, sku, 5, "delivery 4711", **key)
    assert (first.status_code, again.status_code) == (200, 200), (first.text, again.text)
    assert first.json() == again.json()
    assert first.json()["quantity"] == 8 == read(api, supplier_id, sku)["quantity"]
    other = adjust(api, supplier_id, sku, 6, "delivery 4712", **key)
    assert other.status_code == 422, other.text

    part = shop.place((supplier_id, sku, 6))["supplierOrders"][0]["supplierOrderId"]
    shop.wait_status(part, "AWAITING_ACCEPTANCE")
    refused = adjust(api, supplier_id, sku, -3, "stock take")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["fields"] == [
        {"field": "delta", "reason": "would take the quantity below 0: 2 available, 3 asked to remove"}
    ]
    taken = adjust(api, supplier_id, sku, -2, "stock take")
    assert taken.status_code == 200, taken.text
    assert taken.json()["quantity"] == 0
    entry = entry_of_version(api, supplier_id, sku, taken.json()["version"])
    assert entry["by"].startswith("supplier:")
    assert entry["after"]["stockChange"] == {"delta": -2, "reason": "stock take"}


def test_a_change_without_if_match_that_loses_a_race_to_a_reservation_is_applied_again(
    shop: Shop, monkeypatch
):
    """A reservation moves the version between a PATCH's read and its write: without If-Match the
    change is read and applied again (the reservation kept), with If-Match it is 412."""
    from marketplace.errors import PreconditionFailed

    supplier_id, sku = shop.supplier_with_listing(quantity=4)
    listings = shop.listings.products
    table, real_update = listings.table, listings.table.update
    raced: list[dict[str, Any]] = []

    def a_reservation_first(pk, sk, version, changes, remove=()):
        if not raced:  # an order takes a unit between the read and the write
            raced.append(
                table.add(pk, sk, "quantity", -1, {"updatedBy": "order:o-race"}, floor=0, ceiling=10**6)
            )
        return real_update(pk, sk, version, changes, remove)

    monkeypatch.setattr(table, "update", a_reservation_first)
    me = shop.listings.as_supplier(supplier_id)
    read = listings.get(shop.tenant, supplier_id, sku)
    changed = listings.update(me, supplier_id, sku, {"title": "Desk lamp, brass"}, None)
    assert (changed["title"], changed["quantity"]) == ("Desk lamp, brass", 3)
    assert changed["version"] == raced[0]["version"] + 1 == read["version"] + 2
    raced.clear()
    with pytest.raises(PreconditionFailed):
        listings.update(me, supplier_id, sku, {"title": "Desk lamp, steel"}, changed["version"])
    assert listings.get(shop.tenant, supplier_id, sku)["title"] == "Desk lamp, brass"

"""The supplier portal in headless Chromium: a supplier signs in, sees its registration, listings,
the orders awaiting its acceptance, accepts one and rejects another with a reason, and sees the
webhook deliveries those decisions made; a flagged supplier sees its flags. After acceptance it
refuses a line with a reason, ships in two parcels with tracking, cancels an order with a reason,
marks one delivered and answers its returns (accepted then received with the refund; refused)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from marketplace_local.samples import SHIP_TO, listing
from tests.browser.test_console import bearer, register, tab_to
from tests.conftest import wait_until
from tests.receivers import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

LISTING = listing(quantity=5)


BULB = listing(sku="BULB-1", title="LED bulb", price={"amount": 4.5, "currency": "EUR"}, quantity=20)


def place_order(stack: Any, tenant: str, supplier_id: str, quantity: int, bulbs: int = 0) -> str:
    retailer = bearer(stack, tenant, "retailer")
    lines = [
        {"supplierId": supplier_id, "sku": "LAMP-1", "quantity": quantity, "unitPrice": LISTING["price"]}
    ]
    if bulbs:
        lines.append(
            {"supplierId": supplier_id, "sku": "BULB-1", "quantity": bulbs, "unitPrice": BULB["price"]}
        )
    body = {"customerOrderId": f"web-{uuid.uuid4().hex[:6]}", "lines": lines, "shipTo": SHIP_TO}
    placed = requests.post(f"{stack.api_url}/orders", json=body, headers=retailer, timeout=10)
    assert placed.status_code == 202, placed.text
    return body["customerOrderId"]


def test_a_supplier_decides_its_orders_in_the_portal_and_sees_its_deliveries(stack, tenant, screen):
    page = screen.page
    supplier_id = register(stack, tenant, "APPROVED", taxId=f"DE{uuid.uuid4().int % 10**9:09d}")
    supplier = bearer(stack, tenant, "supplier", supplier_id)
    created = requests.post(f"{stack.api_url}/suppliers/{supplier_id}/products", json=LISTING, headers=supplier,
                            timeout=10)  # fmt: skip
    assert created.status_code == 202, created.text
    wait_until(lambda: requests.get(f"{stack.api_url}/suppliers/{supplier_id}/products/LAMP-1", headers=supplier,
                                    timeout=10).json()["status"] == "ACTIVE", timeout=30, what="active listing")  # fmt: skip
    secret = f"secret-{uuid.uuid4().hex}"
    receiver = Receiver(stack, secret=secret)  # verifies every delivery as the supplier would
    try:
        hook = requests.put(f"{stack.api_url}/suppliers/{supplier_id}/webhook", headers=supplier, timeout=10,
                            json={"url": receiver.url, "secret": secret})  # fmt: skip
        assert hook.status_code == 200, hook.text
        kept, refused = place_order(stack, tenant, supplier_id, 2), place_order(stack, tenant, supplier_id, 1)

        def awaiting() -> bool:
            items = requests.get(f"{stack.api_url}/supplier-orders", params={"status": "AWAITING_ACCEPTANCE"},
                                 headers=supplier, timeout=10).json()["items"]  # fmt: skip
            return len(items) == 2

        wait_until(awaiting, timeout=30, what="two orders awaiting acceptance")

        page.goto(f"{stack.api_url}/portal/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        screen.shot("portal-1-sign-in")
        tab_to(page, "e.id === 'token'")
        page.keyboard.insert_text(stack.issuer.mint(tenant, "supplier", supplier_id=supplier_id))
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Your marketplace account")).to_be_focused()
        # The header names the supplier (its id is in the registration summary and in brackets).
        expect(page.locator("#whoami")).to_have_text(f"Signed in as Globex GmbH (supplier {supplier_id})")
        assert "eyJ" not in page.content()  # the token is in sessionStorage, not in the page
        expect(page.locator("#registration-status")).to_have_text("APPROVED")
        expect(page.locator("#registration-flags")).to_have_text("No flags.")
        listing = page.locator("#listings-table tbody tr")
        expect(listing).to_have_count(1)
        # The last cell: the supplier takes its own listing off sale from here (D40).
        expect(listing.locator("td")).to_have_text(
            ["LAMP-1", "Desk lamp", "ACTIVE", "2", "49.9 EUR", "", re.compile(r"^Delist LAMP-1")]
        )
        orders = page.locator("#orders-table tbody tr")
        expect(orders).to_have_count(2)
        expect(page.locator("#webhook")).to_have_text(f"Your webhook: {receiver.url}")
        screen.shot("portal-2-home")

        # Accept one (keyboard), reject the other with a reason.
        page.get_by_role("button", name=f"Accept order {kept}").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("status")).to_have_text(f"Order {kept} is ACCEPTED.")
        expect(orders).to_have_count(1)
        # The accepted order shows where to ship it: its own customer order's address.
        to_ship = page.locator("#accepted-table tbody tr")
        expect(to_ship).to_have_count(1)
        expect(to_ship.locator("td").nth(0)).to_contain_text(kept)
        expect(to_ship.locator("td").nth(1)).to_contain_text("ACCEPTED")
        expect(to_ship.locator("td").nth(2)).to_have_text("2 \u00d7 LAMP-1")
        expect(to_ship.locator("td").nth(3)).to_have_text("Ada, 1 Analytical St, N1 9GU London, GB")
        toggle = page.get_by_role("button", name=f"Reject order {refused}…")
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        reason = page.get_by_label(f"Reason for rejecting order {refused}")
        expect(reason).to_be_focused()
        page.get_by_role("button", name="Confirm the rejection").click()
        expect(page.get_by_role("alert")).to_contain_text("reason is required")
        reason.fill("the lamp is discontinued")
        screen.shot("portal-3-rejecting")
        page.get_by_role("button", name="Confirm the rejection").click()
        expect(page.get_by_role("status")).to_have_text(f"Order {refused} is REJECTED.")
        expect(page.locator("#orders-none")).to_be_visible()
        # The rejection released its unit; the accepted order keeps its two.
        expect(listing.locator("td").nth(3)).to_have_text("3")

        # Each order made two events (awaiting acceptance, the decision), each delivered.
        def delivered() -> list[list[str]] | None:
            page.get_by_role("button", name="Refresh everything").click()
            expect(page.get_by_role("button", name="Refresh everything")).to_be_enabled()
            rows = page.locator("#deliveries-table tbody tr")
            found = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
            # The supplier's and its listing's own events (D39) are listed too; the orders' are four.
            orders = [r for r in found if r[0].startswith("supplier_order.")]
            return found if len(orders) == 4 and all(r[1] == "DELIVERED" for r in found) else None

        rows = wait_until(delivered, timeout=30, interval=0.3, what="four delivered order webhooks")
        assert sorted(r[0] for r in rows if r[0].startswith("supplier_order.")) == sorted(
            ["supplier_order.awaiting_acceptance"] * 2 + ["supplier_order.accepted", "supplier_order.rejected"]
        )  # fmt: skip
        assert {r[0] for r in rows} - {r[0] for r in rows if r[0].startswith("supplier_order.")} <= {
            "supplier.approved", "listing.active"}  # fmt: skip
        # One delivery per event (a retry would repeat its delivery id, never add one).
        assert len({r["headers"]["X-Marketplace-Delivery"] for r in receiver.requests}) == len(rows)
        screen.shot("portal-4-decided-deliveries")
    finally:
        receiver.close()

    api = requests.get(f"{stack.api_url}/supplier-orders", headers=supplier, timeout=10).json()["items"]
    assert sorted(o["status"] for o in api) == ["ACCEPTED", "REJECTED"]
    assert screen.errors == []
    # The page's config.json is served (locally: the API at the page's origin), as on AWS.
    assert [u for u in screen.not_found if u.endswith("/config.json")] == []


def test_a_flagged_supplier_sees_its_flags(stack, tenant, screen):
    page = screen.page
    supplier_id = register(stack, tenant, "FLAGGED", taxId="DE12345")
    page.goto(f"{stack.api_url}/portal/")
    page.get_by_label("Supplier token").fill(stack.issuer.mint(tenant, "supplier", supplier_id=supplier_id))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#registration-status")).to_have_text("FLAGGED")
    expect(page.locator("#registration-flags li")).to_have_text(
        [re.compile(r"taxId\s+invalid format for DE: a DE VAT number is DE followed by 9 digits")]
    )
    expect(page.locator("#listings-none")).to_be_visible()
    expect(page.locator("#orders-none")).to_be_visible()
    expect(page.locator("#webhook")).to_have_text("You have no webhook registered.")
    screen.shot("portal-5-flagged")
    # An admin token is not a supplier's.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Supplier token").fill(stack.issuer.mint(tenant, "admin"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("This token is not for the supplier role.")
    assert screen.errors == []


def test_a_supplier_is_told_how_to_fix_a_flagged_listing_and_to_register_a_webhook(stack, tenant, screen):
    page = screen.page
    supplier_id = register(stack, tenant, "APPROVED", legalName="Hinweis GmbH",
                           taxId=f"DE{uuid.uuid4().int % 10**9:09d}")  # fmt: skip
    supplier = bearer(stack, tenant, "supplier", supplier_id)
    for body, status in (
        (listing(sku="SOFA-1", title="Gilded sofa", price={"amount": 25000, "currency": "EUR"}), "FLAGGED"),
        (listing(sku="KNIFE-1", title="Hunting knife", category="weapons", quantity=7), "REJECTED"),
        (listing(sku="LAMP-1", quantity=3), "ACTIVE"),
    ):
        url = f"{stack.api_url}/suppliers/{supplier_id}/products"
        assert requests.post(url, json=body, headers=supplier, timeout=10).status_code == 202
        wait_until(lambda u=f"{url}/{body['sku']}", s=status: requests.get(u, headers=supplier, timeout=10).json()
                   .get("status") == s, timeout=30, what=f"{body['sku']} {status}")  # fmt: skip

    page.goto(f"{stack.api_url}/portal/")
    page.get_by_label("Supplier token").fill(stack.issuer.mint(tenant, "supplier", supplier_id=supplier_id))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#whoami")).to_have_text(f"Signed in as Hinweis GmbH (supplier {supplier_id})")
    flagged = page.locator("#listings-table tbody tr", has_text="SOFA-1")
    expect(flagged.locator(".listing-hint")).to_have_text(
        f"To fix it, change the flagged fields: PATCH /suppliers/{supplier_id}/products/SOFA-1 with your token. "
        "The marketplace validates it again at its next correction drain."
    )
    rejected = page.locator("#listings-table tbody tr", has_text="KNIFE-1")
    expect(rejected.locator("td").nth(3)).to_have_text("none (rejected)")
    expect(rejected.locator(".listing-hint")).to_have_count(0)
    expect(page.locator("#webhook")).to_have_text("You have no webhook registered.")
    expect(page.locator("#webhook-hint")).to_contain_text(f"PUT /suppliers/{supplier_id}/webhook")
    expect(page.locator("#accepted-none")).to_be_visible()
    screen.shot("portal-6-hints")

    # The supplier takes its own active listing off sale with a reason, and puts it back (D40).
    page.get_by_role("button", name="Delist LAMP-1…").click()
    page.get_by_label("Reason to delist LAMP-1").fill("out of season")
    page.get_by_role("button", name="Confirm: delist LAMP-1").click()
    lamp = page.locator("#listings-table tbody tr", has_text="LAMP-1")
    expect(lamp.locator(".status-badge")).to_have_text("DELISTED")
    expect(lamp.locator("td").nth(2)).to_contain_text("out of season")
    expect(lamp.locator("td").nth(3)).to_have_text("none (delisted; 3 in stock)")
    page.get_by_role("button", name="Relist LAMP-1…").click()
    page.get_by_label("Reason to relist LAMP-1").fill("back in season")
    page.get_by_role("button", name="Confirm: relist LAMP-1").click()
    expect(lamp.locator(".status-badge")).to_have_text("ACTIVE")
    expect(page.get_by_role("status")).to_have_text("Listing LAMP-1 is ACTIVE.")
    # Suspended by an admin: the supplier sees it, with the reason and what it means.
    suspended = requests.post(f"{stack.api_url}/suppliers/{supplier_id}/suspend", json={"reason": "unpaid fees"},
                              headers=bearer(stack, tenant, "admin"), timeout=10)  # fmt: skip
    assert suspended.status_code == 200, suspended.text
    page.get_by_role("button", name="Refresh everything").click()
    expect(page.locator("#registration-status")).to_have_text("SUSPENDED")
    expect(page.locator("#registration")).to_contain_text("unpaid fees")
    expect(page.locator("#suspended-note")).to_have_text(
        "your listings cannot be ordered; orders you had accepted go on"
    )

    # Once a webhook is registered the hint goes.
    hook = requests.put(f"{stack.api_url}/suppliers/{supplier_id}/webhook", headers=supplier, timeout=10,
                        json={"url": "https://hooks.example.com/m", "secret": f"secret-{uuid.uuid4().hex}"})  # fmt: skip
    assert hook.status_code == 200, hook.text
    page.get_by_role("button", name="Refresh everything").click()
    expect(page.locator("#webhook")).to_have_text("Your webhook: https://hooks.example.com/m")
    expect(page.locator("#webhook-hint")).to_be_hidden()
    assert screen.errors == []


def test_a_supplier_takes_an_order_from_acceptance_to_its_returns_in_the_portal(stack, tenant, screen):
    """One test, several steps: the setup (an approved supplier, two active listings, two orders
    through the intake) costs more than each step."""
    page = screen.page
    supplier_id = register(stack, tenant, "APPROVED", taxId=f"DE{uuid.uuid4().int % 10**9:09d}")
    supplier, retailer = bearer(stack, tenant, "supplier", supplier_id), bearer(stack, tenant, "retailer")
    products = f"{stack.api_url}/suppliers/{supplier_id}/products"
    for body in (LISTING, BULB):
        assert requests.post(products, json=body, headers=supplier, timeout=10).status_code == 202
    for sku in ("LAMP-1", "BULB-1"):
        wait_until(lambda s=sku: requests.get(f"{products}/{s}", headers=supplier, timeout=10).json()["status"]
                   == "ACTIVE", timeout=30, what=f"active {sku}")  # fmt: skip
    kept, dropped = (
        place_order(stack, tenant, supplier_id, 2, bulbs=1),
        place_order(stack, tenant, supplier_id, 1),
    )
    orders_url = f"{stack.api_url}/supplier-orders"

    def awaiting() -> dict[str, str] | None:
        items = requests.get(orders_url, params={"status": "AWAITING_ACCEPTANCE"}, headers=supplier,
                             timeout=10).json()["items"]  # fmt: skip
        return {o["customerOrderId"]: o["supplierOrderId"] for o in items} if len(items) == 2 else None

    ids = wait_until(awaiting, timeout=30, what="two orders awaiting acceptance")

    posts: list[tuple[str, str | None]] = []  # each POST the page sends, with its Idempotency-Key
    page.on(
        "request", lambda r: r.method == "POST" and posts.append((r.url, r.headers.get("idempotency-key")))
    )
    page.goto(f"{stack.api_url}/portal/")
    page.get_by_label("Supplier token").fill(stack.issuer.mint(tenant, "supplier", supplier_id=supplier_id))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#orders-table tbody tr")).to_have_count(2)
    status, alert = page.get_by_role("status"), page.get_by_role("alert")

    # Line by line: the bulb refused; without its reason the API names the field, shown on it.
    page.get_by_role("button", name=f"Decide order {kept} line by line…").click()
    page.get_by_label("Refuse 1 \u00d7 BULB-1").check()
    page.get_by_role("button", name="Send the line decisions").click()
    expect(alert).to_contain_text("lines.1.reason is required to refuse a line")
    reason = page.get_by_label("Reason for refusing BULB-1")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(reason).to_be_focused()
    reason.fill("not in this colour")
    screen.shot("portal-7-line-decisions")
    page.get_by_role("button", name="Send the line decisions").click()
    expect(status).to_have_text(f"Order {kept} is ACCEPTED.")
    row = page.locator("#accepted-table tbody tr", has_text=kept)
    expect(row.locator("td").nth(2).locator("li")).to_have_text(
        ["2 \u00d7 LAMP-1", "1 \u00d7 BULB-1, refused: not in this colour"]
    )
    bulbs = page.locator("#listings-table tbody tr", has_text="BULB-1").locator("td").nth(3)
    expect(bulbs).to_have_text("20")  # the refused line's stock is back

    # The other order accepted whole, then cancelled with a reason: its lamp is back on sale.
    page.get_by_role("button", name=f"Accept order {dropped}").click()
    expect(status).to_have_text(f"Order {dropped} is ACCEPTED.")
    page.get_by_role("button", name=f"Cancel order {dropped}…").click()
    page.get_by_label(f"Reason for cancelling order {dropped}").fill("the lamp broke in the warehouse")
    page.get_by_role("button", name="Confirm the cancellation").click()
    expect(status).to_have_text(f"Order {dropped} is CANCELLED.")
    expect(page.locator("#accepted-table tbody tr")).to_have_count(1)
    lamps = page.locator("#listings-table tbody tr", has_text="LAMP-1").locator("td").nth(3)
    expect(lamps).to_have_text("3")
    cancelled = requests.get(f"{orders_url}/{ids[dropped]}", headers=supplier, timeout=10).json()
    assert (cancelled["status"], cancelled["statusReason"]) == (
        "CANCELLED",
        "the lamp broke in the warehouse",
    )

    # Two parcels, each with its tracking; a tracking URL that is not https is refused, naming it.
    page.get_by_role("button", name=f"Add a shipment to order {kept}…").click()
    page.get_by_label(f"Carrier of the parcel for order {kept}").fill("DHL")
    page.get_by_label("Tracking number").fill("JD014600003")
    page.get_by_label("Tracking URL (optional, https)").fill("https://track.example/JD014600003")
    page.get_by_label("Units of LAMP-1 in this parcel (2 left to ship)").fill("1")
    page.get_by_role("button", name="Add the shipment").click()
    expect(status).to_have_text(f"Shipment added: order {kept} is PARTIALLY_SHIPPED.")
    expect(row.locator("td").nth(1)).to_contain_text("PARTIALLY_SHIPPED")
    expect(row.locator("td").nth(4).locator("li")).to_have_text(["DHL JD014600003: 1 \u00d7 LAMP-1"])
    expect(row.get_by_role("link", name="JD014600003")).to_have_attribute(
        "href", "https://track.example/JD014600003"
    )
    page.get_by_role("button", name=f"Add a shipment to order {kept}…").click()
    page.get_by_label(f"Carrier of the parcel for order {kept}").fill("DHL")
    page.get_by_label("Tracking number").fill("JD014600004")
    url = page.get_by_label("Tracking URL (optional, https)")
    url.fill("http://track.example/JD014600004")
    page.get_by_role("button", name="Add the shipment").click()
    expect(alert).to_contain_text("trackingUrl")
    expect(url).to_have_attribute("aria-invalid", "true")
    screen.shot("portal-8-shipment-refused")
    url.fill("")
    # The API makes the shipment but its answer is lost: pressing again sends the same key, and the
    # API answers with the same shipment instead of making a third.
    shipments_url = f"{orders_url}/{ids[kept]}/shipments"
    lost = []

    def lose_the_answer(route: Any) -> None:
        lost.append(route.fetch().status)
        route.abort()

    page.route(shipments_url, lose_the_answer, times=1)
    page.get_by_role("button", name="Add the shipment").click()  # the last lamp, offered by default
    expect(alert).to_contain_text("the API could not be reached")
    assert lost == [201]
    page.get_by_role("button", name="Add the shipment").click()
    expect(status).to_have_text(f"Shipment added: order {kept} is SHIPPED.")
    expect(row.locator("td").nth(1)).to_contain_text("SHIPPED")
    expect(row.locator("td").nth(4).locator("li")).to_have_text(
        ["DHL JD014600003: 1 \u00d7 LAMP-1", "DHL JD014600004: 1 \u00d7 LAMP-1"]
    )
    screen.shot("portal-9-shipped")
    shipments = requests.get(f"{orders_url}/{ids[kept]}/shipments", headers=retailer, timeout=10).json()[
        "items"
    ]
    assert [s["trackingNumber"] for s in shipments] == ["JD014600003", "JD014600004"]
    page.get_by_role("button", name=f"Mark order {kept} delivered").click()
    expect(status).to_have_text(f"Order {kept} is DELIVERED.")
    expect(page.locator("#accepted-none")).to_be_visible()
    expect(page.locator("#returns-none")).to_be_visible()

    # The retailer asks two returns, one lamp each: one accepted then received (the refund shown),
    # the other refused with a reason.
    returned = []
    for why in ("arrived broken", "changed my mind"):
        asked = requests.post(f"{orders_url}/{ids[kept]}/returns", headers=retailer, timeout=10,
                              json={"lines": [{"sku": "LAMP-1", "quantity": 1}], "reason": why})  # fmt: skip
        assert asked.status_code == 201, asked.text
        returned.append(asked.json()["returnId"])
    page.get_by_role("button", name="Refresh everything").click()
    returns = page.locator("#returns-table tbody tr")
    expect(returns).to_have_count(2)
    broken, unwanted = (page.locator("#returns-table tbody tr", has_text=r) for r in returned)
    expect(broken.locator("td").nth(2)).to_have_text("arrived broken")
    expect(broken.locator("td").nth(3)).to_have_text("REQUESTED")
    label = f"return {returned[0][:8]} of order {kept}"
    page.get_by_role("button", name=f"Accept {label}").click()
    expect(status).to_have_text(f"The {label} is ACCEPTED.")
    page.get_by_role("button", name=f"Mark {label} received").click()
    expect(status).to_have_text(f"The {label} is RECEIVED.")
    expect(broken.locator("td").nth(3)).to_have_text("RECEIVED")
    expect(broken.locator("td").nth(4)).to_have_text("49.9 EUR")
    label = f"return {returned[1][:8]} of order {kept}"
    page.get_by_role("button", name=f"Refuse {label}…").click()
    page.get_by_label(f"Reason for refusing {label}").fill("the lamp was used")
    page.get_by_role("button", name="Confirm the refusal").click()
    expect(status).to_have_text(f"The {label} is REFUSED.")
    expect(unwanted.locator("td").nth(3).locator(".status-badge")).to_have_text("REFUSED")
    expect(unwanted.locator("td").nth(3).locator(".hint")).to_have_text("the lamp was used")
    expect(unwanted.get_by_role("button")).to_have_count(0)
    screen.shot("portal-10-returns")
    answered = requests.get(f"{stack.api_url}/returns/{returned[0]}", headers=retailer, timeout=10).json()
    assert (answered["status"], answered["refund"]["amount"]) == ("RECEIVED", 49.9)

    # Its performance, counted from these orders' events a moment after each (D46): both accepted
    # within minutes, one cancelled by the supplier, the other shipped on time, delivered, returned,
    # refunded (the received return) and an incident (the refused one).
    counts = {"decided": 2, "accepted": 2, "refused": 0, "expired": 0, "shipped": 1, "shippedLate": 0,
              "cancelled": 1, "delivered": 1, "returned": 1, "refunded": 1, "incidents": 1}  # fmt: skip
    performance_url = f"{stack.api_url}/suppliers/{supplier_id}/performance"
    wait_until(lambda: requests.get(performance_url, headers=supplier, timeout=10).json()["last30Days"]["counts"]
               == counts, timeout=30, what="the orders counted in the performance")  # fmt: skip
    page.get_by_role("button", name="Refresh everything").click()
    expect(page.locator("#performance-table td[data-days='30']")).to_have_text([
        "100.0 % (2 of 2 decided)", "0.0 % (0 of 2 decided)", "0.0 % (0 of 2 decided)", "0.0 % (0 of 1 shipped)",
        "50.0 % (1 of 2 accepted)", "100.0 % (1 of 1 delivered)", "100.0 % (1 of 1 delivered)",
        "100.0 % (1 of 1 delivered)", "under 5 min"])  # fmt: skip
    screen.shot("portal-11-performance")

    # Every POST carried a key; only the retry of the lost answer repeated one.
    keyed = [(url.removeprefix(orders_url), key) for url, key in posts]
    assert all(key for _, key in keyed), keyed
    keys = [key for _, key in keyed]
    assert [url for url, key in keyed if keys.count(key) > 1] == [f"/{ids[kept]}/shipments"] * 2
    assert screen.errors == []

"""The admin console in headless Chromium: a flagged supplier is fixed through the page, drained and
ends APPROVED with its audit trail, then is suspended and reinstated; another is rejected with a reason;
sign-in and the fix form by
keyboard alone; API errors shown with their field and reason; an incident (a refused return) shown
in the queue with both sides' reasons and decided with a refund."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.conftest import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

SUPPLIER = {
    "legalName": "Globex GmbH", "taxId": "DE123456789", "country": "DE", "contactEmail": "einkauf@globex.de",
    "website": "https://globex.de", "phone": "+49 30 1234567",
    "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postalCode": "10115", "country": "DE"},
}  # fmt: skip


def bearer(stack: Any, tenant: str, role: str, supplier_id: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.issuer.mint(tenant, role, supplier_id=supplier_id)}"}


def register(stack: Any, tenant: str, status: str, **fields: Any) -> str:
    retailer = bearer(stack, tenant, "retailer")
    response = requests.post(
        f"{stack.api_url}/suppliers", json={**SUPPLIER, **fields}, headers=retailer, timeout=10
    )
    assert response.status_code == 202, response.text
    supplier_id = response.json()["supplierId"]
    wait_until(
        lambda: (
            requests.get(f"{stack.api_url}/suppliers/{supplier_id}", headers=retailer, timeout=10).json()[
                "status"
            ]
            == status
        ),
        timeout=30,
        what=f"{supplier_id} {status}",
    )
    return supplier_id


def tab_to(page: Any, predicate: str, presses: int = 15) -> None:
    """Press Tab until the focused element matches the JavaScript predicate (bounded)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const e = document.activeElement; return !!({predicate}); }})()"):
            return
    raise AssertionError(f"{predicate} not reached with {presses} Tab presses")


def audit_rows(page: Any, count: int) -> list[list[str]]:
    """The audit table once it has ``count`` rows (the audit writer runs from the stream)."""

    def loaded() -> list[list[str]] | None:
        page.get_by_role("button", name="Refresh audit trail").click()
        expect(page.get_by_role("button", name="Refresh audit trail")).to_be_enabled()
        rows = page.locator("#audit-table tbody tr")
        found = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
        return found if len(found) >= count else None

    return wait_until(loaded, timeout=30, interval=0.3, what=f"{count} audit entries")


def test_a_flagged_supplier_is_fixed_through_the_console_and_ends_approved(stack, tenant, screen):
    page = screen.page
    fixable = register(stack, tenant, "FLAGGED", taxId="DE12345", legalName="Fixable GmbH")
    doomed = register(stack, tenant, "FLAGGED", taxId="DE999", legalName="Doomed GmbH")

    page.goto(f"{stack.api_url}/console/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screen.shot("console-1-sign-in")

    # Sign in by keyboard: Tab to the labelled token field, paste, Enter.
    tab_to(page, "e.id === 'token'")
    expect(page.get_by_label("Admin token")).to_be_focused()
    page.keyboard.insert_text(stack.issuer.mint(tenant, "admin"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Correction queue")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Signed in.")
    # The token lives in sessionStorage, never in the page.
    assert "eyJ" not in page.content()

    queue = page.locator("#queue-table tbody tr")
    expect(queue).to_have_count(2)
    row = page.locator(f'#queue-table tr[data-record-id="{fixable}"]')
    expect(row).to_contain_text("Supplier")
    expect(row).to_contain_text("taxId invalid format for DE")
    expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^\d+ s$|^\d+ min$"))
    screen.shot("console-2-queue")

    # Open the record by keyboard.
    row.get_by_role("button", name=re.compile(f"Open Fixable GmbH \\({fixable}\\)")).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=f"Supplier Fixable GmbH ({fixable})")).to_be_focused()
    expect(page.locator("#record-status")).to_have_text("FLAGGED")
    tax_id = page.get_by_label("taxId", exact=True)
    expect(tax_id).to_have_attribute("aria-invalid", "true")
    expect(tax_id).to_have_accessible_description(re.compile("Flagged: invalid format for DE"))
    screen.shot("console-3-record-flagged")

    # A bad value comes back from the API with its field and reason, shown to the admin.
    email = page.get_by_label("contactEmail", exact=True)
    email.fill("not an email")
    page.get_by_role("button", name="Save the fix").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Saving the fix")
    expect(alert.locator("li")).to_contain_text(["contactEmail"])
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_be_focused()
    screen.shot("console-4-field-error")
    email.fill(SUPPLIER["contactEmail"])

    # Fix by keyboard: Tab into the flagged field (first in the form), replace it, Enter submits.
    page.locator("#record-heading").focus()
    tab_to(page, "e.dataset && e.dataset.path === 'taxId'")
    page.keyboard.press("Control+A")
    page.keyboard.type("DE987654321")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text(re.compile(r"Saved: version \d+\. Re-run the drain"))
    expect(page.get_by_role("alert")).to_be_hidden()

    page.locator("#record-drain").click()
    expect(page.locator("#record-status")).to_have_text("APPROVED", timeout=30_000)
    expect(page.get_by_role("status")).to_have_text("Supplier is APPROVED.")
    rows = audit_rows(page, 4)
    assert [(r[2], r[4], r[1].split(":")[0]) for r in rows] == [
        ("created", "PENDING", "retailer"),
        ("changed", "FLAGGED", "workflow"),
        ("changed", "FLAGGED", "admin"),
        ("changed", "APPROVED", "workflow"),
    ]
    assert "taxId" in rows[2][3]
    screen.shot("console-5-record-approved-audit")

    # The API agrees.
    record = requests.get(
        f"{stack.api_url}/suppliers/{fixable}", headers=bearer(stack, tenant, "admin"), timeout=10
    ).json()
    assert (record["status"], record["taxId"]) == ("APPROVED", "DE987654321")

    # Back to the queue: only the other one is left; reject it with a reason.
    page.get_by_role("button", name="Back to the queue").click()
    expect(queue).to_have_count(1)
    page.get_by_role("button", name=re.compile(f"Open Doomed GmbH \\({doomed}\\)")).click()
    page.get_by_role("button", name="Reject the record").click()
    expect(page.get_by_role("alert")).to_contain_text("reason is required")
    page.get_by_label("Reason for rejecting").fill("no such company in the trade register")
    page.get_by_role("button", name="Reject the record").click()
    expect(page.locator("#record-status")).to_have_text("REJECTED")
    expect(page.locator("#record-summary")).to_contain_text("no such company in the trade register")
    expect(page.locator("#reject-form")).to_be_hidden()
    expect(page.locator("#closed-note")).to_have_text("This record is REJECTED: there is nothing to correct.")
    # Nothing to drain or retry on a closed record: the buttons are gone, not just disabled.
    expect(page.get_by_role("button", name="Re-run drain")).to_be_hidden()
    expect(page.get_by_role("button", name="Validate again (retry)")).to_be_hidden()
    rows = audit_rows(page, 3)
    assert (rows[-1][1].split(":")[0], rows[-1][4]) == ("admin", "REJECTED")
    screen.shot("console-6-record-rejected")

    page.get_by_role("button", name="Back to the queue").click()
    expect(page.locator("#queue-empty")).to_be_visible()
    screen.shot("console-7-queue-empty")

    # The approved supplier, opened by its id, is suspended with a reason and reinstated (D40).
    page.get_by_label("Supplier id").fill(fixable)
    page.get_by_role("button", name="Open", exact=True).click()
    expect(page.locator("#record-status")).to_have_text("APPROVED")
    # Its performance (D46): no order yet, so no rate, in either window.
    performance = page.locator("#performance-table")
    expect(performance.locator("td[data-rate=acceptanceRate]")).to_have_text(
        ["none yet (0 of 0 decided)"] * 2
    )
    expect(performance.locator("td[data-rate=medianAcceptanceDelay]")).to_have_text(
        ["none yet (no order accepted)"] * 2
    )
    page.get_by_role("button", name="Suspend the supplier").click()
    expect(page.get_by_role("alert")).to_contain_text("reason is required")
    page.get_by_label("Reason", exact=True).fill("unpaid marketplace fees")
    page.get_by_role("button", name="Suspend the supplier").click()
    expect(page.locator("#record-status")).to_have_text("SUSPENDED")
    expect(page.locator("#record-summary")).to_contain_text("unpaid marketplace fees")
    expect(page.get_by_role("status")).to_have_text("Supplier is SUSPENDED.")
    screen.shot("console-8-suspended")
    page.get_by_label("Reason", exact=True).fill("fees paid")
    page.get_by_role("button", name="Reinstate the supplier").click()
    expect(page.locator("#record-status")).to_have_text("APPROVED")
    rows = audit_rows(page, 6)
    assert [(r[1].split(":")[0], r[4]) for r in rows[-2:]] == [("admin", "SUSPENDED"), ("admin", "APPROVED")]

    # Signing out forgets the token.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert screen.errors == []
    # The page's config.json is served (locally: the API at the page's origin), as on AWS.
    assert [u for u in screen.not_found if u.endswith("/config.json")] == []
    assert all(p.stat().st_size > 1000 for p in screen.saved) and len(screen.saved) == 8


def test_the_console_refuses_a_token_that_is_not_an_admins(stack, tenant, screen):
    page = screen.page
    page.goto(f"{stack.api_url}/console/")
    page.get_by_label("Admin token").fill(stack.issuer.mint(tenant, "retailer"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("token This token is not for the admin role.")
    expect(page.get_by_label("Admin token")).to_have_attribute("aria-invalid", "true")
    # A well-formed admin token the API does not trust (signed with another key) is refused by the API.
    forged = f"{stack.issuer.mint(tenant, 'admin')[:-8]}AAAAAAAA"
    page.get_by_label("Admin token").fill(forged)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("The API refused the token")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert screen.errors == []


def imported_flagged_listing(stack: Any, tenant: str, supplier_id: str) -> None:
    """One listing through the import API (so it carries its importId), priced over its category's
    bound, so the listing workflow flags it."""
    supplier = bearer(stack, tenant, "supplier", supplier_id)
    base = f"{stack.api_url}/suppliers/{supplier_id}/imports"
    created = requests.post(base, json={"fileName": "lamps.csv"}, headers=supplier, timeout=10).json()
    csv = (
        "sku,title,category,price,currency,quantity,images,attributes.material\n"
        "LAMP-9,Floor lamp,home,25000,EUR,4,https://cdn.example.com/a.webp|https://cdn.example.com/b.webp,steel\n"
    )
    put = requests.put(
        created["uploadUrl"], data=csv.encode(), headers={"Content-Type": "text/csv"}, timeout=10
    )
    assert put.status_code == 200, put.text
    started = requests.post(f"{base}/{created['importId']}/start", headers=supplier, timeout=10)
    assert started.status_code == 202, started.text
    wait_until(
        lambda: requests.get(f"{stack.api_url}/suppliers/{supplier_id}/products/LAMP-9", headers=supplier,
                             timeout=10).json().get("status") == "FLAGGED",
        timeout=60, what="flagged imported listing",
    )  # fmt: skip


def test_a_flagged_listing_names_its_supplier_and_is_fixed_with_its_images_one_per_line(
    stack, tenant, screen
):
    page = screen.page
    supplier_id = register(stack, tenant, "APPROVED", legalName="Lampen Werk GmbH",
                           taxId=f"DE{uuid.uuid4().int % 10**9:09d}")  # fmt: skip
    imported_flagged_listing(stack, tenant, supplier_id)
    page.goto(f"{stack.api_url}/console/")
    page.get_by_label("Admin token").fill(stack.issuer.mint(tenant, "admin"))
    page.get_by_role("button", name="Sign in").click()

    # The queue and the record name the listing's supplier, not only its id.
    row = page.locator("#queue-table tbody tr", has_text="Floor lamp")
    expect(row).to_contain_text(f"Listing of Lampen Werk GmbH ({supplier_id})")
    row.get_by_role("button", name=re.compile("Open Floor lamp")).click()
    expect(page.locator("#record-supplier")).to_have_text(f"Lampen Werk GmbH ({supplier_id})")
    # The import's id is the workflow's business, not a field to fix; images are one URL per line.
    expect(page.locator('[data-path="importId"]')).to_have_count(0)
    images = page.get_by_label("images (one per line)")
    expect(images).to_have_value("https://cdn.example.com/a.webp\nhttps://cdn.example.com/b.webp")
    page.get_by_label("price.amount", exact=True).fill("249")
    images.fill(
        "https://cdn.example.com/a.webp\nhttps://cdn.example.com/b.webp\nhttps://cdn.example.com/c.webp\n"
    )
    page.get_by_role("button", name="Save the fix").click()

    # "Saved, re-run the drain" is said by the drain button, where the admin is, and focus is on it.
    note = page.locator("#fix-note")
    expect(note).to_have_text(re.compile(r"Saved: version \d+\. Re-run the drain"))
    expect(note).to_be_in_viewport()
    expect(page.locator("#record-drain")).to_be_focused()
    screen.shot("console-8-listing-saved")
    page.keyboard.press("Enter")
    expect(page.locator("#record-status")).to_have_text("ACTIVE", timeout=30_000)
    expect(note).to_be_hidden()
    expect(page.get_by_role("button", name="Re-run drain")).to_be_hidden()
    expect(page.get_by_role("button", name="Validate again (retry)")).to_be_hidden()
    admin = bearer(stack, tenant, "admin")
    record = requests.get(
        f"{stack.api_url}/suppliers/{supplier_id}/products/LAMP-9", headers=admin, timeout=10
    ).json()
    assert record["images"] == [f"https://cdn.example.com/{n}.webp" for n in "abc"]
    assert record["price"]["amount"] == 249 and record["importId"]

    # "Refresh record" refreshes the audit trail too: a change made elsewhere appears in it.
    entries = page.locator("#audit-table tbody tr")
    expect(entries.first).to_be_visible()
    before = entries.count()
    supplier = bearer(stack, tenant, "supplier", supplier_id)
    changed = requests.patch(f"{stack.api_url}/suppliers/{supplier_id}/products/LAMP-9", json={"quantity": 9},
                             headers={**supplier, "If-Match": str(record["version"])}, timeout=10)  # fmt: skip
    assert changed.status_code == 200, changed.text

    def refreshed() -> bool:
        page.get_by_role("button", name="Refresh record").click()
        expect(page.get_by_role("button", name="Refresh record")).to_be_enabled()
        return entries.count() > before

    wait_until(refreshed, timeout=30, interval=0.3, what="a new audit entry after Refresh record")
    screen.shot("console-9-listing-refreshed")
    assert screen.errors == []


def refused_return(stack: Any, tenant: str, supplier_id: str) -> tuple[str, str]:
    """(supplier order id, return id) of a delivered order whose return of one lamp of two its
    supplier refused: an incident, through the API as the two sides make it."""
    api, retailer = stack.api_url, bearer(stack, tenant, "retailer")
    supplier = bearer(stack, tenant, "supplier", supplier_id)

    def ok(method: str, path: str, who: dict[str, str], body: Any = None) -> Any:
        answer = requests.request(method, f"{api}{path}", json=body, headers=who, timeout=10)
        assert answer.status_code < 300, answer.text
        return answer.json()

    def reaches(path: str, status: str, who: dict[str, str]) -> None:
        wait_until(lambda: ok("GET", path, who).get("status") == status, timeout=60, what=f"{path} {status}")

    price = {"amount": 129.95, "currency": "EUR"}
    listing = {"sku": "LAMP-7", "title": "Wall lamp", "category": "home", "price": price, "quantity": 5,
               "images": ["https://cdn.example.com/w.webp"], "attributes": {"material": "steel"}}  # fmt: skip
    ok("POST", f"/suppliers/{supplier_id}/products", supplier, listing)
    reaches(f"/suppliers/{supplier_id}/products/LAMP-7", "ACTIVE", supplier)
    ship_to = {"name": "Ada Lovelace", "line1": "1 Analytical St", "city": "London", "postalCode": "N1 9GU",
               "country": "GB"}  # fmt: skip
    line = {"supplierId": supplier_id, "sku": "LAMP-7", "quantity": 2, "unitPrice": price}
    placed = ok("POST", "/orders", retailer, {"customerOrderId": f"web-{uuid.uuid4().hex[:8]}",
                                              "lines": [line], "shipTo": ship_to})  # fmt: skip
    part = placed["supplierOrders"][0]["supplierOrderId"]
    reaches(f"/supplier-orders/{part}", "AWAITING_ACCEPTANCE", supplier)
    ok("POST", f"/supplier-orders/{part}/accept", supplier)
    parcel = {"carrier": "DHL", "trackingNumber": "JD0147", "lines": [{"sku": "LAMP-7", "quantity": 2}]}
    ok("POST", f"/supplier-orders/{part}/shipments", supplier, parcel)
    ok("POST", f"/supplier-orders/{part}/delivered", retailer)
    asked = {"lines": [{"sku": "LAMP-7", "quantity": 1}], "reason": "the glass is cracked"}
    return_id = ok("POST", f"/supplier-orders/{part}/returns", retailer, asked)["returnId"]
    ok("POST", f"/returns/{return_id}/refuse", supplier, {"reason": "cracked by the customer"})
    return part, return_id


def test_an_incident_is_shown_in_the_queue_and_decided_with_a_refund(stack, tenant, screen):
    page = screen.page
    supplier_id = register(stack, tenant, "APPROVED", legalName="Wandlicht GmbH",
                           taxId=f"DE{uuid.uuid4().int % 10**9:09d}")  # fmt: skip
    part, return_id = refused_return(stack, tenant, supplier_id)
    page.goto(f"{stack.api_url}/console/")
    page.get_by_label("Admin token").fill(stack.issuer.mint(tenant, "admin"))
    page.get_by_role("button", name="Sign in").click()

    # The incident is in the correction queue, with its supplier and both sides' reasons.
    row = page.locator(f'#queue-table tr[data-record-id="{return_id}"]')
    expect(row).to_contain_text(f"Incident (refused return) of Wandlicht GmbH ({supplier_id})")
    expect(row).to_contain_text("the retailer asked: the glass is cracked")
    expect(row).to_contain_text("the supplier refused: cracked by the customer")
    screen.shot("console-10-incident-queue")
    row.get_by_role("button", name=re.compile(f"Open {return_id}")).click()
    expect(page.locator("#record-status")).to_have_text("REFUSED")
    expect(page.locator("#record-retailer-reason")).to_have_text("the glass is cracked")
    expect(page.locator("#record-supplier-reason")).to_have_text("cracked by the customer")
    expect(page.locator("#record-lines")).to_have_text("1 x LAMP-7")
    # An incident is decided: no fix form, drain, retry or reject here.
    for hidden in ("Save the fix", "Re-run drain", "Validate again (retry)", "Reject the record"):
        expect(page.get_by_role("button", name=hidden)).to_be_hidden()
    # Its history is its order's: the refusal is in it.
    assert any(r[1].startswith("supplier:") for r in audit_rows(page, 7))

    # A decision needs its choice and its reason.
    decide = page.get_by_role("button", name="Record the decision")
    decide.click()
    expect(page.get_by_role("alert")).to_contain_text("choose refund or no refund")
    page.get_by_label("Refund the returned units").check()
    decide.click()
    expect(page.get_by_role("alert")).to_contain_text("reason")
    page.get_by_label("Reason for the decision").fill("the carrier's photos show the crack")
    screen.shot("console-11-incident-deciding")
    decide.click()
    expect(page.locator("#record-status")).to_have_text("REFUNDED")
    expect(page.get_by_role("status")).to_have_text("The incident is decided: the return is REFUNDED.")
    expect(page.locator("#record-decision")).to_have_text("Refund: the carrier's photos show the crack")
    expect(page.locator("#record-refund")).to_have_text("129.95 EUR")
    expect(page.locator("#closed-note")).to_have_text("This record is REFUNDED: there is nothing to decide.")
    expect(decide).to_be_hidden()
    # The decision is in the order's history, by the admin.
    assert audit_rows(page, 8)[-1][1].startswith("admin:")
    screen.shot("console-12-incident-decided")

    admin = bearer(stack, tenant, "admin")
    shown = requests.get(f"{stack.api_url}/returns/{return_id}", headers=admin, timeout=10).json()
    assert shown["status"] == "REFUNDED" and shown["refund"]["amount"] == 129.95
    queue = requests.get(f"{stack.api_url}/admin/corrections", headers=admin, timeout=10).json()["items"]
    assert return_id not in {i["recordId"] for i in queue}
    order = requests.get(f"{stack.api_url}/supplier-orders/{part}", headers=admin, timeout=10).json()
    assert order["returns"] == {return_id: "REFUNDED"}
    assert screen.errors == [] and screen.unlabelled() == []


def test_a_flagged_proposal_is_shown_as_its_suppliers_change_and_rejected_while_the_supplier_stays_approved(
    stack, tenant, screen
):
    """D41: an APPROVED supplier PATCHed to a malformed tax id and a free-mail contact keeps its
    status; the change waits in the queue as the supplier's change, with what its review found, and
    the admin rejects it: dropped, the supplier as it was."""
    page = screen.page
    supplier_id = register(stack, tenant, "APPROVED", legalName="Lichtwerk GmbH",
                           taxId=f"DE{uuid.uuid4().int % 10**9:09d}")  # fmt: skip
    retailer, url = bearer(stack, tenant, "retailer"), f"{stack.api_url}/suppliers/{supplier_id}"
    answer = requests.patch(url, json={"taxId": "DE12", "contactEmail": "lichtwerk@gmail.com"}, headers=retailer,
                            timeout=10)  # fmt: skip
    assert answer.status_code == 202, answer.text
    wait_until(lambda: requests.get(url, headers=retailer, timeout=10).json().get("proposal", {}).get("status")
               == "FLAGGED", timeout=30, what="the proposal flagged")  # fmt: skip
    page.goto(f"{stack.api_url}/console/")
    page.get_by_label("Admin token").fill(stack.issuer.mint(tenant, "admin"))
    page.get_by_role("button", name="Sign in").click()
    row = page.locator(f'#queue-table tr[data-record-id="{supplier_id}"]')
    expect(row).to_contain_text(f"Supplier change of Lichtwerk GmbH ({supplier_id})")
    row.get_by_role("button", name=f"Open {supplier_id}").click()
    expect(page.locator("#record-status")).to_have_text("FLAGGED")
    expect(page.locator("#record-flags")).to_contain_text("invalid format for DE")
    expect(page.get_by_role("button", name="Save the fix")).to_be_hidden()  # fixed by a PATCH of the supplier
    screen.shot("console-13-proposal-flagged")
    page.get_by_label("Reason for rejecting").fill("the trade register has the old tax id")
    page.get_by_role("button", name="Reject the record").click()
    expect(page.locator("#record-status")).to_have_text("REJECTED")
    expect(page.locator("#record-summary")).to_contain_text("the trade register has the old tax id")
    shown = requests.get(url, headers=retailer, timeout=10).json()
    assert (shown["status"], shown["contactEmail"], "proposal" in shown) == (
        "APPROVED",
        SUPPLIER["contactEmail"],
        False,
    )
    assert screen.errors == [] and screen.unlabelled() == []

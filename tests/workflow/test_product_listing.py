"""Product listing approval, every branch, in the local engine with the real handlers."""

from __future__ import annotations

import pytest

from marketplace.errors import Conflict
from marketplace.principal import Principal
from marketplace.products import Products
from marketplace.repository import Table
from tests.conftest import advance_until, wait_until
from tests.workflow.conftest import Onboarding, inbox, received

pytestmark = pytest.mark.workflow

LISTING = {
    "sku": "TV-55-OLED", "title": "55 inch OLED TV", "category": "electronics",
    "price": {"amount": 1299.99, "currency": "EUR"}, "quantity": 10,
    "images": ["https://cdn.example.com/tv/front.jpg", "https://cdn.example.com/tv/side.png"],
    "attributes": {"brand": "Acme", "model": "O55"},
}  # fmt: skip


class Listings:
    def __init__(self, onboarding: Onboarding) -> None:
        self.onboarding = onboarding
        self.products = Products(
            Table(onboarding.stack.physical_id("MarketplaceTable"), onboarding.stack.client("dynamodb"))
        )

    def supplier(self, approved: bool = True) -> str:
        supplier_id = self.onboarding.register(**({} if approved else {"taxId": "12345"}))
        self.onboarding.wait_status(supplier_id, "APPROVED" if approved else "FLAGGED")
        return supplier_id

    def as_supplier(self, supplier_id: str) -> Principal:
        return Principal("s-user", self.onboarding.tenant, frozenset({"supplier"}), supplier_id)

    def register(self, supplier_id: str, **overrides) -> str:
        return self.products.register(self.as_supplier(supplier_id), supplier_id, {**LISTING, **overrides})[
            "sku"
        ]

    def wait_status(self, supplier_id: str, sku: str, *statuses: str, min_version: int = 1) -> dict:
        def reached():
            record = self.products.get(self.onboarding.tenant, supplier_id, sku)
            return record if record["status"] in statuses and record["version"] >= min_version else None

        return wait_until(reached, what=f"listing {sku} in {statuses}")

    def execution_arn(self, supplier_id: str, sku: str, version: int = 1) -> str:
        from marketplace.keys import execution_name

        machine = self.onboarding.stack.physical_id("ProductListingStateMachine")
        return (
            machine.replace(":stateMachine:", ":execution:")
            + ":"
            + execution_name("PRODUCT", f"{supplier_id}/{sku}", version)
        )


@pytest.fixture
def listings(onboarding) -> Listings:
    return Listings(onboarding)


def test_a_valid_listing_of_an_approved_supplier_goes_active(listings):
    supplier_id = listings.supplier()
    sku = listings.register(supplier_id)
    record = listings.wait_status(supplier_id, sku, "ACTIVE")
    assert (record["version"], record["quantity"]) == (2, 10)
    arn = listings.execution_arn(supplier_id, sku)
    listings.onboarding.wait_execution(arn, "SUCCEEDED")
    assert listings.onboarding.entered(arn) == [
        "Prepare", "Validate", "Decide", "MarkApprovedOutOfIndex", "Approved",
    ]  # fmt: skip


def test_a_listing_of_a_supplier_still_onboarding_waits_for_a_human(listings):
    supplier_id = listings.supplier(approved=False)
    sku = listings.register(supplier_id)
    record = listings.wait_status(supplier_id, sku, "FLAGGED")
    assert record["flags"] == [{"field": "supplierId", "reason": "the supplier is FLAGGED, not yet APPROVED"}]


def test_a_listing_of_a_rejected_supplier_is_rejected(listings):
    supplier_id = listings.supplier(approved=False)
    onboarding = listings.onboarding
    onboarding.wait_entered(onboarding.execution_arn(supplier_id), "WaitForFix")
    onboarding.suppliers.reject(onboarding.principal("admin"), supplier_id, "fraud")
    sku = listings.register(supplier_id)
    record = listings.wait_status(supplier_id, sku, "REJECTED")
    assert record["flags"] == [
        {"field": "supplierId", "reason": "the supplier is REJECTED: it cannot sell here"}
    ]


def test_a_prohibited_category_is_rejected(listings):
    supplier_id = listings.supplier()
    sku = listings.register(supplier_id, category="weapons")
    assert listings.wait_status(supplier_id, sku, "REJECTED")["flags"][0]["field"] == "category"


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"price": {"amount": 25000, "currency": "EUR"}}, "price.amount", "must be between 1 and 20000"),
        ({"attributes": {"brand": "Acme"}}, "attributes.model", "is required for electronics"),
        ({"images": ["https://cdn.example.com/tv/front.jpg"]}, "images", "needs 2 to 10 images"),
        ({"images": ["http://cdn.example.com/a.jpg", "https://cdn.example.com/b.gif"]}, "images.0", "https"),
        ({"category": "garden"}, "category", "manual review"),
    ],
    ids=["price-bounds", "required-attribute", "image-count", "image-url", "unknown-category"],
)  # fmt: skip
def test_each_listing_rule_flags_the_listing_for_a_fix(listings, overrides, field, reason):
    supplier_id = listings.supplier()
    sku = listings.register(supplier_id, **overrides)
    record = listings.wait_status(supplier_id, sku, "FLAGGED")
    assert any(f["field"] == field and reason in f["reason"] for f in record["flags"]), record["flags"]
    (message,) = wait_until(
        lambda: listings.onboarding.queued(f"{supplier_id}/{sku}"), what="correction message"
    )
    assert (
        message["kind"] == "PRODUCT"
        and message["flaggedVersion"] == record["version"]
        and message["taskToken"]
    )


def test_a_flagged_listing_fixed_by_its_supplier_goes_active_after_the_drain(listings, stack):
    supplier_id = listings.supplier()
    events = inbox(stack, {"supplier_id": [supplier_id], "event_type": [{"prefix": "listing."}]})
    sku = listings.register(supplier_id, price={"amount": 25000, "currency": "EUR"})
    flagged = listings.wait_status(supplier_id, sku, "FLAGGED")
    arn = listings.execution_arn(supplier_id, sku)
    listings.onboarding.wait_entered(arn, "WaitForFix")
    listings.products.update(listings.as_supplier(supplier_id), supplier_id, sku,
                             {"price": {"amount": 1999.0, "currency": "EUR"}}, flagged["version"])  # fmt: skip
    # Its correction reaches the drain once the intake has parked it (D28).
    wait_until(lambda: listings.onboarding.queued(f"{supplier_id}/{sku}"), what="the parked correction")
    assert listings.onboarding.drain().get("resumed") == 1
    record = listings.wait_status(supplier_id, sku, "ACTIVE")
    assert record["price"] == {"amount": 1999, "currency": "EUR"}
    listings.onboarding.wait_execution(arn, "SUCCEEDED")
    assert listings.onboarding.entered(arn).count("Validate") == 2
    # The supplier heard of each status change, from the table's stream (marketplace.events): the
    # flag with what to fix, and the listing going live; each once, by the version that wrote it.
    heard: dict[str, dict] = {}
    wait_until(lambda: heard.update({e["eventId"]: e for e in received(stack, events)})
               or "listing.active" in {e["event"] for e in heard.values()}, what="the listing's events")  # fmt: skip
    by_version = sorted(heard.values(), key=lambda e: e["version"])
    assert by_version[0]["event"] == "listing.flagged" and by_version[-1]["event"] == "listing.active"
    assert by_version[0]["flags"] == [{"field": f["field"], "reason": f["reason"]} for f in flagged["flags"]]
    assert by_version[-1]["version"] == record["version"] and by_version[-1]["sku"] == sku
    assert all(e["event"] == f"listing.{e['status'].lower()}" for e in by_version)


def test_an_admin_rejection_of_a_flagged_listing_ends_its_workflow(listings):
    supplier_id = listings.supplier()
    sku = listings.register(supplier_id, category="garden")
    listings.wait_status(supplier_id, sku, "FLAGGED")
    arn = listings.execution_arn(supplier_id, sku)
    listings.onboarding.wait_entered(arn, "WaitForFix")
    listings.products.reject(
        listings.onboarding.principal("admin"), supplier_id, sku, "not a category we sell"
    )
    assert listings.onboarding.drain().get("closed") == 1
    listings.onboarding.wait_execution(arn, "SUCCEEDED")
    assert listings.onboarding.entered(arn)[-1] == "RejectedByAdmin"


def _status_index_keys(listings, supplier_id: str, sku: str) -> tuple:
    raw = listings.products.table.get(
        f"TENANT#{listings.onboarding.tenant}#SUPPLIER#{supplier_id}", f"PRODUCT#{sku}"
    )
    return raw.get("GSI1PK"), raw.get("GSI1SK") is not None


def test_a_listing_is_in_the_status_index_only_while_flagged(listings):
    """The correction queue is the index's one reader. An ACTIVE listing's stock changes with every
    order: indexed, each change rewrote a tenant-wide index key (1,000 orders/s per tenant at most)."""
    supplier_id = listings.supplier()
    assert _status_index_keys(listings, supplier_id, listings.register(supplier_id, sku="SKU-PENDING-0")) == (
        None, False,
    )  # fmt: skip
    active = listings.register(supplier_id, sku="SKU-ACTIVE-1")
    listings.wait_status(supplier_id, active, "ACTIVE")
    assert _status_index_keys(listings, supplier_id, active) == (None, False)

    flagged = listings.register(supplier_id, sku="SKU-FLAGGED-1", category="garden")
    listings.wait_status(supplier_id, flagged, "FLAGGED")
    assert _status_index_keys(listings, supplier_id, flagged) == (
        f"TENANT#{listings.onboarding.tenant}#PRODUCT#STATUS#FLAGGED", True,
    )  # fmt: skip
    assert flagged in [p["sku"] for p in listings.products.list_by_status(listings.onboarding.tenant, "FLAGGED", 50,
                                                                          None).items]  # fmt: skip
    listings.onboarding.wait_entered(listings.execution_arn(supplier_id, flagged), "WaitForFix")
    listings.products.reject(listings.onboarding.principal("admin"), supplier_id, flagged, "not sold here")
    assert _status_index_keys(listings, supplier_id, flagged) == (None, False)


def test_a_supplier_lists_a_sku_once(listings):
    supplier_id = listings.supplier()
    listings.register(supplier_id)
    with pytest.raises(Conflict, match="already lists"):
        listings.register(supplier_id)


def test_a_transient_error_is_retried_then_the_listing_goes_active(listings, stack, clock):
    from marketplace.errors import TransientError

    spec = stack.runtime.by_logical_id("ValidateProductFunction")
    failures = [TransientError, TransientError]

    def interceptor(function, event):
        if function.name == spec.name and event.get("tenantId") == listings.onboarding.tenant and failures:
            raise failures.pop(0)("injected fault")

    supplier_id = listings.supplier()
    stack.runtime.interceptors.append(interceptor)
    try:
        before = len(clock.sleeps)
        sku = listings.register(supplier_id)
        listings.wait_status(supplier_id, sku, "ACTIVE")
    finally:
        stack.runtime.interceptors.remove(interceptor)
    assert failures == [] and len(clock.sleeps) - before == 2


def test_a_listing_nobody_fixes_in_time_waits_for_a_restart(listings, stack, clock):
    supplier_id = listings.supplier()
    sku = listings.register(supplier_id, category="garden")
    listings.wait_status(supplier_id, sku, "FLAGGED")
    arn = listings.execution_arn(supplier_id, sku)
    listings.onboarding.wait_entered(arn, "WaitForFix")
    heartbeat = int(stack.template.parameters["CorrectionHeartbeatSeconds"]) + 1
    advance_until(
        clock,
        heartbeat,
        lambda: listings.onboarding.sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED",
    )
    assert listings.onboarding.entered(arn)[-2:] == ["QueueForRestart", "AwaitingManualRestart"]
    fixed = listings.products.update(listings.as_supplier(supplier_id), supplier_id, sku, {"category": "home",
                                     "attributes": {"material": "oak"}, "images": ["https://cdn.example.com/a.jpg"]}, None)  # fmt: skip
    report = listings.onboarding.drain()
    assert report.get("restarted", 0) + report.get("resumed", 0) >= 1
    listings.wait_status(supplier_id, sku, "ACTIVE")
    listings.onboarding.wait_execution(
        listings.execution_arn(supplier_id, sku, fixed["version"]), "SUCCEEDED"
    )

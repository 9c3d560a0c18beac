"""The correction queue is one queue for every kind: a flagged supplier, listing and supplier order
are listed together, page by page, and each is rejected or retried by its correction id."""

from __future__ import annotations

import pytest

from marketplace import registry
from marketplace.errors import Conflict, NotFound
from tests.workflow.test_supplier_orders import Shop

pytestmark = pytest.mark.workflow


@pytest.fixture
def flagged(onboarding) -> dict[str, str]:
    """One flagged record of each kind in a fresh tenant: kind -> correction id."""
    from tests.workflow.test_product_listing import Listings

    shop = Shop(Listings(onboarding))
    supplier_id, sku = shop.supplier_with_listing()
    bad_supplier = onboarding.register(taxId="12345")
    onboarding.wait_status(bad_supplier, "FLAGGED")
    bad_listing = shop.listings.register(supplier_id, sku="SKU-GARDEN", category="garden")
    shop.listings.wait_status(supplier_id, bad_listing, "FLAGGED")
    order = shop.place((supplier_id, sku, 1), price=1.0)["supplierOrders"][0]["supplierOrderId"]
    shop.wait_status(order, "FLAGGED")
    return {"SUPPLIER": bad_supplier, "PRODUCT": f"PRODUCT:{supplier_id}:{bad_listing}",
            "SUPPLIER_ORDER": f"SUPPLIER_ORDER:{order}", "_stock": (shop, supplier_id, sku)}  # fmt: skip


def test_every_kind_is_listed_in_one_queue_page_by_page(onboarding, flagged):
    table = onboarding.suppliers.table
    seen, token = [], None
    for _ in range(5):
        page = registry.corrections_page(table, onboarding.tenant, 1, token)
        seen += [(i["recordType"], i["correctionId"]) for i in page["items"]]
        token = page["nextToken"]
        if token is None:
            break
    assert seen == [(k, flagged[k]) for k in ("SUPPLIER", "PRODUCT", "SUPPLIER_ORDER")]
    everything = registry.corrections_page(table, onboarding.tenant, 50, None)
    assert [i["recordType"] for i in everything["items"]] == ["SUPPLIER", "PRODUCT", "SUPPLIER_ORDER"]
    assert everything["nextToken"] is None
    assert all(i["flags"] and i["record"]["status"] == "FLAGGED" for i in everything["items"])


def test_reject_and_retry_act_on_every_kind_by_correction_id(onboarding, flagged):
    table, admin = onboarding.suppliers.table, onboarding.principal("admin")
    listing = registry.reject(table, admin, flagged["PRODUCT"], "not sold here")
    assert (listing["status"], listing["statusReason"]) == ("REJECTED", "not sold here")
    supplier = registry.retry(table, admin, flagged["SUPPLIER"])
    assert supplier["status"] == "FLAGGED" and "retryRequestedAt" in supplier
    shop, supplier_id, sku = flagged["_stock"]
    before = shop.stock(supplier_id, sku)
    order = registry.reject(table, admin, flagged["SUPPLIER_ORDER"], "wrong price")
    assert order["status"] == "CANCELLED"  # rejecting a queued order cancels it
    assert shop.stock(supplier_id, sku) == before  # a flagged order held no stock to release
    with pytest.raises(Conflict):
        registry.retry(table, admin, flagged["PRODUCT"])  # rejected: no longer FLAGGED
    with pytest.raises(NotFound):
        registry.reject(table, admin, "PRODUCT:nobody:nothing", "x")

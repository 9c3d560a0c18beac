"""End to end: `marketplace import-products` against `marketplace run`, as a supplier would use it.

A generated 5,000-row catalog with bad rows of every kind (missing field, bad price, unknown
category, a SKU repeated in the file, a SKU listed before the import, a non-ASCII SKU, an overlong
title) goes through the CLI: the valid rows become listings, the error report names exactly the
bad rows with row, sku, field and reason, the counts add up, and a second delivery of the import's
SQS message creates no duplicate. The listing workflows of 5,000 listings take longer than this
test's budget in the local engine (see docs/import.md for the measured rate), so their outcome
(ACTIVE / FLAGGED / REJECTED, none left PENDING) is asserted on a 100-row import.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ROOT, wait_until
from tests.e2e.test_local_stack import BIN, RunningStack, marketplace_running

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("bulk-import")]

HEADER = ["sku", "title", "category", "price", "currency", "quantity", "images",
          "attributes.brand", "attributes.model", "attributes.size", "attributes.color",
          "attributes.isbn"]  # fmt: skip
SUPPLIER = {
    "legalName": "Globex Trading Ltd", "country": "US", "contactEmail": "ops@globex.com",
    "website": "https://www.globex.com", "phone": "+1 5551234567",
    "address": {"line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"},
}  # fmt: skip
TITLES = ["Wireless headphones", "Casque sans fil «Silence»", "Kopfhörer für Büro", "静音ヘッドホン",
          "Auriculares inalámbricos ñ", "Наушники беспроводные"]  # fmt: skip


@dataclass
class Catalog:
    rows: list[dict[str, str]] = field(default_factory=list)
    # row number (header = 1) -> (sku, field, reason fragment)
    bad: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    # sku -> the workflow status its listing must reach (supplier approved)
    outcome: dict[str, str] = field(default_factory=dict)

    def write(self, path: Path) -> Path:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, HEADER)
            writer.writeheader()
            writer.writerows(self.rows)
        return path


def good_row(i: int, rng: random.Random) -> tuple[dict[str, str], str]:
    """A valid row; most reach ACTIVE, some are FLAGGED (price out of bounds) or REJECTED."""
    sku = f"SKU-{i:05d}"
    kind = i % 20
    row = dict.fromkeys(HEADER, "")
    row.update(
        sku=sku, title=f"{TITLES[i % len(TITLES)]} {i}", currency="EUR", quantity=str(rng.randint(0, 500))
    )
    if kind == 7:  # out of the category's price bounds: flagged for a human
        row.update(
            category="books", price="5000", images="https://img.example/b.jpg", **{"attributes.isbn": "978-3"}
        )
        return row, "FLAGGED"
    if kind == 13:  # a prohibited category: rejected
        row.update(category="weapons", price="99.90", images="https://img.example/w.jpg")
        return row, "REJECTED"
    if i % 2:
        row.update(category="electronics", price=f"{rng.randint(1, 900)}.{rng.randint(0, 99):02d}",
                   images="https://img.example/a.jpg|https://img.example/b.png",
                   **{"attributes.brand": "Globex", "attributes.model": f"M{i}"})  # fmt: skip
    else:
        row.update(category="apparel", price=str(rng.randint(5, 300)), images="https://img.example/c.webp",
                   **{"attributes.size": "M", "attributes.color": "blau"})  # fmt: skip
    return row, "ACTIVE"


BAD_KINDS = ("missing", "price", "category", "repeat", "taken", "unicode", "overlong")


def make_catalog(rows: int, every: int, taken_sku: str, seed: int = 7) -> Catalog:
    """``rows`` data rows; every ``every``-th is bad, cycling through BAD_KINDS."""
    rng = random.Random(seed)
    catalog = Catalog()
    taken_used = False
    for i in range(rows):
        number = i + 2
        row, outcome = good_row(i, rng)
        if i and i % every == 0:
            kind = BAD_KINDS[(i // every) % len(BAD_KINDS)]
            if kind == "taken" and taken_used:
                kind = "missing"
            if kind == "missing":
                row["title"] = ""
                catalog.bad[number] = (row["sku"], "title", "is required")
            elif kind == "price":
                row["price"] = "12,50"
                catalog.bad[number] = (row["sku"], "price.amount", "must be a number, not '12,50'")
            elif kind == "category":
                row["category"] = "spaceships"
                catalog.bad[number] = (row["sku"], "category", "unknown category 'spaceships'")
            elif kind == "repeat":
                row["sku"] = catalog.rows[0]["sku"]
                catalog.bad[number] = (row["sku"], "sku", "repeats the SKU of row 2 in this file")
            elif kind == "taken":
                row["sku"], taken_used = taken_sku, True
                catalog.bad[number] = (row["sku"], "sku", "is already listed for this supplier")
            elif kind == "unicode":
                row["sku"] = f"SKU-ÜÑ-{i}"
                catalog.bad[number] = (row["sku"], "sku", "does not match")
            elif kind == "overlong":
                row["title"] = "Ü" * 201
                catalog.bad[number] = (row["sku"], "title", "is 201 characters long; at most 200 are allowed")
        else:
            catalog.outcome[row["sku"]] = outcome
        catalog.rows.append(row)
    return catalog


# ------------------------------------------------------------------------------------------- helpers
@dataclass
class Supplier:
    stack: RunningStack
    tenant: str
    supplier_id: str
    headers: dict[str, str]

    def listings(self) -> list[dict[str, Any]]:
        items, token = [], None
        while True:
            url = f"{self.stack.url}/suppliers/{self.supplier_id}/products?limit=100"
            page_url = url + (f"&nextToken={token}" if token else "")
            response = answered(lambda u=page_url: requests.get(u, headers=self.headers, timeout=30))
            items += response.json()["items"]
            token = response.json().get("nextToken")
            if not token:
                return items


def approved_supplier(stack: RunningStack) -> Supplier:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    retailer = stack.token(tenant, "retailer")
    body = {**SUPPLIER, "taxId": f"{random.randint(10, 99)}-{random.randint(1000000, 9999999)}"}
    response = requests.post(f"{stack.url}/suppliers", json=body, headers=retailer, timeout=30)
    assert response.status_code == 202, response.text
    supplier_id = response.json()["supplierId"]

    def approved() -> bool:
        got = requests.get(f"{stack.url}/suppliers/{supplier_id}", headers=retailer, timeout=30).json()
        return got["status"] == "APPROVED"

    wait_until(approved, timeout=60, interval=0.2, what="the supplier approved")
    return Supplier(stack, tenant, supplier_id, stack.token(tenant, "supplier", supplier_id))


def import_products(stack: RunningStack, supplier: Supplier, catalog: Path, *extra: str,
                    timeout: float = 300) -> subprocess.CompletedProcess:  # fmt: skip
    env = {**os.environ, "MARKETPLACE_STATE_DIR": str(stack.state_dir)}
    args = [str(BIN / "marketplace"), "import-products", "--supplier", supplier.supplier_id,
            "--tenant", supplier.tenant, "--api", stack.url, "--interval", "0.2", *extra, str(catalog)]  # fmt: skip
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def report_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def assert_report(report: list[list[str]], catalog: Catalog) -> None:
    assert report[0] == ["row", "sku", "field", "reason"]
    by_row = {int(r[0]): r for r in report[1:]}
    assert len(by_row) == len(report) - 1, "one line per bad row (each has one problem)"
    assert sorted(by_row) == sorted(catalog.bad), "the report lists exactly the bad rows"
    for number, (sku, field_name, reason) in catalog.bad.items():
        _, got_sku, got_field, got_reason = by_row[number]
        assert (got_sku, got_field) == (sku, field_name), by_row[number]
        assert reason in got_reason, by_row[number]


def import_state(stack: RunningStack, supplier: Supplier, import_id: str) -> dict[str, Any]:
    url = f"{stack.url}/suppliers/{supplier.supplier_id}/imports/{import_id}?include=listings"
    return answered(lambda: requests.get(url, headers=supplier.headers, timeout=30)).json()


def import_id_of(output: str) -> str:
    line = next(line for line in output.splitlines() if line.startswith("Import "))
    return line.split()[1].rstrip(":")


def answered(call) -> requests.Response:
    """A 200 answer to a read. While thousands of workflows run, the local API's in-process
    functions can overrun their 10 s timeout on this shared machine (a 502, as API Gateway says);
    reads are retried until a deadline."""

    def attempt() -> requests.Response | None:
        response = call()
        assert response.status_code in (200, 502, 503, 504), response.text
        return response if response.status_code == 200 else None

    return wait_until(attempt, timeout=120, interval=1.0, what="a 200 answer", dump=False)


def listing_counts(stack: RunningStack, supplier: Supplier, import_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    token = None
    while True:
        url = f"{stack.url}/suppliers/{supplier.supplier_id}/imports/{import_id}"
        params = {"include": "listings", **({"listingsToken": token} if token else {})}
        page = answered(
            lambda u=url, q=params: requests.get(u, params=q, headers=supplier.headers, timeout=30)
        )
        for status, count in page.json()["listings"].items():
            counts[status] = counts.get(status, 0) + count
        token = page.json().get("listingsNextToken")
        if not token:
            return counts


def list_before(stack: RunningStack, supplier: Supplier, sku: str) -> None:
    listed = requests.post(
        f"{stack.url}/suppliers/{supplier.supplier_id}/products", headers=supplier.headers, timeout=30,
        json={"sku": sku, "title": "Listed before", "category": "home", "price": {"amount": 10, "currency": "EUR"},
              "quantity": 1, "images": ["https://img.example/h.jpg"], "attributes": {"material": "oak"}},
    )  # fmt: skip
    assert listed.status_code == 202, listed.text


# ------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Iterator[RunningStack]:
    """`marketplace run` of this module's own: after 5,000 imports its engine is still busy with
    their workflows, so it is given longer to stop than the shared e2e stack."""
    with marketplace_running(tmp_path_factory.mktemp("import-stack"), stop_seconds=60) as stack:
        yield stack


@pytest.fixture(scope="module")
def supplier(running) -> Iterator[Supplier]:
    yield approved_supplier(running)


def test_imported_listings_go_through_their_workflows_to_active_flagged_or_rejected(running, tmp_path):
    supplier = approved_supplier(running)
    list_before(running, supplier, "SKU-TAKEN-2")
    catalog = make_catalog(100, every=25, taken_sku="SKU-TAKEN-2")
    result = import_products(
        running, supplier, catalog.write(tmp_path / "small.csv"), "--wait-listings", "200"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = {
        status: list(catalog.outcome.values()).count(status) for status in ("ACTIVE", "FLAGGED", "REJECTED")
    }
    assert expected["FLAGGED"] and expected["REJECTED"] and expected["ACTIVE"]
    assert (f"Listings: ACTIVE {expected['ACTIVE']}  FLAGGED {expected['FLAGGED']}  "
            f"REJECTED {expected['REJECTED']}  PENDING 0") in result.stdout, result.stdout  # fmt: skip
    assert_report(report_rows(tmp_path / "small.errors.csv"), catalog)
    statuses = {item["sku"]: item["status"] for item in supplier.listings() if item["sku"] != "SKU-TAKEN-2"}
    assert statuses == catalog.outcome


def test_who_may_import_and_a_file_that_is_not_a_catalog(running, supplier, tmp_path):
    url = f"{running.url}/suppliers/{supplier.supplier_id}/imports"
    other_supplier = running.token(supplier.tenant, "supplier", "someone-else")
    other_tenant = running.token(f"t-{uuid.uuid4().hex[:8]}", "retailer")
    for headers in (other_supplier, other_tenant):
        response = requests.post(url, headers=headers, json={}, timeout=30)
        assert response.status_code == 404, response.text
    created = requests.post(url, headers=running.token(supplier.tenant, "admin"), timeout=30)
    assert created.status_code == 201 and created.json()["uploadMethod"] == "PUT", created.text
    started = requests.post(f"{url}/{created.json()['importId']}/start", headers=supplier.headers, timeout=30)
    assert started.status_code == 409 and "PUT the CSV" in started.json()["error"]["message"]
    hidden = requests.get(f"{url}/{created.json()['importId']}", headers=other_tenant, timeout=30)
    assert hidden.status_code == 404

    bad = tmp_path / "prices.csv"
    bad.write_text("name,price\nLamp,10\n", encoding="utf-8")
    result = import_products(running, supplier, bad)
    assert result.returncode == 1, result.stdout
    assert (
        "the import failed: the header row is not a catalog header: missing column(s) sku, title"
        in result.stderr
    )


def test_an_update_import_sets_stock_and_price_of_listed_skus_and_reports_the_bad_rows(running, tmp_path):
    """``--update`` (mode update): a listed SKU's quantity and price are set instead of the row being
    refused as "already listed"; a new SKU is created; a bad row is in the same error report."""
    supplier = approved_supplier(running)
    list_before(running, supplier, "SKU-LISTED")
    url = f"{running.url}/suppliers/{supplier.supplier_id}/products/SKU-LISTED"
    before = answered(lambda: requests.get(url, headers=supplier.headers, timeout=30)).json()
    rows = [dict.fromkeys(HEADER, "") for _ in range(3)]
    common = {"category": "home", "currency": "EUR", "images": "https://img.example/h.jpg"}
    # 11.50: a price move within the change gate's threshold (D41), applied by a feed.
    rows[0].update(common, sku="SKU-LISTED", title="Listed before", price="11.50", quantity="7")
    rows[1].update(common, sku="SKU-NEW", title="New in the feed", price="8", quantity="3")
    rows[2].update(common, sku="SKU-BAD", title="Bad price", price="12,50", quantity="1")
    path = tmp_path / "feed.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, HEADER)
        writer.writeheader()
        writer.writerows(rows)
    result = import_products(running, supplier, path, "--update")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Imported 1, updated 1 of 3 rows; 1 failed" in result.stdout, result.stdout
    assert report_rows(tmp_path / "feed.errors.csv")[1:] == [
        ["4", "SKU-BAD", "price.amount", "must be a number, not '12,50'"]
    ]
    after = answered(lambda: requests.get(url, headers=supplier.headers, timeout=30)).json()
    assert (after["quantity"], after["price"]) == (7, {"amount": 11.5, "currency": "EUR"})
    assert after["version"] > before["version"] and after["title"] == before["title"]
    assert not {"lastImport", "stockChange"} & set(after)  # the history's markers, not the listing's
    state = import_state(running, supplier, import_id_of(result.stderr))
    assert (state["mode"], state["imported"], state["updated"], state["failed"]) == ("update", 1, 1, 1)


# The import takes ~70 s on this machine when it is otherwise idle; with other test suites running
# beside it (load average 20 on 2 cores) it was measured at 240 s, over the suite's 300 s default.
@pytest.mark.timeout(600)
def test_5000_rows_with_bad_ones_import_the_valid_rows_and_report_exactly_the_bad(
    running, supplier, tmp_path
):
    taken = "SKU-TAKEN-1"
    list_before(running, supplier, taken)
    catalog = make_catalog(5000, every=50, taken_sku=taken)
    path = catalog.write(tmp_path / "catalog.csv")
    assert len(catalog.bad) == 99 and set(BAD_KINDS) <= {  # every kind is in the file
        {"is required": "missing", "must be a number": "price", "unknown category": "category",
         "repeats": "repeat", "already listed": "taken", "does not match": "unicode",
         "at most 200": "overlong"}[next(p for p in ("is required", "must be a number", "unknown category", "repeats",
                                                  "already listed", "does not match", "at most 200") if p in r)]
        for _, _, r in catalog.bad.values()
    }  # fmt: skip

    started = time.monotonic()
    result = import_products(running, supplier, path)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"\n5,000-row import through the CLI: {elapsed:.1f}s")

    valid = 5000 - len(catalog.bad)
    assert f"Imported {valid} of 5000 rows; {len(catalog.bad)} failed" in result.stdout, result.stdout
    assert "importing: 100%" in result.stderr  # the progress bar reached the end
    report = tmp_path / "catalog.errors.csv"
    assert_report(report_rows(report), catalog)

    import_id = import_id_of(result.stderr)
    state = import_state(running, supplier, import_id)
    assert (state["status"], state["rowsProcessed"], state["imported"], state["failed"], state["totalRows"]) == (
        "COMPLETED", 5000, valid, len(catalog.bad), 5000,
    )  # fmt: skip
    # The CLI counted the listings per workflow status over every page: they are the imported rows.
    line = next(line for line in result.stdout.splitlines() if line.startswith("Listings: "))
    counts = dict(zip(line.split()[1::2], map(int, line.split()[2::2]), strict=True))
    assert counts.keys() == {"ACTIVE", "FLAGGED", "REJECTED", "PENDING"} and sum(counts.values()) == valid

    def listing(sku: str) -> dict[str, Any]:
        url = f"{running.url}/suppliers/{supplier.supplier_id}/products/{sku}"
        return answered(lambda: requests.get(url, headers=supplier.headers, timeout=30)).json()

    samples = {sku: listing(sku) for sku in ("SKU-00001", "SKU-02501", "SKU-04999")}
    assert all(s["importId"] == import_id for s in samples.values())

    # SQS delivers the import's message again: nothing is written again, the counts stay.
    sqs = running.client("sqs")
    queue_url = running.resources["ImportQueue"]["ref"]
    message = {"tenantId": supplier.tenant, "supplierId": supplier.supplier_id, "importId": import_id,
               "key": f"uploads/{supplier.tenant}/{supplier.supplier_id}/{import_id}.csv", "offset": 1}  # fmt: skip
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message))

    def drained() -> bool:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        return (
            attributes["ApproximateNumberOfMessages"] == "0"
            and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
        )

    wait_until(drained, timeout=60, what="the repeated import message consumed")
    again = import_state(running, supplier, import_id)
    assert (again["status"], again["imported"], again["failed"]) == ("COMPLETED", valid, len(catalog.bad))
    for sku, before in samples.items():  # the same listing, not a new one put over it
        after = listing(sku)
        assert (after["createdAt"], after["createdBy"]) == (before["createdAt"], before["createdBy"])
        assert after["version"] >= before["version"]

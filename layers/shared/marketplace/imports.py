"""Bulk catalog import: a supplier's CSV of listings, uploaded to S3, imported in chunks.

The flow (docs/import.md): ``create`` makes an IMPORT record and a pre-signed PUT URL for
``uploads/<tenant>/<supplier>/<import>.csv``; ``start`` checks the upload and queues one message
that carries only the object's key (SQS and Step Functions cap payloads at 256 KiB); the import
function (:meth:`Imports.process`) streams the object, validates each row against the same
product schema and categories as ``POST /suppliers/{id}/products``, writes the valid rows as
PENDING listings in TransactWriteItems of up to 100 items (several in parallel), and each INSERT
starts the listing workflow like an API-created listing.

Idempotent under SQS redelivery: a listing's key is its supplier and SKU and every put is
conditional on the key being new; a put that finds a listing this same import wrote counts as
imported, one that finds any other listing is the row error "already listed". Progress is
committed per chunk of rows with a conditional update of the IMPORT record (``nextRow`` must
still be the chunk's first row), so a chunk processed twice is counted once, and a message that
arrives after its chunk was committed skips it. Row errors go to one S3 part per chunk (a
deterministic key, so a repeat overwrites it); the last chunk joins them into the error report.

A failed row never blocks the others: only a file that cannot be read as a catalog (not UTF-8,
unknown or missing columns, broken CSV quoting, too big) fails the whole import.

An import in mode ``update`` (a stock and price feed) reads the same file: a row whose SKU the supplier
already lists updates that listing's ``quantity`` and ``price`` instead of being refused, a new SKU is
created as above. Each update is its own write conditional on the listing's version as just read
(a reservation in between moves it: the row is read and written again), moves the version as every
stock change does, and marks the listing with the import (``lastImport``), so a chunk delivered again
does not set the quantity back over units reserved since (docs/decisions.md D38).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from marketplace import config, gate, keys, products, rule_packs, schemas
from marketplace.adapters import aws
from marketplace.clock import now_iso
from marketplace.errors import Conflict, FieldError, InvalidInput, NotFound, TransientError
from marketplace.principal import Principal
from marketplace.repository import Table, TransactionCancelled, TransactionConflict, from_item, to_item
from marketplace.rule_packs import RulePack

ENTITY = "IMPORT"
STATUSES = ("AWAITING_UPLOAD", "QUEUED", "RUNNING", "COMPLETED", "FAILED")
FINISHED = ("COMPLETED", "FAILED")
REQUIRED_COLUMNS = ("sku", "title", "category", "price", "currency", "quantity")
OPTIONAL_COLUMNS = ("images",)
ATTRIBUTE_PREFIX = "attributes."
REPORT_HEADER = ("row", "sku", "field", "reason")

UPLOAD_URL_SECONDS = 900
REPORT_URL_SECONDS = 3600
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")
CHUNK_ROWS = 500  # rows per committed chunk: the progress granularity and the redo unit
TRANSACTION_ITEMS = 100  # TransactWriteItems' limit
WRITERS = 4  # transactions in flight at once
# Stop starting chunks when less than this is left of the invocation; the rest is re-queued.
RESERVE_SECONDS = 20.0
TRANSACTION_ATTEMPTS = 6
STATUS_PAGE = 1000  # listings read per GET ...?include=listings
MODES = ("create", "update")
# What an update-mode row changes on a listing it finds: the stock and the price.
UPDATED_FIELDS = ("quantity", "price")


@cache
def _signer(endpoint: str | None, region: str | None) -> Any:
    """An S3 client that pre-signs with SigV4 (botocore presigns S3 URLs with SigV2 by default,
    which a bucket encrypted with KMS refuses). Keyed by endpoint so the local stack gets its own."""
    return boto3.session.Session().client("s3", config=Config(signature_version="s3v4"))


# ------------------------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class RowError:
    row: int
    sku: str
    field: str
    reason: str

    def as_csv(self) -> list[str]:
        return [str(self.row), self.sku, self.field, self.reason]


# A cell starting with one of these is a formula to a spreadsheet (CSV injection, OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A signed decimal number is no formula: a statement's amount (-13.22) stays a number.
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def spreadsheet_safe(cell: str) -> str:
    """``cell`` as a spreadsheet shows it as text: OWASP's CSV injection rule, a single quote
    before a cell that starts with ``= + - @``, tab or carriage return (the writer quotes every
    cell and doubles its quotes). A cell already escaped starts with the quote, so a report part
    read back and written into the whole report is not escaped twice. No maintained library does
    this one rule; the csv module quotes, it does not neutralise formulas. A plain decimal number
    (``-13.22``) is left as it is: a spreadsheet reads it as the number, nothing runs."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(cell) else cell


class CatalogError(Exception):
    """The file as a whole cannot be imported (the import ends FAILED with this reason)."""


@dataclass(frozen=True)
class Columns:
    names: tuple[str, ...]

    @classmethod
    def from_header(cls, header: list[str]) -> Columns:
        names = tuple(h.strip() for h in header)
        problems = []
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        known = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
        unknown = [n for n in names if n not in known and not _attribute_name(n)]
        if unknown:
            problems.append(
                f"unknown column(s) {', '.join(repr(u) for u in unknown)} "
                f"(known: {', '.join(known)}, {ATTRIBUTE_PREFIX}<name>)"
            )
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            problems.append(f"column(s) {', '.join(duplicated)} appear more than once")
        if problems:
            raise CatalogError("the header row is not a catalog header: " + "; ".join(problems))
        return cls(names)

    def sku_of(self, cells: list[str]) -> str:
        index = self.names.index("sku")
        return cells[index].strip() if index < len(cells) else ""


def _attribute_name(column: str) -> str | None:
    if column.startswith(ATTRIBUTE_PREFIX) and len(column) > len(ATTRIBUTE_PREFIX):
        return column[len(ATTRIBUTE_PREFIX) :]
    return None


def row_to_listing(
    columns: Columns, cells: list[str], pack: RulePack | None = None
) -> tuple[dict[str, Any], list[FieldError]]:
    """One CSV row as the body ``POST /suppliers/{id}/products`` takes, and what is wrong with it:
    the same JSON Schema (schemas/product.json) and the categories of the tenant's rule pack
    (``pack``; the defaults if None)."""
    errors: list[FieldError] = []
    if len(cells) > len(columns.names):
        errors.append(FieldError("(row)", f"has {len(cells)} cells, the header has {len(columns.names)}"))
    values = {name: (cells[i] if i < len(cells) else "") for i, name in enumerate(columns.names)}
    body: dict[str, Any] = {}
    for name in ("sku", "title", "category", "currency"):
        text = values[name].strip()
        if text:
            body[name] = text
    price: dict[str, Any] = {}
    raw_price = values["price"].strip()
    if raw_price:
        try:
            amount = Decimal(raw_price)
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite():
            errors.append(FieldError("price.amount", f"must be a number, not {raw_price[:40]!r}"))
        else:
            exponent = amount.as_tuple().exponent
            if isinstance(exponent, int) and exponent < -2 and amount != amount.quantize(Decimal("0.01")):
                errors.append(FieldError("price.amount", "has more than 2 decimals"))
            price["amount"] = int(amount) if amount == amount.to_integral_value() else float(amount)
    if "currency" in body:
        price["currency"] = body.pop("currency")
    if price or raw_price:
        body["price"] = price
    raw_quantity = values["quantity"].strip()
    if raw_quantity:
        # ASCII digits, at most 18 (str.isdigit() also takes "²", which int() refuses, and int()
        # refuses over 4300 digits): anything else is a row error, never a crash of the import.
        if WHOLE_NUMBER.fullmatch(raw_quantity):
            body["quantity"] = int(raw_quantity)
        else:
            errors.append(FieldError("quantity", f"must be a whole number, not {raw_quantity[:40]!r}"))
    images = values.get("images", "")
    body["images"] = [u.strip() for u in images.split("|") if u.strip()]
    attributes = {}
    for name in columns.names:
        attribute = _attribute_name(name)
        if attribute and values[name].strip():
            attributes[attribute] = values[name].strip()
    if attributes:
        body["attributes"] = attributes
    errors += _too_long(body)
    reported = {e.field for e in errors}
    errors += [e for e in schemas.field_errors("product", body) if e.field not in reported]
    category, categories = body.get("category"), (pack or rule_packs.default()).categories
    if (
        isinstance(category, str)
        and "category" not in {e.field for e in errors}
        and category not in categories
    ):
        known = ", ".join(sorted(categories))
        errors.append(FieldError("category", f"unknown category {category!r} (known: {known})"))
    return body, errors


def _too_long(body: dict[str, Any]) -> list[FieldError]:
    """Overlong text, said without echoing it (the schema's own message quotes the whole value,
    which a report line should not): the limits are the schema's."""
    properties = schemas.validator("product").schema["properties"]
    return [
        FieldError(name, f"is {len(body[name])} characters long; at most {spec['maxLength']} are allowed")
        for name, spec in properties.items()
        if isinstance(body.get(name), str) and len(body[name]) > spec.get("maxLength", len(body[name]))
    ]


def read_rows(lines: Iterator[str]) -> tuple[Columns, Iterator[tuple[int, list[str]]]]:
    """(columns, (row number, cells) for each data row). Row numbers count the header as row 1,
    as a spreadsheet shows them; blank lines are skipped (they keep their number)."""
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise CatalogError("the file is empty: a header row is required") from None
    except csv.Error as exc:
        raise CatalogError(f"row 1: {exc}") from None
    columns = Columns.from_header(header)

    def rows() -> Iterator[tuple[int, list[str]]]:
        number = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise CatalogError(f"row {number + 1}: {exc}") from None
            number += 1
            if cells and any(c.strip() for c in cells):
                yield number, cells

    return columns, rows()


def decoded_lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """UTF-8 lines (ends kept, for quoted newlines) from a byte stream, without a BOM."""
    first = True
    for line_number, line in enumerate(chunks, start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CatalogError(
                f"line {line_number} is not UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
        if first:
            text, first = text.removeprefix("\ufeff"), False
        yield text


# ------------------------------------------------------------------------------------------- store
class ImportStore:
    """The S3 side: pre-signed URLs, the uploaded catalog as a stream, the report parts."""

    def __init__(self, bucket: str | None = None) -> None:
        self.bucket = bucket or config.require("IMPORT_BUCKET_NAME")

    @property
    def s3(self) -> Any:
        return aws.client("s3")

    def presigned(self, method: str, key: str, seconds: int) -> str:
        client = _signer(os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_REGION"))
        return client.generate_presigned_url(
            method, Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
        )

    def size(self, key: str) -> int | None:
        try:
            return int(self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def lines(self, key: str) -> Iterator[bytes]:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise CatalogError("the uploaded file is gone (uploads expire after 7 days)") from None
            raise
        return body.iter_lines(chunk_size=64 * 1024, keepends=True)

    def put_csv(self, key: str, rows: list[list[str]], header: bool = False) -> None:
        """Every report cell quoted, and a cell a spreadsheet would read as a formula escaped
        (:func:`spreadsheet_safe`): the report echoes the supplier's own cells (a SKU)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
        if header:
            writer.writerow(REPORT_HEADER)
        writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
        self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=buffer.getvalue().encode(), ContentType="text/csv"
        )

    def read_csv(self, key: str) -> list[list[str]]:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()
        return list(csv.reader(io.StringIO(body)))


# ------------------------------------------------------------------------------------------- service
@dataclass
class ChunkResult:
    imported: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def failed_rows(self) -> int:
        return len({e.row for e in self.errors})


@dataclass
class Outcome:
    """What one invocation did with one message (for logs and tests)."""

    status: str
    chunks: int = 0
    requeued_at: int | None = None
    skipped: str | None = None


def view(record: dict[str, Any], store: ImportStore | None = None) -> dict[str, Any]:
    shown = {
        "importId": record["importId"],
        "supplierId": record["supplierId"],
        "status": record["status"],
        "fileName": record.get("fileName"),
        "mode": record.get("mode", "create"),
        "rowsProcessed": int(record.get("rowsProcessed", 0)),
        "imported": int(record.get("imported", 0)),
        "updated": int(record.get("updated", 0)),
        "failed": int(record.get("failed", 0)),
        "createdAt": record["createdAt"],
        "updatedAt": record["updatedAt"],
    }
    for key in ("totalRows", "startedAt", "completedAt", "failureReason", "sizeBytes"):
        if record.get(key) is not None:
            shown[key] = record[key]
    if record.get("reportKey") and store is not None:
        shown["reportUrl"] = store.presigned("get_object", record["reportKey"], REPORT_URL_SECONDS)
        shown["reportUrlExpiresInSeconds"] = REPORT_URL_SECONDS
    return {k: v for k, v in shown.items() if v is not None}


class Imports:
    def __init__(
        self,
        table: Table | None = None,
        store: ImportStore | None = None,
        queue_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table or Table()
        self.store = store or ImportStore()
        self._queue_url = queue_url
        self.clock = clock

    @property
    def queue_url(self) -> str:
        return self._queue_url or config.require("IMPORT_QUEUE_URL")

    # ---------------------------------------------------------------- API side
    def _visible(self, principal: Principal, supplier_id: str) -> None:
        """The supplier itself, or the tenant's retailer/admin; anyone else gets 404."""
        products.Products(self.table).visible_supplier(principal, supplier_id)

    def get(self, tenant_id: str, supplier_id: str, import_id: str) -> dict[str, Any]:
        return self.table.get_or_404(
            keys.supplier_pk(tenant_id, supplier_id), keys.import_sk(import_id),
            f"import {import_id} for supplier {supplier_id}", entity=ENTITY, tenant_id=tenant_id,
        )  # fmt: skip

    def create(self, principal: Principal, supplier_id: str, body: Any) -> dict[str, Any]:
        self._visible(principal, supplier_id)
        if not isinstance(body, dict):  # a JSON null too: no body at all is {}
            raise InvalidInput([FieldError("(body)", "must be a JSON object")])
        schemas.validate("import", body)
        file_name = body.get("fileName")
        tenant_id, now, import_id = principal.tenant_id, now_iso(), uuid.uuid4().hex
        key = keys.upload_key(tenant_id, supplier_id, import_id)
        record = {
            "PK": keys.supplier_pk(tenant_id, supplier_id), "SK": keys.import_sk(import_id), "entity": ENTITY,
            "tenantId": tenant_id, "supplierId": supplier_id, "importId": import_id, "fileName": file_name,
            "status": "AWAITING_UPLOAD", "version": 1, "uploadKey": key, "nextRow": 1, "mode": body.get("mode", "create"),
            "rowsProcessed": 0, "imported": 0, "updated": 0, "failed": 0, "reportParts": [],
            "createdAt": now, "updatedAt": now, "createdBy": principal.actor, "updatedBy": principal.actor,
        }  # fmt: skip
        self.table.put_new(record)
        return {
            **view(record),
            "uploadUrl": self.store.presigned("put_object", key, UPLOAD_URL_SECONDS),
            "uploadMethod": "PUT",
            "uploadExpiresInSeconds": UPLOAD_URL_SECONDS,
            "maxUploadBytes": MAX_UPLOAD_BYTES,
        }

    def get_for(self, principal: Principal, supplier_id: str, import_id: str) -> dict[str, Any]:
        self._visible(principal, supplier_id)
        return self.get(principal.tenant_id, supplier_id, import_id)

    def start(self, principal: Principal, supplier_id: str, import_id: str) -> dict[str, Any]:
        """Queue the uploaded file. Starting a started import is a no-op (it answers its state)."""
        current = self.get_for(principal, supplier_id, import_id)
        if current["status"] != "AWAITING_UPLOAD":
            return current
        size = self.store.size(current["uploadKey"])
        if size is None:
            raise Conflict("nothing was uploaded yet: PUT the CSV file to the uploadUrl first")
        if size > MAX_UPLOAD_BYTES:
            raise InvalidInput(
                [
                    FieldError(
                        "(file)", f"is {size} bytes; at most {MAX_UPLOAD_BYTES} bytes are imported at once"
                    )
                ]
            )
        now = now_iso()
        record = self.table.update(
            current["PK"], current["SK"], int(current["version"]),
            {"status": "QUEUED", "sizeBytes": size, "startedAt": now, "updatedAt": now,
             "updatedBy": principal.actor},
        )  # fmt: skip
        self._enqueue(record, offset=1)
        return record

    def listing_statuses(
        self, tenant_id: str, supplier_id: str, import_id: str, token: str | None = None
    ) -> tuple[dict[str, int], str | None]:
        """How many of this import's listings are in each status (their workflows set them), over
        one page of the supplier's listings: pass the returned token back for the next page and
        add the counts up. Pages keep each call short however many listings the supplier has."""
        pk = keys.supplier_pk(tenant_id, supplier_id)
        counts = dict.fromkeys(products.STATUSES, 0)
        # Filtered here, not with a FilterExpression: the same items are read either way, and the
        # local emulator evaluates filter expressions slowly.
        page = self.table.query(
            pk, sk_prefix=keys.PRODUCT_SK_PREFIX, limit=STATUS_PAGE, next_token=token,
            project=("status", "importId"), page_field="listingsToken",
        )  # fmt: skip
        for item in page.items:
            if item.get("importId") == import_id:
                counts[item["status"]] = counts.get(item["status"], 0) + 1
        return counts, page.next_token

    def _enqueue(self, record: dict[str, Any], offset: int) -> None:
        message = {"tenantId": record["tenantId"], "supplierId": record["supplierId"],
                   "importId": record["importId"], "key": record["uploadKey"], "offset": offset}  # fmt: skip
        aws.client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message))

    # ---------------------------------------------------------------- the import function
    def process(self, message: dict[str, Any], remaining_seconds: Callable[[], float]) -> Outcome:
        """Import from the message's offset until the file ends or time runs short (then the rest
        is queued with its offset). Safe to run twice for one message, or for two at once."""
        try:
            current = self.get(message["tenantId"], message["supplierId"], message["importId"])
        except NotFound:
            return Outcome("missing", skipped="the import record is gone")
        if current["status"] in FINISHED:
            return Outcome(current["status"], skipped="already finished")
        if current["status"] == "QUEUED":
            try:
                current = self.table.update(
                    current["PK"], current["SK"], int(current["version"]),
                    {"status": "RUNNING", "updatedAt": now_iso(), "updatedBy": "system:import"},
                )  # fmt: skip
            except Conflict:
                current = self.get(message["tenantId"], message["supplierId"], message["importId"])
        start_row = max(int(message.get("offset", 1)), int(current["nextRow"]))
        outcome = Outcome("RUNNING")
        try:
            columns, rows = read_rows(decoded_lines(self.store.lines(current["uploadKey"])))
            seen: dict[str, int] = {}
            chunk: list[tuple[int, list[str]]] = []
            for number, cells in rows:
                if number < start_row:
                    sku = columns.sku_of(cells)
                    if sku:
                        seen.setdefault(sku, number)
                    continue
                chunk.append((number, cells))
                if len(chunk) == CHUNK_ROWS:
                    if remaining_seconds() < RESERVE_SECONDS:
                        outcome.requeued_at = chunk[0][0]
                        self._enqueue(current, offset=chunk[0][0])
                        return outcome
                    committed = self._chunk(current, columns, chunk, seen, end_row=chunk[-1][0] + 1)
                    if committed is None:
                        return Outcome(
                            "RUNNING", outcome.chunks, skipped="another delivery committed this chunk"
                        )
                    current, chunk = committed, []
                    outcome.chunks += 1
            if chunk:
                committed = self._chunk(current, columns, chunk, seen, end_row=chunk[-1][0] + 1)
                if committed is None:
                    return Outcome("RUNNING", outcome.chunks, skipped="another delivery committed this chunk")
                current = committed
                outcome.chunks += 1
            self._finish(current)
            outcome.status = "COMPLETED"
        except CatalogError as exc:
            self._fail(current, str(exc))
            outcome.status = "FAILED"
        return outcome

    def _chunk(
        self,
        current: dict[str, Any],
        columns: Columns,
        chunk: list[tuple[int, list[str]]],
        seen: dict[str, int],
        end_row: int,
    ) -> dict[str, Any] | None:
        """Validate and write one chunk, then commit its counts; None if another delivery of the
        same import committed this chunk first."""
        tenant_id, supplier_id, import_id = current["tenantId"], current["supplierId"], current["importId"]
        result = ChunkResult()
        listings: list[tuple[int, dict[str, Any]]] = []
        by = current["createdBy"]
        now, pack = now_iso(), rule_packs.active(self.table, tenant_id)
        for number, cells in chunk:
            body, errors = row_to_listing(columns, cells, pack)
            sku = columns.sku_of(cells)
            first = seen.setdefault(sku, number) if sku else number
            if sku and first != number:
                errors = [FieldError("sku", f"repeats the SKU of row {first} in this file"), *errors]
            if errors:
                result.errors += [RowError(number, sku, e.field, e.reason) for e in errors]
                continue
            record = products.new_record(tenant_id, supplier_id, body, by, now)
            record["importId"] = import_id
            listings.append((number, record))
        if current.get("mode") == "update":
            listed = {
                (r["PK"], r["SK"]): r
                for r in self.table.batch_get((rec["PK"], rec["SK"]) for _, rec in listings)
            }
            updates = [
                (n, rec, listed[(rec["PK"], rec["SK"])])
                for n, rec in listings
                if (rec["PK"], rec["SK"]) in listed
            ]
            listings = [(n, rec) for n, rec in listings if (rec["PK"], rec["SK"]) not in listed]
            # The price hold scores with the thresholds of the pack read above (one read a chunk).
            rules = pack.change_rules(products.KIND.label)
            with ThreadPoolExecutor(max_workers=WRITERS) as pool:
                for updated, error in pool.map(lambda u: self._update(*u, import_id, by, rules), updates):
                    result.updated += updated
                    result.errors += error
        batches = [listings[i : i + TRANSACTION_ITEMS] for i in range(0, len(listings), TRANSACTION_ITEMS)]
        with ThreadPoolExecutor(max_workers=WRITERS) as pool:
            for imported, errors in pool.map(lambda b: self._write(b, import_id), batches):
                result.imported += imported
                result.errors += errors
        start_row = int(current["nextRow"])
        changes: dict[str, Any] = {
            "nextRow": end_row,
            "rowsProcessed": int(current["rowsProcessed"]) + len({n for n, _ in chunk}),
            "imported": int(current["imported"]) + result.imported,
            "updated": int(current.get("updated", 0)) + result.updated,
            "failed": int(current["failed"]) + result.failed_rows,
            "status": "RUNNING",
            "updatedAt": now_iso(),
            "updatedBy": "system:import",
        }
        if result.errors:
            part = f"{keys.report_prefix(tenant_id, supplier_id, import_id)}parts/{start_row:09d}.csv"
            self.store.put_csv(part, [e.as_csv() for e in sorted(result.errors, key=_report_order)])
            changes["reportParts"] = [*current.get("reportParts", []), part]
        try:
            return self.table.update(current["PK"], current["SK"], int(current["version"]), changes)
        except Conflict:
            return None

    def _write(self, batch: list[tuple[int, dict[str, Any]]], import_id: str) -> tuple[int, list[RowError]]:
        """One TransactWriteItems of new listings; a listing that exists already is a row error,
        unless this import wrote it (a redelivery), which counts as imported."""
        pending = list(batch)
        imported, errors = 0, []
        for attempt in range(TRANSACTION_ATTEMPTS):
            if not pending:
                break
            items = [
                {"Put": {"TableName": self.table.name, "Item": to_item(record),
                         "ConditionExpression": "attribute_not_exists(PK)",
                         "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
                for _, record in pending
            ]  # fmt: skip
            try:
                self.table.transact(items)
                return imported + len(pending), errors
            except (TransactionConflict, TransactionCancelled) as cancelled:
                reasons = cancelled.reasons
            except TransientError:  # throttled
                time.sleep(0.05 * 2**attempt)
                continue
            retry = []
            for (number, record), reason in zip(pending, reasons, strict=False):
                if reason.get("Code") == "ConditionalCheckFailed":
                    old = from_item(reason.get("Item") or {})
                    if old.get("importId") == import_id:
                        imported += 1
                    else:
                        errors.append(
                            RowError(number, record["sku"], "sku", "is already listed for this supplier")
                        )
                else:
                    retry.append((number, record))
            if len(reasons) != len(pending):
                retry = pending  # no per-item reasons: try the same again
            elif any(r.get("Code") not in ("None", "ConditionalCheckFailed", None) for r in reasons):
                time.sleep(0.05 * 2**attempt)  # a conflict with another transaction: back off
            pending = retry
        if pending:
            raise TransientError(
                f"{len(pending)} listings could not be written after {TRANSACTION_ATTEMPTS} tries"
            )
        return imported, errors

    def _update(
        self,
        number: int,
        row: dict[str, Any],
        listing: dict[str, Any],
        import_id: str,
        by: str,
        rules: dict[str, Any],
    ) -> tuple[int, list[RowError]]:
        """An update-mode row on a listing the supplier has: its quantity and price, written only
        while the listing is at the version read (read again when a reservation moved it). (1, [])
        once written, or when this import already wrote it (a chunk delivered again); else the row's
        error for the report. ``rules``: the listing change rules with the tenant's pack's thresholds."""
        for _ in range(products.ATTEMPTS):
            if listing.get("lastImport") == import_id:
                return 1, []
            if listing["status"] == "REJECTED":
                return 0, [RowError(number, row["sku"], "sku", "is a REJECTED listing: it cannot be changed")]
            if listing["status"] == products.KIND.approved:
                # A feed sets what applies at once; a price move the change gate holds for review
                # (docs/decisions.md D41) is refused here, to be PATCHed, where it becomes a proposal.
                held = gate.score(rules, listing, {"price": row["price"]})
                if held.high:
                    reason = f"{held.reasons[0].reason}: PATCH the listing, where the change waits for review"
                    return 0, [RowError(number, row["sku"], "price", reason)]
            changes: dict[str, Any] = {k: row[k] for k in UPDATED_FIELDS}
            delta = int(row["quantity"]) - int(listing.get("quantity", 0))
            changes.update({"lastImport": import_id, "updatedAt": now_iso(), "updatedBy": by,
                            "stockChange": products.stock_change(delta, f"import {import_id}")})  # fmt: skip
            try:
                self.table.update(listing["PK"], listing["SK"], int(listing["version"]), changes)
                return 1, []
            except Conflict:
                fresh = self.table.get(listing["PK"], listing["SK"])
                if fresh is None:
                    break
                listing = fresh
        raise TransientError(f"row {number}: the listing {row['sku']} kept changing; the chunk is retried")

    def _finish(self, current: dict[str, Any]) -> None:
        tenant_id, supplier_id, import_id = current["tenantId"], current["supplierId"], current["importId"]
        rows: list[list[str]] = []
        for part in current.get("reportParts", []):
            rows += self.store.read_csv(part)
        report = f"{keys.report_prefix(tenant_id, supplier_id, import_id)}errors.csv"
        self.store.put_csv(report, rows, header=True)
        now = now_iso()
        with contextlib.suppress(Conflict):  # another delivery finished it
            self.table.update(
                current["PK"], current["SK"], int(current["version"]),
                {"status": "COMPLETED", "reportKey": report, "totalRows": int(current["rowsProcessed"]),
                 "completedAt": now, "updatedAt": now, "updatedBy": "system:import"},
            )  # fmt: skip

    def _fail(self, current: dict[str, Any], reason: str) -> None:
        now = now_iso()
        latest = self.get(current["tenantId"], current["supplierId"], current["importId"])
        if latest["status"] in FINISHED:
            return
        self.table.update(
            latest["PK"], latest["SK"], int(latest["version"]),
            {"status": "FAILED", "failureReason": reason[:1000], "completedAt": now, "updatedAt": now,
             "updatedBy": "system:import"},
        )  # fmt: skip


def _report_order(error: RowError) -> tuple[int, str, str]:
    return error.row, error.field, error.reason

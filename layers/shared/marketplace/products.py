"""Product listings: registration by a supplier, the listing rules, the fix.

A listing lives beside its supplier: ``TENANT#<t>#SUPPLIER#<s>`` / ``PRODUCT#<sku>``. Its
``quantity`` is what is available to sell: a reservation lowers it, a release restores it (the
supplier-order workflow does both, conditionally, so stock never goes below zero).
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from marketplace import keys, schemas
from marketplace.errors import Conflict, FieldError, InvalidInput, NotFound
from marketplace.principal import Principal
from marketplace.repository import Page, Table, to_item
from marketplace.suppliers import Suppliers, actor, now_iso

ENTITY = "PRODUCT"
STATUSES = ("PENDING", "ACTIVE", "FLAGGED", "REJECTED")
EDITABLE_FIELDS = ("title", "category", "price", "quantity", "images", "attributes")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


@cache
def category_rules() -> dict[str, Any]:
    path = Path(schemas.SCHEMA_DIR) / "categories.json"
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("$")}


def product_sk(sku: str) -> str:
    return f"PRODUCT#{sku}"


def record_id(supplier_id: str, sku: str) -> str:
    """The id the correction queue and the audit trail use for a listing."""
    return f"{supplier_id}/{sku}"


def split_record_id(value: str) -> tuple[str, str]:
    supplier_id, _, sku = value.partition("/")
    if not supplier_id or not sku:
        raise NotFound(f"no listing {value}")
    return supplier_id, sku


# ------------------------------------------------------------------------------------------- rules
def image_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return "must be an https URL"
    if not parts.path.lower().endswith(IMAGE_EXTENSIONS):
        return f"must point to an image file ({', '.join(IMAGE_EXTENSIONS)})"
    return None


def evaluate(listing: dict[str, Any], supplier_status: str) -> tuple[str, list[FieldError]]:
    """(ACTIVE | FLAGGED | REJECTED, flags) for one listing."""
    if supplier_status in ("REJECTED", "MISSING"):
        return "REJECTED", [
            FieldError("supplierId", f"the supplier is {supplier_status}: it cannot sell here")
        ]
    if supplier_status != "APPROVED":
        # Still onboarding: flag rather than reject, so that the listing can be retried once the
        # supplier is approved (POST .../retry) instead of being lost.
        return "FLAGGED", [FieldError("supplierId", f"the supplier is {supplier_status}, not yet APPROVED")]
    document = {k: listing[k] for k in ("sku", *EDITABLE_FIELDS) if k in listing}
    errors = schemas.field_errors("product", document)
    if errors:
        return "FLAGGED", errors
    rules = category_rules().get(listing["category"])
    if rules is None:
        return "FLAGGED", [
            FieldError("category", f"no rules for category {listing['category']}: manual review")
        ]
    if rules.get("prohibited"):
        return "REJECTED", [
            FieldError("category", f"{listing['category']} may not be sold on this marketplace")
        ]
    flags: list[FieldError] = []
    amount = Decimal(str(listing["price"]["amount"]))
    if _decimals(listing["price"]["amount"]) > 2:
        flags.append(FieldError("price.amount", "has more than 2 decimals"))
    low, high = Decimal(str(rules["price"]["min"])), Decimal(str(rules["price"]["max"]))
    if not low <= amount <= high:
        flags.append(
            FieldError("price.amount", f"must be between {low} and {high} for {listing['category']}")
        )
    attributes = listing.get("attributes") or {}
    for name in rules.get("requiredAttributes", []):
        if attributes.get(name) in (None, ""):
            flags.append(FieldError(f"attributes.{name}", f"is required for {listing['category']}"))
    images = listing.get("images", [])
    for i, url in enumerate(images):
        problem = image_problem(url)
        if problem:
            flags.append(FieldError(f"images.{i}", problem))
    counts = rules.get("images", {})
    if not counts.get("min", 0) <= len(images) <= counts.get("max", 20):
        flags.append(
            FieldError(
                "images",
                f"{listing['category']} needs {counts.get('min', 0)} to {counts.get('max', 20)} images",
            )
        )
    return ("FLAGGED", flags) if flags else ("ACTIVE", [])


MAX_ATTRIBUTE_NAME = 64


def _check_decimals(body: dict[str, Any]) -> None:
    """What product.json cannot say: at most 2 decimals, and attribute names of 1 to 64 characters
    (OpenAPI 3.0 has no propertyNames; unbounded names could make a record over DynamoDB's 400 KB)."""
    price = body.get("price")
    amount = price.get("amount") if isinstance(price, dict) else None
    if isinstance(amount, int | float) and not isinstance(amount, bool) and _decimals(amount) > 2:
        raise InvalidInput([FieldError("price.amount", "has more than 2 decimals")])
    attributes = body.get("attributes")
    if isinstance(attributes, dict) and any(not 1 <= len(n) <= MAX_ATTRIBUTE_NAME for n in attributes):
        raise InvalidInput(
            [FieldError("attributes", f"attribute names must be 1 to {MAX_ATTRIBUTE_NAME} characters")]
        )


def _decimals(amount: float) -> int:
    exponent = Decimal(str(amount)).as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


# ------------------------------------------------------------------------------------------- views
_INTERNAL = {"PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "entity", "tenantId"}


def view(record: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in record.items() if k not in _INTERNAL}
    if record.get("status") not in ("FLAGGED", "REJECTED"):
        shown.pop("flags", None)
    return shown


def new_record(tenant_id: str, supplier_id: str, body: dict[str, Any], by: str, now: str) -> dict[str, Any]:
    """A new PENDING listing from a validated body (the API's POST and the bulk import share it);
    its INSERT starts the listing workflow."""
    return {
        "PK": keys.supplier_pk(tenant_id, supplier_id), "SK": product_sk(body["sku"]), "entity": ENTITY,
        "tenantId": tenant_id, "supplierId": supplier_id,
        **{k: body[k] for k in ("sku", *EDITABLE_FIELDS) if k in body},
        "status": "PENDING", "version": 1, "createdAt": now, "updatedAt": now,
        "createdBy": by, "updatedBy": by,
    }  # fmt: skip


# ------------------------------------------------------------------------------------------- service
class Products:
    def __init__(self, table: Table | None = None) -> None:
        self.table = table or Table()

    def _visible_supplier(self, principal: Principal, supplier_id: str) -> dict[str, Any]:
        """The supplier, if the caller may see its listings (404 otherwise, never 403)."""
        only_supplier = "supplier" in principal.roles and not principal.roles & {"retailer", "admin"}
        if only_supplier and principal.supplier_id != supplier_id:
            raise NotFound(f"no supplier {supplier_id}")
        return Suppliers(self.table).get(principal.tenant_id, supplier_id)

    def get(self, tenant_id: str, supplier_id: str, sku: str) -> dict[str, Any]:
        record = self.table.get(keys.supplier_pk(tenant_id, supplier_id), product_sk(sku))
        if record is None or record.get("entity") != ENTITY or record.get("tenantId") != tenant_id:
            raise NotFound(f"no listing {sku} for supplier {supplier_id}")
        return record

    def get_for(self, principal: Principal, supplier_id: str, sku: str) -> dict[str, Any]:
        self._visible_supplier(principal, supplier_id)
        return self.get(principal.tenant_id, supplier_id, sku)

    def list_for(self, principal: Principal, supplier_id: str, limit: int, next_token: str | None) -> Page:
        self._visible_supplier(principal, supplier_id)
        return self.table.query(
            keys.supplier_pk(principal.tenant_id, supplier_id),
            sk_prefix="PRODUCT#",
            limit=limit,
            next_token=next_token,
        )

    def list_by_status(self, tenant_id: str, status: str, limit: int, next_token: str | None) -> Page:
        """The tenant's listings in ``status``, newest first. Only FLAGGED listings are in the status
        index (GSI1): the correction queue is its one reader, and an ACTIVE listing's stock changes
        with every order, which rewrote a tenant-wide index key per order (1,000 orders/s per
        tenant at most, docs/capacity.md)."""
        if status != "FLAGGED":
            raise ValueError("only FLAGGED listings are indexed by status")
        return self.table.query(
            keys.status_gsi_pk(tenant_id, ENTITY, status),
            index="GSI1", pk_name="GSI1PK", sk_name="GSI1SK",
            limit=limit, next_token=next_token, newest_first=True,
        )  # fmt: skip

    def register(self, principal: Principal, supplier_id: str, body: Any) -> dict[str, Any]:
        principal.require("supplier", "retailer", "admin")
        self._visible_supplier(principal, supplier_id)
        if not isinstance(body, dict):
            raise InvalidInput([FieldError("(body)", "must be a JSON object")])
        schemas.validate("product", body)
        _check_decimals(body)
        record = new_record(principal.tenant_id, supplier_id, body, actor(principal), now_iso())
        try:
            self.table.put_new(record)
        except Conflict:
            raise Conflict(f"supplier {supplier_id} already lists {body['sku']}; PATCH it instead") from None
        return record

    def update(
        self, principal: Principal, supplier_id: str, sku: str, body: Any, expected_version: int | None
    ) -> dict[str, Any]:
        """A change of fields; on a FLAGGED listing this is the fix the drain looks for."""
        principal.require("supplier", "retailer", "admin")
        current = self.get_for(principal, supplier_id, sku)
        if not isinstance(body, dict) or not body:
            raise InvalidInput([FieldError("(body)", "must be an object with at least one field to change")])
        unknown = sorted(set(body) - set(EDITABLE_FIELDS))
        if unknown:
            raise InvalidInput([FieldError(f, "cannot be changed") for f in unknown])
        if current["status"] == "REJECTED":
            raise Conflict("a rejected listing cannot be changed")
        version = int(current["version"])
        if expected_version is not None and expected_version != version:
            raise Conflict(f"the listing is at version {version}, not {expected_version}")
        merged = {**{k: current[k] for k in ("sku", *EDITABLE_FIELDS) if k in current}, **body}
        schemas.validate("product", merged)
        _check_decimals(body)
        changes = {k: v for k, v in body.items() if current.get(k) != v}
        if not changes:
            return current
        return self.table.update(
            current["PK"], current["SK"], version,
            {**changes, "updatedAt": now_iso(), "updatedBy": actor(principal)},
        )  # fmt: skip

    def reject(self, principal: Principal, supplier_id: str, sku: str, reason: str) -> dict[str, Any]:
        principal.require("admin")
        current = self.get(principal.tenant_id, supplier_id, sku)
        if current["status"] == "REJECTED":
            return current
        if current["status"] == "ACTIVE":
            raise Conflict("an active listing is not in the correction queue")
        now = now_iso()
        return self.table.update(
            current["PK"], current["SK"], int(current["version"]),
            {"status": "REJECTED", "statusReason": reason, "updatedAt": now, "updatedBy": actor(principal),
             "GSI1PK": None, "GSI1SK": None},  # REMOVE: out of the status index (see list_by_status)
        )  # fmt: skip

    def request_retry(self, principal: Principal, supplier_id: str, sku: str) -> dict[str, Any]:
        principal.require("admin")
        current = self.get(principal.tenant_id, supplier_id, sku)
        if current["status"] != "FLAGGED":
            raise Conflict(f"only a FLAGGED listing can be retried; this one is {current['status']}")
        now = now_iso()
        return self.table.update(
            current["PK"], current["SK"], int(current["version"]),
            {"updatedAt": now, "updatedBy": actor(principal), "retryRequestedAt": now},
        )  # fmt: skip

    def flag_for_operator(
        self, tenant_id: str, supplier_id: str, sku: str, expected_version: int, reason: str
    ):
        now = now_iso()
        return self.table.update(
            keys.supplier_pk(tenant_id, supplier_id), product_sk(sku), expected_version,
            {"status": "FLAGGED", "flags": [{"field": "(system)", "reason": reason}], "updatedAt": now,
             "updatedBy": "system:correction-drain", "GSI1PK": keys.status_gsi_pk(tenant_id, ENTITY, "FLAGGED"),
             "GSI1SK": now},
        )  # fmt: skip

    # ---------------------------------------------------------------- the listing workflow's step
    def validation_step(self, tenant_id: str, supplier_id: str, sku: str) -> dict[str, Any]:
        listing = self.get(tenant_id, supplier_id, sku)
        try:
            supplier_status = Suppliers(self.table).get(tenant_id, supplier_id)["status"]
        except NotFound:
            supplier_status = "MISSING"
        outcome, flags = evaluate(listing, supplier_status)
        flag_dicts = [f.as_dict() for f in flags]
        return {
            "outcome": outcome,
            "flags": flag_dicts,
            "flagsAttribute": to_item({"flags": flag_dicts})["flags"],
            "version": int(listing["version"]),
        }

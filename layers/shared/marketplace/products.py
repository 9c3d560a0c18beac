"""Product listings: registration by a supplier, the listing rules, the fix.

A listing is a reviewed record (:mod:`marketplace.reviewed`) that lives beside its supplier
(:func:`marketplace.keys.product_sk`). Its ``quantity`` is what is available to sell: a reservation
lowers it, a release restores it (the supplier-order workflow does both, conditionally, so stock
never goes below zero), and a supplier's stock adjustment adds or removes units. Every one of them
moves the listing's ``version`` and says who did it, when and why (``updatedBy``, ``updatedAt``,
``stockChange``: what the audit trail records), so an ``If-Match`` read before a reservation no
longer matches after it (docs/decisions.md D38).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from marketplace import access, keys, proposals, rule_packs, schemas, suppliers
from marketplace.clock import now_iso
from marketplace.errors import Conflict, FieldError, InvalidInput, NotFound, PreconditionFailed
from marketplace.principal import Principal
from marketplace.repository import Page, Table
from marketplace.reviewed import Kind, Records, Verdict, record_view
from marketplace.rule_packs import RulePack

ENTITY = "PRODUCT"
# DELISTED: an active listing taken off sale by an admin or its supplier (docs/decisions.md D40).
DELISTED = "DELISTED"
STATUSES = ("PENDING", "ACTIVE", "FLAGGED", "REJECTED", DELISTED)
EDITABLE_FIELDS = ("title", "category", "price", "quantity", "images", "attributes")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
MAX_QUANTITY = 1_000_000  # schemas/product.json's bound on quantity
# A change that loses a race to a reservation (the version moved) is read and applied again, this
# many times at most, when the caller named no version (If-Match) to hold it to.
ATTEMPTS = 3


def stock_change(delta: int, reason: str, supplier_order_id: str | None = None) -> dict[str, Any]:
    """What a listing records of its last stock change, which its audit entry shows: the units
    (``delta``), why, and the supplier order that reserved or gave them back."""
    return {
        "delta": delta,
        "reason": reason,
        **({"supplierOrderId": supplier_order_id} if supplier_order_id else {}),
    }


def record_key(tenant_id: str, record_id_value: str) -> tuple[str, str]:
    supplier_id, sku = split_record_id(record_id_value)
    return keys.supplier_pk(tenant_id, supplier_id), keys.product_sk(sku)


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
    try:
        parts = urlsplit(url)
        host = parts.hostname  # urlsplit or .hostname raise ValueError on "https://a]b/" and the like
    except ValueError:
        host = None
    if host is None or parts.scheme != "https" or not host:
        return "must be an https URL"
    if not parts.path.lower().endswith(IMAGE_EXTENSIONS):
        return f"must point to an image file ({', '.join(IMAGE_EXTENSIONS)})"
    return None


def evaluate(
    listing: dict[str, Any], supplier_status: str, pack: RulePack | None = None
) -> tuple[str, list[FieldError]]:
    """(ACTIVE | FLAGGED | REJECTED, flags) for one listing, by the categories of ``pack`` (the
    tenant's rule pack; the defaults if None)."""
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
    rules = (pack or rule_packs.default()).category(listing["category"])
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


def _check_attribute_names(body: dict[str, Any]) -> None:
    """What product.json cannot say: attribute names of 1 to 64 characters (OpenAPI 3.0 has no
    propertyNames; unbounded names could make a record over DynamoDB's 400 KB)."""
    attributes = body.get("attributes")
    if isinstance(attributes, dict) and any(not 1 <= len(n) <= MAX_ATTRIBUTE_NAME for n in attributes):
        raise InvalidInput(
            [FieldError("attributes", f"attribute names must be 1 to {MAX_ATTRIBUTE_NAME} characters")]
        )


# ------------------------------------------------------------------------------------------- views
def view(record: dict[str, Any]) -> dict[str, Any]:
    shown = record_view(record)
    # The audit trail's (GET .../history), not the listing's: why its stock last changed, and the
    # update-mode import that last set it (marketplace.imports).
    for marker in ("stockChange", "lastImport"):
        shown.pop(marker, None)
    return shown


def new_record(tenant_id: str, supplier_id: str, body: dict[str, Any], by: str, now: str) -> dict[str, Any]:
    """A new PENDING listing from a validated body (the API's POST and the bulk import share it);
    its INSERT starts the listing workflow."""
    return {
        "PK": keys.supplier_pk(tenant_id, supplier_id), "SK": keys.product_sk(body["sku"]), "entity": ENTITY,
        "tenantId": tenant_id, "supplierId": supplier_id,
        **{k: body[k] for k in ("sku", *EDITABLE_FIELDS) if k in body},
        "status": "PENDING", "version": 1, "createdAt": now, "updatedAt": now,
        "createdBy": by, "updatedBy": by,
    }  # fmt: skip


def rules(table: Table, tenant_id: str, listing: dict[str, Any], pack: RulePack | None = None) -> Verdict:
    """The listing verdict by ``pack`` (the tenant's rule pack, which the validation step reads; the
    defaults if None), with its one lookup: the supplier's status."""
    try:
        supplier_status = suppliers.Suppliers(table).get(tenant_id, listing["supplierId"])["status"]
    except NotFound:
        supplier_status = "MISSING"
    outcome, flags = evaluate(listing, supplier_status, pack)
    return Verdict(outcome, tuple(flags))


KIND = Kind(
    name=ENTITY, label="listing", approved="ACTIVE", statuses=STATUSES,
    # Only FLAGGED listings are in the status index (GSI1): the correction queue is its one reader,
    # and an ACTIVE listing's stock changes with every order, which rewrote a tenant-wide index
    # key per order (1,000 orders/s per tenant at most, docs/capacity.md).
    indexed=frozenset({"FLAGGED"}),
    state_machine_env="PRODUCT_LISTING_STATE_MACHINE_ARN", key=record_key,
    record_id=lambda record: record_id(record["supplierId"], record["sku"]), view=view,
    correction_fields=lambda record: {"supplierId": record["supplierId"], "sku": record["sku"]},
    rules=rules, correction_prefix="PRODUCT:", withdrawn=DELISTED,
)  # fmt: skip


# A high-risk change of an ACTIVE listing waits for review as a proposal (marketplace.proposals).
PROPOSAL_KIND = proposals.kind_for(KIND, lambda table, approved: Products(table).proposals.apply(approved))


# ------------------------------------------------------------------------------------------- service
class Products:
    def __init__(self, table: Table | None = None) -> None:
        self.table = table or Table()
        self.records = Records(KIND, self.table)
        # The stock never waits for review: a proposal applied later would set a count that
        # reservations have moved since (D38).
        self.proposals = proposals.Proposals(
            KIND, PROPOSAL_KIND, "product", ("sku", *EDITABLE_FIELDS), self.table, immediate=("quantity",)
        )

    def visible_supplier(self, principal: Principal, supplier_id: str) -> dict[str, Any]:
        """The supplier, if the caller may see its listings (404 otherwise, never 403)."""
        access.require_supplier(principal, supplier_id)
        return suppliers.Suppliers(self.table).get(principal.tenant_id, supplier_id)

    def get(self, tenant_id: str, supplier_id: str, sku: str) -> dict[str, Any]:
        return self.records.get(tenant_id, record_id(supplier_id, sku))

    def get_for(self, principal: Principal, supplier_id: str, sku: str) -> dict[str, Any]:
        self.visible_supplier(principal, supplier_id)
        return self.get(principal.tenant_id, supplier_id, sku)

    def shown_for(self, principal: Principal, supplier_id: str, sku: str) -> dict[str, Any]:
        """The listing as the API shows it, with its pending proposal if it has one."""
        shown = view(self.get_for(principal, supplier_id, sku))
        return self.proposals.shown_with(shown, principal.tenant_id, record_id(supplier_id, sku))

    def list_for(self, principal: Principal, supplier_id: str, limit: int, next_token: str | None) -> Page:
        self.visible_supplier(principal, supplier_id)
        return self.table.query(
            keys.supplier_pk(principal.tenant_id, supplier_id),
            sk_prefix=keys.PRODUCT_SK_PREFIX,
            limit=limit,
            next_token=next_token,
        )

    def list_by_status(self, tenant_id: str, status: str, limit: int, next_token: str | None) -> Page:
        return self.records.list_by_status(tenant_id, status, limit, next_token)

    def register(self, principal: Principal, supplier_id: str, body: Any) -> dict[str, Any]:
        self.visible_supplier(principal, supplier_id)
        if not isinstance(body, dict):
            raise InvalidInput([FieldError("(body)", "must be a JSON object")])
        schemas.validate("product", body)
        _check_attribute_names(body)
        record = {
            **new_record(principal.tenant_id, supplier_id, body, principal.actor, now_iso()),
            **principal.marker(),
        }
        try:
            self.table.put_new(record)
        except Conflict:
            raise Conflict(f"supplier {supplier_id} already lists {body['sku']}; PATCH it instead") from None
        return record

    def update(
        self, principal: Principal, supplier_id: str, sku: str, body: Any, expected_version: int | None
    ) -> dict[str, Any]:
        """A change of fields; on a FLAGGED listing this is the fix the drain looks for.

        With ``expected_version`` (If-Match) it applies only to that version: one a reservation has
        moved since is 412. Without, a change that loses a race (a reservation moved the version
        between the read and the write) is read and applied again. On an ACTIVE listing a high-risk
        change (or one to a pending proposal's fields) is not applied: the proposal it makes or
        amends is returned instead (marketplace.proposals)."""
        if not isinstance(body, dict) or not body:
            raise InvalidInput([FieldError("(body)", "must be an object with at least one field to change")])
        unknown = sorted(set(body) - set(EDITABLE_FIELDS))
        if unknown:
            raise InvalidInput([FieldError(f, "cannot be changed") for f in unknown])
        for _ in range(ATTEMPTS):
            current = self.get_for(principal, supplier_id, sku)
            changes, version = self.records.change_fields(current, body, expected_version)
            merged = {**{k: current[k] for k in ("sku", *EDITABLE_FIELDS) if k in current}, **body}
            schemas.validate("product", merged)
            _check_attribute_names(body)
            proposal = self.proposals.gate(principal, current, body)
            if proposal is not None:
                return proposal
            if not changes:
                return current
            if "quantity" in changes:
                delta = int(changes["quantity"]) - int(current.get("quantity", 0))
                changes["stockChange"] = stock_change(delta, "quantity set")
            try:
                return self.table.update(
                    current["PK"], current["SK"], version,
                    {**changes, "updatedAt": now_iso(), "updatedBy": principal.actor},
                )  # fmt: skip
            except Conflict:
                if expected_version is not None:
                    raise PreconditionFailed(
                        f"the listing is no longer at version {expected_version}"
                    ) from None
        raise Conflict(f"the listing {supplier_id}/{sku} keeps changing; read it and try again")

    def adjust_stock(self, principal: Principal, supplier_id: str, sku: str, body: Any) -> dict[str, Any]:
        """Add (``delta`` > 0) or remove (``delta`` < 0) units of a listing's stock, with ``reason``:
        one write conditional on the quantity staying within 0 and its maximum, not on the version,
        so it never races a reservation (each lands whole, in either order) and a removal of more
        than is available is refused (409 naming ``delta``), never taken from units already reserved.
        Moves the version; the audit trail records who, when and why."""
        listing = self.get_for(principal, supplier_id, sku)
        if not isinstance(body, dict):
            raise InvalidInput([FieldError("(body)", "must be a JSON object")])
        schemas.validate("stock_adjustment", body)
        delta, reason = int(body["delta"]), body["reason"].strip()
        try:
            return self.table.add(
                listing["PK"], listing["SK"], "quantity", delta,
                {"updatedAt": now_iso(), "updatedBy": principal.actor, "stockChange": stock_change(delta, reason)},
                floor=0, ceiling=MAX_QUANTITY, status_not_in=("REJECTED",),
            )  # fmt: skip
        except Conflict:
            latest = self.get_for(principal, supplier_id, sku)  # 404 if it was deleted meanwhile
        if latest["status"] == "REJECTED":
            raise Conflict("a rejected listing cannot be changed")
        available = int(latest.get("quantity", 0))
        if delta < 0:
            why = f"would take the quantity below 0: {available} available, {-delta} asked to remove"
        else:
            why = f"would take the quantity over {MAX_QUANTITY}: {available} available"
        raise Conflict(f"the listing's stock cannot change by {delta}", [FieldError("delta", why)])

    def reject(self, principal: Principal, supplier_id: str, sku: str, reason: str) -> dict[str, Any]:
        return self.records.reject(principal, record_id(supplier_id, sku), reason)

    def request_retry(self, principal: Principal, supplier_id: str, sku: str) -> dict[str, Any]:
        return self.records.request_retry(principal, record_id(supplier_id, sku))

    # ---------------------------------------------------------------- the listing workflow's step
    def validation_step(self, tenant_id: str, supplier_id: str, sku: str) -> dict[str, Any]:
        return self.records.validation_step(tenant_id, record_id(supplier_id, sku))

    def review_step(self, kind: str | None, tenant_id: str, supplier_id: str, sku: str) -> dict[str, Any]:
        """The workflow's Validate step for the record its input names: the listing, or its
        proposal (``kind``), which the same rules review."""
        if kind == PROPOSAL_KIND.name:
            return Records(PROPOSAL_KIND, self.table).validation_step(tenant_id, record_id(supplier_id, sku))
        return self.validation_step(tenant_id, supplier_id, sku)

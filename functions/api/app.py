"""The marketplace REST API: routes parse the request and shape the response; the rules live in
the ``marketplace`` domain package."""

from __future__ import annotations

import base64
import json
import os
import unicodedata
import warnings
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import audit, blocklist, config, keys, orders, products, schemas, webhooks
from marketplace.adapters import aws
from marketplace.errors import FieldError, InvalidInput, MarketplaceError, NotFound, TransientError
from marketplace.principal import Principal
from marketplace.suppliers import Suppliers, view

# Read-only routes publish no metric; Powertools warns on every such response otherwise.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()
app = APIGatewayRestResolver()

# The shared client: one DynamoDB model loaded per cold start, not one for us and one for Powertools.
idempotency_store = DynamoDBPersistenceLayer(
    table_name=os.environ["IDEMPOTENCY_TABLE_NAME"], boto3_client=aws.client("dynamodb")
)
idempotency_config = IdempotencyConfig(
    event_key_jmespath="[tenantId, route, idempotencyKey]",
    payload_validation_jmespath="body",
    expires_after_seconds=24 * 3600,
)
MAX_PAGE = 100
# Of this function's time, what the drain may not use: the drain function's own start (a cold one
# takes a second or two) and this answer.
DRAIN_MARGIN_MS = 4000


# ------------------------------------------------------------------------------------ errors
def _error(status: int, code: str, message: str, fields: list[dict[str, str]] | None = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body={"error": error})


@app.exception_handler(InvalidInput)
def _invalid_input(exc: InvalidInput) -> Response:
    return _error(exc.status, exc.code, str(exc), [f.as_dict() for f in exc.fields])


@app.exception_handler(MarketplaceError)
def _marketplace_error(exc: MarketplaceError) -> Response:
    if exc.status >= 500:
        logger.exception("request failed")
    return _error(exc.status, exc.code, str(exc))


@app.exception_handler(IdempotencyValidationError)
def _idempotency_mismatch(exc: IdempotencyValidationError) -> Response:
    return _error(422, "idempotency_key_reused", "this Idempotency-Key was used with a different body")


@app.exception_handler(IdempotencyAlreadyInProgressError)
def _idempotency_in_progress(exc: IdempotencyAlreadyInProgressError) -> Response:
    return _error(409, "in_progress", "a request with this Idempotency-Key is still in progress")


@app.not_found
def _not_found(exc: NotFoundError) -> Response:
    return _error(404, "not_found", "no such route")


# ------------------------------------------------------------------------------------ helpers
def _principal() -> Principal:
    return Principal.from_claims(app.current_event.request_context.authorizer.claims)


def _body() -> Any:
    event = app.current_event
    raw: str | bytes | None = event.body
    if event.is_base64_encoded and raw:
        raw = base64.b64decode(raw)  # API Gateway's form of a body that is not UTF-8
    return schemas.parse_body(raw)


def _object_body() -> dict[str, Any]:
    body = _body()
    if not isinstance(body, dict):
        raise InvalidInput([FieldError("(body)", "must be a JSON object")])
    return body


def _page_args() -> tuple[int, str | None]:
    raw_limit = app.current_event.get_query_string_value("limit", "50") or "50"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
        raise InvalidInput([FieldError("limit", f"must be an integer from 1 to {MAX_PAGE}")])
    return int(raw_limit), app.current_event.get_query_string_value("nextToken") or None


def _idempotency_key() -> str | None:
    key = app.current_event.get_header_value("Idempotency-Key", case_sensitive=False)
    if key is None:
        return None
    if not 1 <= len(key) <= 128 or not key.isprintable():
        raise InvalidInput([FieldError("Idempotency-Key", "must be 1 to 128 printable characters")])
    return key


def _expected_version() -> int | None:
    raw = app.current_event.get_header_value("If-Match", case_sensitive=False)
    if raw is None:
        return None
    raw = raw.strip().strip('"')
    if not raw.isdigit():
        raise InvalidInput([FieldError("If-Match", "must be the record's version number")])
    return int(raw)


def _reason() -> str:
    body = _object_body()
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 1000 or not _text(reason):
        raise InvalidInput(
            [FieldError("reason", "is required: 1 to 1000 characters, no control characters but newlines")]
        )
    extra = sorted(set(body) - {"reason"})
    if extra:
        raise InvalidInput([FieldError(f, "is not allowed") for f in extra])
    return reason.strip()


def _text(value: str) -> bool:
    """Free text: no control characters (NUL, escape, ...) but line breaks and tabs."""
    return not any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in value)


def _supplier_visible(principal: Principal, supplier_id: str) -> None:
    """Retailers and admins see their tenant's suppliers; a supplier sees only itself (404 else)."""
    if principal.roles & {"retailer", "admin"}:
        return
    if "supplier" in principal.roles and principal.supplier_id == supplier_id:
        return
    raise NotFound(f"no supplier {supplier_id}")


# ------------------------------------------------------------------------------------ routes
@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


def _registered(record: dict[str, Any]) -> dict[str, Any]:
    return {"supplierId": record["supplierId"], "status": record["status"], "version": record["version"]}


_CREATORS = {
    "POST /suppliers": lambda principal, body: _registered(Suppliers().register(principal, body)),
    "POST /orders": lambda principal, body: _placed(orders.Orders().place(principal, body)),
}


@idempotent_function(
    data_keyword_argument="request", config=idempotency_config, persistence_store=idempotency_store
)
def _create_once(request: dict[str, Any], principal: Principal) -> dict[str, Any]:
    return _CREATORS[request["route"]](principal, request["body"])


def _create(principal: Principal, route: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create once per Idempotency-Key: the same key and body return the first answer; the same
    key with another body is refused (422)."""
    key = _idempotency_key()
    if key is None:
        return _CREATORS[route](principal, body)
    request = {"tenantId": principal.tenant_id, "route": route, "idempotencyKey": key, "body": body}
    return _create_once(request=request, principal=principal)


@app.post("/suppliers")
def register_supplier() -> Response:
    principal = _principal()
    principal.require("retailer", "admin")
    result = _create(principal, "POST /suppliers", _object_body())
    metrics.add_metric(name="SuppliersRegistered", unit="Count", value=1)
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body=result,
        headers={"Location": f"/suppliers/{result['supplierId']}"},
    )


@app.get("/suppliers")
def list_suppliers() -> dict[str, Any]:
    principal = _principal()
    principal.require("retailer", "admin")
    limit, token = _page_args()
    status = app.current_event.get_query_string_value("status")
    page = Suppliers().list(principal.tenant_id, status, limit, token)
    return {"items": [view(i) for i in page.items], "nextToken": page.next_token}


@app.get("/suppliers/<supplierId>")
def get_supplier(supplierId: str) -> dict[str, Any]:
    principal = _principal()
    _supplier_visible(principal, supplierId)
    return view(Suppliers().get(principal.tenant_id, supplierId))


@app.patch("/suppliers/<supplierId>")
def update_supplier(supplierId: str) -> dict[str, Any]:
    principal = _principal()
    principal.require("retailer", "admin")
    record = Suppliers().update(principal, supplierId, _object_body(), _expected_version())
    return view(record)


@app.get("/suppliers/<supplierId>/history")
def supplier_history(supplierId: str) -> dict[str, Any]:
    principal = _principal()
    _supplier_visible(principal, supplierId)
    limit, token = _page_args()
    page = Suppliers().history(principal.tenant_id, supplierId, limit, token)
    return {"items": [audit.view(i) for i in page.items], "nextToken": page.next_token}


def _correction(record: dict[str, Any], now: datetime) -> dict[str, Any]:
    flagged_at = record.get("updatedAt")
    age = (
        (now - datetime.fromisoformat(flagged_at.replace("Z", "+00:00"))).total_seconds()
        if flagged_at
        else None
    )
    if record.get("entity") == orders.ENTITY:
        return {
            "recordType": "SUPPLIER_ORDER",
            "recordId": record["supplierOrderId"],
            "supplierId": record["supplierId"],
            "version": record["version"],
            "flags": record.get("flags", []),
            "flaggedAt": flagged_at,
            "ageSeconds": int(age) if age is not None else None,
            "record": orders.view(record),
        }
    is_product = record.get("entity") == products.ENTITY
    return {
        "recordType": "PRODUCT" if is_product else "SUPPLIER",
        "recordId": products.record_id(record["supplierId"], record["sku"])
        if is_product
        else record["supplierId"],
        "supplierId": record["supplierId"],
        **({"sku": record["sku"]} if is_product else {}),
        "version": record["version"],
        "flags": record.get("flags", []),
        "flaggedAt": flagged_at,
        "ageSeconds": int(age) if age is not None else None,
        "record": products.view(record) if is_product else view(record),
    }


@app.get("/admin/corrections")
def list_corrections() -> dict[str, Any]:
    """Flagged suppliers, then listings, then supplier orders; the page token says which list it
    continues (S., P. or O.)."""
    principal = _principal()
    principal.require("admin")
    limit, token = _page_args()
    kind, inner = "SUPPLIER", token
    if token and token.startswith("O."):
        kind, inner = "SUPPLIER_ORDER", token[2:] or None
    elif token and token.startswith("P."):
        kind, inner = "PRODUCT", token[2:] or None
    elif token and token.startswith("S."):
        inner = token[2:]
    items: list[dict[str, Any]] = []
    next_token = None
    now = datetime.now(UTC)
    if kind == "SUPPLIER":
        page = Suppliers().list(principal.tenant_id, "FLAGGED", limit, inner)
        items = [_correction(r, now) for r in page.items]
        next_token = f"S.{page.next_token}" if page.next_token else None
        if next_token is None and len(items) < limit:
            kind, inner = "PRODUCT", None
    if kind == "PRODUCT":
        page = products.Products().list_by_status(principal.tenant_id, "FLAGGED", limit - len(items), inner)
        items += [_correction(r, now) for r in page.items]
        next_token = f"P.{page.next_token}" if page.next_token else None
        if next_token is None and len(items) < limit:
            kind, inner = "SUPPLIER_ORDER", None
    if kind == "SUPPLIER_ORDER":
        page = orders.Orders().table.query(
            keys.status_gsi_pk(principal.tenant_id, orders.ENTITY, "FLAGGED"),
            index="GSI1", pk_name="GSI1PK", sk_name="GSI1SK", limit=limit - len(items), next_token=inner,
            newest_first=True,
        )  # fmt: skip
        items += [_correction(r, now) for r in page.items]
        next_token = f"O.{page.next_token}" if page.next_token else None
    return {"items": items, "nextToken": next_token}


@app.post("/admin/corrections/drain")
def drain_corrections() -> dict[str, Any]:
    principal = _principal()
    principal.require("admin")
    # The drain must answer within this function's own timeout (and API Gateway's 29 s): it drains
    # what fits in the time left here, less a margin for the answer, and says "more" when the
    # queue held more than that; the caller asks again.
    budget_ms = app.lambda_context.get_remaining_time_in_millis() - DRAIN_MARGIN_MS
    if budget_ms <= 0:
        raise TransientError("no time left to run the drain; try again")
    response = aws.client("lambda").invoke(
        FunctionName=os.environ["CORRECTION_DRAIN_FUNCTION_NAME"],
        InvocationType="RequestResponse",
        Payload=json.dumps(
            {"source": "api", "requestedBy": principal.subject, "budgetMs": budget_ms}
        ).encode(),
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError") or not isinstance(payload, dict):
        logger.error("drain failed", extra={"payload": payload})
        raise TransientError("the drain failed; the correction queue is unchanged, try again")
    mine = payload.get("byTenant", {}).get(principal.tenant_id, {})
    resumed = int(mine.get("resumed", 0)) + int(mine.get("restarted", 0))
    waiting = int(mine.get("waiting", 0)) + int(mine.get("requeued", 0))
    return {"resumed": resumed, "waiting": waiting, "more": bool(payload.get("more", False))}


@app.post("/admin/corrections/<recordId>/reject")
def reject_correction(recordId: str) -> dict[str, Any]:
    principal = _principal()
    principal.require("admin")
    return view(Suppliers().reject(principal, recordId, _reason()))


@app.post("/admin/corrections/<recordId>/retry")
def retry_correction(recordId: str) -> dict[str, Any]:
    principal = _principal()
    principal.require("admin")
    return view(Suppliers().request_retry(principal, recordId))


@app.post("/suppliers/<supplierId>/products")
def register_product(supplierId: str) -> Response:
    principal = _principal()
    record = products.Products().register(principal, supplierId, _object_body())
    metrics.add_metric(name="ListingsRegistered", unit="Count", value=1)
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body={"sku": record["sku"], "status": record["status"], "version": record["version"]},
        headers={"Location": f"/suppliers/{supplierId}/products/{record['sku']}"},
    )


@app.get("/suppliers/<supplierId>/products")
def list_products(supplierId: str) -> dict[str, Any]:
    principal = _principal()
    limit, token = _page_args()
    page = products.Products().list_for(principal, supplierId, limit, token)
    return {"items": [products.view(i) for i in page.items], "nextToken": page.next_token}


@app.get("/suppliers/<supplierId>/products/<sku>")
def get_product(supplierId: str, sku: str) -> dict[str, Any]:
    return products.view(products.Products().get_for(_principal(), supplierId, sku))


@app.patch("/suppliers/<supplierId>/products/<sku>")
def update_product(supplierId: str, sku: str) -> dict[str, Any]:
    record = products.Products().update(_principal(), supplierId, sku, _object_body(), _expected_version())
    return products.view(record)


@app.get("/suppliers/<supplierId>/products/<sku>/history")
def product_history(supplierId: str, sku: str) -> dict[str, Any]:
    principal = _principal()
    listings = products.Products()
    record = listings.get_for(principal, supplierId, sku)
    limit, token = _page_args()
    page = listings.table.query(
        record["PK"], sk_prefix=audit.trail_prefix(record["SK"]), limit=limit, next_token=token
    )
    return {"items": [audit.view(i) for i in page.items], "nextToken": page.next_token}


@app.post("/suppliers/<supplierId>/products/<sku>/reject")
def reject_product(supplierId: str, sku: str) -> dict[str, Any]:
    principal = _principal()
    principal.require("admin")
    return products.view(products.Products().reject(principal, supplierId, sku, _reason()))


@app.post("/suppliers/<supplierId>/products/<sku>/retry")
def retry_product(supplierId: str, sku: str) -> dict[str, Any]:
    principal = _principal()
    principal.require("admin")
    return products.view(products.Products().request_retry(principal, supplierId, sku))


def _placed(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "orderId": order["orderId"],
        "customerOrderId": order["customerOrderId"],
        "supplierOrders": [
            {"supplierOrderId": s["supplierOrderId"], "supplierId": s["supplierId"], "status": s["status"]}
            for s in order["supplierOrders"]
        ],
    }


@app.post("/orders")
def place_order() -> Response:
    principal = _principal()
    principal.require("retailer")
    result = _create(principal, "POST /orders", _object_body())
    metrics.add_metric(name="OrdersPlaced", unit="Count", value=1)
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body=result,
        headers={"Location": f"/orders/{result['orderId']}"},
    )


@app.get("/orders/<orderId>")
def get_order(orderId: str) -> dict[str, Any]:
    order = orders.Orders().get_order(_principal(), orderId)
    shown = {
        k: order[k] for k in ("orderId", "customerOrderId", "shipTo", "createdAt", "createdBy") if k in order
    }
    return {**shown, "supplierOrders": [orders.view(s) for s in order["supplierOrders"]]}


@app.get("/supplier-orders")
def list_supplier_orders() -> dict[str, Any]:
    principal = _principal()
    limit, token = _page_args()
    supplier_id = app.current_event.get_query_string_value("supplierId")
    status = app.current_event.get_query_string_value("status")
    page = orders.Orders().list_for_supplier(principal, supplier_id, status, limit, token)
    return {"items": [orders.view(i) for i in page.items], "nextToken": page.next_token}


@app.get("/supplier-orders/<supplierOrderId>")
def get_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    return orders.view(orders.Orders().get_for(_principal(), supplierOrderId))


@app.post("/supplier-orders/<supplierOrderId>/accept")
def accept_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    return orders.view(orders.Orders().accept(_principal(), supplierOrderId))


@app.post("/supplier-orders/<supplierOrderId>/reject")
def reject_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    principal = _principal()
    return orders.view(orders.Orders().reject(principal, supplierOrderId, _reason()))


@app.post("/supplier-orders/<supplierOrderId>/cancel")
def cancel_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    principal = _principal()
    principal.require("admin")
    return orders.view(orders.Orders().cancel(principal, supplierOrderId, _reason()))


@app.post("/supplier-orders/<supplierOrderId>/retry")
def retry_supplier_order(supplierOrderId: str) -> dict[str, Any]:
    return orders.view(orders.Orders().request_retry(_principal(), supplierOrderId))


@app.put("/suppliers/<supplierId>/webhook")
def register_webhook(supplierId: str) -> dict[str, Any]:
    return webhooks.Webhooks().register(_principal(), supplierId, _object_body(), _expected_version())


@app.get("/suppliers/<supplierId>/webhook")
def get_webhook(supplierId: str) -> dict[str, Any]:
    return webhooks.Webhooks().get_webhook(_principal(), supplierId)


@app.get("/suppliers/<supplierId>/deliveries")
def list_deliveries(supplierId: str) -> dict[str, Any]:
    principal = _principal()
    limit, token = _page_args()
    status = app.current_event.get_query_string_value("status")
    _supplier_visible(principal, supplierId)
    Suppliers().get(principal.tenant_id, supplierId)  # an unknown or another tenant's supplier: 404
    page = webhooks.Webhooks().list_deliveries(principal, supplierId, status, limit, token)
    return {"items": page.items, "nextToken": page.next_token}


@app.get("/suppliers/<supplierId>/deliveries/<deliveryId>")
def get_delivery(supplierId: str, deliveryId: str) -> dict[str, Any]:
    return webhooks.Webhooks().get_delivery(_principal(), supplierId, deliveryId)


@app.post("/suppliers/<supplierId>/deliveries/<deliveryId>/redrive")
def redrive_delivery(supplierId: str, deliveryId: str) -> dict[str, Any]:
    return webhooks.Webhooks().redrive(_principal(), supplierId, deliveryId)


@app.get("/admin/blocklist")
def list_blocklist() -> dict[str, Any]:
    principal = _principal()
    principal.require("admin")
    limit, token = _page_args()
    page = blocklist.list_entries(principal.tenant_id, limit, token)
    return {"items": [blocklist.view(i) for i in page.items], "nextToken": page.next_token}


@app.post("/admin/blocklist")
def add_blocklist() -> Response:
    principal = _principal()
    principal.require("admin")
    entry = blocklist.add(principal, _object_body())
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=blocklist.view(entry))


@app.delete("/admin/blocklist/<entryId>")
def delete_blocklist(entryId: str) -> Response:
    principal = _principal()
    principal.require("admin")
    blocklist.remove(principal.tenant_id, entryId)
    return Response(status_code=204, content_type=content_types.APPLICATION_JSON, body="")


from imports import router as imports_router  # noqa: E402 - the bulk import routes (docs/import.md)

app.include_router(imports_router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency_config.register_lambda_context(context)
    return app.resolve(event, context)

"""The marketplace REST API: the resolver, its error answers and the handler. The routes are in
``routes/``, one router per resource, each route with the roles that may call it (routes/policy.py);
the rules live in the ``marketplace`` domain package."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from routes import (
    blocklist,
    corrections,
    health,
    imports,
    logger,
    metrics,
    money,
    orders,
    platform,
    products,
    request,
    returns,
    rule_packs,
    shipments,
    supplier_orders,
    suppliers,
    tracer,
    webhooks,
)

from marketplace.errors import InvalidInput, MarketplaceError, Throttled
from marketplace.observability import observed

app = APIGatewayRestResolver()
for resource in (
    health,
    suppliers,
    products,
    imports,
    orders,
    supplier_orders,
    shipments,
    returns,
    webhooks,
    corrections,
    blocklist,
    money,
    rule_packs,
    platform,
):
    app.include_router(resource.router)


def _error(
    status: int,
    code: str,
    message: str,
    fields: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": error},
        headers=headers,
    )


@app.exception_handler(InvalidInput)
def _invalid_input(exc: InvalidInput) -> Response:
    return _error(exc.status, exc.code, str(exc), [f.as_dict() for f in exc.fields])


@app.exception_handler(Throttled)
def _throttled(exc: Throttled) -> Response:
    return _error(exc.status, exc.code, str(exc), headers={"Retry-After": str(exc.retry_after)})


@app.exception_handler(MarketplaceError)
def _marketplace_error(exc: MarketplaceError) -> Response:
    if exc.status >= 500:
        logger.exception("request failed")
    fields = getattr(exc, "fields", None)
    return _error(exc.status, exc.code, str(exc), [f.as_dict() for f in fields] if fields else None)


@app.exception_handler(IdempotencyValidationError)
def _idempotency_mismatch(exc: IdempotencyValidationError) -> Response:
    return _error(422, "idempotency_key_reused", "this Idempotency-Key was used with a different body")


@app.exception_handler(IdempotencyAlreadyInProgressError)
def _idempotency_in_progress(exc: IdempotencyAlreadyInProgressError) -> Response:
    return _error(409, "in_progress", "a request with this Idempotency-Key is still in progress")


@app.not_found
def _not_found(exc: NotFoundError) -> Response:
    return _error(404, "not_found", "no such route")


@observed(logger, tracer, metrics, correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request.idempotency_config.register_lambda_context(context)
    return app.resolve(event, context)

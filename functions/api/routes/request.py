"""What the routes read from a request, checked the same way on every route: the JSON body, the
page (``limit``, ``nextToken``), ``If-Match``, a ``reason``, and ``Idempotency-Key`` with the create
it makes idempotent. Each error is a 400 naming the field (``InvalidInput``). And the one answer
shape they share: a record created or accepted, with its ``Location``."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from marketplace import proposals, schemas
from marketplace.adapters import aws
from marketplace.errors import FieldError, InvalidInput
from marketplace.observability import count
from marketplace.principal import Principal
from routes import metrics
from routes.policy import caller

# The rules of each parameter are its schema in schemas/parameters.json, which the OpenAPI body's
# components.parameters repeat; only reading a query string's integer is done here.
LIMIT = schemas.parameter("limit")
MAX_PAGE = LIMIT["maximum"]
DEFAULT_PAGE = 50
# An integer in a query string is ASCII digits: str.isdigit() also accepts "²" and other Unicode
# digits that int() refuses, and int() refuses more than 4300 digits.
_INTEGER = re.compile(r"[0-9]{1,6}")

# The shared client: one DynamoDB model loaded per cold start, not one for us and one for Powertools.
idempotency_store = DynamoDBPersistenceLayer(
    table_name=os.environ["IDEMPOTENCY_TABLE_NAME"], boto3_client=aws.client("dynamodb")
)
# app.py's handler registers each invocation's Lambda context with this config.
idempotency_config = IdempotencyConfig(
    event_key_jmespath="[tenantId, route, idempotencyKey]",
    payload_validation_jmespath="body",
    expires_after_seconds=24 * 3600,
)


def body(event: BaseProxyEvent) -> Any:
    raw: str | bytes | None = event.body
    if event.is_base64_encoded and raw:
        raw = base64.b64decode(raw)  # API Gateway's form of a body that is not UTF-8
    return schemas.parse_body(raw)


def object_body(event: BaseProxyEvent) -> dict[str, Any]:
    parsed = body(event)
    if not isinstance(parsed, dict):
        raise InvalidInput([FieldError("(body)", "must be a JSON object")])
    return parsed


def has_body(event: BaseProxyEvent) -> bool:
    """Whether the request has a body (only white space is none)."""
    raw = event.body
    return not (raw is None or (isinstance(raw, str) and not raw.strip()))


def page_args(event: BaseProxyEvent) -> tuple[int, str | None]:
    """``limit`` (default 50) and ``nextToken`` (None for the first page)."""
    raw_limit = event.get_query_string_value("limit")
    limit: Any = DEFAULT_PAGE if raw_limit is None else raw_limit
    if isinstance(limit, str) and _INTEGER.fullmatch(limit):
        limit = int(limit)
    schemas.check_parameter("limit", "limit", limit, f"must be an integer from 1 to {MAX_PAGE}")
    return limit, page_token(event, "nextToken")


def page_token(event: BaseProxyEvent, name: str) -> str | None:
    """A page token's form (its listing checks that it issued it); empty or absent is None."""
    token = event.get_query_string_value(name)
    schemas.check_parameter("pageToken", name, token or "", "is not a token this listing issued")
    return token or None


def expected_version(event: BaseProxyEvent) -> int | None:
    """``If-Match``: the version the caller read (quoted or not), or None for no condition."""
    raw = event.headers.get("If-Match")
    if raw is None:
        return None
    schemas.check_parameter("ifMatch", "If-Match", raw, "must be the record's version number")
    return int(raw.strip('"'))


def reason(event: BaseProxyEvent) -> str:
    """A body of exactly ``{"reason": ...}`` (schemas/rejection.json): why an admin or a supplier
    refuses a record."""
    parsed = object_body(event)
    schemas.validate("rejection", parsed)
    return parsed["reason"].strip()


def idempotency_key(event: BaseProxyEvent) -> str | None:
    key = event.headers.get("Idempotency-Key")
    if key is not None:
        schemas.check_parameter(
            "idempotencyKey", "Idempotency-Key", key, "must be 1 to 128 printable ASCII characters"
        )
    return key


Creator = Callable[[Principal, dict[str, Any]], dict[str, Any]]


@idempotent_function(
    data_keyword_argument="request", config=idempotency_config, persistence_store=idempotency_store
)
def _create_once(request: dict[str, Any], principal: Principal, make: Creator) -> dict[str, Any]:
    return make(principal, request["body"])


def create(
    event: BaseProxyEvent, principal: Principal, route: str, payload: dict[str, Any], make: Creator
) -> dict[str, Any]:
    """``make(principal, payload)`` once per Idempotency-Key: the same key and body answer the first
    answer; the same key with another body is refused (422). The key is the tenant's, per route."""
    key = idempotency_key(event)
    if key is None:
        return make(principal, payload)
    request = {"tenantId": principal.tenant_id, "route": route, "idempotencyKey": key, "body": payload}
    return _create_once(request=request, principal=principal, make=make)


def accepted_once(
    router: BaseRouter, route: str, make: Creator, metric: str, location: str, status: int = 202
) -> Response:
    """A POST that makes a record: the body made once per Idempotency-Key (:func:`create`),
    counted in ``metric``, answered ``status`` (202: a workflow decides; 201: made) with the new
    record's location (``location`` formatted with the answer: ``"/orders/{orderId}"``)."""
    event, principal = router.current_event, caller(router)
    result = create(event, principal, route, object_body(event), make)
    count(metrics, metric, principal.tenant_id)
    return located(status, result, location.format(**result))


def located(status: int, body: dict[str, Any], location: str) -> Response:
    """A JSON answer naming where the record it made is (201 created, 202 accepted for a workflow)."""
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={"Location": location},
    )


def proposed(proposal: dict[str, Any], location: str) -> Response:
    """A change that waits for review (the change gate): 202 with the proposal, at its record's
    ``location`` (a GET there shows it while it is pending)."""
    return located(202, {"proposal": proposals.view(proposal)}, location)

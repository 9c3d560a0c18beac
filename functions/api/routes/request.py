"""What the routes read from a request, checked the same way on every route: the JSON body, the
page (``limit``, ``nextToken``), ``If-Match``, a ``reason``, and ``Idempotency-Key`` with the create
it makes idempotent. Each error is a 400 naming the field (``InvalidInput``). And the one answer
shape they share: a record created or accepted, with its ``Location``."""

from __future__ import annotations

import base64
import os
import re
import unicodedata
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

from marketplace import schemas
from marketplace.adapters import aws
from marketplace.errors import FieldError, InvalidInput
from marketplace.principal import Principal
from routes import metrics
from routes.policy import caller

MAX_PAGE = 100
# ASCII digits only, and few of them: str.isdigit() also accepts "²" and other Unicode digits that
# int() refuses, and int() refuses more than 4300 digits; a version is at most 18 digits (a DynamoDB
# number far below its 38-digit limit).
_LIMIT = re.compile(r"[0-9]{1,6}")
_VERSION = re.compile(r"[0-9]{1,18}")

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


def optional_body(event: BaseProxyEvent) -> Any:
    """None for no body (or only white space); else parsed as :func:`body` parses it."""
    raw = event.body
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    return body(event)


def page_args(event: BaseProxyEvent) -> tuple[int, str | None]:
    raw_limit = event.get_query_string_value("limit", "50") or "50"
    if not _LIMIT.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_PAGE:
        raise InvalidInput([FieldError("limit", f"must be an integer from 1 to {MAX_PAGE}")])
    return int(raw_limit), event.get_query_string_value("nextToken") or None


def expected_version(event: BaseProxyEvent) -> int | None:
    """``If-Match``: the version the caller read (quoted or not), or None for no condition."""
    raw = event.get_header_value("If-Match", case_sensitive=False)
    if raw is None:
        return None
    raw = raw.strip().strip('"')
    if not _VERSION.fullmatch(raw):
        raise InvalidInput([FieldError("If-Match", "must be the record's version number")])
    return int(raw)


def reason(event: BaseProxyEvent) -> str:
    """A body of exactly ``{"reason": ...}``: why an admin or a supplier refuses a record."""
    parsed = object_body(event)
    extra = sorted(set(parsed) - {"reason"})
    if extra:
        raise InvalidInput([FieldError(f, "is not allowed") for f in extra])
    return free_text("reason", parsed.get("reason"))


def free_text(field: str, text: Any) -> str:
    """A reason or note a person wrote: 1 to 1000 characters, stripped, no control characters."""
    if not isinstance(text, str) or not text.strip() or len(text) > 1000 or not _free_text(text):
        raise InvalidInput(
            [FieldError(field, "is required: 1 to 1000 characters, no control characters but newlines")]
        )
    return text.strip()


def _free_text(value: str) -> bool:
    """Free text: no control characters (NUL, escape, ...) but line breaks and tabs."""
    return not any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in value)


def idempotency_key(event: BaseProxyEvent) -> str | None:
    key = event.get_header_value("Idempotency-Key", case_sensitive=False)
    if key is None:
        return None
    if not 1 <= len(key) <= 128 or not key.isprintable():
        raise InvalidInput([FieldError("Idempotency-Key", "must be 1 to 128 printable characters")])
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


def accepted_once(router: BaseRouter, route: str, make: Creator, metric: str, location: str) -> Response:
    """A POST that starts a workflow: the body made once per Idempotency-Key (:func:`create`),
    counted in ``metric``, answered 202 with the new record's location (``location`` formatted
    with the answer: ``"/orders/{orderId}"``)."""
    event = router.current_event
    result = create(event, caller(router), route, object_body(event), make)
    metrics.add_metric(name=metric, unit="Count", value=1)
    return located(202, result, location.format(**result))


def located(status: int, body: dict[str, Any], location: str) -> Response:
    """A JSON answer naming where the record it made is (201 created, 202 accepted for a workflow)."""
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={"Location": location},
    )

"""Supplier webhooks: registration, signed delivery of supplier-order events, retries with
backoff, dead letters and redrive.

Records live beside the supplier in the single table (``TENANT#<t>#SUPPLIER#<s>``):

* ``WEBHOOK``: the supplier's endpoint ``url`` and signing ``secret``. The secret must be stored,
  since every delivery is signed with it; views never return it (``secretSet`` and its last four
  characters only), so it cannot leak through the API or a log of a response.
* ``DELIVERY#<createdAt>#<deliveryId>``: one event for the supplier, with the exact JSON body that
  is POSTed (``payload``), its ``status`` (PENDING, DELIVERED, FAILED), ``attempts`` and the last
  error. GSI1 (``<supplier PK>#DELIVERY#STATUS#<status>``) lists a supplier's deliveries by status.
  The delivery id starts with the creation time, so the key can be rebuilt from the id alone.
* ``DELIVERYKEY#<key>``: optional guard that makes :meth:`Webhooks.enqueue` idempotent per caller key.

Signatures (D30): every attempt is signed as Standard Webhooks specifies (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``), so that a supplier verifies it with any of that
specification's libraries and refuses a replayed request; the older ``X-Marketplace-Signature``
(no timestamp) is sent beside it until :data:`LEGACY_SIGNATURE_UNTIL`.

Delivery. The delivery queue carries ids only (``{tenantId, supplierId, deliveryId, attempt,
redrive}``), so no message nears SQS's 256 KiB limit and the body is signed from the record. The
delivery function POSTs once per message; a failed attempt is retried by sending the message again
with ``DelaySeconds`` from :data:`RETRY_SCHEDULE`, so nothing sleeps in a Lambda. After
:data:`MAX_ATTEMPTS` the delivery is FAILED, shows so in the listing, and its message goes to the
delivery DLQ (for alarms and operators); :meth:`Webhooks.redrive` starts it again.

At-least-once, never exactly-once: a receiver may process a request whose response we never see
(a timeout), and SQS may deliver a message twice. ``webhook-id`` (also sent as
``X-Marketplace-Delivery``) — the same on every attempt and redrive of a delivery, and also the
body's ``id`` — is what a receiver dedupes on. On
our side a message is acted on only if its delivery is PENDING, in the same redrive round, and has
not yet recorded that attempt; every write is conditional on the version read, so of two copies of
one message processed at once only one records its outcome.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import ipaddress
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from marketplace import access, clock, config, keys, suppliers
from marketplace import webhook_targets as targets
from marketplace.adapters import aws
from marketplace.clock import iso
from marketplace.errors import (
    Conflict,
    FieldError,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    TransientError,
)
from marketplace.messages import PoisonMessage, json_object, remove_dead_letters
from marketplace.principal import Principal
from marketplace.repository import Page, Table, encode_token
from marketplace.webhook_targets import HttpPost, Resolver, pinned_post, resolve
from marketplace.webhook_targets import HttpResult as HttpResult  # for callers that script a POST

WEBHOOK_ENTITY = "WEBHOOK"
WEBHOOK_SK = keys.WEBHOOK_SK
DELIVERY_ENTITY = "DELIVERY"
DELIVERY_STATUSES = ("PENDING", "DELIVERED", "FAILED")

QUEUE_URL_VARIABLE = "WEBHOOK_QUEUE_URL"
DLQ_URL_VARIABLE = "WEBHOOK_DLQ_URL"

# One POST waits this long to connect and again to read the response, then counts as failed.
DELIVERY_TIMEOUT_SECONDS = 5.0
# Deliveries of one batch that the delivery function runs at once (threads): at least the
# WebhookDeliveryFunction's SQS BatchSize, so that no delivery waits for another's receiver.
DELIVERY_CONCURRENCY = 10
# SQS refuses a DelaySeconds above 900: the schedule can never wait longer between attempts.
SQS_MAX_DELAY_SECONDS = 900
# Seconds to wait before attempt 2, 3, ...: exponential (x2) from 30 s. Six attempts span ~15.5 min.
RETRY_SCHEDULE: tuple[int, ...] = (30, 60, 120, 240, 480)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
if not all(0 < d <= SQS_MAX_DELAY_SECONDS for d in RETRY_SCHEDULE):
    raise ValueError(f"every retry delay must be 1 to {SQS_MAX_DELAY_SECONDS} s (SQS DelaySeconds)")

# A listing of PENDING or DELIVERED deliveries reads at most this many pages of the supplier's
# deliveries to fill one page of the answer (they are not indexed by status).
MAX_FILTERED_READS = 10
MAX_URL_LENGTH = 2048
SECRET_MIN_LENGTH = 16
SECRET_MAX_LENGTH = 256
# The body is stored in the delivery item; DynamoDB items are at most 400 KB.
MAX_PAYLOAD_BYTES = 256 * 1024
# Deliveries expire (table TTL) this long after they were created or last redriven.
DELIVERY_RETENTION = timedelta(days=30)
SYSTEM_ACTOR = "system:webhook-delivery"
USER_AGENT = "marketplace-webhooks/1"
# Standard Webhooks (D30): deliveries carry webhook-id, webhook-timestamp and webhook-signature.
STANDARD_SECRET_PREFIX = "whsec_"  # noqa: S105 - the form of a secret, not one
# The signature of before D30, kept for one deprecation period: sent on every delivery up to and
# including this day (UTC), on none after it (docs/orders.md tells suppliers so); the first release
# after it removes the code.
LEGACY_SIGNATURE_HEADER = "X-Marketplace-Signature"
LEGACY_SIGNATURE_UNTIL = date(2027, 6, 30)
MAX_REASON_LENGTH = 500
# A delivery's lastError when its URL is refused at delivery time: the same words whatever was
# behind the URL (an internal address, a closed or open port), so that it reveals nothing.
REFUSED_REASON = "refused: the webhook URL does not lead to a public internet address"

_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_DELIVERY_ID = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z-[0-9a-f]{32}")


# ------------------------------------------------------------------------------------------- schedule
def next_delay(attempt: int) -> int | None:
    """Seconds to wait before the attempt that follows ``attempt`` (counted from 1), or None when
    ``attempt`` was the last one and the delivery is dead-lettered."""
    if attempt < 1:
        raise ValueError("attempts are counted from 1")
    if attempt >= MAX_ATTEMPTS:
        return None
    return min(RETRY_SCHEDULE[attempt - 1], SQS_MAX_DELAY_SECONDS)


# ------------------------------------------------------------------------------------------- keys
def webhook_key(tenant_id: str, supplier_id: str) -> tuple[str, str]:
    return keys.supplier_pk(tenant_id, supplier_id), WEBHOOK_SK


def new_delivery_id(created_at: str) -> str:
    """A unique id that starts with its creation time (``20240501T120000123Z-<32 hex>``): ids sort
    by time, and the record's sort key can be rebuilt from the id (see :func:`delivery_key`)."""
    return f"{re.sub(r'[-:.]', '', created_at)}-{uuid.uuid4().hex}"


def delivery_created_at(delivery_id: str) -> str | None:
    """The creation time encoded in a delivery id; None for a string that is not a delivery id."""
    match = _DELIVERY_ID.fullmatch(delivery_id)
    if match is None:
        return None
    y, mo, d, h, mi, s, ms = match.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}.{ms}Z"


def delivery_key(tenant_id: str, supplier_id: str, delivery_id: str) -> tuple[str, str] | None:
    created_at = delivery_created_at(delivery_id)
    if created_at is None:
        return None
    return keys.supplier_pk(tenant_id, supplier_id), keys.delivery_sk(created_at, delivery_id)


# ------------------------------------------------------------------------------------------- validation
def validate_registration(body: Any) -> tuple[str, str]:
    """``(url, secret)`` of a registration body; InvalidInput naming every bad field otherwise."""
    if not isinstance(body, dict):
        raise InvalidInput([FieldError("(body)", "must be a JSON object with url and secret")])
    errors = [FieldError(k, "is not a known field") for k in sorted(set(body) - {"url", "secret"})]
    errors += url_errors(body.get("url")) + secret_errors(body.get("secret"))
    if errors:
        raise InvalidInput(errors)
    return body["url"], body["secret"]


def url_errors(url: Any) -> list[FieldError]:
    """Why ``url`` cannot receive webhooks, if it cannot (its form alone; :meth:`Webhooks.register`
    also resolves a name, and every delivery checks again: :mod:`marketplace.webhook_targets`).

    https only: the body carries order data and its signature. http is accepted for loopback hosts
    on the ports the local stack allows for its test receivers. Addresses outside the public
    internet, in every form the resolver reads as one (``2852039166``, ``0xA9FEA9FE``, ``127.1``,
    ``[::ffff:127.0.0.1]``, ...), are refused so that a supplier cannot aim our function at a
    network it should not reach; credentials in the URL are refused because they would be stored
    and shown as plain text.
    """

    def bad(reason: str) -> list[FieldError]:
        return [FieldError("url", reason)]

    if url is None:
        return bad("is required")
    if not isinstance(url, str) or not url:
        return bad("must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        return bad(f"must be at most {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        return bad("must be ASCII without spaces (percent-encode the path, use punycode for the host)")
    try:
        target = targets.parse_target(url)
    except targets.TargetRefused as refused:
        return bad(str(refused))
    if target.address is not None:
        return address_errors(target, [target.address])
    if target.is_loopback_name:
        # Whatever localhost resolves to, it is this machine.
        return address_errors(target, [ipaddress.ip_address("127.0.0.1")])
    if target.scheme == "http":
        return bad("must use https (http is accepted only for a local stack's test receivers)")
    return []


def address_errors(target: targets.Target, addresses: list[targets.IPAddress]) -> list[FieldError]:
    """Why a URL whose host is (or resolves to) ``addresses`` cannot receive webhooks."""
    if not all(targets.allowed(a, target.port) for a in addresses):
        if any(targets.is_loopback(a) or a.is_unspecified for a in addresses):
            return [FieldError("url", "must not point at this machine")]
        return [FieldError("url", "must not point at a private, loopback, link-local or reserved address")]
    if target.scheme == "http" and not all(targets.is_loopback(a) for a in addresses):
        return [
            FieldError("url", "must use https (http is accepted only for a local stack's test receivers)")
        ]
    return []


def secret_errors(secret: Any) -> list[FieldError]:
    """Printable ASCII only, so that receivers in every language derive the same HMAC key bytes;
    no spaces, which are lost too easily when a secret is copied."""
    if secret is None:
        return [FieldError("secret", "is required")]
    if not isinstance(secret, str):
        return [FieldError("secret", "must be a string")]
    if not SECRET_MIN_LENGTH <= len(secret) <= SECRET_MAX_LENGTH:
        return [FieldError("secret", f"must be {SECRET_MIN_LENGTH} to {SECRET_MAX_LENGTH} characters")]
    if not all("!" <= c <= "~" for c in secret):
        return [FieldError("secret", "must be printable ASCII characters without spaces")]
    if secret.startswith(STANDARD_SECRET_PREFIX) and _standard_key(secret) is None:
        return [
            FieldError(
                "secret", "starts with whsec_, so the rest must be the key in base64 (Standard Webhooks)"
            )
        ]
    return []


def _event_errors(event: Any) -> list[FieldError]:
    if not isinstance(event, str) or len(event) > 64 or not _EVENT_TYPE.fullmatch(event):
        return [
            FieldError(
                "event", "must be a dotted lower-case event type such as supplier_order.awaiting_acceptance"
            )
        ]
    return []


# ------------------------------------------------------------------------------------------- views
def webhook_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """A webhook registration as the API shows it: never the secret (an allow-list, so that a new
    field is never shown by accident)."""
    secret = str(record.get("secret") or "")
    return {
        "supplierId": record.get("supplierId"),
        "url": record.get("url"),
        "secretSet": bool(secret),
        "secretLast4": secret[-4:] if len(secret) >= SECRET_MIN_LENGTH else None,
        "createdAt": record.get("createdAt"),
        "updatedAt": record.get("updatedAt"),
        "updatedBy": record.get("updatedBy"),
        "version": record.get("version"),
    }


_DELIVERY_VIEW_FIELDS = (
    "deliveryId", "event", "status", "attempts", "redrives", "lastError", "lastStatusCode",
    "nextAttemptAt", "createdAt", "updatedAt", "deliveredAt", "version",
)  # fmt: skip


def delivery_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """A delivery as the API shows it. Without the payload: it can be 256 KiB, and a page of them
    would exceed a Lambda response; the receiver has it, and the record keeps it for redrive."""
    return {k: record[k] for k in _DELIVERY_VIEW_FIELDS if k in record}


# ------------------------------------------------------------------------------------------- delivery
def sign(body: bytes, secret: str) -> str:
    """``sha256=<hex HMAC-SHA256 of the raw body bytes>``, keyed with the secret's UTF-8 bytes: the
    deprecated ``X-Marketplace-Signature`` (D30), sent until :data:`LEGACY_SIGNATURE_UNTIL`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _standard_key(secret: str) -> bytes | None:
    """The key a ``whsec_<base64>`` secret encodes; None for any other secret."""
    if not secret.startswith(STANDARD_SECRET_PREFIX):
        return None
    encoded = secret.removeprefix(STANDARD_SECRET_PREFIX)
    try:  # padding may be left out, as the libraries allow
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True) or None
    except (binascii.Error, ValueError):
        return None


def signing_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key of a registered secret. A secret registered in the
    specification's form, ``whsec_<base64>``, is the key its base64 encodes (what the libraries
    read); any other secret is its UTF-8 bytes, so its specification form is ``whsec_`` and the
    base64 of the secret (docs/orders.md)."""
    return _standard_key(secret) or secret.encode("utf-8")


def standard_signature(message_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """``v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<raw body>">``: the Standard
    Webhooks signature (https://www.standardwebhooks.com/). Written here rather than with the
    ``standardwebhooks`` package, which would bring an HTTP client and more into every function
    for these lines; the tests verify every delivery with that package, so the two cannot drift."""
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def delivery_headers(
    delivery: Mapping[str, Any], body: bytes, secret: str, sent_at: datetime
) -> dict[str, str]:
    """The headers of one attempt. ``webhook-id`` is the delivery id, the same on every retry and
    redrive (receivers dedupe on it); ``webhook-timestamp`` is this attempt's time, so a receiver
    refuses a replay of an old request (the libraries allow five minutes)."""
    delivery_id, timestamp = str(delivery["deliveryId"]), int(sent_at.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(delivery_id, timestamp, body, secret),
        "X-Marketplace-Event": str(delivery["event"]),
        "X-Marketplace-Delivery": delivery_id,
    }
    if sent_at.astimezone(UTC).date() <= LEGACY_SIGNATURE_UNTIL:
        headers[LEGACY_SIGNATURE_HEADER] = sign(body, secret)
    return headers


@dataclass(frozen=True)
class Attempt:
    """The outcome of one POST: ``ok`` for a 2xx; else ``reason`` says why it failed. ``refused``:
    nothing was sent, because the URL does not lead to a public address (not retried)."""

    ok: bool
    status_code: int | None
    reason: str | None
    at: datetime
    refused: bool = False


def deliver(
    delivery: Mapping[str, Any],
    webhook: Mapping[str, Any],
    http_post: HttpPost = pinned_post,
    now: Callable[[], datetime] = clock.now,
    timeout: float = DELIVERY_TIMEOUT_SECONDS,
    resolver: Resolver = resolve,
) -> Attempt:
    """POST a delivery's stored body once to the webhook, signed with its secret. Any non-2xx
    status, timeout or connection error is a failure with a reason; nothing is retried here.

    The URL is checked again first (it was registered under older rules, or its name resolves
    elsewhere now): the host is resolved here, once, every address it resolves to must be public
    (:func:`marketplace.webhook_targets.refusal`), and ``http_post`` connects to one of those
    addresses, never looking the name up again. A refused attempt says so and nothing more: not
    the address, nor whether anything listens there."""
    try:
        target = targets.parse_target(str(webhook["url"]))
        addresses = targets.addresses_of(target, resolver)
    except targets.TargetRefused:
        return Attempt(False, None, REFUSED_REASON, now(), refused=True)
    except (OSError, UnicodeError):
        return Attempt(False, None, "the host name could not be resolved", now())
    if targets.refusal(target, addresses) is not None:
        return Attempt(False, None, REFUSED_REASON, now(), refused=True)
    body = str(delivery["payload"]).encode("utf-8")
    headers = delivery_headers(delivery, body, str(webhook["secret"]), now())
    result = http_post(target, addresses, body, headers, timeout)
    at = now()
    code = result.status_code
    if code is not None and 200 <= code < 300:
        return Attempt(True, code, None, at)
    if code is not None:
        reason = f"HTTP {code}" + (" (redirects are not followed)" if 300 <= code < 400 else "")
    else:
        reason = result.error or "no response"
    return Attempt(False, code, reason[:MAX_REASON_LENGTH], at)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):  # numbers read from DynamoDB
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def envelope(
    delivery_id: str, event: str, created_at: str, supplier_id: str, payload: Mapping[str, Any]
) -> str:
    """The body that is POSTed. The delivery id and event type are inside the signed body too, so
    a receiver can trust them (the headers are not signed)."""
    document = {"id": delivery_id, "event": event, "createdAt": created_at, "supplierId": supplier_id,
                "data": payload}  # fmt: skip
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=_json_default)


# ------------------------------------------------------------------------------------------- messages
@dataclass(frozen=True)
class DeliveryMessage:
    """What the delivery queue carries: ids and the attempt number, never the body."""

    tenant_id: str
    supplier_id: str
    delivery_id: str
    attempt: int = 1
    redrive: int = 0

    def body(self) -> str:
        return json.dumps({"tenantId": self.tenant_id, "supplierId": self.supplier_id,
                           "deliveryId": self.delivery_id, "attempt": self.attempt,
                           "redrive": self.redrive}, separators=(",", ":"))  # fmt: skip

    @classmethod
    def parse(cls, body: str) -> DeliveryMessage:
        data = json_object(body)
        ids = [data.get(k) for k in ("tenantId", "supplierId", "deliveryId")]
        if not all(isinstance(i, str) and i for i in ids):
            raise PoisonMessage("tenantId, supplierId and deliveryId must be non-empty strings")
        if delivery_created_at(ids[2]) is None:
            raise PoisonMessage("deliveryId is not a delivery id")
        attempt, redrive = data.get("attempt"), data.get("redrive", 0)
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise PoisonMessage("attempt must be a positive integer")
        if isinstance(redrive, bool) or not isinstance(redrive, int) or redrive < 0:
            raise PoisonMessage("redrive must be a non-negative integer")
        return cls(ids[0], ids[1], ids[2], attempt, redrive)


@dataclass(frozen=True)
class Processed:
    """What the delivery function did with one message, for its log line and metrics.

    ``outcome``: delivered | retrying (``delay`` says when) | failed (dead-lettered) | refused (the
    URL does not lead to a public address: nothing sent, FAILED and dead-lettered at once) | duplicate
    (already delivered, or a stale copy: nothing done) | missing (the delivery no longer exists)
    | poison (unreadable message, dead-lettered).
    """

    outcome: str
    tenant_id: str | None = None  # None for a message too broken to name its tenant (poison)
    delivery_id: str | None = None
    event: str | None = None
    attempt: int | None = None
    status_code: int | None = None
    reason: str | None = None
    delay: int | None = None

    def log_fields(self) -> dict[str, Any]:
        """Ids, event type, attempt, status code and reason: never the body or the secret."""
        fields = {"outcome": self.outcome, "deliveryId": self.delivery_id, "event": self.event,
                  "attempt": self.attempt, "statusCode": self.status_code, "reason": self.reason,
                  "delaySeconds": self.delay}  # fmt: skip
        return {k: v for k, v in fields.items() if v is not None}


def _dead_letter_of(dead: Mapping[str, Any], delivery: Mapping[str, Any]) -> bool:
    """Whether a dead-letter queue message is one of ``delivery``'s (any round)."""
    try:
        message = DeliveryMessage.parse(dead.get("Body", ""))
    except PoisonMessage:
        return False
    return (message.tenant_id, message.supplier_id, message.delivery_id) == (
        delivery["tenantId"], delivery["supplierId"], delivery["deliveryId"],
    )  # fmt: skip


# ------------------------------------------------------------------------------------------- service
class Webhooks:
    """Registration, enqueueing, delivery and redrive. Every dependency can be injected (tests);
    by default the table and SQS come from the adapters and the queue URLs from the environment,
    read when first needed, so that a function that only reads never needs them."""

    def __init__(
        self,
        table: Table | None = None,
        sqs: Any = None,
        queue_url: str | None = None,
        dead_letter_url: str | None = None,
        http_post: HttpPost = pinned_post,
        now: Callable[[], datetime] = clock.now,
        timeout: float = DELIVERY_TIMEOUT_SECONDS,
        resolver: Resolver = resolve,
    ) -> None:
        self.table = table or Table()
        # The queues are looked up only when a delivery needs them (the API's reads never do).
        self._sqs, self._queue_url, self._dead_letter_url = sqs, queue_url, dead_letter_url
        self.http_post, self.now, self.timeout, self.resolver = http_post, now, timeout, resolver

    @classmethod
    def for_delivery(cls) -> Webhooks:
        """The delivery function's service for one batch, with its table, clients and queue URLs
        read now, from the function's environment, in the invocation's thread: the pool threads
        that deliver the batch's records share it (boto3 clients are thread-safe) and read no
        setting themselves."""
        return cls(table=Table(client=aws.client("dynamodb")), sqs=aws.client("sqs"),
                   queue_url=config.require(QUEUE_URL_VARIABLE), dead_letter_url=config.require(DLQ_URL_VARIABLE))  # fmt: skip

    @property
    def sqs(self) -> Any:
        return self._sqs or aws.client("sqs")

    @property
    def queue_url(self) -> str:
        return self._queue_url or config.require(QUEUE_URL_VARIABLE)

    @property
    def dead_letter_url(self) -> str:
        return self._dead_letter_url or config.require(DLQ_URL_VARIABLE)

    # ---------------------------------------------------------------- registration
    def webhook(self, tenant_id: str, supplier_id: str) -> dict[str, Any] | None:
        """The stored registration, secret included (for delivery only; never return it)."""
        record = self.table.get(*webhook_key(tenant_id, supplier_id))
        if record is None or record.get("entity") != WEBHOOK_ENTITY or record.get("tenantId") != tenant_id:
            return None
        return record

    def get_webhook(self, principal: Principal, supplier_id: str) -> dict[str, Any]:
        access.authorize(principal, access.ROLES, supplier_id)
        record = self.webhook(principal.tenant_id, supplier_id)
        if record is None:
            raise NotFound(f"supplier {supplier_id} has no webhook")
        return webhook_view(record)

    def register(
        self, principal: Principal, supplier_id: str, body: Any, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Create or replace the supplier's webhook (a PUT). ``expected_version`` (If-Match) makes
        the replacement conditional; two registrations at once: one wins, the other is a Conflict."""
        # Only the supplier itself registers its webhook, even a caller that is also staff.
        access.authorize(principal, {access.SUPPLIER}, supplier_id)
        url, secret = validate_registration(body)
        self._check_resolved(url)
        # A token may name a supplier that was never registered (or another tenant's): 404, as every
        # supplier route answers an unknown id (D10), and no webhook record without its supplier.
        suppliers.Suppliers(self.table).get(principal.tenant_id, supplier_id)
        tenant_id, now, who = principal.tenant_id, iso(self.now()), principal.actor
        pk, sk = webhook_key(tenant_id, supplier_id)
        current = self.webhook(tenant_id, supplier_id)
        if current is None:
            if expected_version is not None:
                raise PreconditionFailed(
                    f"supplier {supplier_id} has no webhook yet, so no version {expected_version}"
                )
            record = {
                "PK": pk, "SK": sk, "entity": WEBHOOK_ENTITY, "tenantId": tenant_id, "supplierId": supplier_id,
                "url": url, "secret": secret, "version": 1, "createdAt": now, "updatedAt": now,
                "createdBy": who, "updatedBy": who,
            }  # fmt: skip
            self.table.put_new(record)
            return webhook_view(record)
        version = int(current["version"])
        if expected_version is not None and expected_version != version:
            raise PreconditionFailed(f"the webhook is at version {version}, not {expected_version}")
        if current.get("url") == url and current.get("secret") == secret:
            return webhook_view(current)
        updated = self.table.update(
            pk, sk, version, {"url": url, "secret": secret, "updatedAt": now, "updatedBy": who}
        )
        return webhook_view(updated)

    def _check_resolved(self, url: str) -> None:
        """A name that resolves to an internal address now is refused at once (a 400 naming the
        field). A name that does not resolve yet is accepted: the supplier may be setting up its
        DNS, and every delivery resolves and checks again, which is what keeps us out."""
        target = targets.parse_target(url)  # validate_registration accepted it
        if target.address is not None or target.is_loopback_name:
            return
        try:
            addresses = targets.addresses_of(target, self.resolver)
        except (OSError, UnicodeError):
            return
        errors = address_errors(target, addresses)
        if errors:
            raise InvalidInput(errors)

    # ---------------------------------------------------------------- enqueue
    def enqueue(
        self,
        tenant_id: str,
        supplier_id: str,
        event: str,
        payload: Mapping[str, Any],
        *,
        dedupe_key: str | None = None,
    ) -> str | None:
        """Record a PENDING delivery of ``event`` and queue its first attempt; the delivery id, or
        None when the supplier has no webhook (nothing is recorded then).

        ``dedupe_key`` (e.g. the event id ``<supplierOrderId>-v<version>``) makes a repeated call — a workflow
        step retried after a timeout — return the first call's delivery instead of creating a
        second one with another id, which the receiver could not recognise as a duplicate.
        A queueing failure leaves the delivery FAILED (visible, redrivable) and raises
        TransientError; retrying with the same ``dedupe_key`` queues that delivery again.
        """
        errors = _event_errors(event)
        if not isinstance(payload, Mapping):
            errors.append(FieldError("payload", "must be a JSON object"))
        if errors:
            raise InvalidInput(errors)
        if self.webhook(tenant_id, supplier_id) is None:
            return None
        created = self.now()
        created_at = iso(created)
        delivery_id = new_delivery_id(created_at)
        pk = keys.supplier_pk(tenant_id, supplier_id)
        expires = int((created + DELIVERY_RETENTION).timestamp())
        if dedupe_key is not None:
            first_id, first_created_at = self._claim(
                pk, tenant_id, dedupe_key, delivery_id, created_at, expires
            )
            if first_id != delivery_id:
                existing = self._load(tenant_id, supplier_id, first_id)
                if existing is not None:
                    if existing["status"] == "FAILED" and int(existing.get("attempts", 0)) == 0:
                        self._restart(existing, SYSTEM_ACTOR)  # its first queueing had failed
                    return first_id
                # The first call claimed the key and stopped before writing its delivery: write
                # it now, under the id it claimed, so that the receiver sees one delivery id.
                delivery_id, created_at = first_id, first_created_at
        body = envelope(delivery_id, event, created_at, supplier_id, payload)
        if len(body.encode("utf-8")) > MAX_PAYLOAD_BYTES:
            raise InvalidInput([FieldError("payload", f"must be at most {MAX_PAYLOAD_BYTES} bytes as JSON")])
        # No GSI1 keys: a delivery is in the status index only while FAILED (see _write).
        record = {
            "PK": pk, "SK": keys.delivery_sk(created_at, delivery_id), "entity": DELIVERY_ENTITY,
            "tenantId": tenant_id, "supplierId": supplier_id, "deliveryId": delivery_id, "event": event,
            "payload": body, "status": "PENDING", "attempts": 0, "redrives": 0, "version": 1,
            "createdAt": created_at, "updatedAt": created_at, "nextAttemptAt": created_at,
            "updatedBy": SYSTEM_ACTOR, "expiresAt": expires,
        }  # fmt: skip
        try:
            self.table.put_new(record)
        except Conflict:
            if dedupe_key is None:
                raise
            return delivery_id  # a concurrent call with the same key wrote and queues it
        self._send(record, DeliveryMessage(tenant_id, supplier_id, delivery_id))
        return delivery_id

    def _claim(
        self, pk: str, tenant_id: str, dedupe_key: str, delivery_id: str, created_at: str, expires: int
    ) -> tuple[str, str]:
        """Claim ``dedupe_key`` for this delivery id; the id and creation time of whichever call
        claimed it first. A small conditional put (1 WRU) before the delivery, not a transaction
        with it (which bills both items twice): a call that stops between the two leaves a claim
        without a delivery, which the next call with the key completes under the claimed id."""
        guard = {"PK": pk, "SK": keys.dedupe_sk(dedupe_key), "entity": "DELIVERY_KEY", "tenantId": tenant_id,
                 "deliveryId": delivery_id, "createdAt": created_at, "expiresAt": expires}  # fmt: skip
        try:
            self.table.put_new(guard)
            return delivery_id, created_at
        except Conflict:
            pass
        first = self.table.get(pk, keys.dedupe_sk(dedupe_key))
        if first is None:  # expired between the write and the read
            raise TransientError("the dedupe key changed meanwhile; retry")
        first_id = str(first["deliveryId"])
        return first_id, str(first.get("createdAt") or delivery_created_at(first_id))

    def _send(self, record: Mapping[str, Any], message: DeliveryMessage) -> None:
        """Queue an attempt; if SQS refuses, leave the delivery FAILED (never PENDING with no
        message, which nothing would ever pick up) and raise TransientError."""
        try:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message.body())
        except ClientError as error:
            reason = f"could not be queued: {error.response.get('Error', {}).get('Code', 'error')}"
            with contextlib.suppress(Conflict):  # it moved on meanwhile: whoever moved it owns it
                self._write(record, status="FAILED", lastError=reason, nextAttemptAt=None)
            raise TransientError(f"delivery {record['deliveryId']} {reason}") from error

    # ---------------------------------------------------------------- reads
    def _load(self, tenant_id: str, supplier_id: str, delivery_id: str) -> dict[str, Any] | None:
        key = delivery_key(tenant_id, supplier_id, delivery_id)
        if key is None:
            return None
        record = self.table.get(*key)
        if record is None or record.get("entity") != DELIVERY_ENTITY or record.get("tenantId") != tenant_id:
            return None
        return record

    def get_delivery(self, principal: Principal, supplier_id: str, delivery_id: str) -> dict[str, Any]:
        access.authorize(principal, access.ROLES, supplier_id)
        record = self._load(principal.tenant_id, supplier_id, delivery_id)
        if record is None:
            raise NotFound(f"no delivery {delivery_id}")
        return delivery_view(record)

    def list_deliveries(
        self,
        principal: Principal,
        supplier_id: str,
        status: str | None = None,
        limit: int = 50,
        next_token: str | None = None,
    ) -> Page:
        """A page of the supplier's deliveries (views), newest first, optionally in one status.
        Page tokens are bound to the listing (supplier and status) that issued them."""
        access.authorize(principal, access.ROLES, supplier_id)
        tenant_id = principal.tenant_id
        pk = keys.supplier_pk(tenant_id, supplier_id)
        if status is not None and status not in DELIVERY_STATUSES:
            raise InvalidInput([FieldError("status", f"must be one of {', '.join(DELIVERY_STATUSES)}")])
        if status == "FAILED":
            page = self.table.query(
                keys.delivery_status_pk(tenant_id, supplier_id, status),
                index="GSI1", pk_name="GSI1PK", sk_name="GSI1SK",
                limit=limit, next_token=next_token, newest_first=True,
            )  # fmt: skip
        elif status is None:
            page = self.table.query(
                pk, sk_prefix="DELIVERY#", limit=limit, next_token=next_token, newest_first=True
            )
        else:
            page = self._list_in_status(pk, status, limit, next_token)
        return Page([delivery_view(i) for i in page.items], page.next_token)

    def _list_in_status(self, pk: str, status: str, limit: int, next_token: str | None) -> Page:
        """PENDING and DELIVERED deliveries are not indexed by status (see _write): read the
        supplier's deliveries newest first and keep those in ``status``, at most
        :data:`MAX_FILTERED_READS` reads per page. A page token names its status, so that it is
        refused by a listing of another status."""
        inner: str | None = None
        if next_token is not None:
            prefix, _, inner = next_token.partition(".")
            if prefix != status or not inner:
                raise InvalidInput([FieldError("nextToken", "is not a token this listing issued")])
        items: list[dict[str, Any]] = []
        for _ in range(MAX_FILTERED_READS):
            page = self.table.query(pk, sk_prefix="DELIVERY#", limit=limit, next_token=inner, newest_first=True,
                                    where={"status": status})  # fmt: skip
            items += page.items
            inner = page.next_token
            if len(items) >= limit or inner is None:
                break
        if len(items) > limit:
            items = items[:limit]
            inner = encode_token({"PK": {"S": pk}, "SK": {"S": items[-1]["SK"]}})
        return Page(items, f"{status}.{inner}" if inner else None)

    # ---------------------------------------------------------------- redrive
    def redrive(self, principal: Principal, supplier_id: str, delivery_id: str) -> dict[str, Any]:
        """Start a FAILED delivery again: PENDING, attempts from 1, same delivery id (the receiver
        dedupes on it). A PENDING or DELIVERED delivery is a Conflict: redriving one that is still
        being tried would run two retry chains, and a delivered one has nothing left to do."""
        access.authorize(principal, access.ROLES, supplier_id)
        record = self._load(principal.tenant_id, supplier_id, delivery_id)
        if record is None:
            raise NotFound(f"no delivery {delivery_id}")
        if record["status"] != "FAILED":
            raise Conflict(f"only a FAILED delivery can be redriven; this one is {record['status']}")
        if self.webhook(principal.tenant_id, supplier_id) is None:
            raise Conflict(f"supplier {supplier_id} has no webhook: register one, then redrive")
        restarted = self._restart(record, principal.actor)
        # Moved, not copied: the new round is queued (above, first), then its dead letter goes, so
        # that the DLQ and its alarm hold only what still needs an operator. Should that fail, the
        # delivery is redriven all the same and its dead letter stays (never the other way round).
        with contextlib.suppress(ClientError):
            remove_dead_letters(self.sqs, self.dead_letter_url, lambda dead: _dead_letter_of(dead, record))
        return delivery_view(restarted)

    def _restart(self, record: Mapping[str, Any], who: str) -> dict[str, Any]:
        """FAILED -> PENDING in a new redrive round, then queue attempt 1 of that round. The write
        comes first: a message queued before it would find the delivery FAILED and be dropped."""
        now = self.now()
        redrives = int(record.get("redrives", 0)) + 1
        restarted = self._write(
            record, who=who, status="PENDING", attempts=0, redrives=redrives, nextAttemptAt=iso(now),
            redrivenAt=iso(now), expiresAt=int((now + DELIVERY_RETENTION).timestamp()),
        )  # fmt: skip
        message = DeliveryMessage(record["tenantId"], record["supplierId"], record["deliveryId"], 1, redrives)
        self._send(restarted, message)
        return restarted

    # ---------------------------------------------------------------- the delivery function
    def process(self, message_body: str) -> Processed:
        """Act on one delivery-queue message: POST once, then record DELIVERED, or queue the next
        attempt with its delay, or (after the last) dead-letter the message and record FAILED.
        Raises only for our own infrastructure's errors, so that SQS redelivers the message."""
        try:
            message = DeliveryMessage.parse(message_body)
        except PoisonMessage as exc:
            self._dead_letter(message_body, str(exc))
            return Processed("poison", reason=str(exc))
        delivery = self._load(message.tenant_id, message.supplier_id, message.delivery_id)
        if delivery is None:
            return Processed(
                "missing", message.tenant_id, delivery_id=message.delivery_id, attempt=message.attempt
            )
        seen = Processed(
            "duplicate", message.tenant_id, delivery_id=message.delivery_id, event=delivery.get("event"),
            attempt=message.attempt,
        )  # fmt: skip
        if (
            delivery["status"] != "PENDING"
            or int(delivery.get("redrives", 0)) != message.redrive
            or int(delivery.get("attempts", 0)) >= message.attempt
        ):
            return seen
        webhook = self.webhook(message.tenant_id, message.supplier_id)
        if webhook is None:
            attempt = Attempt(False, None, "the supplier has no webhook registered", self.now())
        else:
            attempt = deliver(delivery, webhook, self.http_post, self.now, self.timeout, self.resolver)
        done = replace(seen, status_code=attempt.status_code, reason=attempt.reason)
        try:
            if attempt.ok:
                self._write(delivery, status="DELIVERED", attempts=message.attempt, deliveredAt=iso(attempt.at),
                            lastStatusCode=attempt.status_code, lastError=None, nextAttemptAt=None)  # fmt: skip
                return replace(done, outcome="delivered")
            failure = {"attempts": message.attempt, "lastError": attempt.reason,
                       "lastStatusCode": attempt.status_code}  # fmt: skip
            # A refused URL is not retried: it stays refused until the supplier registers another
            # URL (or fixes its DNS) and redrives, and retries would only probe again.
            delay = None if attempt.refused else next_delay(message.attempt)
            if delay is None:
                # Dead-letter first: if the write below fails, SQS redelivers this message and both
                # happen again, rather than a FAILED delivery with no dead letter.
                self._dead_letter(message.body(), attempt.reason or "failed", delivery_id=message.delivery_id,
                                  status_code=attempt.status_code)  # fmt: skip
                self._write(delivery, status="FAILED", nextAttemptAt=None, **failure)
                return replace(done, outcome="refused" if attempt.refused else "failed")
            # Queue first, for the same reason; a copy queued twice is dropped as a duplicate.
            self.sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=replace(message, attempt=message.attempt + 1).body(),
                DelaySeconds=delay,
            )
            self._write(delivery, nextAttemptAt=iso(attempt.at + timedelta(seconds=delay)), **failure)
            return replace(done, outcome="retrying", delay=delay)
        except Conflict:
            return done  # another copy of this message recorded its outcome first

    def _write(self, record: Mapping[str, Any], who: str = SYSTEM_ACTOR, **changes: Any) -> dict[str, Any]:
        """Change a delivery, conditional on the version read. A delivery has GSI1 keys only while
        FAILED: that is the index's one reader (operators list failed deliveries to redrive them),
        and keeping every delivery in it cost a put on creation and a delete + put on delivery, two
        thirds of an order's write units (docs/capacity.md)."""
        changes = {**changes, "updatedAt": iso(self.now()), "updatedBy": who}
        if changes.get("status") == "FAILED":
            changes["GSI1PK"] = keys.delivery_status_pk(record["tenantId"], record["supplierId"], "FAILED")
            changes["GSI1SK"] = f"{record['createdAt']}#{record['deliveryId']}"
        elif "status" in changes and "GSI1PK" in record:
            changes["GSI1PK"] = changes["GSI1SK"] = None  # REMOVE: out of the index
        return self.table.update(record["PK"], record["SK"], int(record["version"]), changes)

    def _dead_letter(
        self, body: str, reason: str, delivery_id: str | None = None, status_code: int | None = None
    ) -> None:
        attributes = {"reason": {"DataType": "String", "StringValue": reason[:MAX_REASON_LENGTH] or "failed"}}
        if delivery_id:
            attributes["deliveryId"] = {"DataType": "String", "StringValue": delivery_id}
        if status_code is not None:
            attributes["lastStatusCode"] = {"DataType": "Number", "StringValue": str(status_code)}
        self.sqs.send_message(QueueUrl=self.dead_letter_url, MessageBody=body or "(empty)",
                              MessageAttributes=attributes)  # fmt: skip

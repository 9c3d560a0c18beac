"""Supplier webhooks: signed deliveries to a real HTTP receiver on 127.0.0.1, retries with
backoff (asserted on the DelaySeconds sent to SQS, never slept), dead letters, redrive, and who
may see what.

The stack's template has no webhook queues yet, so each test creates its own pair in the stack's
moto and injects them. A retry's message is really queued with its delay; to run that attempt
without waiting, a test takes the message body our code sent (as SQS would hand it over once the
delay has passed) and processes it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from standardwebhooks import Webhook, WebhookVerificationError

from marketplace import clock, keys, webhooks
from marketplace.errors import Conflict, Forbidden, InvalidInput, NotFound, TransientError
from marketplace.principal import Principal
from marketplace.repository import Table
from marketplace.suppliers import Suppliers
from marketplace.webhooks import MAX_ATTEMPTS, RETRY_SCHEDULE, Webhooks, next_delay, sign
from marketplace_local.lambdas import FunctionSpec, LambdaRuntime
from marketplace_local.stack import free_port
from tests.e2e.test_local_stack import SUPPLIER
from tests.receivers import Receiver as SharedReceiver
from tests.receivers import standard_secret

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZlhZWg=="  # Standard Webhooks form: the key "0123456789abcdefXYZ"
EVENT = "supplier_order.awaiting_acceptance"
CLIENT_TIMEOUT = 0.3  # seconds; the receiver's "hang" answers only after HANG_SECONDS
HANG_SECONDS = 2.0


# ------------------------------------------------------------------------------------ the receiver
@dataclass
class Received:
    path: str
    body: bytes
    headers: dict[str, str]  # lower-case names


class Receiver:
    """A webhook receiver on 127.0.0.1 that records each request's raw body and headers, and
    answers from a script (a status code, "hang" to answer only after the client gave up, or
    "redirect"), then 200 once the script is used up."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: list[int | str] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/orders"

    def script(self, *steps: int | str) -> None:
        with self._lock:
            self._script.extend(steps)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        with self._lock:
            self.requests.append(
                Received(request.path, body, {k.lower(): v for k, v in request.headers.items()})
            )
            step = self._script.pop(0) if self._script else 200
        try:
            if step == "hang":
                self._release.wait(HANG_SECONDS)
                step = 200
            if step == "redirect":
                request.send_response(302)
                request.send_header("Location", self.url + "/elsewhere")
            else:
                request.send_response(int(step))
            request.send_header("Content-Length", "0")
            request.end_headers()
        except OSError:
            pass  # the client gave up (the "hang" case)


def verifies(request: Received, secret: str) -> bool:
    """What a supplier does: verify the delivery with a Standard Webhooks library (signature over
    id, timestamp and raw body; a timestamp within five minutes), given the secret in that form.
    And, while it is still sent (D30), the deprecated signature: HMAC of the raw body, compared in
    constant time."""
    try:
        Webhook(standard_secret(secret)).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    if "x-marketplace-signature" not in request.headers:
        return clock.now().date() > webhooks.LEGACY_SIGNATURE_UNTIL  # gone after its last day only
    expected = "sha256=" + hmac.new(secret.encode("utf-8"), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request.headers["x-marketplace-signature"])


# ------------------------------------------------------------------------------------ SQS recording
class RecordingSqs:
    """The stack's SQS client, recording every send_message our code makes (so tests can assert the
    DelaySeconds asked for) and able to refuse the next ``fail_next`` sends."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.sent: list[dict[str, Any]] = []
        self.fail_next = 0

    def send_message(self, **kwargs: Any) -> Any:
        if self.fail_next:
            self.fail_next -= 1
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}, "SendMessage")
        self.sent.append(kwargs)
        return self.client.send_message(**kwargs)

    def sends_to(self, url: str) -> list[dict[str, Any]]:
        return [s for s in self.sent if s["QueueUrl"] == url]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@dataclass
class Queues:
    url: str
    dlq: str
    arn: str


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture
def receiver(stack) -> Iterator[Receiver]:
    running = Receiver().start()
    stack.allow_webhook_port(running.server.server_address[1])  # a receiver started on purpose
    yield running
    running.stop()


@pytest.fixture
def queues(stack) -> Iterator[Queues]:
    sqs = stack.client("sqs")
    name = f"webhooks-{uuid.uuid4().hex[:12]}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    yield Queues(url, dlq, arn)
    sqs.delete_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=dlq)


@pytest.fixture
def sqs(stack) -> RecordingSqs:
    return RecordingSqs(stack.client("sqs"))


@pytest.fixture
def hooks(table, sqs, queues) -> Webhooks:
    return Webhooks(
        table=table, sqs=sqs, queue_url=queues.url, dead_letter_url=queues.dlq, timeout=CLIENT_TIMEOUT
    )


def supplier(tenant: str, supplier_id: str) -> Principal:
    return Principal(f"user-{supplier_id}", tenant, frozenset({"supplier"}), supplier_id)


def retailer(tenant: str) -> Principal:
    return Principal("retailer-user", tenant, frozenset({"retailer"}))


def a_supplier(table: Table, tenant: str) -> str:
    """A supplier registered in ``tenant`` (a webhook needs one: an unknown supplier is a 404)."""
    body = {**SUPPLIER, "taxId": f"DE{uuid.uuid4().int % 10**9:09d}"}
    return Suppliers(table).register(retailer(tenant), body)["supplierId"]


def registered(hooks: Webhooks, tenant: str, url: str, secret: str = SECRET) -> str:
    supplier_id = a_supplier(hooks.table, tenant)
    hooks.register(supplier(tenant, supplier_id), supplier_id, {"url": url, "secret": secret})
    return supplier_id


def latest_message(sqs: RecordingSqs, url: str) -> str:
    """The body of the last message our code queued: the attempt that comes due next."""
    return sqs.sends_to(url)[-1]["MessageBody"]


def delivery(hooks: Webhooks, tenant: str, supplier_id: str, delivery_id: str) -> dict[str, Any]:
    return hooks.get_delivery(retailer(tenant), supplier_id, delivery_id)


def queue_counts(client: Any, url: str) -> dict[str, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return {k: int(v) for k, v in attributes.items()}


# ------------------------------------------------------------------------------------ delivery
def test_a_delivery_is_signed_over_the_raw_body_and_names_event_and_delivery(
    hooks, sqs, queues, receiver, tenant
):
    supplier_id = registered(hooks, tenant, receiver.url)
    payload = {"orderId": "o-1", "lines": [{"sku": "CAFÉ-1", "quantity": 2, "price": 9.5}]}

    delivery_id = hooks.enqueue(tenant, supplier_id, EVENT, payload)

    (first,) = sqs.sends_to(queues.url)
    assert "DelaySeconds" not in first  # the first attempt is due at once
    assert json.loads(first["MessageBody"]) == {"tenantId": tenant, "supplierId": supplier_id,
                                                "deliveryId": delivery_id, "attempt": 1, "redrive": 0}  # fmt: skip
    assert hooks.process(first["MessageBody"]).outcome == "delivered"
    (request,) = receiver.requests
    assert verifies(request, SECRET)
    assert not verifies(request, SECRET + "x")
    if clock.now().date() <= webhooks.LEGACY_SIGNATURE_UNTIL:  # the deprecated one, while it is sent
        assert request.headers["x-marketplace-signature"] == sign(request.body, SECRET)
    assert request.headers["x-marketplace-event"] == EVENT
    assert request.headers["x-marketplace-delivery"] == request.headers["webhook-id"] == delivery_id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60  # this attempt's time
    # The secret registered in Standard Webhooks form is the key a library reads from it as is.
    assert Webhook(SECRET).verify(request.body, request.headers) == document_of(request)
    assert request.headers["content-type"] == "application/json"
    document = json.loads(request.body)
    assert document["id"] == delivery_id and document["event"] == EVENT and document["data"] == payload
    record = hooks._load(tenant, supplier_id, delivery_id)
    assert record is not None and record["payload"].encode("utf-8") == request.body  # exactly what was stored
    assert record["status"] == "DELIVERED" and record["attempts"] == 1 and record["lastStatusCode"] == 200
    assert record["deliveredAt"] >= record["createdAt"]


def document_of(request: Received) -> Any:
    return json.loads(request.body)


def test_a_plain_secret_verifies_in_its_standard_form_and_an_old_request_is_refused_as_a_replay(
    hooks, sqs, queues, receiver, tenant
):
    """A secret registered before D30 (any printable string) is the HMAC key as its UTF-8 bytes:
    in Standard Webhooks form ``whsec_<base64 of those bytes>``. A library refuses a request
    whose timestamp is more than five minutes old, as a replay of a captured request would be."""
    plain = "a-long-random-secret-1"
    assert webhooks.signing_key(plain) == plain.encode() == base64.b64decode(standard_secret(plain)[6:])
    assert webhooks.signing_key(SECRET) == b"0123456789abcdefXYZ"  # registered in whsec_ form
    supplier_id = registered(hooks, tenant, receiver.url, secret=plain)
    hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-ts"})
    assert hooks.process(latest_message(sqs, queues.url)).outcome == "delivered"
    (request,) = receiver.requests
    assert verifies(request, plain) and not verifies(request, plain + "x")
    assert Webhook(plain.encode()).verify(request.body, request.headers)["event"] == EVENT  # the raw key

    # The same request as captured six minutes ago (signed then): refused, and so is its old
    # signature under a fresh timestamp.
    sent_before = clock.now() - dt.timedelta(minutes=6)
    replayed = {**request.headers, **webhooks.delivery_headers(
        {"deliveryId": request.headers["webhook-id"], "event": EVENT}, request.body, plain, sent_before)}  # fmt: skip
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(standard_secret(plain)).verify(request.body, replayed)
    replayed["webhook-timestamp"] = request.headers["webhook-timestamp"]  # a fresh time, the old signature
    with pytest.raises(WebhookVerificationError):
        Webhook(standard_secret(plain)).verify(request.body, replayed)


def test_the_deprecated_signature_is_sent_up_to_its_last_day_and_not_after():
    delivery = {"deliveryId": "20270630T235959000Z-" + "0" * 32, "event": EVENT}
    last_day = dt.datetime(2027, 6, 30, 23, 59, 59, tzinfo=dt.UTC)
    sent = webhooks.delivery_headers(delivery, b"{}", SECRET, last_day)
    assert sent["X-Marketplace-Signature"] == sign(b"{}", SECRET)
    after = webhooks.delivery_headers(delivery, b"{}", SECRET, last_day + dt.timedelta(seconds=1))
    assert "X-Marketplace-Signature" not in after and after["webhook-signature"].startswith("v1,")


def test_a_secret_in_standard_form_must_hold_base64():
    with pytest.raises(InvalidInput) as raised:
        webhooks.validate_registration(
            {"url": "https://hooks.example.com/", "secret": "whsec_not-base64!!!!!"}
        )
    assert [(f.field, f.reason.split(",")[0]) for f in raised.value.fields] == [
        ("secret", "starts with whsec_")
    ]


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (500, "HTTP 500"),
        (404, "HTTP 404"),
        ("redirect", "HTTP 302 (redirects are not followed)"),
        ("hang", f"timed out after {CLIENT_TIMEOUT:g} s"),
        ("refused", "connection failed"),
    ],
)
def test_a_failed_attempt_is_retried_later_with_the_same_delivery_id(
    failure, reason, hooks, sqs, queues, receiver, stack, tenant
):
    if failure == "refused":
        nobody = free_port()
        stack.allow_webhook_port(nobody)  # a test receiver's port where nothing listens
        supplier_id = registered(hooks, tenant, f"http://127.0.0.1:{nobody}/nobody-listens")
    else:
        supplier_id = registered(hooks, tenant, receiver.url)
        receiver.script(failure)
    delivery_id = hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-2"})

    started = time.monotonic()
    result = hooks.process(latest_message(sqs, queues.url))
    assert time.monotonic() - started < 1.5  # the timeout is the injected one, not 5 s
    assert (result.outcome, result.delay) == ("retrying", RETRY_SCHEDULE[0])
    assert result.reason is not None and result.reason.startswith(reason)
    retry = sqs.sends_to(queues.url)[-1]
    assert retry["DelaySeconds"] == RETRY_SCHEDULE[0]
    # SQS hands the first attempt's message over again: it is stale, nothing is POSTed or queued.
    assert hooks.process(sqs.sends_to(queues.url)[0]["MessageBody"]).outcome == "duplicate"
    assert len(sqs.sends_to(queues.url)) == 2 and len(receiver.requests) == (0 if failure == "refused" else 1)
    assert json.loads(retry["MessageBody"])["attempt"] == 2
    assert queue_counts(stack.client("sqs"), queues.url)["ApproximateNumberOfMessagesDelayed"] == 1
    pending = delivery(hooks, tenant, supplier_id, delivery_id)
    assert pending["status"] == "PENDING" and pending["attempts"] == 1
    assert pending["lastError"].startswith(reason) and pending["nextAttemptAt"] > pending["createdAt"]

    if failure == "refused":  # the supplier fixes its URL meanwhile
        hooks.register(supplier(tenant, supplier_id), supplier_id, {"url": receiver.url, "secret": SECRET})
    assert hooks.process(retry["MessageBody"]).outcome == "delivered"
    assert delivery(hooks, tenant, supplier_id, delivery_id)["status"] == "DELIVERED"
    assert {r.headers["x-marketplace-delivery"] for r in receiver.requests} == {delivery_id}
    assert {r.headers["webhook-id"] for r in receiver.requests} == {
        delivery_id
    }  # the receiver's idempotency key
    assert all(verifies(r, SECRET) for r in receiver.requests)
    assert not [r for r in receiver.requests if r.path.endswith("/elsewhere")]


def test_the_schedule_is_exponential_capped_and_bounded():
    delays = [next_delay(attempt) for attempt in range(1, MAX_ATTEMPTS + 1)]
    assert delays == [30, 60, 120, 240, 480, None]
    assert all(later == 2 * earlier for earlier, later in itertools.pairwise(delays[:-1]))
    assert next_delay(MAX_ATTEMPTS + 3) is None
    with pytest.raises(ValueError):
        next_delay(0)


def test_after_the_last_attempt_the_delivery_is_failed_dead_lettered_and_can_be_redriven(
    hooks, sqs, queues, receiver, stack, tenant
):
    supplier_id = registered(hooks, tenant, receiver.url)
    receiver.script(*[503] * MAX_ATTEMPTS)
    delivery_id = hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-3"})

    outcomes = []
    for _ in range(MAX_ATTEMPTS):
        outcomes.append(hooks.process(latest_message(sqs, queues.url)).outcome)
    assert outcomes == ["retrying"] * (MAX_ATTEMPTS - 1) + ["failed"]
    assert [s.get("DelaySeconds") for s in sqs.sends_to(queues.url)] == [None, *RETRY_SCHEDULE]
    assert len(receiver.requests) == MAX_ATTEMPTS
    assert {r.headers["x-marketplace-delivery"] for r in receiver.requests} == {delivery_id}

    failed = delivery(hooks, tenant, supplier_id, delivery_id)
    assert failed["status"] == "FAILED" and failed["attempts"] == MAX_ATTEMPTS
    assert failed["lastError"] == "HTTP 503" and failed["lastStatusCode"] == 503
    (dead,) = stack.client("sqs").receive_message(
        QueueUrl=queues.dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    assert json.loads(dead["Body"])["deliveryId"] == delivery_id
    assert dead["MessageAttributes"]["reason"]["StringValue"] == "HTTP 503"
    listed = hooks.list_deliveries(supplier(tenant, supplier_id), supplier_id, status="FAILED")
    assert [d["deliveryId"] for d in listed.items] == [delivery_id]
    last_attempt = latest_message(sqs, queues.url)

    redriven = hooks.redrive(supplier(tenant, supplier_id), supplier_id, delivery_id)
    assert (redriven["status"], redriven["attempts"], redriven["redrives"]) == ("PENDING", 0, 1)
    with pytest.raises(Conflict):
        hooks.redrive(supplier(tenant, supplier_id), supplier_id, delivery_id)
    # A late copy of the old round's last message must not fail the new round.
    assert hooks.process(last_attempt).outcome == "duplicate"
    assert hooks.process(latest_message(sqs, queues.url)).outcome == "delivered"
    assert delivery(hooks, tenant, supplier_id, delivery_id)["status"] == "DELIVERED"
    assert len(receiver.requests) == MAX_ATTEMPTS + 1
    assert {r.headers["x-marketplace-delivery"] for r in receiver.requests} == {delivery_id}
    with pytest.raises(Conflict):
        hooks.redrive(retailer(tenant), supplier_id, delivery_id)


def dead_letters(stack, queues) -> list[str]:
    """Every message the dead-letter queue holds (received, then released): a delivery's by its id,
    any other by its body."""
    sqs = stack.client("sqs")
    held: list[dict[str, Any]] = []
    while True:
        received = sqs.receive_message(QueueUrl=queues.dlq, MaxNumberOfMessages=10, VisibilityTimeout=30)
        if not received.get("Messages"):
            break
        held += received["Messages"]
    for message in held:
        sqs.change_message_visibility(
            QueueUrl=queues.dlq, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return sorted(
        m["Body"] if not m["Body"].startswith("{") else json.loads(m["Body"])["deliveryId"] for m in held
    )


def failed_for_good(hooks, sqs, queues, tenant, supplier_id, receiver) -> str:
    receiver.script(*[503] * MAX_ATTEMPTS)
    delivery_id = hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": f"o-{uuid.uuid4().hex[:6]}"})
    for _ in range(MAX_ATTEMPTS):
        hooks.process(latest_message(sqs, queues.url))
    return delivery_id


def test_a_redriven_delivery_leaves_the_dead_letter_queue_and_the_others_stay(
    hooks, sqs, queues, receiver, stack, tenant
):
    supplier_id = registered(hooks, tenant, receiver.url)
    redriven, kept = (failed_for_good(hooks, sqs, queues, tenant, supplier_id, receiver) for _ in range(2))
    stack.client("sqs").send_message(QueueUrl=queues.dlq, MessageBody="not a delivery")  # poison stays too
    assert dead_letters(stack, queues) == sorted([redriven, kept, "not a delivery"])

    hooks.redrive(supplier(tenant, supplier_id), supplier_id, redriven)

    # Moved: queued again, gone from the DLQ; the others are still there, visible.
    assert json.loads(latest_message(sqs, queues.url))["deliveryId"] == redriven
    assert dead_letters(stack, queues) == sorted([kept, "not a delivery"])


def test_a_redrive_whose_send_fails_keeps_the_dead_letter(hooks, sqs, queues, receiver, stack, tenant):
    supplier_id = registered(hooks, tenant, receiver.url)
    delivery_id = failed_for_good(hooks, sqs, queues, tenant, supplier_id, receiver)
    sqs.fail_next = 1
    with pytest.raises(TransientError):  # the caller may retry: the delivery is PENDING, nothing lost
        hooks.redrive(supplier(tenant, supplier_id), supplier_id, delivery_id)
    assert dead_letters(stack, queues) == [delivery_id]  # send first, delete after: nothing lost
    assert delivery(hooks, tenant, supplier_id, delivery_id)["status"] == "FAILED"
    hooks.redrive(supplier(tenant, supplier_id), supplier_id, delivery_id)  # the caller tries again
    assert dead_letters(stack, queues) == []


def test_a_delivery_to_a_name_rebound_inside_the_network_is_refused_failed_and_says_nothing_more(
    table, sqs, queues, receiver, stack, tenant
):
    """Two names resolve to a public address when registered and to 127.0.0.1 when delivered to
    (DNS rebinding): one on a port where something listens, one on a closed port. Neither is
    contacted, neither is retried, and their records read the same: nothing tells the supplier
    what was behind the URL."""
    listening = Receiver().start()  # inside the network, on a port no test allowed
    answers = {"hooks-a.rebind.example": iter([["93.184.215.14"], ["127.0.0.1"]]),
               "hooks-b.rebind.example": iter([["93.184.215.14"], ["127.0.0.1"]])}  # fmt: skip
    hooks = Webhooks(table=table, sqs=sqs, queue_url=queues.url, dead_letter_url=queues.dlq, timeout=CLIENT_TIMEOUT,
                     resolver=lambda host, port: [ipaddress.ip_address(a) for a in next(answers[host])])  # fmt: skip
    try:
        urls = [f"https://hooks-a.rebind.example:{listening.server.server_address[1]}/hooks",
                f"https://hooks-b.rebind.example:{free_port()}/hooks"]  # fmt: skip
        suppliers = [registered(hooks, tenant, url) for url in urls]  # public when registered: accepted
        ids = [hooks.enqueue(tenant, s, EVENT, {"orderId": "o-r"}) for s in suppliers]
        firsts = list(sqs.sends_to(queues.url))

        results = [hooks.process(m["MessageBody"]) for m in firsts]

        assert [r.outcome for r in results] == ["refused", "refused"]
        assert listening.requests == []
        assert sqs.sends_to(queues.url) == firsts  # no retry queued
        records = [delivery(hooks, tenant, s, i) for s, i in zip(suppliers, ids, strict=True)]
        seen = [{k: v for k, v in r.items() if k not in ("deliveryId", "createdAt", "updatedAt", "version")}
                for r in records]  # fmt: skip
        assert seen[0] == seen[1]  # an open port and a closed one read the same
        assert seen[0]["status"] == "FAILED" and seen[0]["attempts"] == 1 and "lastStatusCode" not in seen[0]
        assert seen[0]["lastError"] == webhooks.REFUSED_REASON  # no address, no port, no "connection refused"
        dead = stack.client("sqs").receive_message(
            QueueUrl=queues.dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )["Messages"]
        assert sorted(json.loads(d["Body"])["deliveryId"] for d in dead) == sorted(ids)
        assert {d["MessageAttributes"]["reason"]["StringValue"] for d in dead} == {webhooks.REFUSED_REASON}

        # The supplier points its webhook somewhere reachable and redrives: delivered.
        hooks.register(supplier(tenant, suppliers[0]), suppliers[0], {"url": receiver.url, "secret": SECRET})
        hooks.redrive(supplier(tenant, suppliers[0]), suppliers[0], ids[0])
        assert hooks.process(latest_message(sqs, queues.url)).outcome == "delivered"
        assert [r.headers["x-marketplace-delivery"] for r in receiver.requests] == [ids[0]]
    finally:
        listening.stop()


def test_a_repeated_message_for_a_delivered_delivery_posts_nothing(hooks, sqs, queues, receiver, tenant):
    supplier_id = registered(hooks, tenant, receiver.url)
    hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-4"})
    body = latest_message(sqs, queues.url)

    assert hooks.process(body).outcome == "delivered"
    assert hooks.process(body).outcome == "duplicate"
    assert len(receiver.requests) == 1
    assert len(sqs.sends_to(queues.url)) == 1  # nothing queued again either


def test_an_unreadable_message_goes_to_the_dead_letter_queue(hooks, queues, stack):
    result = hooks.process('{"tenantId": "t", "deliveryId": 3}')
    assert result.outcome == "poison"
    (dead,) = stack.client("sqs").receive_message(QueueUrl=queues.dlq, MessageAttributeNames=["All"])[
        "Messages"
    ]
    assert "non-empty strings" in dead["MessageAttributes"]["reason"]["StringValue"]


# ------------------------------------------------------------------------------------ enqueue
def test_enqueue_without_a_webhook_records_and_queues_nothing(hooks, sqs, tenant):
    assert hooks.enqueue(tenant, "s-none", EVENT, {"orderId": "o-5"}) is None
    assert sqs.sent == []
    assert hooks.list_deliveries(retailer(tenant), "s-none").items == []


def test_enqueue_with_a_dedupe_key_creates_one_delivery(hooks, sqs, queues, receiver, tenant):
    supplier_id = registered(hooks, tenant, receiver.url)
    first = hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-6"}, dedupe_key="o-6:v1:created")
    again = hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-6"}, dedupe_key="o-6:v1:created")
    assert first == again
    assert len(sqs.sends_to(queues.url)) == 1
    assert len(hooks.list_deliveries(retailer(tenant), supplier_id).items) == 1


def test_a_queueing_failure_leaves_the_delivery_failed_and_a_retry_queues_it(
    hooks, sqs, queues, receiver, tenant
):
    supplier_id = registered(hooks, tenant, receiver.url)
    sqs.fail_next = 1
    with pytest.raises(TransientError):
        hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-7"}, dedupe_key="o-7")
    (failed,) = hooks.list_deliveries(retailer(tenant), supplier_id, status="FAILED").items
    assert failed["lastError"].startswith("could not be queued") and failed["attempts"] == 0

    assert (
        hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-7"}, dedupe_key="o-7")
        == failed["deliveryId"]
    )
    assert hooks.process(latest_message(sqs, queues.url)).outcome == "delivered"
    assert delivery(hooks, tenant, supplier_id, failed["deliveryId"])["status"] == "DELIVERED"


def test_enqueue_refuses_a_bad_event_type_or_payload(hooks, receiver, tenant):
    supplier_id = registered(hooks, tenant, receiver.url)
    with pytest.raises(InvalidInput) as raised:
        hooks.enqueue(tenant, supplier_id, "Order Created", ["not", "an", "object"])  # type: ignore[arg-type]
    assert {f.field for f in raised.value.fields} == {"event", "payload"}
    with pytest.raises(InvalidInput) as raised:
        hooks.enqueue(tenant, supplier_id, EVENT, {"blob": "x" * (webhooks.MAX_PAYLOAD_BYTES + 1)})
    assert [f.field for f in raised.value.fields] == ["payload"]


# ------------------------------------------------------------------------------------ listing
def test_deliveries_are_listed_newest_first_by_status_in_pages(hooks, sqs, queues, receiver, tenant):
    supplier_id = registered(hooks, tenant, receiver.url)
    me = supplier(tenant, supplier_id)
    ids = []
    for n in range(3):
        ids.append(hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": f"o-{n}"}))
        time.sleep(0.002)  # distinct creation milliseconds, so "newest first" is well defined
    first, second, _pending = (s["MessageBody"] for s in sqs.sends_to(queues.url))
    assert hooks.process(first).outcome == "delivered"
    receiver.script(*[500] * MAX_ATTEMPTS)
    body = second
    for _ in range(MAX_ATTEMPTS):
        hooks.process(body)
        body = latest_message(sqs, queues.url)

    def listed(status: str | None) -> list[str]:
        return [d["deliveryId"] for d in hooks.list_deliveries(me, supplier_id, status=status).items]

    assert listed("DELIVERED") == [ids[0]]
    assert listed("FAILED") == [ids[1]]
    assert listed("PENDING") == [ids[2]]
    assert listed(None) == ids[::-1]

    page = hooks.list_deliveries(me, supplier_id, limit=2)
    rest = hooks.list_deliveries(me, supplier_id, limit=2, next_token=page.next_token)
    assert [d["deliveryId"] for d in page.items + rest.items] == ids[::-1]
    with pytest.raises(InvalidInput) as raised:
        hooks.list_deliveries(me, supplier_id, status="FAILED", next_token=page.next_token)
    assert raised.value.fields[0].field == "nextToken"
    with pytest.raises(InvalidInput) as raised:
        hooks.list_deliveries(me, supplier_id, status="LOST")
    assert raised.value.fields[0].field == "status"


# ------------------------------------------------------------------------------------ registration
@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"url": "http://example.com/hook", "secret": SECRET}, {"url"}),
        ({"url": "ftp://example.com/hook", "secret": SECRET}, {"url"}),
        ({"url": "https://" + "a" * 2048 + ".com/", "secret": SECRET}, {"url"}),
        ({"url": "https://user:pw@example.com/hook", "secret": SECRET}, {"url"}),
        ({"url": "https://10.0.0.7/hook", "secret": SECRET}, {"url"}),
        ({"url": "https://169.254.169.254/latest", "secret": SECRET}, {"url"}),
        ({"url": "https://example.com:99999/", "secret": SECRET}, {"url"}),
        ({"url": "https://exa mple.com/", "secret": SECRET}, {"url"}),
        ({"url": 42, "secret": SECRET}, {"url"}),
        ({"url": "https://example.com/hook", "secret": "too-short"}, {"secret"}),
        ({"url": "https://example.com/hook", "secret": "x" * 257}, {"secret"}),
        ({"url": "https://example.com/hook", "secret": "has a space in it!!"}, {"secret"}),
        ({"url": "https://example.com/hook", "secret": "tab\tinside-0123456789"}, {"secret"}),
        ({}, {"url", "secret"}),
        ({"url": "https://example.com/hook", "secret": SECRET, "events": ["*"]}, {"events"}),
        (["https://example.com/hook"], {"(body)"}),
    ],
)
def test_registration_errors_name_the_field(body, fields, hooks, tenant):
    with pytest.raises(InvalidInput) as raised:
        hooks.register(supplier(tenant, "s-1"), "s-1", body)
    assert {f.field for f in raised.value.fields} == fields


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/orders?x=1", "http://127.0.0.1:8080/h", "http://localhost/h",
     "http://[::1]:9000/h", "https://203.0.113.9.nip.io/h", "HTTPS://Example.COM/h"],
)  # fmt: skip
def test_https_and_loopback_http_urls_are_accepted(url, monkeypatch):
    monkeypatch.setenv("WEBHOOKS_LOOPBACK_PORTS", "80,8080,9000")  # loopback on the ports a test allows
    assert webhooks.validate_registration({"url": url, "secret": SECRET}) == (url, SECRET)


def test_views_never_contain_the_secret(hooks, receiver, tenant):
    supplier_id = a_supplier(hooks.table, tenant)
    me = supplier(tenant, supplier_id)
    views = [hooks.register(me, supplier_id, {"url": receiver.url, "secret": SECRET})]
    views.append(hooks.get_webhook(me, supplier_id))
    views.append(hooks.get_webhook(retailer(tenant), supplier_id))
    other = "another-secret-0123456789"
    views.append(hooks.register(me, supplier_id, {"url": receiver.url, "secret": other}, expected_version=1))
    for view in views:
        assert SECRET[:12] not in json.dumps(view) and other[:12] not in json.dumps(view)
        assert view["secretSet"] is True and "secret" not in view
    assert views[0]["secretLast4"] == SECRET[-4:] and views[-1]["secretLast4"] == other[-4:]
    assert views[-1]["version"] == 2
    with pytest.raises(Conflict):
        hooks.register(me, supplier_id, {"url": receiver.url, "secret": SECRET}, expected_version=1)
    hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-8"})
    (listed,) = hooks.list_deliveries(me, supplier_id).items
    assert "payload" not in listed and other[:12] not in json.dumps(listed)


def test_a_supplier_token_naming_no_registered_supplier_registers_no_webhook(hooks, receiver, table, tenant):
    """A supplier token whose supplier_id names no supplier of the tenant (never registered, or
    another tenant's): 404, as for any unknown supplier, and no orphan webhook record."""
    elsewhere = a_supplier(table, f"other-{tenant}")
    for supplier_id in (f"s-{uuid.uuid4().hex[:8]}", elsewhere):
        with pytest.raises(NotFound, match=supplier_id):
            hooks.register(
                supplier(tenant, supplier_id), supplier_id, {"url": receiver.url, "secret": SECRET}
            )
        assert table.get(*webhooks.webhook_key(tenant, supplier_id)) is None
        assert hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-0"}) is None  # nothing to deliver to


def test_a_supplier_cannot_reach_another_suppliers_webhook_or_deliveries(hooks, receiver, tenant):
    owner = registered(hooks, tenant, receiver.url)
    delivery_id = hooks.enqueue(tenant, owner, EVENT, {"orderId": "o-9"})
    intruder = supplier(tenant, "s-intruder")
    body = {"url": receiver.url, "secret": SECRET}

    for attempt in (
        lambda: hooks.register(intruder, owner, body),
        lambda: hooks.get_webhook(intruder, owner),
        lambda: hooks.list_deliveries(intruder, owner),
        lambda: hooks.get_delivery(intruder, owner, delivery_id),
        lambda: hooks.redrive(intruder, owner, delivery_id),
    ):
        with pytest.raises(NotFound):
            attempt()
    with pytest.raises(Forbidden):
        hooks.register(retailer(tenant), owner, body)
    with pytest.raises(Forbidden):
        hooks.get_webhook(Principal("nobody", tenant, frozenset()), owner)
    # The tenant's retailer sees them; another tenant's retailer does not.
    assert hooks.get_webhook(retailer(tenant), owner)["url"] == receiver.url
    assert [d["deliveryId"] for d in hooks.list_deliveries(retailer(tenant), owner).items] == [delivery_id]
    elsewhere = retailer(f"{tenant}-other")
    with pytest.raises(NotFound):
        hooks.get_webhook(elsewhere, owner)
    with pytest.raises(NotFound):
        hooks.get_delivery(elsewhere, owner, delivery_id)
    assert hooks.list_deliveries(elsewhere, owner).items == []
    with pytest.raises(NotFound):
        hooks.get_delivery(retailer(tenant), owner, "not-a-delivery-id")


# ------------------------------------------------------------------------------------ the function
def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping passes to the function."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000)),
                       "SenderId": "local", "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000))},
        "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn, "awsRegion": "us-east-1",
    } for m in messages]}  # fmt: skip


def runtime_for(stack, table: Table, queues: Queues, dlq_url: str | None = None) -> LambdaRuntime:
    runtime = LambdaRuntime(stack.runtime.base_environment)
    environment = {
        "POWERTOOLS_SERVICE_NAME": "webhook-delivery",
        "POWERTOOLS_METRICS_NAMESPACE": "Marketplace",
        "TABLE_NAME": table.name,
        "WEBHOOK_QUEUE_URL": queues.url,
        "WEBHOOK_DLQ_URL": dlq_url or queues.dlq,
    }
    logical_id = f"WebhookDeliveryFunction{uuid.uuid4().hex[:6]}"  # a fresh container per test
    runtime.register(FunctionSpec(logical_id=logical_id, name="webhook-delivery",
                                  arn="arn:aws:lambda:us-east-1:123456789012:function:webhook-delivery",
                                  code_dir=ROOT / "functions" / "webhook_delivery", handler="app.handler",
                                  environment=environment, timeout=30, memory=256))  # fmt: skip
    return runtime


def received(client: Any, url: str, count: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while len(messages) < count and time.monotonic() < deadline:
        messages += client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == count
    return messages


def test_the_function_delivers_a_batch_once_and_never_logs_the_secret_or_body(
    hooks, queues, receiver, stack, tenant, caplog
):
    supplier_id = registered(hooks, tenant, receiver.url)
    marker = f"private-order-{uuid.uuid4().hex}"
    ids = [hooks.enqueue(tenant, supplier_id, EVENT, {"note": marker, "n": n}) for n in range(2)]
    receiver.script(500)  # the first POST fails: retried later, not an error of the function
    event = sqs_event(received(stack.client("sqs"), queues.url, 2), queues.arn)
    runtime = runtime_for(stack, hooks.table, queues)
    # The function's log records, every field of them: what any formatter prints comes from these.
    # (Read as records, not from stdout: Powertools binds a service's handler to the sys.stdout of the
    # moment the first instance of it loads, and the session stack's own instance runs beside this
    # test in the same process, so stdout capture saw other tests' lines and missed some of ours.)
    caplog.set_level(logging.INFO, logger="webhook-delivery")

    assert runtime.invoke_or_raise("webhook-delivery", event) == {"batchItemFailures": []}
    statuses = sorted(delivery(hooks, tenant, supplier_id, i)["status"] for i in ids)
    assert statuses == ["DELIVERED", "PENDING"]
    assert queue_counts(stack.client("sqs"), queues.url)["ApproximateNumberOfMessagesDelayed"] == 1
    # SQS hands the same batch over again: nothing is POSTed twice, nothing is queued again.
    assert runtime.invoke_or_raise("webhook-delivery", event) == {"batchItemFailures": []}
    assert len(receiver.requests) == 2
    assert queue_counts(stack.client("sqs"), queues.url)["ApproximateNumberOfMessagesDelayed"] == 1

    mine = [r for r in caplog.records if getattr(r, "deliveryId", None) in ids]
    assert {r.deliveryId for r in mine} == set(ids)
    assert any(getattr(r, "event", None) == EVENT for r in mine)
    assert any(getattr(r, "statusCode", None) == 500 for r in mine)
    everything = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert SECRET not in everything and marker not in everything


def test_a_slow_receiver_does_not_hold_back_another_suppliers_delivery_in_the_same_batch(
    hooks, queues, stack, tenant
):
    """One batch: first a supplier whose receiver answers after SLOW seconds (within the timeout,
    so delivered), then another's that answers at once. The second is delivered without waiting
    for the first (before the fix it arrived SLOW seconds late: the records ran one by one)."""
    slow_seconds = 2.0
    slow, fast = (
        SharedReceiver(stack, secret=SECRET, delay=slow_seconds),
        SharedReceiver(stack, secret=SECRET),
    )
    try:
        ids = {}
        for receiver in (slow, fast):
            supplier_id = registered(hooks, tenant, receiver.url)
            ids[receiver.url] = hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-slow"})
        messages = received(stack.client("sqs"), queues.url, 2)
        messages.sort(
            key=lambda m: json.loads(m["Body"])["deliveryId"] != ids[slow.url]
        )  # the slow one first
        runtime = runtime_for(stack, hooks.table, queues)

        started = time.monotonic()
        assert runtime.invoke_or_raise("webhook-delivery", sqs_event(messages, queues.arn)) == {
            "batchItemFailures": []
        }
        took = time.monotonic() - started

        (fast_request,), (slow_request,) = (receiver.requests for receiver in (fast, slow))
        assert took >= slow_seconds  # the batch ends with its slowest delivery ...
        assert fast_request["at"] - started < slow_seconds / 2  # ... but the fast one did not wait for it
        assert slow_request["at"] - started < slow_seconds / 2  # the slow one was sent first, at once
        for receiver in (slow, fast):
            supplier_id = json.loads(receiver.requests[0]["body"])["supplierId"]
            assert delivery(hooks, tenant, supplier_id, ids[receiver.url])["status"] == "DELIVERED"
    finally:
        slow.close()
        fast.close()


def test_the_function_reports_only_the_records_it_could_not_process(hooks, queues, receiver, stack, tenant):
    supplier_id = registered(hooks, tenant, receiver.url)
    delivery_id = hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-10"})
    stack.client("sqs").send_message(QueueUrl=queues.url, MessageBody="not json")
    messages = received(stack.client("sqs"), queues.url, 2)
    poison = next(m for m in messages if m["Body"] == "not json")
    # Its dead-letter queue is gone, so the poison message cannot be set aside: that record fails.
    runtime = runtime_for(stack, hooks.table, queues, dlq_url=queues.url.rsplit("/", 1)[0] + "/no-such-queue")

    result = runtime.invoke_or_raise("webhook-delivery", sqs_event(messages, queues.arn))

    assert result == {"batchItemFailures": [{"itemIdentifier": poison["MessageId"]}]}
    assert delivery(hooks, tenant, supplier_id, delivery_id)["status"] == "DELIVERED"


# ------------------------------------------------------------------------------------ write units
def _index_keys(hooks: Webhooks, tenant: str, supplier_id: str, delivery_id: str) -> tuple[Any, Any]:
    record = hooks._load(tenant, supplier_id, delivery_id)
    assert record is not None
    return record.get("GSI1PK"), record.get("GSI1SK")


def test_a_delivery_is_in_the_status_index_only_while_failed(hooks, sqs, queues, receiver, tenant):
    """The index's one reader lists FAILED deliveries: a delivered one never enters it (no index
    writes on the order path), a failed one does, and a redriven one leaves it again."""
    supplier_id = registered(hooks, tenant, receiver.url)
    delivered = hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-30"})
    assert _index_keys(hooks, tenant, supplier_id, delivered) == (None, None)
    assert hooks.process(latest_message(sqs, queues.url)).outcome == "delivered"
    assert _index_keys(hooks, tenant, supplier_id, delivered) == (None, None)

    failing = hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-31"})
    receiver.script(*[500] * MAX_ATTEMPTS)
    for _ in range(MAX_ATTEMPTS):
        hooks.process(latest_message(sqs, queues.url))
    record = hooks._load(tenant, supplier_id, failing)
    assert record is not None and record["status"] == "FAILED"
    assert _index_keys(hooks, tenant, supplier_id, failing) == (
        keys.delivery_status_pk(tenant, supplier_id, "FAILED"),
        f"{record['createdAt']}#{failing}",
    )
    hooks.redrive(supplier(tenant, supplier_id), supplier_id, failing)
    assert _index_keys(hooks, tenant, supplier_id, failing) == (None, None)


def test_a_claimed_key_without_its_delivery_is_completed_under_the_claimed_id(
    hooks, sqs, queues, receiver, table, tenant
):
    """A call that claimed its dedupe key and stopped before writing the delivery (a timeout, a
    crash): the retry writes that delivery under the first call's id, queues it once, and the
    receiver sees that id."""
    supplier_id = registered(hooks, tenant, receiver.url)
    pk = keys.supplier_pk(tenant, supplier_id)
    created_at = "2026-11-23T08:00:00.000Z"
    claimed_id = webhooks.new_delivery_id(created_at)
    table.put({"PK": pk, "SK": keys.dedupe_sk("o-40:v1:created"), "entity": "DELIVERY_KEY", "tenantId": tenant,
               "deliveryId": claimed_id, "createdAt": created_at, "expiresAt": 2_000_000_000})  # fmt: skip

    assert (
        hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-40"}, dedupe_key="o-40:v1:created")
        == claimed_id
    )
    assert (
        hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": "o-40"}, dedupe_key="o-40:v1:created")
        == claimed_id
    )
    (message,) = sqs.sends_to(queues.url)
    assert hooks.process(message["MessageBody"]).outcome == "delivered"
    (request,) = receiver.requests
    assert request.headers["x-marketplace-delivery"] == claimed_id
    assert json.loads(request.body)["createdAt"] == created_at
    assert [d["deliveryId"] for d in hooks.list_deliveries(retailer(tenant), supplier_id).items] == [
        claimed_id
    ]


def test_pending_and_delivered_are_listed_in_full_pages_without_the_index(
    hooks, sqs, queues, receiver, tenant
):
    """Not indexed by status, PENDING and DELIVERED are read from the supplier's deliveries and
    filtered: pages are still full, newest first, and their tokens belong to their status."""
    supplier_id = registered(hooks, tenant, receiver.url)
    me = supplier(tenant, supplier_id)
    ids = []
    for n in range(7):
        ids.append(hooks.enqueue(tenant, supplier_id, EVENT, {"orderId": f"o-5{n}"}))
        time.sleep(0.002)
    messages = [s["MessageBody"] for s in sqs.sends_to(queues.url)]
    for body in messages[::2]:  # 0, 2, 4, 6 delivered; 1, 3, 5 pending
        assert hooks.process(body).outcome == "delivered"
    delivered, pending = ids[::2][::-1], ids[1::2][::-1]

    def pages(status: str, limit: int) -> list[list[str]]:
        out, token = [], None
        while True:
            page = hooks.list_deliveries(me, supplier_id, status=status, limit=limit, next_token=token)
            out.append([d["deliveryId"] for d in page.items])
            token = page.next_token
            if token is None:
                return out

    assert pages("DELIVERED", 3) == [delivered[:3], delivered[3:]]
    assert pages("PENDING", 2) == [pending[:2], pending[2:]]
    first = hooks.list_deliveries(me, supplier_id, status="PENDING", limit=1)
    with pytest.raises(InvalidInput) as raised:
        hooks.list_deliveries(me, supplier_id, status="DELIVERED", next_token=first.next_token)
    assert raised.value.fields[0].field == "nextToken"

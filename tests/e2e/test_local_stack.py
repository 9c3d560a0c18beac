"""End to end: `marketplace run` (what `make run` starts) in its own process on free ports, driven
over HTTP with tokens from `marketplace token`, as a person following the README would."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from marketplace.tenants import silo_stack_name
from marketplace_local.stack import free_port
from tests.conftest import ROOT, assert_no_refusal, wait_until
from tests.receivers import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-running")]
BIN = Path(sys.executable).parent


@dataclass
class RunningStack:
    url: str
    state_dir: Path
    process: subprocess.Popen
    resources: dict[str, Any]
    aws_endpoint: str
    logs: list[str] = field(default_factory=list)
    webhook_ports: list[int] = field(default_factory=list)  # not yet taken by a receiver

    def receiver(self, secret: str | None = None) -> Receiver:
        """A webhook receiver on one of the loopback ports this stack was started to allow; given
        the webhook's secret, it verifies every delivery as a supplier would (Standard Webhooks)."""
        return Receiver(port=self.webhook_ports.pop(), secret=secret)

    def token(self, tenant: str, role: str, supplier_id: str | None = None) -> dict[str, str]:
        args = [str(BIN / "marketplace"), "token", "--tenant", tenant, "--role", role]
        if supplier_id:
            args += ["--supplier-id", supplier_id]
        env = {**os.environ, "MARKETPLACE_STATE_DIR": str(self.state_dir)}
        token = subprocess.run(
            args, env=env, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        return {"Authorization": f"Bearer {token}"}

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.aws_endpoint, region_name="us-east-1",
                            aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip

    def corrections_parked(self, timeout: float = 30) -> None:
        """Until the correction queue holds no message: the intake has parked each one where the
        drain reads it (D28). A flagged record is FLAGGED a moment before its correction is parked;
        a drain in that moment finds nothing of it yet."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]  # fmt: skip
        sqs, url = self.client("sqs"), self.resources["CorrectionQueue"]["ref"]

        def empty() -> bool:
            counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            return not any(int(counts[name]) for name in names)

        wait_until(empty, timeout=timeout, what="every correction message parked", dump=False)


@contextlib.contextmanager
def marketplace_running(
    state_dir: Path, stop_seconds: float = 20, webhook_receivers: int = 12, tenant: str | None = None
) -> Iterator[RunningStack]:
    """`marketplace run` in its own process on free ports, as a user starts it; Ctrl-C at the end
    (killed if it has not stopped after ``stop_seconds``). Webhooks may reach loopback only on
    ``webhook_receivers`` ports chosen here, for the receivers the tests start (``stack.receiver()``).
    With ``tenant``, `marketplace run --tenant`: that premium tenant's own stack (D53), whose key and
    stack.json are in its stack's folder under ``state_dir``."""
    port, moto_port = free_port(), free_port()
    webhook_ports = [free_port() for _ in range(webhook_receivers)]
    env = {
        **os.environ,
        "PORT": str(port),
        "MOTO_PORT": str(moto_port),
        "MARKETPLACE_STATE_DIR": str(state_dir),
        "MARKETPLACE_WEBHOOK_PORTS": ",".join(map(str, webhook_ports)),
    }
    for leaked in ("AWS_ENDPOINT_URL",):
        env.pop(leaked, None)
    command = [str(BIN / "marketplace"), "run", *(["--tenant", tenant] if tenant else [])]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    if tenant:
        state_dir = state_dir / silo_stack_name(tenant)
    deadline = time.monotonic() + 120
    line = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("Marketplace API ready at ") or process.poll() is not None:
            break
    assert line.strip() == f"Marketplace API ready at http://127.0.0.1:{port}", (
        line,
        process.stderr.read()[-3000:] if process.poll() is not None else "",
    )
    state = json.loads((state_dir / "stack.json").read_text())
    stack = RunningStack(state["apiUrl"], state_dir, process, state["resources"], state["awsEndpointUrl"],
                         webhook_ports=webhook_ports)  # fmt: skip
    # Drain the stack's output for the whole run: a full pipe would block its logging, and the
    # logs are what the PII test reads.
    readers = [threading.Thread(target=lambda s=stream: stack.logs.extend(s), daemon=True)
               for stream in (process.stdout, process.stderr)]  # fmt: skip
    for reader in readers:
        reader.start()
    yield stack
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=stop_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for reader in readers:
        reader.join(timeout=5)
    assert_no_refusal(stack.logs)


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Iterator[RunningStack]:
    with marketplace_running(tmp_path_factory.mktemp("run-state")) as stack:
        yield stack


SUPPLIER = {
    "legalName": "Globex GmbH", "taxId": "DE123456789", "country": "DE", "contactEmail": "einkauf@globex.de",
    "website": "https://globex.de", "phone": "+49 30 1234567",
    "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postalCode": "10115", "country": "DE"},
}  # fmt: skip


def status_of(
    running: RunningStack, headers: dict[str, str], supplier_id: str, *statuses: str
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body = requests.get(f"{running.url}/suppliers/{supplier_id}", headers=headers, timeout=10).json()
        return body if body.get("status") in statuses else None

    return wait_until(reached, timeout=30, what=f"{supplier_id} in {statuses}")


def test_health_answers_without_a_token(running):
    response = requests.get(f"{running.url}/health", timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize("authorization", [None, "Bearer nonsense", "Basic Zm9vOmJhcg=="])
def test_requests_without_a_valid_token_get_401(running, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(f"{running.url}/suppliers", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_an_unknown_route_gets_a_json_404(running):
    response = requests.get(f"{running.url}/nowhere", headers=running.token("t", "admin"), timeout=10)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_a_write_to_the_table_reaches_the_router_through_the_stream(running):
    table = running.resources["MarketplaceTable"]["ref"]
    supplier_id, tenant = str(uuid.uuid4()), f"t-{uuid.uuid4().hex[:8]}"
    running.client("dynamodb").put_item(TableName=table, Item={
        "PK": {"S": f"TENANT#{tenant}#SUPPLIER#{supplier_id}"}, "SK": {"S": "RECORD"}, "entity": {"S": "SUPPLIER"},
        "tenantId": {"S": tenant}, "supplierId": {"S": supplier_id}, "version": {"N": "1"}, "status": {"S": "PENDING"},
    })  # fmt: skip
    sfn = running.client("stepfunctions")
    machine = running.resources["SupplierOnboardingStateMachine"]["ref"]
    names = wait_until(
        lambda: [e["name"] for e in sfn.list_executions(stateMachineArn=machine)["executions"] if supplier_id in e["name"]],
        timeout=30, what="the router's execution",
    )  # fmt: skip
    assert names == [f"supplier-{supplier_id}-v1"]


def test_a_valid_supplier_is_approved(running):
    headers = running.token(f"t-{uuid.uuid4().hex[:8]}", "retailer")
    response = requests.post(f"{running.url}/suppliers", json=SUPPLIER, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "PENDING"
    assert status_of(running, headers, accepted["supplierId"], "APPROVED")["version"] == 2


def test_flagged_fixed_drained_approved_with_a_complete_audit_trail(running):
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    retailer, admin = running.token(tenant, "retailer"), running.token(tenant, "admin")
    response = requests.post(
        f"{running.url}/suppliers", json={**SUPPLIER, "taxId": "DE12345"}, headers=retailer, timeout=10
    )
    supplier_id = response.json()["supplierId"]
    flagged = status_of(running, retailer, supplier_id, "FLAGGED")
    assert flagged["flags"] == [
        {"field": "taxId", "reason": "invalid format for DE: a DE VAT number is DE followed by 9 digits"}
    ]

    queue = requests.get(f"{running.url}/admin/corrections", headers=admin, timeout=10).json()["items"]
    assert [(c["recordId"], c["flags"][0]["field"]) for c in queue] == [(supplier_id, "taxId")]
    assert requests.get(f"{running.url}/admin/corrections", headers=retailer, timeout=10).status_code == 403

    # Nothing fixed yet: the drain leaves it waiting (once the intake has parked its correction,
    # which the queue's listing above does not wait for: D28).
    def drain() -> dict:
        return requests.post(f"{running.url}/admin/corrections/drain", headers=admin, timeout=30).json()

    wait_until(lambda: drain() == {"resumed": 0, "waiting": 1, "more": False}, timeout=30,
               what="the parked correction left waiting by the drain")  # fmt: skip
    fixed = requests.patch(f"{running.url}/suppliers/{supplier_id}", json={"taxId": "DE987654321"},
                           headers={**admin, "If-Match": str(flagged["version"])}, timeout=10)  # fmt: skip
    assert fixed.status_code == 200 and fixed.json()["version"] == flagged["version"] + 1
    drained = requests.post(f"{running.url}/admin/corrections/drain", headers=admin, timeout=30)
    assert drained.json() == {"resumed": 1, "waiting": 0, "more": False}
    approved = status_of(running, retailer, supplier_id, "APPROVED")
    assert approved["taxId"] == "DE987654321" and "flags" not in approved
    assert requests.get(f"{running.url}/admin/corrections", headers=admin, timeout=10).json()["items"] == []

    def trail() -> list[dict[str, Any]] | None:
        items = requests.get(
            f"{running.url}/suppliers/{supplier_id}/history", headers=retailer, timeout=10
        ).json()["items"]
        return items if len(items) == 4 else None

    history = wait_until(trail, timeout=30, what="4 audit entries")
    assert [(h["action"], h["after"]["status"], h["by"].split(":")[0]) for h in history] == [
        ("created", "PENDING", "retailer"),
        ("changed", "FLAGGED", "workflow"),
        ("changed", "FLAGGED", "admin"),
        ("changed", "APPROVED", "workflow"),
    ]
    fix = history[2]
    assert (fix["before"]["taxId"], fix["after"]["taxId"]) == ("DE12345", "DE987654321")
    assert "taxId" in fix["changed"]


def test_the_same_idempotency_key_and_body_registers_one_supplier(running):
    headers = {**running.token(f"t-{uuid.uuid4().hex[:8]}", "retailer"), "Idempotency-Key": str(uuid.uuid4())}
    first = requests.post(f"{running.url}/suppliers", json=SUPPLIER, headers=headers, timeout=10)
    again = requests.post(f"{running.url}/suppliers", json=SUPPLIER, headers=headers, timeout=10)
    assert first.status_code == again.status_code == 202
    assert first.json()["supplierId"] == again.json()["supplierId"]
    other_body = requests.post(
        f"{running.url}/suppliers", json={**SUPPLIER, "legalName": "Other"}, headers=headers, timeout=10
    )
    assert other_body.status_code == 422
    listed = requests.get(f"{running.url}/suppliers", headers=headers, timeout=10).json()["items"]
    assert [s["supplierId"] for s in listed] == [first.json()["supplierId"]]


def test_another_tenants_supplier_is_not_found(running):
    mine = running.token(f"t-{uuid.uuid4().hex[:8]}", "retailer")
    theirs = running.token(f"t-{uuid.uuid4().hex[:8]}", "admin")
    supplier_id = requests.post(f"{running.url}/suppliers", json=SUPPLIER, headers=mine, timeout=10).json()[
        "supplierId"
    ]
    for method, path in (("get", ""), ("patch", ""), ("get", "/history")):
        response = requests.request(method, f"{running.url}/suppliers/{supplier_id}{path}", json={"legalName": "X"},
                                    headers=theirs, timeout=10)  # fmt: skip
        assert response.status_code == 404, (method, path, response.text)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ("{not json", {"(body)"}),
        ("[]", {"(body)"}),
        (json.dumps({"legalName": "Acme"}), {"taxId", "country", "contactEmail", "website", "phone", "address"}),
        (json.dumps({**SUPPLIER, "country": "Germany", "unexpected": 1}), {"country", "unexpected"}),
    ],
    ids=["malformed-json", "not-an-object", "missing-fields", "bad-and-extra-fields"],
)  # fmt: skip
def test_bad_input_gets_400_naming_each_field(running, body, fields):
    headers = {**running.token(f"t-{uuid.uuid4().hex[:8]}", "retailer"), "Content-Type": "application/json"}
    response = requests.post(f"{running.url}/suppliers", data=body, headers=headers, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert {f["field"] for f in error["fields"]} == fields
    assert all(f["reason"] for f in error["fields"])


def test_ctrl_c_stops_the_stack_cleanly(tmp_path):
    port, moto_port = free_port(), free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "MOTO_PORT": str(moto_port),
        "MARKETPLACE_STATE_DIR": str(tmp_path),
    }
    process = subprocess.Popen([str(BIN / "marketplace"), "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout.readline().startswith("Marketplace API ready at")
    process.send_signal(signal.SIGINT)
    try:
        # A few seconds here; a bound for a loaded CI machine where a busy test process shares the CPU.
        assert process.wait(timeout=60) == 0
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)  # where each thread stands (faulthandler, in the CLI)
        time.sleep(2)
        process.kill()
        pytest.fail(f"still running 60 s after Ctrl-C; its threads:\n{process.communicate()[1][-20000:]}")
    assert "Traceback" not in process.stderr.read()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_a_supplier_sees_only_itself_and_cannot_onboard(running):
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    retailer = running.token(tenant, "retailer")
    mine = requests.post(f"{running.url}/suppliers", json=SUPPLIER, headers=retailer, timeout=10).json()[
        "supplierId"
    ]
    other = requests.post(f"{running.url}/suppliers", json={**SUPPLIER, "taxId": "DE111111111"}, headers=retailer,
                          timeout=10).json()["supplierId"]  # fmt: skip
    supplier = running.token(tenant, "supplier", supplier_id=mine)
    assert requests.get(f"{running.url}/suppliers/{mine}", headers=supplier, timeout=10).status_code == 200
    assert requests.get(f"{running.url}/suppliers/{other}", headers=supplier, timeout=10).status_code == 404
    assert requests.get(f"{running.url}/suppliers", headers=supplier, timeout=10).status_code == 403
    assert (
        requests.post(f"{running.url}/suppliers", json=SUPPLIER, headers=supplier, timeout=10).status_code
        == 403
    )
    patched = requests.patch(
        f"{running.url}/suppliers/{mine}", json={"legalName": "Mine"}, headers=supplier, timeout=10
    )
    assert patched.status_code == 403


def test_an_admin_rejects_a_flagged_supplier_with_a_reason(running):
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    retailer, admin = running.token(tenant, "retailer"), running.token(tenant, "admin")
    supplier_id = requests.post(f"{running.url}/suppliers", json={**SUPPLIER, "taxId": "DE12345"}, headers=retailer,
                                timeout=10).json()["supplierId"]  # fmt: skip
    status_of(running, retailer, supplier_id, "FLAGGED")
    no_reason = requests.post(
        f"{running.url}/admin/corrections/{supplier_id}/reject", json={}, headers=admin, timeout=10
    )
    assert no_reason.status_code == 400 and no_reason.json()["error"]["fields"][0]["field"] == "reason"
    by_retailer = requests.post(f"{running.url}/admin/corrections/{supplier_id}/reject", json={"reason": "x"},
                                headers=retailer, timeout=10)  # fmt: skip
    assert by_retailer.status_code == 403
    rejected = requests.post(f"{running.url}/admin/corrections/{supplier_id}/reject",
                             json={"reason": "could not verify the company"}, headers=admin, timeout=10)  # fmt: skip
    assert rejected.status_code == 200
    assert (rejected.json()["status"], rejected.json()["statusReason"]) == (
        "REJECTED",
        "could not verify the company",
    )
    assert requests.post(f"{running.url}/admin/corrections/drain", headers=admin, timeout=30).json() == {
        "resumed": 0,
        "waiting": 0,
        "more": False,
    }
    assert requests.patch(f"{running.url}/suppliers/{supplier_id}", json={"legalName": "Again"}, headers=admin,
                          timeout=10).status_code == 409  # fmt: skip


def test_the_openapi_document_is_served(running):
    spec = requests.get(f"{running.url}/openapi.json", timeout=10).json()
    assert spec["openapi"].startswith("3.")
    assert {"/health", "/suppliers", "/suppliers/{supplierId}", "/admin/corrections/drain"} <= set(
        spec["paths"]
    )


def test_listings_page_and_filter_by_status(running):
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    retailer = running.token(tenant, "retailer")
    good = [requests.post(f"{running.url}/suppliers", json={**SUPPLIER, "taxId": f"DE{n:09d}"}, headers=retailer,
                          timeout=10).json()["supplierId"] for n in (111111111, 222222222)]  # fmt: skip
    bad = requests.post(f"{running.url}/suppliers", json={**SUPPLIER, "taxId": "DE99"}, headers=retailer,
                        timeout=10).json()["supplierId"]  # fmt: skip
    for supplier_id in good:
        status_of(running, retailer, supplier_id, "APPROVED")
    status_of(running, retailer, bad, "FLAGGED")

    seen, token = [], None
    for _ in range(5):
        params = {"limit": 1, **({"nextToken": token} if token else {})}
        page = requests.get(f"{running.url}/suppliers", params=params, headers=retailer, timeout=10).json()
        seen += [s["supplierId"] for s in page["items"]]
        token = page["nextToken"]
        if not token:
            break
    assert sorted(seen) == sorted([*good, bad])
    approved = requests.get(
        f"{running.url}/suppliers", params={"status": "APPROVED"}, headers=retailer, timeout=10
    )
    assert sorted(s["supplierId"] for s in approved.json()["items"]) == sorted(good)
    for params, bad_field in (
        ({"status": "MAYBE"}, "status"),
        ({"limit": 0}, "limit"),
        ({"nextToken": "x"}, "nextToken"),
    ):
        response = requests.get(f"{running.url}/suppliers", params=params, headers=retailer, timeout=10)
        assert response.status_code == 400 and response.json()["error"]["fields"][0]["field"] == bad_field
    # A page token of another tenant's listing is refused, never served.
    other = running.token(f"t-{uuid.uuid4().hex[:8]}", "retailer")
    first = requests.get(f"{running.url}/suppliers", params={"limit": 1}, headers=retailer, timeout=10).json()
    stolen = requests.get(
        f"{running.url}/suppliers", params={"nextToken": first["nextToken"]}, headers=other, timeout=10
    )
    assert stolen.status_code == 400


def approved_supplier(running, tenant: str) -> str:
    retailer = running.token(tenant, "retailer")
    tax_id = f"DE{uuid.uuid4().int % 10**9:09d}"
    supplier_id = requests.post(f"{running.url}/suppliers", json={**SUPPLIER, "taxId": tax_id}, headers=retailer,
                                timeout=10).json()["supplierId"]  # fmt: skip
    status_of(running, retailer, supplier_id, "APPROVED")
    return supplier_id


def add_listing(running, tenant: str, supplier_id: str, quantity: int = 5) -> str:
    listing = {"sku": "LAMP-1", "title": "Desk lamp", "category": "home", "price": {"amount": 49.9, "currency": "EUR"},
               "quantity": quantity, "images": ["https://cdn.example.com/lamp.webp"], "attributes": {"material": "steel"}}  # fmt: skip
    supplier = running.token(tenant, "supplier", supplier_id=supplier_id)
    created = requests.post(
        f"{running.url}/suppliers/{supplier_id}/products", json=listing, headers=supplier, timeout=10
    )
    assert created.status_code == 202, created.text
    wait_until(lambda: requests.get(f"{running.url}/suppliers/{supplier_id}/products/LAMP-1", headers=supplier,
                                    timeout=10).json()["status"] == "ACTIVE", timeout=30, what="active listing")  # fmt: skip
    return "LAMP-1"


def approved_supplier_with_listing(running, tenant: str, quantity: int = 5) -> tuple[str, str]:
    supplier_id = approved_supplier(running, tenant)
    return supplier_id, add_listing(running, tenant, supplier_id, quantity)


def test_a_supplier_hears_its_listing_go_live_on_its_signed_webhook(running):
    """A listing's status change is an event to the supplier's webhook, signed like an order's
    (docs/decisions.md D39)."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    supplier_id = approved_supplier(running, tenant)
    secret = f"whsec-{uuid.uuid4().hex}"
    receiver = running.receiver(secret)
    hook = requests.put(f"{running.url}/suppliers/{supplier_id}/webhook", json={"url": receiver.url, "secret": secret},
                        headers=running.token(tenant, "supplier", supplier_id=supplier_id), timeout=10)  # fmt: skip
    assert hook.ok, hook.text
    add_listing(running, tenant, supplier_id)
    wait_until(lambda: "listing.active" in receiver.events(), timeout=30, what="the listing.active delivery")
    receiver.assert_verified()
    # Its creation is no event; the approval's may reach the webhook too if it was announced after the
    # registration (the stream is asynchronous).
    heard = receiver.events()
    assert heard.count("listing.active") == 1 and set(heard) <= {"supplier.approved", "listing.active"}, heard
    receiver.close()


def test_an_admin_suspends_a_supplier_and_delists_a_listing_and_the_blocklist_suspends(running):
    """The issue's observation: an admin could not suspend an approved supplier or delist an active
    listing (reject answered 409), and adding an approved supplier's tax id to the blocked list changed
    nothing. Now (docs/decisions.md D40): suspended, its awaiting order cancelled with its stock back,
    its accepted order going on, its listings refused by POST /orders naming the line; a listing
    delisted and relisted by its supplier; each change announced on the topic and the signed webhook,
    and in the audit trail with the admin's name; the blocked list suspends."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    url, retailer, admin = running.url, running.token(tenant, "retailer"), running.token(tenant, "admin")
    supplier_id, sku = approved_supplier_with_listing(running, tenant, quantity=5)
    supplier = running.token(tenant, "supplier", supplier_id=supplier_id)
    secret = f"whsec-{uuid.uuid4().hex}"
    receiver = running.receiver(secret)
    hook = {"url": receiver.url, "secret": secret}
    assert requests.put(f"{url}/suppliers/{supplier_id}/webhook", json=hook, headers=supplier, timeout=10).ok
    sqs, sns = running.client("sqs"), running.client("sns")
    inbox = sqs.create_queue(QueueName=f"suspension-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=running.resources["SupplierNotificationsTopic"]["ref"], Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps({"supplier_id": [supplier_id]})})  # fmt: skip
    price = {"amount": 49.9, "currency": "EUR"}

    def order(units: int) -> requests.Response:
        body = {"customerOrderId": f"c-{uuid.uuid4().hex[:8]}", "shipTo": {"name": "Ada", "line1": "1 Analytical St",
                "city": "London", "postalCode": "N1 9GU", "country": "GB"},
                "lines": [{"supplierId": supplier_id, "sku": sku, "quantity": units, "unitPrice": price}]}  # fmt: skip
        return requests.post(f"{url}/orders", json=body, headers=retailer, timeout=10)

    def awaiting(answer: requests.Response) -> str:
        assert answer.status_code == 202, answer.text
        part = answer.json()["supplierOrders"][0]["supplierOrderId"]
        wait_until(lambda: requests.get(f"{url}/supplier-orders/{part}", headers=retailer, timeout=10).json()["status"]
                   == "AWAITING_ACCEPTANCE", timeout=30, what="the order awaiting acceptance")  # fmt: skip
        return part

    waiting, accepted = awaiting(order(2)), awaiting(order(1))
    assert requests.post(f"{url}/supplier-orders/{accepted}/accept", headers=supplier, timeout=10).ok

    suspend = f"{url}/suppliers/{supplier_id}/suspend"
    missing = requests.post(suspend, json={}, headers=admin, timeout=10)
    assert (missing.status_code, [f["field"] for f in missing.json()["error"]["fields"]]) == (400, ["reason"])
    assert requests.post(suspend, json={"reason": "x"}, headers=retailer, timeout=10).status_code == 403
    once = {**admin, "Idempotency-Key": f"suspend-{supplier_id}"}
    suspended = requests.post(suspend, json={"reason": "unpaid fees"}, headers=once, timeout=10)
    assert suspended.status_code == 200, suspended.text
    assert (suspended.json()["status"], suspended.json()["statusReason"]) == ("SUSPENDED", "unpaid fees")
    again = requests.post(suspend, json={"reason": "unpaid fees"}, headers=once, timeout=10)
    assert (again.status_code, again.json()) == (200, suspended.json())  # a retry: the same answer
    shown = {o: requests.get(f"{url}/supplier-orders/{o}", headers=retailer, timeout=10).json()
             for o in (waiting, accepted)}  # fmt: skip
    assert (shown[waiting]["status"], shown[waiting]["statusReason"]) == (
        "CANCELLED", "the supplier is suspended: unpaid fees",
    )  # fmt: skip
    assert shown[accepted]["status"] == "ACCEPTED"  # accepted orders go on
    listing = f"{url}/suppliers/{supplier_id}/products/{sku}"
    # The 2 units of the cancelled order are back; the accepted order still holds its 1.
    assert requests.get(listing, headers=retailer, timeout=10).json()["quantity"] == 4
    refused = order(1)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["fields"] == [{"field": "lines.0.sku", "reason": f"its supplier {supplier_id} is "
                                                  "SUSPENDED: its listings cannot be ordered"}]  # fmt: skip

    def suspensions() -> list[str]:  # the audit trail is written from the stream, a moment later
        trail = requests.get(f"{url}/suppliers/{supplier_id}/history", headers=admin, timeout=10).json()[
            "items"
        ]
        return [e["by"].split(":")[0] for e in trail if e["after"].get("status") == "SUSPENDED"]

    assert wait_until(suspensions, what="the suspension in the audit trail") == ["admin"]

    reinstated = requests.post(f"{url}/suppliers/{supplier_id}/reinstate", json={"reason": "fees paid"},
                               headers=admin, timeout=10)  # fmt: skip
    assert reinstated.json()["status"] == "APPROVED", reinstated.text
    delisted = requests.post(
        f"{listing}/delist", json={"reason": "out of season"}, headers=supplier, timeout=10
    )
    assert delisted.json()["status"] == "DELISTED", delisted.text
    refused = order(1)
    assert (refused.status_code, refused.json()["error"]["fields"]) == (
        409, [{"field": "lines.0.sku", "reason": f"{sku} is DELISTED: it cannot be ordered"}],
    )  # fmt: skip
    relisted = requests.post(
        f"{listing}/relist", json={"reason": "back in season"}, headers=supplier, timeout=10
    )
    assert relisted.json()["status"] == "ACTIVE", relisted.text
    assert order(1).status_code == 202

    changes = ["supplier.suspended", "supplier.approved", "listing.delisted", "listing.active"]
    wait_until(lambda: set(changes) <= set(receiver.events()), timeout=30, what="the changes on the webhook")
    receiver.close()
    announced: list[dict[str, Any]] = []

    def on_topic() -> bool:
        while got := sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", []):
            announced.extend(json.loads(m["Body"]) for m in got)
            for m in got:
                sqs.delete_message(QueueUrl=inbox, ReceiptHandle=m["ReceiptHandle"])
        return set(changes) <= {a["event"] for a in announced}

    wait_until(on_topic, timeout=30, what="the four changes on the topic")
    reasons = {a["event"]: a["reason"] for a in announced if a["event"] in changes}
    assert reasons == {"supplier.suspended": "unpaid fees", "supplier.approved": "fees paid",
                       "listing.delisted": "out of season", "listing.active": "back in season"}  # fmt: skip

    # The blocked list: another approved supplier's tax id added suspends it.
    other = approved_supplier(running, tenant)
    tax_id = requests.get(f"{url}/suppliers/{other}", headers=admin, timeout=10).json()["taxId"]
    entry = {"kind": "taxId", "value": tax_id, "country": "DE", "reason": "fraud ring"}
    blocked = requests.post(f"{url}/admin/blocklist", json=entry, headers=admin, timeout=10)
    assert (blocked.status_code, blocked.json()["suspendedSuppliers"]) == (201, [other]), blocked.text
    after = requests.get(f"{url}/suppliers/{other}", headers=admin, timeout=10).json()
    assert (after["status"], after["statusReason"]) == (
        "SUSPENDED",
        "on the tenant's blocked list: fraud ring",
    )


def test_the_change_gate_holds_the_issues_two_changes_for_review(running):
    """The issue's first two observations, over HTTP (docs/decisions.md D41): an ACTIVE listing
    PATCHed to a prohibited category, a huge price and an http image is a proposal, rejected, while
    the listing sells as it was; an APPROVED supplier PATCHed to a malformed tax id and a free-mail
    contact is a proposal, flagged, while the supplier stays APPROVED with no flags."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    retailer = running.token(tenant, "retailer")
    supplier_id, sku = approved_supplier_with_listing(running, tenant)
    supplier = running.token(tenant, "supplier", supplier_id=supplier_id)
    listing_url = f"{running.url}/suppliers/{supplier_id}/products/{sku}"
    answer = requests.patch(listing_url, headers=supplier, timeout=10, json={
        "category": "weapons", "price": {"amount": 999999, "currency": "EUR"},
        "images": ["http://cheap.example.net/gun.gif"]})  # fmt: skip
    assert answer.status_code == 202, answer.text
    proposal = answer.json()["proposal"]
    assert (proposal["status"], [r["field"] for r in proposal["reasons"]]) == (
        "PENDING", ["category", "images", "price"]
    )  # fmt: skip
    assert answer.headers["Location"] == f"/suppliers/{supplier_id}/products/{sku}"

    def decided() -> dict[str, Any] | None:
        shown = requests.get(listing_url, headers=supplier, timeout=10).json()
        return shown if "proposal" not in shown else None

    listing = wait_until(decided, timeout=30, what="the listing's proposal decided")
    assert (listing["status"], listing["category"], listing["price"]) == (
        "ACTIVE", "home", {"amount": 49.9, "currency": "EUR"}
    )  # fmt: skip
    # The retailer orders the listing as it is, and the supplier accepts.
    body = {"customerOrderId": f"gate-{uuid.uuid4().hex[:8]}", "shipTo": {"name": "Ada", "line1": "1 Analytical St",
            "city": "London", "postalCode": "N1 9GU", "country": "GB"},
            "lines": [{"supplierId": supplier_id, "sku": sku, "quantity": 1, "unitPrice": {"amount": 49.9, "currency": "EUR"}}]}  # fmt: skip
    placed = requests.post(f"{running.url}/orders", json=body, headers=retailer, timeout=10)
    assert placed.status_code == 202, placed.text
    part = placed.json()["supplierOrders"][0]["supplierOrderId"]

    def accepted() -> bool:
        answer = requests.post(f"{running.url}/supplier-orders/{part}/accept", headers=supplier, timeout=10)
        return answer.status_code == 200 and answer.json()["status"] == "ACCEPTED"

    wait_until(accepted, timeout=30, what="the order accepted")

    supplier_url = f"{running.url}/suppliers/{supplier_id}"
    answer = requests.patch(supplier_url, headers=retailer, timeout=10,
                            json={"taxId": "DE12", "contactEmail": "globex@gmail.com"})  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert [r["field"] for r in answer.json()["proposal"]["reasons"]] == ["contactEmail", "taxId"]

    def flagged() -> dict[str, Any] | None:
        shown = requests.get(supplier_url, headers=retailer, timeout=10).json()
        return shown if shown.get("proposal", {}).get("status") == "FLAGGED" else None

    shown = wait_until(flagged, timeout=30, what="the supplier's proposal flagged")
    assert (shown["status"], shown["contactEmail"]) == ("APPROVED", SUPPLIER["contactEmail"])
    assert "flags" not in shown and shown["taxId"] != "DE12"
    assert {f["field"] for f in shown["proposal"]["flags"]} == {"taxId", "contactEmail"}
    assert shown["proposal"]["changes"] == {"taxId": "DE12", "contactEmail": "globex@gmail.com"}
    # It is in the admin's correction queue under its own kind.
    queue = requests.get(
        f"{running.url}/admin/corrections", headers=running.token(tenant, "admin"), timeout=10
    ).json()
    assert [i["correctionId"] for i in queue["items"]] == [f"SUPPLIER_PROPOSAL:{supplier_id}"]


def test_an_order_over_two_suppliers_one_accepts_one_rejects_and_stock_is_released(running):
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    retailer = running.token(tenant, "retailer")
    (s1, sku1), (s2, sku2) = (
        approved_supplier_with_listing(running, tenant),
        approved_supplier_with_listing(running, tenant),
    )
    secrets = {s: f"{s[:8]}-secret-{uuid.uuid4().hex}" for s in (s1, s2)}
    receivers = {s: running.receiver(secrets[s]) for s in (s1, s2)}
    for supplier_id, receiver in receivers.items():
        registered = requests.put(
            f"{running.url}/suppliers/{supplier_id}/webhook",
            json={"url": receiver.url, "secret": secrets[supplier_id]},
            headers=running.token(tenant, "supplier", supplier_id=supplier_id),
            timeout=10,
        )
        assert registered.status_code == 200, registered.text
        assert secrets[supplier_id] not in registered.text
    body = {
        "customerOrderId": f"web-{uuid.uuid4().hex[:8]}",
        "lines": [{"supplierId": s1, "sku": sku1, "quantity": 2, "unitPrice": {"amount": 49.9, "currency": "EUR"}},
                  {"supplierId": s2, "sku": sku2, "quantity": 3, "unitPrice": {"amount": 49.9, "currency": "EUR"}}],
        "shipTo": {"name": "Ada", "line1": "1 Analytical St", "city": "London", "postalCode": "N1 9GU", "country": "GB"},
    }  # fmt: skip
    headers = {**retailer, "Idempotency-Key": body["customerOrderId"]}
    placed = requests.post(f"{running.url}/orders", json=body, headers=headers, timeout=10)
    assert placed.status_code == 202, placed.text
    assert (
        requests.post(f"{running.url}/orders", json=body, headers=headers, timeout=10).json() == placed.json()
    )
    order = placed.json()
    parts = {p["supplierId"]: p["supplierOrderId"] for p in order["supplierOrders"]}
    assert set(parts) == {s1, s2}

    def statuses() -> dict[str, str] | None:
        got = requests.get(f"{running.url}/orders/{order['orderId']}", headers=retailer, timeout=10).json()
        found = {p["supplierId"]: p["status"] for p in got["supplierOrders"]}
        return found if set(found.values()) == {"AWAITING_ACCEPTANCE"} else None

    wait_until(statuses, timeout=30, what="both supplier orders awaiting acceptance")
    one, two = (
        running.token(tenant, "supplier", supplier_id=s1),
        running.token(tenant, "supplier", supplier_id=s2),
    )
    mine = requests.get(f"{running.url}/supplier-orders", headers=one, timeout=10).json()["items"]
    assert [o["supplierOrderId"] for o in mine] == [parts[s1]]
    assert (
        requests.post(
            f"{running.url}/supplier-orders/{parts[s2]}/accept", headers=one, timeout=10
        ).status_code
        == 404
    )
    assert (
        requests.post(f"{running.url}/supplier-orders/{parts[s1]}/accept", headers=one, timeout=10).json()[
            "status"
        ]
        == "ACCEPTED"
    )
    rejected = requests.post(f"{running.url}/supplier-orders/{parts[s2]}/reject", json={"reason": "out of lamps"},
                             headers=two, timeout=10)  # fmt: skip
    assert rejected.json()["status"] == "REJECTED"
    stock = {s: requests.get(f"{running.url}/suppliers/{s}/products/LAMP-1", headers=retailer, timeout=10).json()["quantity"]
             for s in (s1, s2)}  # fmt: skip
    assert stock == {s1: 3, s2: 5}
    final = requests.get(f"{running.url}/orders/{order['orderId']}", headers=retailer, timeout=10).json()
    assert {p["supplierId"]: p["status"] for p in final["supplierOrders"]} == {s1: "ACCEPTED", s2: "REJECTED"}

    # Each supplier's webhook got its own order's events, signed with its own secret.
    expected = {s1: "supplier_order.accepted", s2: "supplier_order.rejected"}
    for supplier_id, receiver in receivers.items():
        wait_until(
            lambda r=receiver, e=expected[supplier_id]: e in r.events(),
            timeout=30,
            what=f"{expected[supplier_id]}",
        )
        # Not its creation (the intake follows it at once): what the supplier acts on, and the
        # decision, each once (deliveries are not ordered: a retried one may come after a later one).
        assert sorted(receiver.events("supplier_order.")) == sorted(
            ["supplier_order.awaiting_acceptance", expected[supplier_id]]
        )
        orders = [
            r for r in receiver.requests if json.loads(r["body"])["event"].startswith("supplier_order.")
        ]
        for request in receiver.requests:
            body, headers = request["body"], {k.lower(): v for k, v in request["headers"].items()}
            # The receiver verified it as Standard Webhooks; the deprecated signature matches too (D30).
            signature = "sha256=" + hmac.new(secrets[supplier_id].encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers.get("x-marketplace-signature", signature), signature)
            assert headers["x-marketplace-event"] == json.loads(body)["event"]
        assert all(json.loads(r["body"])["data"]["supplierOrderId"] == parts[supplier_id] for r in orders)
        assert len({r["headers"]["X-Marketplace-Delivery"] for r in orders}) == 2
        receiver.close()
    supplier_one = running.token(tenant, "supplier", supplier_id=s1)
    deliveries = requests.get(
        f"{running.url}/suppliers/{s1}/deliveries", headers=supplier_one, timeout=10
    ).json()["items"]
    assert (
        sorted(d["status"] for d in deliveries if d["event"].startswith("supplier_order."))
        == ["DELIVERED"] * 2
    )
    assert (
        requests.get(f"{running.url}/suppliers/{s2}/deliveries", headers=supplier_one, timeout=10).status_code
        == 404
    )


def test_after_acceptance_the_supplier_cancels_a_race_ends_once_and_each_transition_is_an_event(running):
    """Over HTTP: a supplier cancels an accepted order it cannot fulfil (its stock comes back), a
    shipment and a retailer's cancel sent at once end in one outcome, and the supplier's webhook
    hears each transition once (docs/orders.md step 6)."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    supplier_id, sku = approved_supplier_with_listing(running, tenant, quantity=10)
    retailer, supplier = (
        running.token(tenant, "retailer"),
        running.token(tenant, "supplier", supplier_id=supplier_id),
    )
    receiver = running.receiver()
    hook = {"url": receiver.url, "secret": f"whsec-{uuid.uuid4().hex}"}
    assert requests.put(
        f"{running.url}/suppliers/{supplier_id}/webhook", json=hook, headers=supplier, timeout=10
    ).ok

    def accepted_order(quantity: int) -> str:
        body = {"customerOrderId": f"web-{uuid.uuid4().hex[:8]}", "shipTo": {"name": "Ada", "line1": "1 St",
                "city": "London", "postalCode": "N1 9GU", "country": "GB"},
                "lines": [{"supplierId": supplier_id, "sku": sku, "quantity": quantity,
                           "unitPrice": {"amount": 49.9, "currency": "EUR"}}]}  # fmt: skip
        placed = requests.post(f"{running.url}/orders", json=body, headers=retailer, timeout=10).json()
        part = placed["supplierOrders"][0]["supplierOrderId"]
        url = f"{running.url}/supplier-orders/{part}"
        wait_until(lambda: requests.get(url, headers=supplier, timeout=10).json()["status"] == "AWAITING_ACCEPTANCE",
                   timeout=30, what="awaiting")  # fmt: skip
        assert requests.post(f"{url}/accept", headers=supplier, timeout=10).json()["status"] == "ACCEPTED"
        return part

    def stock() -> int:
        url = f"{running.url}/suppliers/{supplier_id}/products/{sku}"
        return requests.get(url, headers=supplier, timeout=10).json()["quantity"]

    first = accepted_order(3)
    assert stock() == 7
    cancelled = requests.post(f"{running.url}/supplier-orders/{first}/cancel", json={"reason": "warehouse flooded"},
                              headers=supplier, timeout=10)  # fmt: skip
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "CANCELLED"), cancelled.text
    assert stock() == 10

    second = accepted_order(2)
    parcel = {"carrier": "UPS", "trackingNumber": "1Z999", "lines": [{"sku": sku, "quantity": 2}]}
    start, answers = threading.Barrier(2), {}

    def send(name: str, path: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        start.wait()
        answers[name] = requests.post(f"{running.url}/supplier-orders/{second}/{path}", json=body, headers=headers,
                                      timeout=30)  # fmt: skip

    threads = [threading.Thread(target=send, args=("ship", "shipments", supplier, parcel)),
               threading.Thread(target=send, args=("cancel", "cancel", retailer, {"reason": "race"}))]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = {name: answer.status_code for name, answer in answers.items()}
    final = requests.get(f"{running.url}/supplier-orders/{second}", headers=retailer, timeout=10).json()[
        "status"
    ]
    shipments = requests.get(
        f"{running.url}/supplier-orders/{second}/shipments", headers=retailer, timeout=10
    )
    if final == "SHIPPED":
        assert codes == {"ship": 201, "cancel": 409}, codes
        assert "the order is SHIPPED" in answers["cancel"].json()["error"]["message"]
        assert len(shipments.json()["items"]) == 1 and stock() == 8
        last = "supplier_order.shipped"
    else:
        assert (final, codes) == ("CANCELLED", {"ship": 409, "cancel": 200}), (final, codes)
        assert shipments.json()["items"] == [] and stock() == 10
        last = "supplier_order.cancelled"

    wanted = ["supplier_order.awaiting_acceptance", "supplier_order.accepted", "supplier_order.cancelled",
              "supplier_order.awaiting_acceptance", "supplier_order.accepted", last]  # fmt: skip
    wait_until(
        lambda: len(receiver.events("supplier_order.")) >= len(wanted),
        timeout=30,
        what="the webhook deliveries",
    )
    time.sleep(1)  # nothing more comes
    assert sorted(receiver.events("supplier_order.")) == sorted(wanted)
    receiver.close()


def test_a_flagged_supplier_order_is_in_the_correction_queue_and_an_admin_cancels_it(running):
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    retailer, admin = running.token(tenant, "retailer"), running.token(tenant, "admin")
    supplier_id, sku = approved_supplier_with_listing(running, tenant)
    body = {
        "customerOrderId": f"web-{uuid.uuid4().hex[:8]}",
        "lines": [{"supplierId": supplier_id, "sku": sku, "quantity": 1, "unitPrice": {"amount": 1.0, "currency": "EUR"}}],
        "shipTo": {"name": "Ada", "line1": "1 Analytical St", "city": "London", "postalCode": "N1 9GU", "country": "GB"},
    }  # fmt: skip
    part = requests.post(f"{running.url}/orders", json=body, headers=retailer, timeout=10).json()[
        "supplierOrders"
    ][0]

    def queued() -> list[dict[str, Any]] | None:
        items = requests.get(f"{running.url}/admin/corrections", headers=admin, timeout=10).json()["items"]
        return [i for i in items if i["recordType"] == "SUPPLIER_ORDER"] or None

    (correction,) = wait_until(queued, timeout=30, what="the flagged supplier order in /admin/corrections")
    assert correction["recordId"] == part["supplierOrderId"]
    assert correction["flags"][0]["field"] == "lines.0.unitPrice"
    cancelled = requests.post(f"{running.url}/supplier-orders/{part['supplierOrderId']}/cancel",
                              json={"reason": "wrong price on the storefront"}, headers=admin, timeout=10)  # fmt: skip
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert requests.get(f"{running.url}/admin/corrections", headers=admin, timeout=10).json()["items"] == []


def test_contact_details_and_tax_ids_never_reach_the_logs(running):
    """A supplier flagged, fixed and approved leaves no email, phone or tax id in any log line."""
    tenant, unique = f"t-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:10]
    retailer, admin = running.token(tenant, "retailer"), running.token(tenant, "admin")
    secrets = {"contactEmail": f"pii-{unique}@gmail.com", "phone": f"+49 30 {uuid.uuid4().int % 10**7:07d}",
               "taxId": f"DE{uuid.uuid4().int % 10**9:09d}"}  # fmt: skip
    body = {**SUPPLIER, **secrets}
    supplier_id = requests.post(f"{running.url}/suppliers", json=body, headers=retailer, timeout=10).json()[
        "supplierId"
    ]
    status_of(running, retailer, supplier_id, "FLAGGED")  # the gmail contact does not match globex.de
    fixed_email = f"pii-{unique}@globex.de"
    requests.patch(
        f"{running.url}/suppliers/{supplier_id}",
        json={"contactEmail": fixed_email},
        headers=admin,
        timeout=10,
    )

    def drained() -> bool | None:
        # The correction reaches the drain once parked (D28): drain again until it resumes.
        requests.post(f"{running.url}/admin/corrections/drain", headers=admin, timeout=30)
        body = requests.get(f"{running.url}/suppliers/{supplier_id}", headers=retailer, timeout=10).json()
        return body.get("status") == "APPROVED" or None

    wait_until(drained, timeout=60, what=f"{supplier_id} drained and approved")
    logged = "".join(running.logs)
    assert supplier_id in logged  # the logs are really captured
    for value in (*secrets.values(), fixed_email, secrets["phone"].replace(" ", "")):
        assert value not in logged, f"{value} appears in the logs"


def test_no_contact_detail_tax_id_address_or_webhook_secret_reaches_the_logs_on_the_order_path(running):
    """A full order run: an approved supplier (unique email, phone, tax id) with a listing and a
    webhook, a customer order (unique name and address) accepted with its signed deliveries, a
    flagged order in the correction queue, the drain and an admin's cancel. Every line the stack
    printed is read, and none of those values is in it."""
    tenant, unique = f"t-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:10]
    retailer, admin = running.token(tenant, "retailer"), running.token(tenant, "admin")
    contact = {"contactEmail": f"orders-{unique}@globex.de", "phone": f"+49 30 {uuid.uuid4().int % 10**7:07d}",
               "taxId": f"DE{uuid.uuid4().int % 10**9:09d}"}  # fmt: skip
    supplier_id = requests.post(f"{running.url}/suppliers", json={**SUPPLIER, **contact}, headers=retailer,
                                timeout=10).json()["supplierId"]  # fmt: skip
    status_of(running, retailer, supplier_id, "APPROVED")
    supplier = running.token(tenant, "supplier", supplier_id=supplier_id)
    receiver, secret = running.receiver(), f"whsec-{unique}-{uuid.uuid4().hex}"
    hook = requests.put(f"{running.url}/suppliers/{supplier_id}/webhook", json={"url": receiver.url, "secret": secret},
                        headers=supplier, timeout=10)  # fmt: skip
    assert hook.status_code == 200, hook.text
    listing = {"sku": "LAMP-1", "title": "Desk lamp", "category": "home", "price": {"amount": 49.9, "currency": "EUR"},
               "quantity": 5, "images": ["https://cdn.example.com/lamp.webp"], "attributes": {"material": "steel"}}  # fmt: skip
    assert requests.post(f"{running.url}/suppliers/{supplier_id}/products", json=listing, headers=supplier,
                         timeout=10).status_code == 202  # fmt: skip
    wait_until(lambda: requests.get(f"{running.url}/suppliers/{supplier_id}/products/LAMP-1", headers=supplier,
                                    timeout=10).json()["status"] == "ACTIVE", timeout=30, what="active listing")  # fmt: skip
    ship_to = {"name": f"Ada Lovelace-{unique}", "line1": f"{unique} Analytical Street", "line2": f"Flat {unique[:4]}",
               "city": "London", "postalCode": f"Z{unique[:8]}", "country": "GB"}  # fmt: skip

    def order(price: float) -> dict[str, Any]:
        body = {"customerOrderId": f"web-{uuid.uuid4().hex[:8]}", "shipTo": ship_to,
                "lines": [{"supplierId": supplier_id, "sku": "LAMP-1", "quantity": 1,
                           "unitPrice": {"amount": price, "currency": "EUR"}}]}  # fmt: skip
        placed = requests.post(f"{running.url}/orders", json=body, headers=retailer, timeout=10)
        assert placed.status_code == 202, placed.text
        return {**placed.json()["supplierOrders"][0], "orderId": placed.json()["orderId"]}

    good, flagged = order(49.9), order(1.0)  # the second's price is not the listing's: flagged

    def reached(part: dict[str, Any], status: str) -> bool:
        got = requests.get(
            f"{running.url}/supplier-orders/{part['supplierOrderId']}", headers=retailer, timeout=10
        )
        return got.json()["status"] == status

    wait_until(lambda: reached(good, "AWAITING_ACCEPTANCE"), timeout=30, what="the order awaiting acceptance")
    wait_until(lambda: reached(flagged, "FLAGGED"), timeout=30, what="the flagged order")
    accepted = requests.post(f"{running.url}/supplier-orders/{good['supplierOrderId']}/accept", headers=supplier,
                             timeout=10)  # fmt: skip
    assert accepted.json()["status"] == "ACCEPTED"
    assert (
        requests.post(f"{running.url}/admin/corrections/drain", headers=admin, timeout=30).status_code == 200
    )
    cancelled = requests.post(f"{running.url}/supplier-orders/{flagged['supplierOrderId']}/cancel",
                              json={"reason": "wrong price"}, headers=admin, timeout=10)  # fmt: skip
    assert cancelled.json()["status"] == "CANCELLED"
    wanted = {"supplier_order.accepted", "supplier_order.cancelled"}
    wait_until(lambda: wanted <= set(receiver.events()), timeout=30, what=f"the webhooks {wanted}")

    def all_delivered() -> list[dict[str, Any]] | None:
        items = requests.get(f"{running.url}/suppliers/{supplier_id}/deliveries", headers=supplier,
                             timeout=10).json()["items"]  # fmt: skip
        return items if items and all(d["status"] == "DELIVERED" for d in items) else None

    delivered = wait_until(all_delivered, timeout=30, what="every delivery delivered")
    assert {d["deliveryId"] for d in delivered} == {
        r["headers"]["X-Marketplace-Delivery"] for r in receiver.requests
    }
    receiver.close()
    # The stack holds the customer's address and the supplier's contact: the values are really in play.
    shown = requests.get(f"{running.url}/orders/{good['orderId']}", headers=retailer, timeout=10).json()
    assert shown["shipTo"] == ship_to

    logged = "".join(running.logs)
    assert good["supplierOrderId"] in logged and "webhook delivery" in logged  # the logs are really captured
    values = [*contact.values(), contact["phone"].replace(" ", ""), secret, *ship_to.values()]
    leaked = [v for v in values if v not in ("London", "GB") and v in logged]
    assert not leaked, f"{leaked} appear in the logs"

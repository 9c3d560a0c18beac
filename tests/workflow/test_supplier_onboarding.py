"""Supplier onboarding, every branch, run by the local engine (moto's Step Functions with the
fixes of marketplace_local.moto_patches.engine) with the real handlers, started by the real stream router."""

from __future__ import annotations

import json
import uuid

import pytest

from marketplace import blocklist, keys
from marketplace.errors import TransientError
from marketplace.repository import Table
from tests.conftest import advance_until, wait_until
from tests.workflow.conftest import Onboarding, inbox, unique_ein

pytestmark = pytest.mark.workflow


FOREVER = object()


@pytest.fixture
def validate_faults(stack, tenant):
    """Make the Validate Lambda fail for this test's tenant: the exceptions in the list are raised
    one per invocation, in order; a list ending with FOREVER raises its last exception every time."""
    spec = stack.runtime.by_logical_id("ValidateSupplierFunction")
    plan: list = []

    def interceptor(function, event):
        if function.name != spec.name or not isinstance(event, dict) or event.get("tenantId") != tenant:
            return
        if plan and plan[-1] is FOREVER:
            raise plan[-2]("injected fault")
        if plan:
            raise plan.pop(0)("injected fault")

    stack.runtime.interceptors.append(interceptor)
    yield plan
    stack.runtime.interceptors.remove(interceptor)


def test_a_valid_supplier_is_approved_and_welcomed(onboarding: Onboarding, stack):
    sqs = stack.client("sqs")
    tenant_inbox = inbox(stack, {"tenant_id": [onboarding.tenant]})
    other_supplier_inbox = inbox(stack, {"supplier_id": [str(uuid.uuid4())]})

    supplier_id = onboarding.register()
    record = onboarding.wait_status(supplier_id, "APPROVED")
    assert record["version"] == 2 and "flags" not in record
    arn = onboarding.execution_arn(supplier_id)
    assert onboarding.wait_execution(arn, "SUCCEEDED")
    assert onboarding.entered(arn) == [
        "Prepare",
        "Validate",
        "Decide",
        "MarkApproved",
        "Approved",
    ]
    welcome = wait_until(lambda: sqs.receive_message(QueueUrl=tenant_inbox).get("Messages"), what="welcome")
    body = json.loads(welcome[0]["Body"])
    # The welcome is the approval's status event (marketplace.events), published from the stream.
    assert (body["event"], body["tenantId"], body["supplierId"], body["status"], body["version"]) == (
        "supplier.approved",
        onboarding.tenant,
        supplier_id,
        "APPROVED",
        2,
    )
    assert body["eventId"] == f"{supplier_id}-v2" and body["flags"] == []
    # A subscription filtered on another supplier's id sees nothing of this one.
    assert not sqs.receive_message(QueueUrl=other_supplier_inbox).get("Messages")
    assert onboarding.queued(supplier_id) == []


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"taxId": "123456789"}, "taxId", "invalid format for US"),
        ({"contactEmail": "someone@gmail.com"}, "contactEmail", "differs from the website's domain"),
        ({"country": "JP", "taxId": "T1234567890123", "address": {**{"line1": "1-1", "city": "Tokyo",
          "postalCode": "100-0001"}, "country": "JP"}}, "taxId", "manual review"),
    ],
    ids=["tax-id-format", "domain-mismatch", "country-without-rule"],
)  # fmt: skip
def test_each_flag_reason_flags_the_supplier_and_queues_it_for_a_human(onboarding, overrides, field, reason):
    supplier_id = onboarding.register(**overrides)
    record = onboarding.wait_status(supplier_id, "FLAGGED")
    assert any(f["field"] == field and reason in f["reason"] for f in record["flags"]), record["flags"]
    arn = onboarding.execution_arn(supplier_id)
    onboarding.wait_entered(arn, "WaitForFix")
    (message,) = wait_until(lambda: onboarding.queued(supplier_id), what="correction message")
    assert message["flaggedVersion"] == record["version"] and message["taskToken"]
    assert any(f["field"] == field for f in message["flags"])
    assert onboarding.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"


def test_a_duplicate_tax_id_in_the_same_tenant_is_flagged(onboarding):
    tax_id = unique_ein()
    first = onboarding.register(taxId=tax_id)
    onboarding.wait_status(first, "APPROVED")
    second = onboarding.register(taxId=tax_id)
    record = onboarding.wait_status(second, "FLAGGED")
    # The flag says the tax id is registered, never by whom: the applicant sees its own flags.
    assert [f["reason"] for f in record["flags"]] == ["duplicate tax id: this tax id is already registered"]
    assert first not in json.dumps(record)


def test_the_same_tax_id_in_another_tenant_is_no_duplicate(stack, onboarding):
    tax_id = unique_ein()
    other = Onboarding(stack, f"other-{uuid.uuid4().hex[:8]}")
    other.wait_status(other.register(taxId=tax_id), "APPROVED")
    assert onboarding.wait_status(onboarding.register(taxId=tax_id), "APPROVED")


def test_flagged_then_fixed_then_approved(onboarding):
    supplier_id = onboarding.register(taxId="12345")
    flagged = onboarding.wait_status(supplier_id, "FLAGGED")
    arn = onboarding.execution_arn(supplier_id)
    onboarding.wait_entered(arn, "WaitForFix")
    # Entering WaitForFix comes before its message is sent: fix once the correction is parked.
    wait_until(lambda: onboarding.queued(supplier_id), what="correction message")
    onboarding.fix(supplier_id, taxId=unique_ein())
    report = onboarding.drain()
    assert report.get("resumed") == 1 and not report.get("waiting")
    record = onboarding.wait_status(supplier_id, "APPROVED")
    assert record["version"] == flagged["version"] + 2  # the fix, then the approval
    onboarding.wait_execution(arn, "SUCCEEDED")
    states = onboarding.entered(arn)
    assert states.count("Validate") == 2 and states[-1] == "Approved"
    assert onboarding.queued(supplier_id) == []


def test_flagged_then_fixed_badly_is_flagged_again_and_waits_again(onboarding):
    supplier_id = onboarding.register(taxId="12345")
    first = onboarding.wait_status(supplier_id, "FLAGGED")
    arn = onboarding.execution_arn(supplier_id)
    onboarding.wait_entered(arn, "WaitForFix")
    wait_until(lambda: onboarding.queued(supplier_id), what="correction message")
    onboarding.fix(supplier_id, taxId="99999")  # still not an EIN
    assert onboarding.drain().get("resumed") == 1
    again = onboarding.wait_status(supplier_id, "FLAGGED", min_version=first["version"] + 2)
    assert again["flags"][0]["field"] == "taxId"
    onboarding.wait_entered(arn, "WaitForFix", times=2)
    (message,) = wait_until(lambda: onboarding.queued(supplier_id), what="second correction message")
    assert message["flaggedVersion"] == again["version"] and message["round"] == 2


def test_an_unfixed_record_stays_queued_after_a_drain(onboarding):
    supplier_id = onboarding.register(taxId="12345")
    onboarding.wait_status(supplier_id, "FLAGGED")
    onboarding.wait_entered(onboarding.execution_arn(supplier_id), "WaitForFix")
    wait_until(lambda: onboarding.queued(supplier_id), what="correction message")
    report = onboarding.drain()
    assert report.get("waiting") == 1 and not report.get("resumed")
    assert len(onboarding.queued(supplier_id)) == 1
    assert onboarding.record(supplier_id)["status"] == "FLAGGED"


def test_a_drain_short_of_time_stops_says_more_and_the_next_call_resumes_the_rest(onboarding):
    """The API gives the drain only what is left of its own timeout: a drain whose time runs short
    receives no further batch, reports ``more``, and leaves the rest queued; calling it again resumes
    every fixed record exactly once."""
    supplier_ids = [onboarding.register(taxId="12345") for _ in range(12)]
    for supplier_id in supplier_ids:
        onboarding.wait_status(supplier_id, "FLAGGED")
        wait_until(lambda s=supplier_id: onboarding.queued(s), what=f"correction message for {supplier_id}")
    for supplier_id in supplier_ids:
        onboarding.fix(supplier_id, taxId=unique_ein())

    # 3.1 s is enough for one batch of ten (corrections.BATCH_SECONDS is 3 s), not for a second.
    # (The queue is shared with other tests: the first batch may hold none of this tenant's.)
    first = onboarding.drain(budget_ms=3100)
    assert first["_all"]["more"] is True
    resumed, calls = first.get("resumed", 0), 1
    while resumed < len(supplier_ids):
        assert calls < 30, f"only {resumed} of {len(supplier_ids)} resumed after {calls} drains"
        report = onboarding.drain(budget_ms=3100)
        resumed, calls = resumed + report.get("resumed", 0), calls + 1
    assert resumed == len(supplier_ids)
    for supplier_id in supplier_ids:
        onboarding.wait_status(supplier_id, "APPROVED")
        assert onboarding.queued(supplier_id) == []
    assert onboarding.drain()["_all"]["more"] is False


def test_each_spelling_of_a_blocked_domain_or_name_is_rejected(onboarding, stack):
    """Blocked-list entries as the API stores them (normalised, marketplace.blocklist), and a
    supplier per bypass found from outside: a subdomain, a Cyrillic homoglyph domain, the same in
    punycode, a fullwidth domain and a homoglyph legal name. Each ends REJECTED naming its field."""
    domain = f"evil-{uuid.uuid4().hex[:8]}.example"
    table = Table(stack.physical_id("MarketplaceTable"), stack.client("dynamodb"))
    for kind, value in (("domain", domain), ("legalName", "Fraud Holdings Ltd")):
        table.put({"PK": keys.blocklist_pk(onboarding.tenant), "SK": blocklist.entry_sort_key(kind, value, None),
                   "entity": "BLOCKLIST", "kind": kind, "value": value, "reason": "chargeback fraud"})  # fmt: skip
    homoglyph = "\u0435" + domain[1:]  # a Cyrillic e
    bypasses = {
        "website": [f"https://shop.{domain}/", f"https://{homoglyph}/",
                    f"https://{homoglyph.encode('idna').decode()}/",
                    "https://" + "".join(chr(ord(c) + 0xFEE0) for c in domain) + "/"],  # fullwidth
        "legalName": ["Fr\u0430ud H\u043eldings Ltd"],
    }  # fmt: skip
    started = {
        onboarding.register(**{field: value}): (field, value)
        for field, values in bypasses.items()
        for value in values
    }
    for supplier_id, (field, value) in started.items():
        record = onboarding.wait_status(supplier_id, "REJECTED", "APPROVED", "FLAGGED")
        assert record["status"] == "REJECTED", (value, record.get("flags"))
        assert {"field": field, "reason": "on the tenant's blocked list: chargeback fraud"} in record["flags"]


def test_a_schema_valid_website_urllib_cannot_read_is_flagged_for_a_fix(onboarding):
    """``https://bracket]shop.de/`` passes the schema but not urllib: a flag with a reason, in the
    correction queue, and fixed like any other flag (before, the Lambda crashed: a system error)."""
    supplier_id = onboarding.register(website="https://bracket]shop.de/", contactEmail="ops@shop.de")
    record = onboarding.wait_status(supplier_id, "FLAGGED")
    assert record["flags"] == [{"field": "website", "reason": "is not a URL with a valid host name"}]
    onboarding.wait_entered(onboarding.execution_arn(supplier_id), "WaitForFix")  # queued for the fix
    onboarding.fix(supplier_id, website="https://shop.de/")
    assert onboarding.drain().get("resumed") == 1
    onboarding.wait_status(supplier_id, "APPROVED")


def test_a_blocked_supplier_is_rejected(onboarding, stack):
    blocked_tax_id = unique_ein()
    Table(stack.physical_id("MarketplaceTable"), stack.client("dynamodb")).put({
        "PK": f"TENANT#{onboarding.tenant}#BLOCKLIST", "SK": f"TAXID#US#{blocked_tax_id}",
        "entity": "BLOCKLIST", "reason": "chargeback fraud"})  # fmt: skip
    supplier_id = onboarding.register(taxId=blocked_tax_id)
    record = onboarding.wait_status(supplier_id, "REJECTED")
    assert record["flags"] == [{"field": "taxId", "reason": "on the tenant's blocked list: chargeback fraud"}]
    arn = onboarding.execution_arn(supplier_id)
    onboarding.wait_execution(arn, "SUCCEEDED")
    assert onboarding.entered(arn)[-1] == "Rejected"
    assert onboarding.queued(supplier_id) == []


def test_a_transient_error_is_retried_with_backoff_then_approved(onboarding, validate_faults, clock):
    validate_faults.extend([TransientError, TransientError])
    before = len(clock.sleeps)
    supplier_id = onboarding.register()
    onboarding.wait_status(supplier_id, "APPROVED")
    arn = onboarding.execution_arn(supplier_id)
    onboarding.wait_execution(arn, "SUCCEEDED")
    failures = [e for e in onboarding.history(arn) if e["type"] == "TaskFailed"]
    assert [json.loads(e["taskFailedEventDetails"]["cause"])["errorType"] for e in failures] == [
        "TransientError"
    ] * 2
    assert onboarding.entered(arn).count("Validate") == 1  # retried inside the state
    retries = clock.sleeps[before:]
    assert len(retries) == 2 and all(0 <= s <= 60 for s in retries)  # full jitter, bounded by MaxDelaySeconds


def test_a_permanent_error_flags_the_record_for_a_human_and_waits(onboarding, validate_faults):
    class Broken(Exception):
        pass

    validate_faults.extend([Broken, FOREVER])
    supplier_id = onboarding.register()
    flagged = onboarding.wait_status(supplier_id, "FLAGGED")
    assert flagged["flags"][0]["field"] == "(system)" and "Broken" in flagged["flags"][0]["reason"]
    arn = onboarding.execution_arn(supplier_id)
    states = onboarding.wait_entered(arn, "WaitForFix")
    assert "DescribeSystemError" in states and "MarkSystemFlagged" in states
    assert not [e for e in onboarding.history(arn) if e["type"] == "ExecutionFailed"]
    (message,) = wait_until(lambda: onboarding.queued(supplier_id), what="correction message")
    assert message["flags"][0]["field"] == "(system)"
    # Once the cause is cured, an admin asks for a retry and the drain resumes the workflow.
    validate_faults.clear()
    onboarding.suppliers.request_retry(onboarding.principal("admin"), supplier_id)
    assert onboarding.drain().get("resumed") == 1
    onboarding.wait_status(supplier_id, "APPROVED")


def test_a_callback_that_times_out_queues_the_record_for_a_restart(onboarding, clock, stack):
    supplier_id = onboarding.register(taxId="12345")
    onboarding.wait_status(supplier_id, "FLAGGED")
    arn = onboarding.execution_arn(supplier_id)
    onboarding.wait_entered(arn, "WaitForFix")
    heartbeat = int(stack.template.parameters["CorrectionHeartbeatSeconds"]) + 1
    advance_until(
        clock, heartbeat, lambda: onboarding.sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    )
    states = onboarding.entered(arn)
    assert states[-2:] == ["QueueForRestart", "AwaitingManualRestart"]
    assert any(e["type"] == "TaskTimedOut" for e in onboarding.history(arn))
    messages = wait_until(lambda: [m for m in onboarding.queued(supplier_id) if "taskToken" not in m],
                          what="restart message")  # fmt: skip
    assert messages[0]["flaggedVersion"] == onboarding.record(supplier_id)["version"]
    # Fixed later, the record is restarted by a new execution named from its new version.
    fixed = onboarding.fix(supplier_id, taxId=unique_ein())
    report = onboarding.drain()
    assert report.get("restarted", 0) + report.get("resumed", 0) >= 1
    onboarding.wait_status(supplier_id, "APPROVED")
    onboarding.wait_execution(onboarding.execution_arn(supplier_id, fixed["version"]), "SUCCEEDED")


def test_an_admin_rejection_ends_the_waiting_workflow(onboarding):
    supplier_id = onboarding.register(taxId="12345")
    onboarding.wait_status(supplier_id, "FLAGGED")
    arn = onboarding.execution_arn(supplier_id)
    onboarding.wait_entered(arn, "WaitForFix")
    onboarding.suppliers.reject(onboarding.principal("admin"), supplier_id, "fake company")
    assert onboarding.drain().get("closed") == 1
    onboarding.wait_execution(arn, "SUCCEEDED")
    assert onboarding.entered(arn)[-1] == "RejectedByAdmin"
    record = onboarding.record(supplier_id)
    assert (record["status"], record["statusReason"]) == ("REJECTED", "fake company")
    assert onboarding.queued(supplier_id) == []


def test_a_correction_message_seen_twice_resumes_once(onboarding, stack):
    """A message delivered twice parks one correction (one item per record version flagged); one
    delivered again after its resume resumes nothing."""
    supplier_id = onboarding.register(taxId="12345")
    onboarding.wait_status(supplier_id, "FLAGGED")
    arn = onboarding.execution_arn(supplier_id)
    onboarding.wait_entered(arn, "WaitForFix")
    (message,) = wait_until(lambda: onboarding.queued(supplier_id), what="correction message")
    body = {k: v for k, v in message.items() if not k.startswith("_")}
    sqs, url = stack.client("sqs"), stack.physical_id("CorrectionQueue")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    wait_until(lambda: not onboarding.unparked(), what="the second delivery parked")
    assert onboarding.queued(supplier_id) == [message]
    onboarding.fix(supplier_id, taxId=unique_ein())
    report = onboarding.drain()
    assert (report.get("resumed"), report.get("duplicates")) == (1, None)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))  # once more, after the resume
    again = onboarding.drain()
    assert not again.get("resumed") and not again.get("restarted")
    assert again.get("duplicates", 0) + again.get("closed", 0) == 1
    onboarding.wait_status(supplier_id, "APPROVED")
    onboarding.wait_execution(arn, "SUCCEEDED")
    assert onboarding.entered(arn).count("Validate") == 2
    executions = onboarding.sfn.list_executions(
        stateMachineArn=stack.physical_id("SupplierOnboardingStateMachine")
    )
    assert [e["name"] for e in executions["executions"] if supplier_id in e["name"]] == [
        f"supplier-{supplier_id}-v1"
    ]
    assert onboarding.queued(supplier_id) == []


def test_a_poison_message_goes_to_the_dead_letter_queue(onboarding, stack):
    """The queue's consumer cannot park what it cannot read: it keeps it in the dead-letter queue,
    with the reason, and the queue moves on."""
    marker = str(uuid.uuid4())
    stack.client("sqs").send_message(QueueUrl=stack.physical_id("CorrectionQueue"), MessageBody=marker)
    dead = wait_until(
        lambda: onboarding.queued(marker, queue="CorrectionDeadLetterQueue"), what="dead letter"
    )
    assert dead[0]["_attributes"]["reason"]["StringValue"].startswith("not JSON")
    assert onboarding.unparked() == [] and onboarding.queued(marker) == []


def test_a_stale_status_write_never_overwrites_a_newer_human_change(onboarding, stack):
    """A human changes the record after Validate read it: the conditional write loses, the
    workflow validates the new version, and the stale verdict never lands."""
    calls = []

    def then_a_human_change(original):
        def validation_then_human_change(self, tenant_id, supplier_id):
            result = original(self, tenant_id, supplier_id)
            if not calls:
                onboarding.fix(supplier_id, taxId="55555")  # a human makes it invalid meanwhile
            calls.append(result["outcome"])
            return result

        return validation_then_human_change

    with stack.runtime.patched("ValidateSupplierFunction", "marketplace.suppliers", "Suppliers.validation_step",
                               then_a_human_change):  # fmt: skip
        supplier_id = onboarding.register()
        record = onboarding.wait_status(supplier_id, "FLAGGED")
    assert calls[:2] == ["APPROVED", "FLAGGED"]
    assert record["taxId"] == "55555"
    arn = onboarding.execution_arn(supplier_id)
    states = onboarding.wait_entered(arn, "WaitForFix")
    assert "RecordChangedMeanwhile" in states and "Approved" not in states


def test_a_record_whose_workflow_stopped_before_any_verdict_is_never_lost(onboarding, stack):
    """Validate fails for good and the record changes before the system flag is written: the
    workflow can only queue the error. The drain flags the record so admins see it, and once an
    admin retries it the record is restarted and approved."""
    spec = stack.runtime.by_logical_id("ValidateSupplierFunction")
    broken = {"on": True}

    class Broken(Exception):
        pass

    def interceptor(function, event):
        if function.name == spec.name and event.get("tenantId") == onboarding.tenant and broken["on"]:
            record = onboarding.record(event["recordId"])
            onboarding.suppliers.table.update(
                record["PK"], record["SK"], record["version"], {"legalName": "Changed Meanwhile Ltd"}
            )
            raise Broken("injected fault")

    stack.runtime.interceptors.append(interceptor)
    try:
        supplier_id = onboarding.register()
        arn = onboarding.execution_arn(supplier_id)
        onboarding.wait_execution(arn, "SUCCEEDED")
        assert onboarding.entered(arn)[-2:] == ["QueueSystemError", "SystemErrorQueued"]
        assert onboarding.record(supplier_id)["status"] == "PENDING"
        (message,) = wait_until(lambda: onboarding.queued(supplier_id), what="system error message")
        assert message["systemError"]["Error"] == "Broken"

        report = onboarding.drain()
        assert report.get("requeued") == 1
        flagged = onboarding.record(supplier_id)
        assert flagged["status"] == "FLAGGED" and flagged["flags"][0]["field"] == "(system)"
        (requeued,) = onboarding.queued(supplier_id)
        assert requeued["flaggedVersion"] == flagged["version"]
    finally:
        broken["on"] = False
        stack.runtime.interceptors.remove(interceptor)
    retried = onboarding.suppliers.request_retry(onboarding.principal("admin"), supplier_id)
    assert onboarding.drain().get("restarted") == 1
    onboarding.wait_status(supplier_id, "APPROVED")
    onboarding.wait_execution(onboarding.execution_arn(supplier_id, retried["version"]), "SUCCEEDED")

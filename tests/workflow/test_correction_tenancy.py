"""Each tenant's corrections are its own: an admin's drain and ``GET /admin/corrections`` act on the
admin's tenant only, and another tenant's backlog does not delay them (decisions.md D28)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import requests

from marketplace import keys
from tests.conftest import wait_until
from tests.workflow.conftest import Onboarding, unique_ein

pytestmark = pytest.mark.workflow


def api(stack: Any, tenant: str, method: str, path: str) -> requests.Response:
    token = stack.issuer.mint(tenant, "admin")
    return requests.request(method, f"{stack.api_url}{path}", headers={"Authorization": f"Bearer {token}"},
                            timeout=30)  # fmt: skip


def waiting_for_fix(onboarding: Onboarding) -> str:
    """A supplier of the tenant, flagged, its workflow waiting for the fix, its correction parked."""
    supplier_id = onboarding.register(taxId="12345")
    onboarding.wait_status(supplier_id, "FLAGGED")
    onboarding.wait_entered(onboarding.execution_arn(supplier_id), "WaitForFix")
    wait_until(lambda: onboarding.queued(supplier_id), what=f"correction for {supplier_id}")
    return supplier_id


def test_a_tenants_drain_never_resumes_heartbeats_or_removes_another_tenants_correction(stack, onboarding):
    other = Onboarding(stack, f"other-{uuid.uuid4().hex[:8]}")
    mine, theirs = waiting_for_fix(onboarding), waiting_for_fix(other)
    other.fix(theirs, taxId=unique_ein())  # fixed, waiting for its own tenant's drain
    their_arn = other.execution_arn(theirs)
    events_before = len(other.history(their_arn))

    drained = api(stack, onboarding.tenant, "POST", "/admin/corrections/drain")

    assert drained.status_code == 200
    assert drained.json() == {"resumed": 0, "waiting": 1, "more": False}  # its own, unfixed
    # The other tenant's correction was not read: not resumed, not heartbeaten, not removed.
    assert other.record(theirs)["status"] == "FLAGGED"
    assert other.sfn.describe_execution(executionArn=their_arn)["status"] == "RUNNING"
    assert len(other.history(their_arn)) == events_before
    assert other.entered(their_arn)[-1] == "WaitForFix"
    assert [m["recordId"] for m in other.queued(theirs)] == [theirs]
    assert onboarding.record(mine)["status"] == "FLAGGED"

    # Its own admin's drain resumes it.
    assert api(stack, other.tenant, "POST", "/admin/corrections/drain").json()["resumed"] == 1
    other.wait_status(theirs, "APPROVED")
    assert other.queued(theirs) == []
    assert [m["recordId"] for m in onboarding.queued(mine)] == [mine]


def test_the_scheduled_drain_resumes_every_tenants_fixed_records_through_the_shards(stack, onboarding):
    """The hourly drain names no tenant: it reads every tenant's parked corrections through GSI3's
    shards (corrections.Parked.pages), with the drain's own role, where an admin's drain reads its
    tenant's partition."""
    other = Onboarding(stack, f"other-{uuid.uuid4().hex[:8]}")
    mine, theirs = waiting_for_fix(onboarding), waiting_for_fix(other)
    onboarding.fix(mine, taxId=unique_ein())
    other.fix(theirs, taxId=unique_ein())
    wait_until(lambda: not onboarding.unparked(), what="every correction message parked")

    report = stack.runtime.invoke_or_raise(
        stack.physical_id("CorrectionDrainFunction"), {"source": "schedule"}
    )

    assert report["byTenant"][onboarding.tenant].get("resumed") == 1, report
    assert report["byTenant"][other.tenant].get("resumed") == 1, report
    onboarding.wait_status(mine, "APPROVED")
    other.wait_status(theirs, "APPROVED")
    assert onboarding.queued(mine) == [] and other.queued(theirs) == []


def test_admin_corrections_lists_the_callers_tenant_only(stack, onboarding):
    other = Onboarding(stack, f"other-{uuid.uuid4().hex[:8]}")
    mine, theirs = waiting_for_fix(onboarding), waiting_for_fix(other)
    for tenant, expected in ((onboarding.tenant, mine), (other.tenant, theirs)):
        listed = api(stack, tenant, "GET", "/admin/corrections")
        assert listed.status_code == 200
        assert [(i["recordType"], i["recordId"]) for i in listed.json()["items"]] == [("SUPPLIER", expected)]


BACKLOG = 300


def park_backlog(stack: Any, tenant: str, count: int) -> None:
    """``count`` FLAGGED suppliers of ``tenant`` nobody has fixed, each with its correction message on
    the queue, written straight to the table (no workflow: a workflow each would take minutes). A
    record is inserted as another entity and then becomes a supplier, so that the stream router, which
    starts a workflow for a new supplier, leaves it alone."""
    onboarding = Onboarding(stack, tenant)
    table, sqs, url = onboarding.table, stack.client("sqs"), stack.physical_id("CorrectionQueue")
    ids = [f"backlog-{n:04d}-{uuid.uuid4().hex[:6]}" for n in range(count)]
    for supplier_id in ids:
        pk = keys.supplier_pk(tenant, supplier_id)
        table.put({"PK": pk, "SK": keys.RECORD_SK, "entity": "BACKLOG_SEED", "tenantId": tenant,
                   "supplierId": supplier_id, "status": "FLAGGED", "version": 1})  # fmt: skip
        table.update(pk, keys.RECORD_SK, 1, {"entity": "SUPPLIER"})
    for start in range(0, count, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": json.dumps({"kind": "SUPPLIER", "tenantId": tenant, "recordId": s,
                                                      "flaggedVersion": 2, "flags": []})}
            for i, s in enumerate(ids[start : start + 10])
        ])  # fmt: skip
    wait_until(lambda: len(onboarding.queued_all()) == count and not onboarding.unparked(), timeout=60,
               what=f"{count} corrections of {tenant} parked")  # fmt: skip


def test_a_drain_called_after_its_callers_deadline_resumes_nothing_and_says_more(onboarding):
    """The API gives the drain a deadline, not a duration: an SDK retry of a throttled Invoke sends
    the same payload later, and must not run past the API's own answer (a 5xx at 29 s)."""
    supplier_id = waiting_for_fix(onboarding)
    onboarding.fix(supplier_id, taxId=unique_ein())
    late = onboarding.drain(budget_ms=-1)  # the deadline passed a millisecond ago
    assert (late.get("resumed", 0), late["_all"]["more"]) == (0, True), late
    assert onboarding.drain().get("resumed") == 1
    onboarding.wait_status(supplier_id, "APPROVED")


def test_another_tenants_backlog_does_not_delay_a_tenants_drain(stack, onboarding):
    backlog = f"backlog-{uuid.uuid4().hex[:8]}"
    park_backlog(stack, backlog, BACKLOG)
    supplier_id = waiting_for_fix(onboarding)
    onboarding.fix(supplier_id, taxId=unique_ein())

    # One call with the time one page takes (corrections.BATCH_SECONDS is 3 s) reaches the fixed record.
    started = time.monotonic()
    report = onboarding.drain(budget_ms=3100)
    took = time.monotonic() - started

    assert report.get("resumed") == 1, report
    assert set(report["_all"]["byTenant"]) == {onboarding.tenant}
    onboarding.wait_status(supplier_id, "APPROVED")
    assert took < 3.1
    # The backlog is untouched, and still its own tenant's to drain.
    assert len(Onboarding(stack, backlog).queued_all()) == BACKLOG


def test_a_message_leaves_the_queue_only_once_parked_and_parking_twice_is_one_item(stack, onboarding):
    """The queue's consumer reports a message it could not park as a batch item failure (SQS keeps
    it and delivers it again), parks the others, sends what it cannot read to the dead-letter queue,
    and a message delivered again parks the same item."""

    def body(record_id: str) -> str:
        return json.dumps({"kind": "SUPPLIER", "tenantId": onboarding.tenant, "recordId": record_id,
                           "flaggedVersion": 2, "taskToken": f"token-{record_id}", "flags": []})  # fmt: skip

    def record(message_id: str, text: str) -> dict[str, Any]:
        return {"messageId": message_id, "receiptHandle": message_id, "body": text, "attributes": {},
                "messageAttributes": {}, "eventSource": "aws:sqs",
                "eventSourceARN": stack.attribute("CorrectionQueue", "Arn"), "awsRegion": "us-east-1"}  # fmt: skip

    def table_fails_for_b(original):
        # The instance's own copy of marketplace.corrections (each Lambda instance imports its own).
        conflict = original.__globals__["Conflict"]

        def park(self, correction, text):
            if correction.record_id == "b":
                raise conflict("injected: the table refused the write")
            return original(self, correction, text)

        return park

    intake = stack.physical_id("CorrectionIntakeFunction")
    marker = f"poison-{uuid.uuid4().hex}"
    with stack.runtime.patched(
        "CorrectionIntakeFunction", "marketplace.corrections", "Parked.park", table_fails_for_b
    ):
        answer = stack.runtime.invoke_or_raise(
            intake, {"Records": [record("m-a", body("a")), record("m-b", body("b")), record("m-p", marker)]}
        )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-b"}]}
    assert [m["recordId"] for m in onboarding.queued_all()] == ["a"]
    dead = wait_until(
        lambda: onboarding.queued(marker, queue="CorrectionDeadLetterQueue"), what="dead letter"
    )
    assert dead[0]["_attributes"]["reason"]["StringValue"].startswith("not JSON")

    # The table is back; SQS redelivers.
    answer = stack.runtime.invoke_or_raise(
        intake, {"Records": [record("m-b", body("b")), record("m-a", body("a"))]}
    )
    assert answer == {"batchItemFailures": []}
    parked = onboarding.queued_all()
    assert sorted(m["recordId"] for m in parked) == ["a", "b"]
    assert {m["taskToken"] for m in parked} == {"token-a", "token-b"}

"""The fault run of ``make faults``, small, on the shared local stack: supplier onboardings and
supplier orders through the HTTP API with transient errors, throttles, duplicate deliveries, crashes
mid-batch and a webhook receiver that is down for a while; the accepted orders then shipped,
delivered, cancelled, returned and closed (by hand and by the deadline sweeper). Nothing is lost,
duplicated or oversold, each order ends where its path says, and every kind of fault was really
injected (so the test cannot pass with injection off)."""

from __future__ import annotations

import uuid

import pytest

from marketplace.corrections import WAITING_HIDDEN_SECONDS
from marketplace_local.faults import KINDS, FaultConfig
from tests.fault.harness import FaultRun, RunSettings, failed, queued_messages, table

pytestmark = pytest.mark.fault


def test_a_small_fault_run_loses_nothing_duplicates_nothing_and_oversells_nothing(stack):
    # Higher rates than `make faults` so that 40 + 40 records see every kind of fault (duplicates at
    # 35 %: with two webhook events per order, not three, the webhook queue has few batches to roll on).
    faults = FaultConfig(
        transient=0.2, throttle=0.05, duplicate=0.35, crash=0.3, webhook_down=(3.0, 6.0), seed=11
    )
    # The sweeper only delivers automatically here, to keep the run short (`make faults` drives every
    # timed transition, late, auto-cancel and close too).
    settings = RunSettings(
        onboardings=40, orders=40, shops=4, workers=3, deadline=240, timers=("auto_deliver",)
    )
    result = FaultRun(settings, faults).run(stack)
    print(table(result))  # shown when the test fails
    assert result["settled"], result["notes"]
    assert result["lost"] == 0, result["lostRecords"]
    assert result["duplicatedExecutions"] == 0
    assert result["duplicatedNotifications"] == 0
    assert result["stockCounterDrift"] == 0
    assert result["oversoldUnits"] == 0
    assert not failed(result)
    assert result["started"] == {"suppliers": 40, "supplier orders": 40}
    finished = result["finished"]
    # The mix really happened: approvals, blocked suppliers, waits in the correction queue,
    # contention for stock, and each of the supplier's and the sweeper's decisions; after acceptance,
    # shipments, delivery, cancellation with the stock back, a return refunded, the order closed.
    assert {"APPROVED", "REJECTED", "FLAGGED (correction held)"} <= set(finished["suppliers"])
    assert {"REJECTED", "EXPIRED", "CANCELLED", "DELIVERED"} <= set(finished["supplier orders"])
    assert result["wrongFinalStatus"] == [] and result["wrongRefunds"] == []
    assert {"shipped in two, delivered automatically: DELIVERED", "cancelled by the retailer: CANCELLED",
            "returned and refunded: DELIVERED", "shipped, delivered by hand: DELIVERED"} <= set(result["afterAcceptance"])  # fmt: skip
    assert result["returns"].get("RECEIVED", 0) > 0 and result["releasedUnitsAfterAcceptance"] > 0
    assert result["outOfStockRejections"] > 0
    # High-risk changes to the four shops, reviewed under the faults while they sold (D41): two
    # renames and two image hosts applied, two invalid tax ids held for a human.
    assert result["proposals"] == {"applied -> applied": 4, "flagged -> flagged": 2}
    assert result["waitingInCorrectionQueue"] > 0
    missing = [kind for kind in KINDS if result["faultsInjected"].get(kind, 0) == 0]
    assert not missing, f"faults never injected: {missing}"
    assert result["webhooks"].get("met a failure", 0) > 0, "no webhook delivery met the receiver down"


def test_the_verdict_reads_every_message_a_queue_holds_visible_in_flight_or_delayed(stack):
    # A drain that runs out of time keeps the unfixed messages it read hidden for a while: their
    # records still wait in the queue. A look by receive sees only the visible messages, and counted
    # those records as lost in the full run.
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName=f"verdict-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    try:
        for body in ("hidden by a drain", "visible", "handled"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        sqs.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=60)
        received = {m["Body"]: m["ReceiptHandle"] for m in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]}  # fmt: skip
        assert set(received) == {"hidden by a drain", "visible", "handled"}
        sqs.delete_message(QueueUrl=url, ReceiptHandle=received["handled"])
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=received["visible"], VisibilityTimeout=0)
        sqs.change_message_visibility(
            QueueUrl=url,
            ReceiptHandle=received["hidden by a drain"],
            VisibilityTimeout=WAITING_HIDDEN_SECONDS,
        )

        held = queued_messages(stack, url)

        assert sorted((m["Body"], m["State"]) for m in held) == [
            ("delayed", "delayed"), ("hidden by a drain", "in flight"), ("visible", "visible")
        ]  # fmt: skip
        # The same as SQS's own counts, state by state (exact on moto) ...
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == "1"
        assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
        assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
        # ... and nothing was received to read them: the visible one is still the only one a receive gets.
        again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                    AttributeNames=["ApproximateReceiveCount"])["Messages"]  # fmt: skip
        assert [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in again] == [("visible", "2")]
    finally:
        sqs.delete_queue(QueueUrl=url)

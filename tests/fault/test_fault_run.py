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
    # The ledgers balance to the cent against the orders, each entry once (D42): `failed` holds
    # `wrongLedgers` to nothing; sales, commissions, refunds and reversals were really written.
    assert {"SALE", "COMMISSION", "REFUND", "COMMISSION_REVERSAL"} <= set(result["ledgerEntries"])
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


def test_the_ledger_verdict_finds_a_doubled_a_wrong_and_a_stray_entry_and_the_balance_off(quiet_table):
    """The fault run's ledger check (``FaultRun._ledger_errors``) on a table written by hand: the
    entries the ledger makes for a delivered order pass; a second sale (as a delivery announced
    twice under two versions would make), an amount off by a cent and an entry for an order never
    delivered are each named."""
    from marketplace import ledger
    from tests.fault.harness import Observed, Shop

    run = FaultRun(RunSettings(onboardings=0, orders=0), FaultConfig())
    run.table, supplier = quiet_table, f"s-{uuid.uuid4().hex[:8]}"
    run.shops = [Shop(supplier, "SKU-1", 10, "secret")]
    line = {"sku": "SKU-1", "quantity": 2, "shipped": 2, "unitPrice": {"amount": "49.90", "currency": "EUR"},
            "commission": {"percent": "12.5"}}  # fmt: skip
    order = {"supplierOrderId": "so-1", "orderId": "o-1", "supplierId": supplier, "tenantId": run.tenant,
             "lines": [line], "deliveredAt": "2026-12-07T10:00:00+00:00",
             "commission": {"amount": "12.48", "currency": "EUR"}}  # fmt: skip
    event = {"event": "supplier_order.delivered", "eventId": "so-1-v5", "at": order["deliveredAt"], **order}
    assert ledger.record(quiet_table, event) == 2
    observed = Observed(orders={"so-1": order})
    assert run._ledger_errors(observed) == [] and run.ledger_entries == {"SALE": 1, "COMMISSION": 1}

    # The order says its commission is a cent less than the entry: the entry and the balance are named.
    off = Observed(orders={"so-1": {**order, "commission": {"amount": "12.47", "currency": "EUR"}}})
    assert run._ledger_errors(off) == [
        "so-1: COMMISSION -12.48, expected -12.47",
        f"shop {supplier}: ledger balance 87.32, its orders say 87.33",
    ]
    # The delivery announced again under another version, and a sale of an order never delivered.
    assert ledger.record(quiet_table, {**event, "eventId": "so-1-v6", "at": "2026-12-07T10:00:01+00:00"}) == 2
    stray = ledger.entries_for({**event, "eventId": "so-2-v5", "supplierOrderId": "so-2"}, quiet_table)[0]
    quiet_table.put(stray)
    errors = run._ledger_errors(observed)
    assert errors[:3] == [
        "so-1: 2 COMMISSION entries, expected one",
        "so-1: 2 SALE entries, expected one",
        "so-2: a SALE entry the order's events do not make: [Decimal('99.80')]",
    ]
    assert errors[3].startswith(f"shop {supplier}: ledger balance ") and len(errors) == 4

"""Supplier-order events on the notifications topic: published 10 to a PublishBatch request, and a
refused event reported as its stream record's failure, never dropped (D22)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from marketplace.events import event_for, publish_all


def _order(tenant: str, n: int, status: str, version: int) -> dict[str, Any]:
    return {"entity": "SUPPLIER_ORDER", "tenantId": tenant, "supplierId": "s-none", "supplierOrderId": f"so{n}",
            "orderId": f"o{n}", "status": status, "version": version, "lines": [],
            "createdAt": "2026-12-01T10:00:00.000Z", "acceptedAt": "2026-12-01T10:04:00.000Z"}  # fmt: skip


def _events(tenant: str, count: int) -> dict[str, dict[str, Any]]:
    return {
        str(1000 + n): event_for(_order(tenant, n, "PENDING", 1), _order(tenant, n, "AWAITING_ACCEPTANCE", 2))
        for n in range(count)
    }


@pytest.fixture
def topic(stack) -> str:
    return stack.physical_id("SupplierNotificationsTopic")


@pytest.fixture
def subscriber(stack, topic):
    """A queue subscribed to the topic (raw delivery): what a subscriber receives."""
    sqs, sns = stack.client("sqs"), stack.client("sns")
    url = sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscription = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                                 Attributes={"RawMessageDelivery": "true"})["SubscriptionArn"]  # fmt: skip

    def received(tenant: str) -> list[dict[str, Any]]:
        bodies = []
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return [b for b in bodies if b["tenantId"] == tenant]
            bodies += [json.loads(m["Body"]) for m in got]
            sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                            for i, m in enumerate(got)])  # fmt: skip

    yield received
    sns.unsubscribe(SubscriptionArn=subscription)
    sqs.delete_queue(QueueUrl=url)


def test_events_are_published_ten_to_a_request(stack, topic, subscriber, tenant):
    sns = stack.client("sns")
    requests: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        requests.append(len(params["PublishBatchRequestEntries"]))

    sns.meta.events.register("provide-client-params.sns.PublishBatch", count)
    try:
        refused = publish_all(sns, topic, _events(tenant, 23))
    finally:
        sns.meta.events.unregister("provide-client-params.sns.PublishBatch", count)
    assert refused == {}
    assert requests == [10, 10, 3]
    received = subscriber(tenant)
    assert sorted(b["eventId"] for b in received) == sorted(f"so{n}-v2" for n in range(23))
    assert {b["event"] for b in received} == {"supplier_order.awaiting_acceptance"}


class _Refusing:
    """SNS that refuses one entry of the first request and the whole second request."""

    def __init__(self) -> None:
        self.calls = 0

    def publish_batch(
        self, TopicArn: str, PublishBatchRequestEntries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 2:
            raise ClientError({"Error": {"Code": "Throttled", "Message": "slow down"}}, "PublishBatch")
        ids = [e["Id"] for e in PublishBatchRequestEntries]
        return {"Successful": [{"Id": i, "MessageId": i} for i in ids if i != ids[1]],
                "Failed": [{"Id": ids[1], "Code": "InternalError", "SenderFault": False}]}  # fmt: skip


def test_refused_events_are_reported_by_their_record():
    events = _events("t", 15)
    refused = publish_all(_Refusing(), "arn:aws:sns:us-east-1:1:topic", events)
    ordered = list(events)
    assert set(refused) == {ordered[1], *ordered[10:]}
    assert refused[ordered[1]].startswith("InternalError")
    assert "Throttled" in refused[ordered[12]]


def _stream_record(sequence: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    image = TypeSerializer().serialize
    return {"eventID": uuid.uuid4().hex, "eventName": "MODIFY", "eventSource": "aws:dynamodb",
            "dynamodb": {"SequenceNumber": sequence, "StreamViewType": "NEW_AND_OLD_IMAGES",
                         "Keys": {"PK": {"S": "x"}, "SK": {"S": "y"}},
                         "OldImage": image(old)["M"], "NewImage": image(new)["M"]}}  # fmt: skip


def test_the_function_reports_a_refused_event_and_publishes_the_rest(stack, subscriber, tenant):
    class RefuseSecond:
        def __init__(self, sns: Any) -> None:
            self.sns = sns

        def publish_batch(
            self, TopicArn: str, PublishBatchRequestEntries: list[dict[str, Any]]
        ) -> dict[str, Any]:
            first, second, *rest = PublishBatchRequestEntries
            answer = self.sns.publish_batch(TopicArn=TopicArn, PublishBatchRequestEntries=[first, *rest])
            return {**answer, "Failed": [{"Id": second["Id"], "Code": "InternalError", "SenderFault": False}]}

    def refusing(real_client: Any) -> Any:
        return lambda s: RefuseSecond(real_client(s)) if s == "sns" else real_client(s)

    records = [
        _stream_record("2001", _order(tenant, 1, "PENDING", 1), _order(tenant, 1, "AWAITING_ACCEPTANCE", 2)),
        _stream_record("2002", _order(tenant, 2, "PENDING", 1), _order(tenant, 2, "AWAITING_ACCEPTANCE", 2)),
        _stream_record("2003", _order(tenant, 3, "AWAITING_ACCEPTANCE", 2), _order(tenant, 3, "ACCEPTED", 3)),
        # not an event: the same status
        _stream_record("2004", _order(tenant, 4, "ACCEPTED", 3), _order(tenant, 4, "ACCEPTED", 4)),
    ]
    function = stack.runtime.by_logical_id("SupplierOrderEventsFunction").name
    with stack.runtime.patched("SupplierOrderEventsFunction", "marketplace.adapters.aws", "client", refusing):
        result = stack.runtime.invoke_or_raise(function, {"Records": records})
    assert result == {"batchItemFailures": [{"itemIdentifier": "2002"}]}
    assert sorted(b["eventId"] for b in subscriber(tenant)) == ["so1-v2", "so3-v3"]

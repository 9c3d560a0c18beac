"""The stream poller honours the event source mapping's settings (unit level: a scripted stream
and a scripted function; the end-to-end tests run it against moto's real Streams API)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from marketplace_local.lambdas import InvocationResult
from marketplace_local.streams import MappingSettings, StreamFeed, StreamPoller

STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/1"
FAILURES = "arn:aws:sqs:us-east-1:123456789012:failures"


class FakeStreams:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.position = 0

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-1"}]}}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        return {"ShardIterator": "it-0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        batch = self.records[self.position : self.position + Limit]
        self.position += len(batch)
        return {"Records": batch, "NextShardIterator": f"it-{self.position}"}


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    # The poller addresses its on-failure queue by ARN, on the client's endpoint (no GetQueueUrl).
    meta = type("Meta", (), {"endpoint_url": "http://sqs"})()

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:
        self.sent.append(json.loads(MessageBody))


def record(seq: int, entity: str = "SUPPLIER", event: str = "INSERT", age: float = 0) -> dict[str, Any]:
    return {
        "eventID": f"e{seq}", "eventName": event, "eventVersion": "1.1", "awsRegion": "us-east-1",
        "dynamodb": {"SequenceNumber": str(1000 + seq), "ApproximateCreationDateTime": time.time() - age,
                     "NewImage": {"entity": {"S": entity}, "id": {"S": str(seq)}}},
    }  # fmt: skip


class ScriptedFunction:
    """Answers each invocation with the next scripted behaviour; records every batch it saw."""

    def __init__(self, behaviour: Any) -> None:
        self.behaviour = behaviour
        self.batches: list[list[str]] = []

    def __call__(self, name: str, event: dict[str, Any]) -> InvocationResult:
        ids = [r["dynamodb"]["NewImage"]["id"]["S"] for r in event["Records"]]
        self.batches.append(ids)
        outcome = self.behaviour(ids, event["Records"])
        if outcome == "error":
            return InvocationResult(json.dumps({"errorType": "Boom", "errorMessage": "x"}), True, 1)
        return InvocationResult(json.dumps(outcome), False, 1)


def settings(**overrides: Any) -> MappingSettings:
    props = {
        "FunctionName": "router", "EventSourceArn": STREAM, "BatchSize": 10, "StartingPosition": "TRIM_HORIZON",
        "MaximumRetryAttempts": 2, "BisectBatchOnFunctionError": False,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "DestinationConfig": {"OnFailure": {"Destination": FAILURES}},
        "FilterCriteria": {"Filters": [{"Pattern": '{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"entity": {"S": ["SUPPLIER"]}}}}'}]},
        **overrides,
    }  # fmt: skip
    return MappingSettings.from_properties(props)


def poll(
    mapping: MappingSettings, records: list[dict[str, Any]], function: ScriptedFunction
) -> tuple[StreamPoller, FakeSqs]:
    sqs = FakeSqs()
    poller = StreamPoller(mapping, FakeStreams(records), sqs, function, "us-east-1", retry_backoff=0)
    for _ in range(20):
        if not poller.run_once():
            break
    return poller, sqs


def test_records_that_match_no_filter_never_reach_the_function():
    function = ScriptedFunction(lambda ids, records: None)
    records = [record(1), record(2, entity="AUDIT"), record(3, event="MODIFY"), record(4)]
    poller, _ = poll(settings(), records, function)
    assert function.batches == [["1", "4"]]
    assert poller.stats.records_filtered_out == 2


def test_batches_are_at_most_batch_size_and_in_stream_order():
    function = ScriptedFunction(lambda ids, records: None)
    _poller, _ = poll(settings(BatchSize=3), [record(i) for i in range(7)], function)
    assert function.batches == [["0", "1", "2"], ["3", "4", "5"], ["6"]]


def test_a_partial_failure_is_retried_from_the_first_failed_record():
    seen: list[list[str]] = []

    def behaviour(ids: list[str], records: list[dict[str, Any]]) -> Any:
        seen.append(ids)
        if len(seen) == 1:  # the first delivery reports record 2 failed
            return {"batchItemFailures": [{"itemIdentifier": records[2]["dynamodb"]["SequenceNumber"]}]}
        return {"batchItemFailures": []}

    function = ScriptedFunction(behaviour)
    poll(settings(), [record(i) for i in range(5)], function)
    assert function.batches == [["0", "1", "2", "3", "4"], ["2", "3", "4"]]


def test_an_unreadable_item_identifier_fails_the_whole_batch():
    attempts = []

    def behaviour(ids: list[str], records: list[dict[str, Any]]) -> Any:
        attempts.append(ids)
        return {"batchItemFailures": [{"itemIdentifier": "nonsense"}]} if len(attempts) == 1 else None

    function = ScriptedFunction(behaviour)
    poll(settings(), [record(i) for i in range(3)], function)
    assert function.batches == [["0", "1", "2"], ["0", "1", "2"]]


def test_a_function_error_bisects_the_batch_until_the_poison_record_is_alone():
    function = ScriptedFunction(lambda ids, records: "error" if "5" in ids else None)
    poller, sqs = poll(
        settings(BisectBatchOnFunctionError=True, MaximumRetryAttempts=1),
        [record(i) for i in range(8)],
        function,
    )
    delivered = {i for batch in function.batches for i in batch}
    assert delivered == {str(i) for i in range(8)}
    assert [b for b in function.batches if b == ["5"]] == [["5"], ["5"]]  # first try and one retry
    assert poller.stats.bisections >= 3
    assert len(sqs.sent) == 1
    info = sqs.sent[0]["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == ("1005", "1005", 1)
    assert sqs.sent[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"


def test_after_the_last_retry_the_batch_goes_to_the_on_failure_destination_and_the_shard_moves_on():
    function = ScriptedFunction(lambda ids, records: "error" if "1" in ids else None)
    _poller, sqs = poll(
        settings(BatchSize=2, MaximumRetryAttempts=2), [record(i) for i in range(4)], function
    )
    assert function.batches == [["0", "1"], ["0", "1"], ["0", "1"], ["2", "3"]]
    assert len(sqs.sent) == 1 and sqs.sent[0]["DDBStreamBatchInfo"]["batchSize"] == 2
    assert sqs.sent[0]["requestContext"]["approximateInvokeCount"] == 3


def test_records_older_than_the_maximum_age_are_not_delivered():
    function = ScriptedFunction(lambda ids, records: None)
    _poller, sqs = poll(settings(MaximumRecordAgeInSeconds=60), [record(1, age=120), record(2)], function)
    assert function.batches == [["2"]]
    assert sqs.sent[0]["requestContext"]["condition"] == "RecordAgeExceeded"


def test_the_batching_window_holds_a_small_batch_back():
    function = ScriptedFunction(lambda ids, records: None)
    sqs = FakeSqs()
    poller = StreamPoller(
        settings(MaximumBatchingWindowInSeconds=30), FakeStreams([record(1)]), sqs, function, "us-east-1"
    )
    poller.run_once()
    poller.run_once()
    assert function.batches == []  # within the window, below BatchSize


def test_settings_the_poller_does_not_honour_are_refused():
    with pytest.raises(ValueError, match="TumblingWindowInSeconds"):
        settings(TumblingWindowInSeconds=30)


def test_binary_attributes_reach_the_function_as_base64_and_do_not_stop_the_filter():
    """botocore reads B and BS values as bytes; Lambda's JSON event carries them as base64 text.
    Left as bytes, the filter's JSON encoding failed and the batch was retried forever."""
    seen: list[dict] = []
    function = ScriptedFunction(lambda ids, records: seen.extend(records))
    binary = record(1)
    binary["dynamodb"]["NewImage"] |= {"b": {"B": b"\x00\xff"}, "bs": {"BS": [b"x", b"y"]}}
    poller, _ = poll(settings(), [binary, record(2)], function)
    assert function.batches == [["1", "2"]]
    assert poller.stats.records_delivered == 2
    image = seen[0]["dynamodb"]["NewImage"]
    assert (image["b"], image["bs"]) == ({"B": "AP8="}, {"BS": ["eA==", "eQ=="]})
    json.dumps(seen)  # what Lambda would be sent


def test_mappings_on_one_stream_share_one_reader_and_each_sees_every_record_in_order():
    """Two mappings, two filters, one feed: the stream is read once per record, each mapping gets
    every record it matches, in stream order, whichever of them reads first."""

    class CountingStreams(FakeStreams):
        served = 0

        def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
            response = super().get_records(ShardIterator, Limit)
            self.served += len(response["Records"])
            return response

    streams = CountingStreams(
        [record(1), record(2, entity="PRODUCT"), record(3), record(4, entity="PRODUCT")]
    )
    feed = StreamFeed(streams, STREAM, "TRIM_HORIZON")
    products_only = '{"dynamodb": {"NewImage": {"entity": {"S": ["PRODUCT"]}}}}'
    suppliers_fn, products_fn = ScriptedFunction(lambda ids, r: None), ScriptedFunction(lambda ids, r: None)
    suppliers = StreamPoller(
        settings(), streams, FakeSqs(), suppliers_fn, "us-east-1", retry_backoff=0, feed=feed
    )
    products = StreamPoller(
        settings(FilterCriteria={"Filters": [{"Pattern": products_only}]}), streams, FakeSqs(), products_fn,
        "us-east-1", retry_backoff=0, feed=feed,
    )  # fmt: skip
    assert products.run_once()  # reads the stream for both
    streams.records.append(record(5))
    for _ in range(5):
        suppliers.run_once()
        products.run_once()
    assert suppliers_fn.batches == [["1", "3"], ["5"]] or suppliers_fn.batches == [["1", "3", "5"]]
    assert [i for b in products_fn.batches for i in b] == ["2", "4"]
    assert streams.served == 5

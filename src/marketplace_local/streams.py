"""Delivers the table's DynamoDB stream to its Lambda consumer as Lambda's event source mapping does.

moto's own event source mapping ignores FilterCriteria and BatchSize and never retries (tried on moto 5.x),
and no maintained library emulates a stream mapping, so this poller is hand-written. It reads the
real DynamoDB Streams API of the moto server and honours the mapping's settings from template.yaml:

* ``FilterCriteria``: records that match no filter are dropped before the invocation (the pattern
  syntax is EventBridge's; moto's EventPattern does the matching);
* ``BatchSize`` and ``MaximumBatchingWindowInSeconds``;
* ``FunctionResponseTypes: [ReportBatchItemFailures]``: the batch is retried from the first record
  the function reported as failed; an unreadable response fails the whole batch;
* ``BisectBatchOnFunctionError``: a failed batch is split in two and each half is retried
  (splitting does not count against the retry budget, as on AWS);
* ``MaximumRetryAttempts`` and ``MaximumRecordAgeInSeconds``; then the batch's description goes to
  the ``DestinationConfig.OnFailure`` queue in Lambda's on-failure record format, and the shard
  moves on.

Records of one shard are delivered in order, one batch at a time.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.events.models import EventPattern

from marketplace_local.lambdas import InvocationResult

log = logging.getLogger("marketplace_local.streams")


@dataclass
class MappingSettings:
    """The subset of AWS::Lambda::EventSourceMapping that a DynamoDB stream mapping uses."""

    function_name: str
    stream_arn: str
    batch_size: int = 100
    batching_window: float = 0.0
    starting_position: str = "TRIM_HORIZON"
    bisect_on_error: bool = False
    max_retry_attempts: int = -1  # -1: until the record expires, as on AWS
    max_record_age: int = -1
    report_batch_item_failures: bool = False
    on_failure_arn: str | None = None
    filters: list[EventPattern] = field(default_factory=list)

    @classmethod
    def from_properties(cls, props: dict[str, Any]) -> MappingSettings:
        known = {
            "FunctionName", "EventSourceArn", "BatchSize", "MaximumBatchingWindowInSeconds",
            "StartingPosition", "BisectBatchOnFunctionError", "MaximumRetryAttempts",
            "MaximumRecordAgeInSeconds", "FunctionResponseTypes", "DestinationConfig", "FilterCriteria",
            "Enabled", "ParallelizationFactor",
        }  # fmt: skip
        unknown = set(props) - known
        if unknown:
            raise ValueError(
                f"event source mapping settings the local stack does not honour: {sorted(unknown)}"
            )
        filters = [
            EventPattern.load(f["Pattern"]) for f in props.get("FilterCriteria", {}).get("Filters", [])
        ]
        return cls(
            function_name=props["FunctionName"],
            stream_arn=props["EventSourceArn"],
            batch_size=int(props.get("BatchSize", 100)),
            batching_window=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            starting_position=props.get("StartingPosition", "TRIM_HORIZON"),
            bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
            max_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
            max_record_age=int(props.get("MaximumRecordAgeInSeconds", -1)),
            report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            on_failure_arn=props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"),
            filters=filters,
        )

    def accepts(self, record: dict[str, Any]) -> bool:
        return not self.filters or any(f.matches_event(record) for f in self.filters)


@dataclass
class PollerStats:
    batches: int = 0
    records_delivered: int = 0
    records_filtered_out: int = 0
    retries: int = 0
    bisections: int = 0
    sent_to_on_failure: int = 0


Invoke = Callable[[str, Any], InvocationResult]


def idle_interval(base: float, idle_polls: int, ceiling: float = 0.25) -> float:
    """Poll fast while there is work; back off to ``ceiling`` while a source stays empty, so that an
    idle stack does not spend the machine's CPU asking empty streams and queues."""
    return min(ceiling, base * (1 + idle_polls // 10))


class Poller:
    """A source polled by one thread: fast while it has work, backing off while it is empty.
    ``run_once`` drives it synchronously (tests, benchmarks)."""

    kind = "poller"

    def __init__(self, function_name: str, poll_interval: float) -> None:
        self.function_name = function_name
        self.poll_interval = poll_interval
        self.stats = PollerStats()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> bool:
        """Do what is due; True if there was anything to read or deliver."""
        raise NotImplementedError

    def holds_work(self) -> bool:
        """Work read but not yet delivered (a batch waiting for its window)."""
        return False

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"{self.kind}-{self.function_name}", daemon=True
        )
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """True once the poller has read everything in its source and holds nothing back."""
        self._idle.clear()
        return self._idle.wait(timeout)

    def _loop(self) -> None:
        idle_polls = 0
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # keep polling: a transient read error must not stop delivery
                log.exception("%s for %s failed; retrying", self.kind, self.function_name)
                busy = False
            if busy:
                idle_polls = 0
                continue
            if not self.holds_work():
                self._idle.set()
            idle_polls += 1
            self._stop.wait(idle_interval(self.poll_interval, idle_polls))


def _json_safe(value: Any) -> Any:
    """``value`` with every bytes value as its base64 text, as JSON carries DynamoDB binaries."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


class StreamFeed:
    """Reads one stream for every mapping on it. Each mapping's poller subscribes an inbox; whichever
    poller reads first fetches what the stream has since the last read, once, and puts it in every
    inbox, in stream order. On AWS each mapping reads the stream itself; here three mappings on the
    table's stream each paid for every GetRecords (moto's serialisation and botocore's parsing of
    every record): the profile showed a fifth of the stack's CPU there (bench/throughput.py).
    Mappings on one stream share a feed only if they start at the same position."""

    def __init__(self, streams_client: Any, stream_arn: str, starting_position: str) -> None:
        self.streams = streams_client
        self.stream_arn = stream_arn
        self.starting_position = starting_position
        self._lock = threading.Lock()
        self._inboxes: list[list[dict[str, Any]]] = []
        self._iterators: dict[str, str | None] = {}
        self._shards: list[dict[str, Any]] | None = None
        self._shards_read_at = 0.0

    def first_shard(self) -> str:
        """The shard a record came from, as far as the on-failure record says: the table's stream
        has one shard locally."""
        return next(iter(self._iterators), "")

    def subscribe(self) -> list[dict[str, Any]]:
        inbox: list[dict[str, Any]] = []
        with self._lock:
            self._inboxes.append(inbox)
        return inbox

    def read(self, inbox: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What the stream has for this inbox: what other readers fetched for it since its last
        call, and what the stream has now. Records are the Streams API's, shared between inboxes:
        readers must not change them."""
        with self._lock:
            if not inbox:
                for records in self._fetch():
                    for each in self._inboxes:
                        each.extend(records)
            taken = inbox[:]
            inbox.clear()
        return taken

    def _fetch(self) -> list[list[dict[str, Any]]]:
        # Shards are listed again every few seconds, not on every poll: they change rarely.
        if self._shards is None or time.monotonic() - self._shards_read_at > 5:
            stream = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
            self._shards, self._shards_read_at = stream["Shards"], time.monotonic()
        fetched = []
        for shard in self._shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=self.starting_position
                )["ShardIterator"]
            iterator = self._iterators[shard_id]
            if iterator is None:
                continue
            response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard_id] = response.get("NextShardIterator")
            if response["Records"]:
                fetched.append(response["Records"])
        return fetched


def queue_url(sqs_client: Any, queue_arn: str) -> str:
    """The queue's URL on the client's endpoint, from its ARN (``.../<account>/<name>``, as SQS
    spells it). Lambda addresses a mapping's queue and on-failure destination by ARN: asking
    GetQueueUrl would need a grant the function's role does not have (D50)."""
    _, _, _, _, account, name = queue_arn.split(":", 5)
    return f"{sqs_client.meta.endpoint_url}/{account}/{name}"


class StreamPoller(Poller):
    """One thread per mapping; ``run_once`` drives it synchronously (tests, benchmarks)."""

    def __init__(
        self,
        settings: MappingSettings,
        streams_client: Any,
        sqs_client: Any,
        invoke: Invoke,
        region: str,
        poll_interval: float = 0.05,
        retry_backoff: float = 0.05,
        feed: StreamFeed | None = None,
    ) -> None:
        super().__init__(settings.function_name, poll_interval)
        self.settings = settings
        self.streams = streams_client
        self.sqs = sqs_client
        self.invoke = invoke
        self.region = region
        self.retry_backoff = retry_backoff
        self.feed = feed or StreamFeed(streams_client, settings.stream_arn, settings.starting_position)
        self._inbox = self.feed.subscribe()
        self._buffer: list[dict[str, Any]] = []
        self._buffer_since: float | None = None
        self._on_failure_url: str | None = None

    kind = "stream-poller"

    def holds_work(self) -> bool:
        return bool(self._buffer)

    # ------------------------------------------------------------------ polling
    def run_once(self) -> bool:
        """Read what the stream has, deliver what is due; True if it read or delivered anything."""
        read = self._read()
        due = self._buffer and (
            len(self._buffer) >= self.settings.batch_size
            or self._buffer_since is None
            or time.monotonic() - self._buffer_since >= self.settings.batching_window
        )
        if due:
            batch = self._buffer[: self.settings.batch_size]
            self._buffer = self._buffer[self.settings.batch_size :]
            self._buffer_since = time.monotonic() if self._buffer else None
            self._deliver(batch)
        return bool(read or due)

    def _read(self) -> int:
        records = self.feed.read(self._inbox)
        converted = [self._as_lambda_record(r) for r in records]
        accepted = [r for r in converted if self.settings.accepts(r)]
        if accepted and not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.extend(accepted)
        self.stats.records_filtered_out += len(records) - len(accepted)
        return len(records)

    def _as_lambda_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """The Streams API record in the shape Lambda passes it (dates as epoch seconds)."""
        # Binary attributes (B, BS) come from botocore as bytes; Lambda's event is JSON, where they
        # are base64 strings. Left as bytes they also broke the filter match (it JSON-encodes the
        # record), and the poller retried that batch forever.
        dynamodb = {k: _json_safe(v) for k, v in record["dynamodb"].items()}
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = created.timestamp()
        return {
            "eventID": record["eventID"],
            "eventName": record["eventName"],
            "eventVersion": record.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": record.get("awsRegion", self.region),
            "dynamodb": dynamodb,
            "eventSourceARN": self.settings.stream_arn,
        }

    # ------------------------------------------------------------------ delivery
    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        attempts = 0
        while batch:
            expired = self._expired(batch)
            if expired:
                self._send_to_on_failure(expired, "RecordAgeExceeded", attempts)
                batch = [r for r in batch if r not in expired]
                if not batch:
                    return
            self.stats.batches += 1
            result = self.invoke(self.settings.function_name, {"Records": batch})
            attempts += 1
            failed_from = self._first_failure(batch, result)
            if failed_from is None:
                self.stats.records_delivered += len(batch)
                return
            self.stats.records_delivered += failed_from
            batch = batch[failed_from:]
            if result.errored and self.settings.bisect_on_error and len(batch) > 1:
                self.stats.bisections += 1
                middle = len(batch) // 2
                self._deliver(batch[:middle])
                self._deliver(batch[middle:])
                return
            if 0 <= self.settings.max_retry_attempts < attempts:
                self._send_to_on_failure(batch, "RetryAttemptsExhausted", attempts)
                return
            self.stats.retries += 1
            self._stop.wait(min(self.retry_backoff * 2 ** (attempts - 1), 2.0))
            if self._stop.is_set():
                return

    def _first_failure(self, batch: list[dict[str, Any]], result: InvocationResult) -> int | None:
        """Index from which the batch must be retried, or None when it all succeeded."""
        if result.errored:
            return 0
        if not self.settings.report_batch_item_failures:
            return None
        try:
            response = json.loads(result.payload)
        except ValueError:
            return 0
        if response is None:
            return None
        if not isinstance(response, dict) or not isinstance(response.get("batchItemFailures", []), list):
            return 0  # an unreadable response fails the whole batch, as on AWS
        failures = response.get("batchItemFailures") or []
        if not failures:
            return None
        index = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(batch)}
        positions = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if identifier not in index:
                return 0  # Lambda treats an unknown or empty identifier as a failure of the whole batch
            positions.append(index[identifier])
        return min(positions)

    def _expired(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.settings.max_record_age < 0:
            return []
        limit = time.time() - self.settings.max_record_age
        return [r for r in batch if r["dynamodb"].get("ApproximateCreationDateTime", limit) < limit]

    def _send_to_on_failure(self, batch: list[dict[str, Any]], condition: str, attempts: int) -> None:
        self.stats.sent_to_on_failure += len(batch)
        if not self.settings.on_failure_arn:
            log.error("dropping %d stream records (%s): the mapping has no on-failure destination",
                      len(batch), condition)  # fmt: skip
            return
        if self._on_failure_url is None:
            self._on_failure_url = queue_url(self.sqs, self.settings.on_failure_arn)
        first, last = batch[0], batch[-1]
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.settings.function_name,
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": now,
            "DDBStreamBatchInfo": {
                "shardId": self._shard_of(first),
                "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first),
                "approximateArrivalOfLastRecord": _iso(last),
                "batchSize": len(batch),
                "streamArn": self.settings.stream_arn,
            },
        }
        self.sqs.send_message(QueueUrl=self._on_failure_url, MessageBody=json.dumps(body))

    def _shard_of(self, record: dict[str, Any]) -> str:
        return self.feed.first_shard()


def _iso(record: dict[str, Any]) -> str:
    created = record["dynamodb"].get("ApproximateCreationDateTime")
    if created is None:
        return ""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class QueueMappingSettings:
    """An SQS event source mapping: batch size, partial batch failures."""

    function_name: str
    queue_arn: str
    batch_size: int = 10
    report_batch_item_failures: bool = False

    @classmethod
    def from_properties(cls, props: dict[str, Any]) -> QueueMappingSettings:
        known = {"FunctionName", "EventSourceArn", "BatchSize", "FunctionResponseTypes", "Enabled",
                 "MaximumBatchingWindowInSeconds", "ScalingConfig"}  # fmt: skip
        unknown = set(props) - known
        if unknown:
            raise ValueError(f"SQS mapping settings the local stack does not honour: {sorted(unknown)}")
        return cls(
            function_name=props["FunctionName"],
            queue_arn=props["EventSourceArn"],
            batch_size=min(int(props.get("BatchSize", 10)), 10),
            report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
        )


class QueuePoller(Poller):
    """Delivers an SQS queue to its function as Lambda's SQS event source does: receive a batch,
    invoke, delete what succeeded (all of it, or all but the reported failures); a message that
    failed becomes visible again after its visibility timeout and moto's redrive policy moves it
    to the dead-letter queue after maxReceiveCount receives, as SQS does."""

    def __init__(self, settings: QueueMappingSettings, sqs_client: Any, invoke: Invoke, region: str,
                 poll_interval: float = 0.05) -> None:  # fmt: skip
        super().__init__(settings.function_name, poll_interval)
        self.settings = settings
        self.sqs = sqs_client
        self.invoke = invoke
        self.region = region
        self.url = queue_url(sqs_client, settings.queue_arn)

    kind = "queue-poller"

    def run_once(self) -> bool:
        messages = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=self.settings.batch_size, WaitTimeSeconds=0,
            AttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])  # fmt: skip
        if not messages:
            return False
        records = [self._as_lambda_record(m) for m in messages]
        self.stats.batches += 1
        result = self.invoke(self.settings.function_name, {"Records": records})
        failed: set[str] = set()
        if result.errored:
            failed = {m["MessageId"] for m in messages}
        elif self.settings.report_batch_item_failures:
            try:
                response = json.loads(result.payload) or {}
                failed = {f["itemIdentifier"] for f in response.get("batchItemFailures") or []}
            except (ValueError, AttributeError, KeyError, TypeError):
                failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start_at in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start_at : start_at + 10])
                ],
            )
        self.stats.records_delivered += len(done)
        self.stats.retries += len(failed)
        return True

    def _as_lambda_record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = {k: str(v) for k, v in message.get("Attributes", {}).items()}
        message_attributes = {
            name: {"stringValue": value.get("StringValue"), "binaryValue": value.get("BinaryValue"),
                   "stringListValues": [], "binaryListValues": [], "dataType": value.get("DataType")}
            for name, value in message.get("MessageAttributes", {}).items()
        }  # fmt: skip
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": attributes,
            "messageAttributes": message_attributes,
            "md5OfBody": message.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.settings.queue_arn,
            "awsRegion": self.region,
        }

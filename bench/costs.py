"""What one business transaction consumes, counted from real runs in the local stack, and what that
costs on AWS at the list prices in ``bench/prices.json``.

A :class:`Meter` is installed in this process before the local stack starts. It wraps

* every botocore API call (``BaseClient._make_api_call``): the handlers' clients, the Step Functions
  engine's service integrations (DynamoDB ``updateItem``, SNS ``publish``, SQS ``sendMessage``) and
  the stream/queue pollers that stand in for Lambda's event source mappings. Calls made by this
  bench itself (its own thread) are not counted;
* every in-process Lambda invocation (``LambdaRuntime.invoke``): invocations per function, their
  wall time (what Lambda bills) and their CPU time (``time.thread_time`` of the invoking thread: the
  handler's own work and its SDK's, not moto's server-side work, which runs in other threads);
* the handlers' log output (Lambda ships stdout to CloudWatch Logs), in bytes.

DynamoDB capacity is computed per request from item sizes by AWS's published rules (see
:func:`item_size`, :func:`write_units`, :func:`read_units`): the item before and after each write is
read straight from moto's backend (never through botocore, so never counted). Index writes follow
AWS's rule: an update that changes an index key is a delete and a put in that index; one that
touches an indexed item without changing its key is one write; a sparse index the item is in
neither before nor after costs nothing.

Why hand-written: moto's ``ReturnConsumedCapacity`` answers fixed numbers, not the size rules.
"""

from __future__ import annotations

import base64
import json
import math
import statistics
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

PRICES_PATH = Path(__file__).with_name("prices.json")
QUOTAS_PATH = Path(__file__).with_name("quotas.json")
POLL_HEADER = "X-Bench-Poll"

# ------------------------------------------------------------------ AWS size and capacity rules


def _name_size(name: str) -> int:
    return len(name.encode("utf-8"))


def number_size(text: str) -> int:
    """AWS: 1 byte per two significant digits, plus 1 byte (leading and trailing zeros trimmed)."""
    digits = text.lstrip("+-").replace(".", "").split("e")[0].split("E")[0].strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def value_size(value: dict[str, Any]) -> int:
    """Size in bytes of one AttributeValue in the wire format (``{"S": "abc"}``)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "N":
        return number_size(str(inner))
    if kind == "B":
        return len(inner) if isinstance(inner, bytes | bytearray) else len(base64.b64decode(inner))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in inner)
    if kind == "NS":
        return sum(number_size(str(n)) for n in inner)
    if kind == "BS":
        return sum(len(b) if isinstance(b, bytes | bytearray) else len(base64.b64decode(b)) for b in inner)
    if kind == "L":
        # A list or map: 3 bytes, plus 1 byte per element on top of each element's size.
        return 3 + sum(value_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(_name_size(k) + value_size(v) + 1 for k, v in inner.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    """Bytes of an item as DynamoDB bills it: each attribute's name plus its value."""
    if not item:
        return 0
    return sum(_name_size(name) + value_size(value) for name, value in item.items())


def write_units(size_bytes: int, transactional: bool = False) -> int:
    """WRU of one item write: 1 per started KB (minimum 1); transactions cost double."""
    units = max(1, math.ceil(size_bytes / 1024))
    return units * (2 if transactional else 1)


def read_units(size_bytes: int, consistent: bool = False, transactional: bool = False) -> float:
    """RRU of a read of ``size_bytes`` (one item, or a query's items summed): 1 per started 4 KB
    strongly consistent, half of that eventually consistent, double that in a transaction."""
    blocks = max(1, math.ceil(size_bytes / 4096))
    if transactional:
        return 2.0 * blocks
    return float(blocks) if consistent else blocks / 2


def index_writes(
    indexes: list[tuple[Any, ...]], before: dict | None, after: dict | None
) -> list[tuple[str, int, str]]:
    """(index, WRU, index partition key) of the index writes one base-table write causes. An index
    is ``(name, key attributes)`` (projection ALL: the index item is the whole item) or ``(name, key
    attributes, projected attributes)`` (KEYS_ONLY or INCLUDE: the index item is only those, the
    table's keys among them)."""

    def pk(item: dict[str, Any], attrs: list[str]) -> str:
        return str(next(iter(item[attrs[0]].values())))

    writes = []
    for name, key_attrs, *projection in indexes:
        projected = projection[0] if projection and projection[0] is not None else None

        def shown(item: dict[str, Any], projected: list[str] | None = projected) -> dict[str, Any]:
            return item if projected is None else {k: v for k, v in item.items() if k in projected}

        def sized(item: dict[str, Any]) -> int:
            return item_size(shown(item))

        old_in = bool(before) and all(a in before for a in key_attrs)
        new_in = bool(after) and all(a in after for a in key_attrs)
        if old_in and new_in:
            if any(before[a] != after[a] for a in key_attrs):
                writes += [(name, write_units(sized(before)), pk(before, key_attrs)),
                           (name, write_units(sized(after)), pk(after, key_attrs))]  # fmt: skip
            elif shown(before) != shown(after):  # a change the index item does not hold writes nothing there
                writes.append((name, write_units(sized(after)), pk(after, key_attrs)))
        elif old_in:
            writes.append((name, write_units(sized(before)), pk(before, key_attrs)))
        elif new_in:
            writes.append((name, write_units(sized(after)), pk(after, key_attrs)))
    return writes


# ------------------------------------------------------------------ the meter

_WRITE_OPS = {"PutItem", "UpdateItem", "DeleteItem"}
SNS_MESSAGES = "sns:(messages published)"  # not a request: what the subscribers receive


class Meter:
    """Counts requests, capacity units, Lambda time and log bytes, by who caused them."""

    def __init__(self, account_id: str, region: str) -> None:
        self.account_id = account_id
        self.region = region
        self.lock = threading.Lock()
        self.local = threading.local()
        self.excluded_threads: set[int] = {threading.get_ident()}
        self.reset()
        self._undo: list[Callable[[], None]] = []

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.requests: Counter[str] = Counter()  # "service:Operation"
            self.wru: Counter[str] = Counter()  # "table" / "table/index"
            self.rru: Counter[str] = Counter()
            self.wru_by_key: Counter[str] = Counter()  # "table|partition key" and "table/index|key"
            self.wru_by_function: Counter[str] = Counter()  # by the function that made the request
            self.rru_by_function: Counter[str] = Counter()
            self.stream_reads = 0
            self.invocations: Counter[str] = Counter()
            self.calls: Counter[str] = Counter()  # AWS requests by the function that made them
            self.esm_invocations = 0  # invocations by a stream or queue mapping: each starts a trace
            self.wall_ms: defaultdict[str, float] = defaultdict(float)
            self.cpu_ms: defaultdict[str, float] = defaultdict(float)
            self.log_bytes = 0
            self.trace: list[tuple[str, str, str, dict[str, float], dict[str, float]]] = []  # for --explain

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.requests),
                "wru": dict(self.wru),
                "rru": dict(self.rru),
                "wru_by_key": dict(self.wru_by_key),
                "wru_by_function": dict(self.wru_by_function),
                "rru_by_function": dict(self.rru_by_function),
                "stream_reads": self.stream_reads,
                "invocations": dict(self.invocations),
                "calls": dict(self.calls),
                "wall_ms": dict(self.wall_ms),
                "cpu_ms": dict(self.cpu_ms),
                "log_bytes": self.log_bytes,
                "esm_invocations": self.esm_invocations,
            }

    # ---------------------------------------------------------------- who is calling
    def _source(self) -> str | None:
        """``lambda``, ``esm`` (a poller standing in for an event source mapping), ``states`` (the
        Step Functions engine), or None for this bench's own calls."""
        if getattr(self.local, "poll", False):
            return None
        if getattr(self.local, "function", None):
            return "lambda"
        if threading.get_ident() in self.excluded_threads:
            return None
        name = threading.current_thread().name
        if name.startswith(("stream-poller", "queue-poller")):
            return "esm"
        return "states"

    # ---------------------------------------------------------------- installation
    def install(self) -> None:
        import botocore.client

        from marketplace_local.lambdas import LambdaRuntime

        meter = self
        make_api_call = botocore.client.BaseClient._make_api_call

        def counted_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            source = meter._source()
            if source is None:
                return make_api_call(client, operation, params)
            service = client.meta.service_model.service_name
            before = meter._before(service, operation, params)
            try:
                response = make_api_call(client, operation, params)
            except botocore.exceptions.ClientError as error:
                meter._count(source, service, operation, params, before, None, error)
                raise
            meter._count(source, service, operation, params, before, response, None)
            return response

        invoke = LambdaRuntime.invoke

        def metered_invoke(runtime: Any, function_name: str, event: Any) -> Any:
            name = function_name.rsplit(":", 1)[-1]
            spec = runtime.functions.get(name)
            logical = spec.logical_id if spec else name
            # The bench's own status polls (GET through the API) are marked with a header.
            headers = (event.get("headers") or {}) if isinstance(event, dict) else {}
            poll = any(k.lower() == POLL_HEADER.lower() for k in headers)
            previous = getattr(meter.local, "function", None), getattr(meter.local, "poll", False)
            meter.local.function, meter.local.poll = logical, poll
            cpu0 = time.thread_time()
            try:
                result = invoke(runtime, function_name, event)
            finally:
                meter.local.function, meter.local.poll = previous
            cpu = (time.thread_time() - cpu0) * 1000
            if not poll:
                by_mapping = threading.current_thread().name.startswith(("stream-poller", "queue-poller"))
                with meter.lock:
                    meter.esm_invocations += by_mapping
                    meter.invocations[logical] += 1
                    meter.wall_ms[logical] += result.duration_ms
                    meter.cpu_ms[logical] += cpu
            return result

        import botocore.exceptions

        botocore.client.BaseClient._make_api_call = counted_call  # type: ignore[method-assign]
        LambdaRuntime.invoke = metered_invoke  # type: ignore[method-assign]
        real_stdout = sys.stdout
        sys.stdout = _CountingStream(real_stdout, self)  # type: ignore[assignment]

        def undo() -> None:
            botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
            LambdaRuntime.invoke = invoke  # type: ignore[method-assign]
            sys.stdout = real_stdout

        self._undo.append(undo)
        self._follow_pools()

    def _follow_pools(self) -> None:
        """A handler's own thread pool (the sweeper fires due orders on one, the webhook function
        delivers on one) works for that handler: its AWS calls are counted as the handler's, not as
        the Step Functions engine's (the thread's name would say)."""
        from concurrent.futures import ThreadPoolExecutor

        meter, submit = self, ThreadPoolExecutor.submit

        def attributed(pool: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            function = getattr(meter.local, "function", None)
            if function is None:
                return submit(pool, fn, *args, **kwargs)

            def run(*a: Any, **k: Any) -> Any:
                meter.local.function = function
                try:
                    return fn(*a, **k)
                finally:
                    meter.local.function = None

            return submit(pool, run, *args, **kwargs)

        ThreadPoolExecutor.submit = attributed  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(ThreadPoolExecutor, "submit", submit))

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    # ---------------------------------------------------------------- DynamoDB items from moto
    def _table(self, name: str) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[self.account_id][self.region].get_table(name)

    def _key_of(self, table: Any, item_or_key: dict[str, Any]) -> dict[str, Any]:
        names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
        return {n: _wire(item_or_key[n]) for n in names}

    def _read(self, table_name: str, key: dict[str, Any]) -> dict[str, Any] | None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        table = self._table(table_name)
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        item = table.get_item(hash_value, range_value)
        return json.loads(json.dumps(item.to_json()["Attributes"])) if item else None

    def _indexes(self, table_name: str) -> list[tuple[str, list[str], list[str] | None]]:
        table = self._table(table_name)
        found = []
        for index in table.global_indexes:
            keys = [k["AttributeName"] for k in index.schema]
            projection = index.projection or {}
            projected = None
            if projection.get("ProjectionType", "ALL") != "ALL":
                table_keys = [a for a in (table.hash_key_attr, table.range_key_attr) if a]
                projected = [*table_keys, *keys, *projection.get("NonKeyAttributes", [])]
            found.append((index.name, keys, projected))
        return found

    def _targets(self, operation: str, params: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
        """(kind, table, key) of every item a write touches."""
        if operation in _WRITE_OPS:
            table = self._table(params["TableName"])
            source = params["Item"] if operation == "PutItem" else params["Key"]
            return [(operation, params["TableName"], self._key_of(table, source))]
        if operation == "TransactWriteItems":
            found = []
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                table = self._table(body["TableName"])
                source = body["Item"] if kind == "Put" else body["Key"]
                found.append((kind, body["TableName"], self._key_of(table, source)))
            return found
        if operation == "BatchWriteItem":
            found = []
            for table_name, requests in params["RequestItems"].items():
                table = self._table(table_name)
                for request in requests:
                    ((kind, body),) = request.items()
                    source = body["Item"] if kind == "PutRequest" else body["Key"]
                    found.append((kind, table_name, self._key_of(table, source)))
            return found
        return []

    def _before(self, service: str, operation: str, params: dict[str, Any]) -> list[Any] | None:
        if service != "dynamodb":
            return None
        try:
            return [
                (kind, table, key, self._read(table, key))
                for kind, table, key in self._targets(operation, params)
            ]
        except Exception:
            return None

    # ---------------------------------------------------------------- counting
    def _count(self, source: str, service: str, operation: str, params: dict[str, Any],
               before: list[Any] | None, response: Any, error: Exception | None) -> None:  # fmt: skip
        if service == "lambda":
            return  # counted as invocations, by the runtime
        if service == "dynamodbstreams":
            with self.lock:
                self.stream_reads += 1  # GetRecords by Lambda's stream trigger: free on AWS
            return
        # Lambda's SQS poller: a receive that finds nothing is a fixed cost per queue (long polling),
        # not per message; receives that return messages, and their deletes, are.
        if (service, source, operation) == ("sqs", "esm", "ReceiveMessage") and not (response or {}).get(
            "Messages"
        ):
            return
        key = f"{service}:{operation}"
        with self.lock:
            self.requests[key] += 1
            self.calls[getattr(self.local, "function", None) or source] += 1
            if (service, operation) == ("sns", "PublishBatch"):
                # Billed and throttled per request; each message is still delivered to the subscribers.
                self.requests[SNS_MESSAGES] += len(params.get("PublishBatchRequestEntries", []))
            elif (service, operation) == ("sns", "Publish"):
                self.requests[SNS_MESSAGES] += 1
        if service == "dynamodb":
            self._capacity(operation, params, before, response, error)

    def _capacity(self, operation: str, params: dict[str, Any], before: list[Any] | None,
                  response: Any, error: Exception | None) -> None:  # fmt: skip
        wru: Counter[str] = Counter()
        rru: Counter[str] = Counter()
        by_key: Counter[str] = Counter()
        transactional = operation == "TransactWriteItems"
        for kind, table, key, old in before or []:
            partition = f"{table}|{next(iter(key[self._table(table).hash_key_attr].values()))}"
            if kind == "ConditionCheck":
                units = write_units(item_size(old), transactional=True)
            elif error is not None:
                # A failed condition still costs the write's units, on the item as it is.
                units = write_units(item_size(old), transactional)
            else:
                new = self._read(table, key)
                units = write_units(max(item_size(old), item_size(new)), transactional)
                for index, index_units, index_pk in index_writes(self._indexes(table), old, new):
                    wru[f"{table}/{index}"] += index_units
                    by_key[f"{table}/{index}|{index_pk}"] += index_units
            wru[table] += units
            by_key[partition] += units
        if operation == "GetItem":
            item = (response or {}).get("Item")
            rru[params["TableName"]] += read_units(item_size(item), bool(params.get("ConsistentRead")))
        elif operation in ("Query", "Scan"):
            items = (response or {}).get("Items") or []
            name = params["TableName"] + (f"/{params['IndexName']}" if params.get("IndexName") else "")
            rru[name] += read_units(sum(item_size(i) for i in items), bool(params.get("ConsistentRead")))
        elif operation == "BatchGetItem":
            for table, items in ((response or {}).get("Responses") or {}).items():
                for item in items:
                    rru[table] += read_units(item_size(item))
        elif operation == "TransactGetItems":
            for entry, got in zip(
                params["TransactItems"], (response or {}).get("Responses") or [], strict=False
            ):
                rru[entry["Get"]["TableName"]] += read_units(item_size(got.get("Item")), transactional=True)
        with self.lock:
            self.wru.update(wru)
            self.rru.update(rru)
            self.wru_by_key.update(by_key)
            who = getattr(self.local, "function", None) or "states"
            self.wru_by_function[who] += sum(wru.values())
            self.rru_by_function[who] += sum(rru.values())
            self.trace.append((getattr(self.local, "function", None) or "states", operation,
                               _describe(operation, params), dict(wru), dict(rru)))  # fmt: skip


def _describe(operation: str, params: dict[str, Any]) -> str:
    """Which items a request touched (their sort keys), for reading a trace."""

    def sk(key: dict[str, Any]) -> str:
        return str(next(iter((key.get("SK") or key.get("id") or {"S": "?"}).values())))[:40]

    if operation == "TransactWriteItems":
        return ", ".join(f"{next(iter(e))}:{sk(next(iter(e.values())).get('Key') or next(iter(e.values())).get('Item'))}"
                         for e in params["TransactItems"])  # fmt: skip
    if "Key" in params or "Item" in params:
        return sk(params.get("Key") or params.get("Item"))
    return params.get("IndexName") or ""


def _wire(value: Any) -> dict[str, Any]:
    """An AttributeValue in the wire format, from either format botocore may be handed."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in {"S", "N", "B", "BOOL", "NULL", "M",
                                                                             "L", "SS", "NS", "BS"}:  # fmt: skip
        return value
    from boto3.dynamodb.types import TypeSerializer

    return TypeSerializer().serialize(Decimal(str(value)) if isinstance(value, float) else value)


class _CountingStream:
    """stdout that counts what handlers write while they run (Lambda ships it to CloudWatch Logs)
    and passes everything through."""

    def __init__(self, real: Any, meter: Meter) -> None:
        self._real = real
        self._meter = meter

    def write(self, text: str) -> int:
        if getattr(self._meter.local, "function", None):
            if getattr(self._meter.local, "poll", False):
                return len(text)
            with self._meter.lock:
                self._meter.log_bytes += len(text.encode("utf-8", "replace"))
            return len(text)  # a handler's log line: counted, not echoed into the bench's table
        return self._real.write(text)

    def flush(self) -> None:
        self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


# ------------------------------------------------------------------ driving real transactions


def delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in after.items():
        if isinstance(value, dict):
            out[key] = {k: v - before[key].get(k, 0) for k, v in value.items() if v - before[key].get(k, 0)}
        else:
            out[key] = value - before[key]
    return out


class Driver:
    """Drives business transactions through the local stack's HTTP API, as users would, and
    measures each one between two quiet points."""

    def __init__(self, stack: Any, meter: Meter) -> None:
        self.stack = stack
        self.meter = meter
        self.tenant = f"bench-{uuid.uuid4().hex[:8]}"
        self.webhook_hits = 0
        self._receiver = None

    # ------------------------------------------------------------ HTTP
    def call(self, method: str, path: str, role: str, body: Any = None, supplier_id: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
        import urllib.error
        import urllib.request

        tenant = None if role == "operator" else self.tenant  # the operator belongs to no tenant
        token = self.stack.issuer.mint(tenant, role, supplier_id=supplier_id)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - our own loopback API
            self.stack.api_url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", **(headers or {})},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def tenant_go_live(self) -> float:
        """A new standard tenant (POST /platform/tenants, D47): the seconds it took to go live, from
        the request to the end of its smoke test, as the answer says."""
        tenant_id = f"bench-{uuid.uuid4().hex[:10]}"
        body = {
            "tenantId": tenant_id,
            "name": "Bench",
            "tier": "standard",
            "admins": [f"a@{tenant_id}.example"],
        }
        status, answer = self.call("POST", "/platform/tenants", "operator", body)
        assert status == 201 and answer["status"] == "LIVE", answer
        return float(answer["goLiveSeconds"])

    def get(self, path: str, role: str, supplier_id: str | None = None) -> Any:
        """A status poll of the bench's own: marked so that the meter does not count it."""
        return self.call("GET", path, role, supplier_id=supplier_id, headers={POLL_HEADER: "1"})[1]

    def executions(self) -> dict[str, str]:
        sfn = self.stack.client("stepfunctions")
        found = {}
        for logical_id in self.machines():
            arn = self.stack.physical_id(logical_id)
            for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
                found.update({e["executionArn"]: logical_id for e in page["executions"]})
        return found

    def describe(self, arn: str, machine: str) -> dict[str, Any]:
        sfn = self.stack.client("stepfunctions")
        described = sfn.describe_execution(executionArn=arn)
        events = sfn.get_execution_history(executionArn=arn)["events"]
        machine_type = self.stack.template.resources[machine]["Properties"].get(
            "StateMachineType", "STANDARD"
        )
        stop = described.get("stopDate") or described["startDate"]
        return {
            "machine": machine,
            "type": machine_type,
            "status": described["status"],
            "transitions": sum(1 for e in events if e["type"].endswith("StateEntered")),
            "duration_ms": (stop - described["startDate"]).total_seconds() * 1000,
        }

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            time.sleep(0.02)
        raise TimeoutError(f"bench: timed out waiting for {what}")

    def quiet(self, timeout: float = 60.0) -> None:
        """Until nothing moves: every poller idle and the counters unchanged across two idle checks
        (a status written by a workflow reaches the stream, then the router, then SNS and SQS)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.stack.wait_for_streams(timeout=max(1.0, deadline - time.monotonic()))
            now = self.meter.snapshot()
            now.pop("stream_reads")  # the stream pollers read all the time, work or not
            if now == last and self._executions_done():  # executions listed by the bench: not counted
                return
            last = now
            time.sleep(0.15)
        raise TimeoutError("bench: the stack never went quiet")

    def _executions_done(self) -> bool:
        sfn = self.stack.client("stepfunctions")
        for logical_id in self.machines():
            running = sfn.list_executions(
                stateMachineArn=self.stack.physical_id(logical_id), statusFilter="RUNNING"
            )
            if running["executions"]:
                return False
        return True

    def machines(self) -> list[str]:
        return [
            lid
            for lid, r in self.stack.template.resources.items()
            if r["Type"] == "AWS::StepFunctions::StateMachine"
        ]

    # ------------------------------------------------------------ setup (not counted)
    def supplier_body(self) -> dict[str, Any]:
        return {
            "legalName": "Acme Ltd", "taxId": f"{uuid.uuid4().int % 10**9:09d}", "country": "US",
            "contactEmail": "ops@acme.com", "website": "https://www.acme.com", "phone": "+1 5551234567",
            "address": {"line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"},
        }  # fmt: skip

    def _ein(self, body: dict[str, Any]) -> dict[str, Any]:
        digits = body["taxId"]
        return {**body, "taxId": f"{digits[:2]}-{digits[2:]}"}

    def supplier_status(self, supplier_id: str) -> str:
        return self.get(f"/suppliers/{supplier_id}", "retailer").get("status", "")

    def setup_seller(self) -> tuple[str, str]:
        """An approved supplier with an active listing of plenty of stock and a webhook endpoint."""
        import http.server

        status, created = self.call("POST", "/suppliers", "retailer", self._ein(self.supplier_body()))
        assert status in (200, 201, 202), created
        supplier_id = created["supplierId"]
        self.wait(lambda: self.supplier_status(supplier_id) == "APPROVED", "seller approved")
        listing = {"sku": "BENCH-1", "title": "Desk lamp", "category": "home",
                   "price": {"amount": 49.9, "currency": "EUR"}, "quantity": 1_000_000,
                   "images": ["https://cdn.example.com/lamp.webp"], "attributes": {"material": "steel"}}  # fmt: skip
        status, body = self.call(
            "POST", f"/suppliers/{supplier_id}/products", "supplier", listing, supplier_id
        )
        assert status == 202, body
        self.wait(lambda: self.get(f"/suppliers/{supplier_id}/products/BENCH-1", "supplier", supplier_id)
                  .get("status") == "ACTIVE", "listing active")  # fmt: skip
        driver = self

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                driver.webhook_hits += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=self._receiver.serve_forever, daemon=True).start()
        self.stack.allow_webhook_port(self._receiver.server_address[1])
        url = f"http://127.0.0.1:{self._receiver.server_address[1]}/hooks"
        status, body = self.call("PUT", f"/suppliers/{supplier_id}/webhook", "supplier",
                                 {"url": url, "secret": f"bench-secret-{uuid.uuid4().hex}"}, supplier_id)  # fmt: skip
        assert status == 200, body
        return supplier_id, "BENCH-1"

    def close(self) -> None:
        if self._receiver is not None:
            self._receiver.shutdown()

    # ------------------------------------------------------------ transactions (counted)
    def onboarding(self) -> str:
        """POST /suppliers of a valid supplier, through the workflow to APPROVED and its welcome."""
        status, created = self.call("POST", "/suppliers", "retailer", self._ein(self.supplier_body()))
        assert status in (200, 201, 202), created
        supplier_id = created["supplierId"]
        self.wait(lambda: self.supplier_status(supplier_id) == "APPROVED", "supplier approved")
        return supplier_id

    def order(self, supplier_id: str, sku: str) -> str:
        """POST /orders with one line, intake to AWAITING_ACCEPTANCE, the supplier accepts; the
        notifications (SNS and the signed webhook) of every status change delivered."""
        body = {"customerOrderId": f"c-{uuid.uuid4().hex[:10]}",
                "lines": [{"supplierId": supplier_id, "sku": sku, "quantity": 1,
                           "unitPrice": {"amount": 49.9, "currency": "EUR"}}],
                "shipTo": {"name": "Ada", "line1": "1 Analytical St", "city": "London", "postalCode": "N1 9GU",
                           "country": "GB"}}  # fmt: skip
        status, placed = self.call(
            "POST", "/orders", "retailer", body, headers={"Idempotency-Key": body["customerOrderId"]}
        )
        assert status == 202, placed
        part = placed["supplierOrders"][0]["supplierOrderId"]

        def awaiting() -> bool:
            got = self.get(f"/supplier-orders/{part}", "supplier", supplier_id)
            return got.get("status") == "AWAITING_ACCEPTANCE"

        self.wait(awaiting, "supplier order awaiting acceptance")
        status, accepted = self.call(
            "POST", f"/supplier-orders/{part}/accept", "supplier", supplier_id=supplier_id
        )
        assert status == 200 and accepted["status"] == "ACCEPTED", accepted
        return part

    def lifecycle(self, supplier_id: str, sku: str) -> str:
        """A supplier order over its whole life: placed and accepted as :meth:`order`, shipped in full
        by the supplier (``POST /supplier-orders/{id}/shipments``), delivered automatically and then
        closed by the deadline sweeper at the times the order's own deadlines say (the scheduled
        run's ``time`` is the sweeper's now, as on AWS when the days have passed); every status
        change's notification and webhook delivered."""
        part = self.order(supplier_id, sku)
        shipment = {"carrier": "DHL", "trackingNumber": f"JD{uuid.uuid4().hex[:10]}",
                    "trackingUrl": "https://track.example/JD1", "lines": [{"sku": sku, "quantity": 1}]}  # fmt: skip
        status, body = self.call(
            "POST", f"/supplier-orders/{part}/shipments", "supplier", shipment, supplier_id
        )
        assert status == 201, body
        for expected, timer in (("SHIPPED", "auto_deliver"), ("DELIVERED", "close")):
            order = self.get(f"/supplier-orders/{part}", "supplier", supplier_id)
            assert (order["status"], order["due"]) == (expected, timer), order
            self.quiet()  # the transition's event delivered before the sweeper's run
            # The first scheduled run after the deadline (runs are a minute apart).
            fired = self.sweep(datetime.fromisoformat(order["deadline"]) + timedelta(seconds=60))
            assert fired == {timer: [part]}, fired  # this order's transition only
        final = self.get(f"/supplier-orders/{part}", "supplier", supplier_id)
        assert final["status"] == "CLOSED", final
        return part

    def settlement(self, supplier_id: str) -> int:
        """Settle every week the supplier's ledger entries fall in, as the hourly start does a day
        after each week has closed (its run's ``time`` is the start's now); the statements written."""
        from marketplace import keys, statements
        from marketplace.repository import Table

        table = Table(self.stack.physical_id("MarketplaceTable"), self.stack.client("dynamodb"))
        pk = keys.ledger_pk(self.tenant, supplier_id)
        entries = table.query(pk, sk_prefix=keys.LEDGER_SK_PREFIX, limit=1000, project=("at",)).items
        weeks = sorted(
            {statements.period_of(datetime.fromisoformat(e["at"]), statements.WEEKLY).end for e in entries}
        )
        name = self.stack.physical_id("StartSettlementsFunction")
        for end in weeks:
            result = self.stack.runtime.invoke(name, {"time": (end + timedelta(days=1, hours=1)).isoformat()})
            assert not result.errored, result.payload
            self.quiet()
        written = table.query(pk, sk_prefix=keys.STATEMENT_SK_PREFIX, limit=1000).items
        assert len(written) == len(weeks), (weeks, written)
        return len(written)

    def sweep(self, as_of: datetime | None = None) -> dict[str, list[str]]:
        """One run of the deadline sweeper at ``as_of`` (now by default: over nothing due, its
        per-minute cost); the transitions it fired."""
        name = self.stack.physical_id("ExpireSupplierOrdersFunction")
        from marketplace import clock

        result = self.stack.runtime.invoke(name, {"time": clock.iso(as_of or clock.now())})
        assert not result.errored, result.payload
        return result.json()["fired"]


def measure(runs: int = 5) -> dict[str, Any]:
    """Start a local stack with a meter; run ``runs`` onboardings, supplier orders and sweeper runs
    one at a time; return each transaction's counts per run."""
    import logging
    import tempfile

    from marketplace_local.stack import ACCOUNT_ID, LocalStack, StackConfig, free_port

    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as state_dir:
        config = StackConfig(api_port=free_port(), moto_port=free_port(), run_schedules=False,
                             state_dir=Path(state_dir), parameter_overrides={"Stage": "bench"})  # fmt: skip
        meter = Meter(ACCOUNT_ID, config.region)
        meter.install()
        stack = LocalStack(config)
        try:
            stack.start()
            driver = Driver(stack, meter)
            seller, sku = driver.setup_seller()
            samples: dict[str, list[dict[str, Any]]] = {
                "onboarding": [],
                "order": [],
                "lifecycle": [],
                "sweep": [],
            }
            for _ in range(runs):
                samples["onboarding"].append(_one(driver, meter, driver.onboarding))
                samples["order"].append(_one(driver, meter, lambda: driver.order(seller, sku)))
                # Its sweeper runs are days ahead of the order above, whose deadlines they never reach
                # (each run looks back 48 hours); the sweep over nothing due is its fixed part.
                samples["lifecycle"].append(_one(driver, meter, lambda: driver.lifecycle(seller, sku)))
                samples["sweep"].append(_one(driver, meter, driver.sweep))
            # The first tenant warms the platform routes; the figures are the next ones.
            go_live = [driver.tenant_go_live() for _ in range(runs + 1)][1:]
            # The settlement of every lifecycle's sale (each of its orders delivered, then closed):
            # one statement per week they fall in, the whole of it measured once.
            statements_written: list[int] = []
            samples["settlement"] = [
                _one(driver, meter, lambda: statements_written.append(driver.settlement(seller)))
            ]
            webhooks = driver.webhook_hits
            memory = {spec.logical_id: spec.memory for spec in stack.runtime.functions.values()}
            system_log_level = {spec.logical_id: spec.log_config.get("SystemLogLevel", "INFO")
                                for spec in stack.runtime.functions.values()}  # fmt: skip
            driver.close()
        finally:
            stack.stop()
            meter.uninstall()
    return {
        "samples": samples,
        "tenant_go_live_s": go_live,
        "webhook_requests_received": webhooks,
        "memory_mb": memory,
        "system_log_level": system_log_level,
        "names": {"tenant": driver.tenant, "supplier": seller, "sku": sku},
        "settlement": {"statements": statements_written[0], "orders_settled": runs},
        "api_stage_rate_limit_per_s": _stage_rate_limit(stack.template),
    }


def _stage_rate_limit(template: Any) -> float | None:
    """The API stage's ThrottlingRateLimit from template.yaml (our own setting, not an AWS quota)."""
    limits = [float(setting["ThrottlingRateLimit"])
              for resource in template.resources.values() if resource["Type"] == "AWS::ApiGateway::Stage"
              for setting in resource["Properties"].get("MethodSettings") or [] if "ThrottlingRateLimit" in setting]  # fmt: skip
    return min(limits) if limits else None


def _one(driver: Driver, meter: Meter, action: Callable[[], Any]) -> dict[str, Any]:
    """One transaction's counts: the delta between two quiet points, and the executions it started
    (states entered from each execution's history; duration from its start and stop)."""
    driver.quiet()
    known = driver.executions()
    before = meter.snapshot()
    started = time.perf_counter()
    action()
    driver.quiet()
    elapsed = time.perf_counter() - started
    counted = delta(meter.snapshot(), before)
    counted["elapsed_s"] = elapsed
    counted["executions"] = [driver.describe(arn, machine) for arn, machine in driver.executions().items()
                             if arn not in known]  # fmt: skip
    return counted


AUDIT_FUNCTION = "AuditFunction"
LEDGER_PARTITION = "#LEDGER#"  # keys.ledger_pk: a supplier's ledger entries (and its statements)


def ledger_wru(sample: dict[str, Any]) -> float:
    """The write units of the supplier ledgers' entries in ``sample`` (D42): the writes to a ledger
    partition (the ledger has no index; its statements are written by the settlement, not here)."""
    return sum(u for k, u in sample.get("wru_by_key", {}).items() if LEDGER_PARTITION in k.partition("|")[2])


def ledger_dynamodb_usd(sample: dict[str, Any], prices: dict[str, Any]) -> float:
    """What the ledger's entries in ``sample`` cost to write (on-demand units)."""
    return ledger_wru(sample) * prices["prices"]["dynamodb_on_demand_per_wru"]["usd"]


def audit_dynamodb_usd(sample: dict[str, Any], prices: dict[str, Any]) -> float:
    """What the audit trail's own DynamoDB requests in ``sample`` cost (on-demand units)."""
    p = prices["prices"]
    wru = sample.get("wru_by_function", {}).get(AUDIT_FUNCTION, 0)
    rru = sample.get("rru_by_function", {}).get(AUDIT_FUNCTION, 0)
    return wru * p["dynamodb_on_demand_per_wru"]["usd"] + rru * p["dynamodb_on_demand_per_rru"]["usd"]


# ------------------------------------------------------------------ prices


def load_prices(path: Path = PRICES_PATH) -> dict[str, Any]:
    return json.loads(path.read_text())


def cost_of(
    sample: dict[str, Any],
    prices: dict[str, Any],
    memory_mb: dict[str, int],
    system_log_level: dict[str, str] | None = None,
) -> dict[str, float]:
    """USD of one transaction, by service, from its counts. Lambda's START/END/REPORT lines are
    counted for the invocations of functions whose LoggingConfig SystemLogLevel sends them (INFO,
    Lambda's default, or DEBUG), not at WARN."""
    p = {name: entry["usd"] for name, entry in prices["prices"].items()}
    a = {name: entry["value"] for name, entry in prices["assumptions"].items()}
    requests = sample["requests"]

    def ops(service: str) -> int:
        return sum(n for key, n in requests.items() if key.startswith(f"{service}:"))

    invocations = sample["invocations"]
    gb_seconds = sum(ms / 1000 * memory_mb.get(fn, 128) / 1024 for fn, ms in sample["wall_ms"].items())
    api_requests = invocations.get("ApiFunction", 0)
    standard = [e for e in sample["executions"] if e["type"] == "STANDARD"]
    express = [e for e in sample["executions"] if e["type"] == "EXPRESS"]
    express_gb_s = sum(
        math.ceil(e["duration_ms"] / 100) * 0.1 * a["express_memory_mb"] / 1024 for e in express
    )
    # A Publish or PublishBatch request is billed per 64 KB (our events are ~1 KB, a batch of 10 under
    # 64 KB); the HTTPS deliveries are billed per message.
    publishes = requests.get("sns:Publish", 0) + requests.get("sns:PublishBatch", 0)
    messages = requests.get(SNS_MESSAGES, publishes)
    levels = system_log_level or {}
    platform_lines = sum(n for fn, n in invocations.items() if levels.get(fn, "INFO") != "WARN")
    log_gb = (sample["log_bytes"] + a["lambda_platform_log_bytes_per_invocation"] * platform_lines) / 1e9
    traces = api_requests + sample["esm_invocations"] + len(express) + len(standard)
    return {
        "API Gateway": api_requests * p["apigateway_rest_per_request"],
        "Lambda requests": sum(invocations.values()) * p["lambda_per_request"],
        "Lambda duration": gb_seconds * p["lambda_arm64_per_gb_second"],
        "Step Functions Standard": sum(e["transitions"] for e in standard)
        * p["stepfunctions_standard_per_transition"],
        "Step Functions Express": len(express) * p["stepfunctions_express_per_request"]
        + express_gb_s * p["stepfunctions_express_per_gb_second"],
        "DynamoDB writes": sum(sample["wru"].values()) * p["dynamodb_on_demand_per_wru"],
        "DynamoDB reads": sum(sample["rru"].values()) * p["dynamodb_on_demand_per_rru"],
        "DynamoDB Streams": 0.0,  # read by Lambda triggers only: free
        "SQS": ops("sqs") * p["sqs_per_request"],
        "SNS": publishes * p["sns_per_publish"]
        + messages * a["sns_http_deliveries_per_publish"] * p["sns_per_http_delivery"],
        "KMS": (ops("kms") + a["kms_requests_per_transaction"]) * p["kms_per_request"],
        "CloudWatch Logs": log_gb * p["cloudwatch_logs_per_gb_ingested"],
        "S3": requests.get("s3:PutObject", 0) * p["s3_put_per_request"]
        + (ops("s3") - requests.get("s3:PutObject", 0)) * p["s3_get_per_request"],
        "X-Ray": traces * a["xray_sampled_fraction"] * p["xray_per_trace_recorded"],
    }


def stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def counts_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-transaction counts over the runs: median, min, max of each."""

    def of(pick: Callable[[dict[str, Any]], float]) -> dict[str, float]:
        return stats([float(pick(s)) for s in samples])

    keys = sorted({k for s in samples for k in s["requests"]})
    functions = sorted({k for s in samples for k in s["invocations"]})
    tables = sorted({k for s in samples for k in [*s["wru"], *s["rru"]]})
    return {
        "state_transitions_standard": of(
            lambda s: sum(e["transitions"] for e in s["executions"] if e["type"] == "STANDARD")
        ),
        "state_transitions_express": of(
            lambda s: sum(e["transitions"] for e in s["executions"] if e["type"] == "EXPRESS")
        ),
        "executions": of(lambda s: len(s["executions"])),
        "express_duration_ms": of(
            lambda s: sum(e["duration_ms"] for e in s["executions"] if e["type"] == "EXPRESS")
        ),
        "lambda_invocations": of(lambda s: sum(s["invocations"].values())),
        "lambda_invocations_by_function": {
            f: of(lambda s, f=f: s["invocations"].get(f, 0)) for f in functions
        },
        "lambda_cpu_ms": of(lambda s: sum(s["cpu_ms"].values())),
        "lambda_cpu_ms_by_function": {f: of(lambda s, f=f: s["cpu_ms"].get(f, 0)) for f in functions},
        "lambda_wall_ms": of(lambda s: sum(s["wall_ms"].values())),
        "dynamodb_wru": of(lambda s: sum(s["wru"].values())),
        "dynamodb_rru": of(lambda s: sum(s["rru"].values())),
        "dynamodb_wru_by_table_index": {t: of(lambda s, t=t: s["wru"].get(t, 0)) for t in tables},
        "dynamodb_rru_by_table_index": {t: of(lambda s, t=t: s["rru"].get(t, 0)) for t in tables},
        # The audit trail's own requests (its entries, their links and GSI4, D48); the entry is
        # written by AuditFunction from the stream, so what it costs is what that function requests.
        "dynamodb_wru_audit": of(lambda s: s.get("wru_by_function", {}).get(AUDIT_FUNCTION, 0)),
        "dynamodb_rru_audit": of(lambda s: s.get("rru_by_function", {}).get(AUDIT_FUNCTION, 0)),
        "dynamodb_wru_ledger": of(ledger_wru),
        "requests": {k: of(lambda s, k=k: s["requests"].get(k, 0)) for k in keys},
        "stream_get_records": of(lambda s: s["stream_reads"]),
        "log_bytes": of(lambda s: s["log_bytes"]),
        "elapsed_s": of(lambda s: s["elapsed_s"]),
    }


def report(measured: dict[str, Any], prices: dict[str, Any] | None = None) -> dict[str, Any]:
    """Counts and cost per million of onboardings and of supplier orders (the sweeper amortised)."""
    prices = prices or load_prices()
    memory = measured["memory_mb"]
    levels = measured.get("system_log_level")
    samples = measured["samples"]
    rate = prices["assumptions"]["sweeper_reference_orders_per_second"]["value"]
    sweep_costs = [cost_of(s, prices, memory, levels) for s in samples["sweep"]]
    sweep_share = statistics.median(sum(c.values()) for c in sweep_costs) / (rate * 60)
    out: dict[str, Any] = {"prices_as_of": prices["as_of"], "region": prices["region"]}
    # A lifecycle's two sweeper runs (auto-deliver, close) less the fixed part of a run (its index
    # queries over nothing due, the empty sweep measured beside it): what firing its transitions costs.
    # The fixed part is the sweeper's per-minute cost, amortised over every order as for the others.
    lifecycles = [without(s, samples["sweep"], SWEEPS_PER_LIFECYCLE) for s in samples["lifecycle"]]
    for name, runs in (
        ("onboarding", samples["onboarding"]),
        ("order", samples["order"]),
        ("lifecycle", lifecycles),
    ):
        per_run = [cost_of(s, prices, memory, levels) for s in runs]
        if name != "onboarding":
            for c in per_run:
                c["Expiry sweeper (amortised)"] = sweep_share
        services = list(per_run[0])
        # Lambda billed at CPU time instead of the local wall time: the lower bound.
        at_cpu = [cost_of({**s, "wall_ms": s["cpu_ms"]}, prices, memory, levels) for s in runs]
        for c in at_cpu:
            c["Expiry sweeper (amortised)"] = sweep_share if name != "onboarding" else 0.0
        out[name] = {
            "counts": counts_summary(runs),
            "usd_per_million": stats([sum(c.values()) * 1e6 for c in per_run]),
            "usd_per_million_lambda_at_cpu_time": stats([sum(c.values()) * 1e6 for c in at_cpu]),
            "usd_per_million_by_service": {k: stats([c[k] * 1e6 for c in per_run]) for k in services},
            "usd_per_million_audit_dynamodb": stats([audit_dynamodb_usd(s, prices) * 1e6 for s in runs]),
            "usd_per_million_ledger_dynamodb": stats([ledger_dynamodb_usd(s, prices) * 1e6 for s in runs]),
        }
    out["sweep"] = {
        "counts": counts_summary(samples["sweep"]),
        "usd_per_run": stats([sum(c.values()) for c in sweep_costs]),
    }
    out["lifecycle"]["usd_per_million_with_whole_sweeper_runs"] = stats(
        [sum(cost_of(s, prices, memory, levels).values()) * 1e6 for s in samples["lifecycle"]]
    )
    out["lifecycle"]["sweeper_firing"] = sweeper_firing(samples["lifecycle"], samples["sweep"])
    if samples.get("settlement"):
        out["settlement"] = settlement_cost(samples["settlement"][0], measured, prices)
    out["webhook_requests_received"] = measured["webhook_requests_received"]
    keys = hot_keys(samples["order"], measured["names"])
    out["order"]["hot_keys"] = keys
    stage_limit = measured.get("api_stage_rate_limit_per_s")
    out["capacity"] = capacity(out["order"], keys, stage_limit)
    lifecycle_keys = hot_keys(lifecycles, measured["names"])
    out["lifecycle"]["hot_keys"] = lifecycle_keys
    out["lifecycle_capacity"] = capacity(out["lifecycle"], lifecycle_keys, stage_limit)
    out["lifecycle_capacity"]["sweeper"] = out["lifecycle"]["sweeper_firing"]
    return out


def settlement_cost(
    sample: dict[str, Any], measured: dict[str, Any], prices: dict[str, Any]
) -> dict[str, Any]:
    """What settling the bench's delivered orders cost: the whole settlement (the scheduled start, the
    workflow, its steps, the statements' events) per statement and per million orders settled. Measured
    with one supplier whose orders are all its statements hold: a supplier with fewer orders per period
    costs more per order (a statement's cost is mostly fixed), one with more costs less."""
    usd = cost_of(sample, prices, measured["memory_mb"], measured.get("system_log_level"))
    counted = measured["settlement"]
    total = sum(usd.values())
    return {
        "counts": counts_summary([sample]),
        "statements": counted["statements"],
        "orders_settled": counted["orders_settled"],
        "usd_per_statement": total / counted["statements"],
        "usd_per_million_orders": total / counted["orders_settled"] * 1e6,
        "usd_per_million_orders_by_service": {
            k: v / counted["orders_settled"] * 1e6 for k, v in usd.items() if v > 0
        },
    }


SWEEPER = "ExpireSupplierOrdersFunction"
SWEEPS_PER_LIFECYCLE = 2  # auto-deliver, then close


def without(sample: dict[str, Any], fixed: list[dict[str, Any]], times: int) -> dict[str, Any]:
    """``sample`` less ``times`` the median of the ``fixed`` samples, count by count (none below 0)."""

    def median(pick: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(pick(f) for f in fixed) * times

    out: dict[str, Any] = {}
    for key, value in sample.items():
        if key == "executions":
            out[key] = value
        elif isinstance(value, dict):
            less = {k: v - median(lambda f, k=k, key=key: f.get(key, {}).get(k, 0)) for k, v in value.items()}
            out[key] = {k: v for k, v in less.items() if v > 0}
        else:
            out[key] = max(0, value - median(lambda f, key=key: f[key]))
    return out


def sweeper_firing(lifecycles: list[dict[str, Any]], empty: list[dict[str, Any]]) -> dict[str, Any]:
    """How fast one serial sweeper run fires lifecycles: the AWS requests it made for one lifecycle's
    transitions (its runs' requests less their fixed part: exact counts), times the time per request
    of an empty run (~30 requests since D49, wall and CPU time). A difference of the runs' times would drown
    the firing (a few requests) in the noise of the fixed part (hundreds)."""
    fixed = statistics.median(e.get("calls", {}).get(SWEEPER, 0) for e in empty)
    calls = (
        statistics.median(s.get("calls", {}).get(SWEEPER, 0) for s in lifecycles)
        - SWEEPS_PER_LIFECYCLE * fixed
    )

    def per_call(field: str) -> float:
        return statistics.median(
            e[field][SWEEPER] / e["calls"][SWEEPER] / 1000 for e in empty if e.get("calls")
        )

    from marketplace.orders import SWEEP_CONCURRENCY as at_once

    wall, cpu = calls * per_call("wall_ms"), calls * per_call("cpu_ms")
    return {
        "transitions_per_order": SWEEPS_PER_LIFECYCLE,
        "requests_per_order": calls,
        "seconds_per_order_wall": wall,
        "seconds_per_order_cpu": cpu,
        "orders_per_s_wall": 1 / wall if wall > 0 else None,
        "orders_per_s_cpu": 1 / cpu if cpu > 0 else None,
        "concurrency": at_once,
        "orders_per_s_wall_at_once": at_once / wall if wall > 0 else None,
        "note": f"one run a minute fires the due orders {at_once} at once: it keeps up while a minute of "
        "orders takes less than a minute to fire. Serial figures are measured (local wall time per "
        f"request: upper bound of AWS's; CPU time: lower bound); x{at_once} is a model: on AWS a firing "
        "waits on DynamoDB's network round trips, which overlap; here the emulator's CPU binds them",
    }


# ------------------------------------------------------------------ hot keys and capacity


def hot_keys(samples: list[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    """Partition keys that more than one transaction wrote (every run adds to them: the keys a rate
    concentrates on), with WRU per transaction and whom they belong to (tenant, supplier, SKU)."""
    runs: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for sample in samples:
        for key, units in sample["wru_by_key"].items():
            runs[key] += 1
            total[key] += units
    found = []
    # The expiry index is sharded by day and ten ways by order id, across all tenants: which shard
    # an order lands on is chance, so its keys count as one pattern spread over the shards.
    from marketplace.keys import EXPIRY_SHARDS

    expiry = sum(units for key, units in total.items() if key.partition("|")[2].startswith("EXPIRY#"))
    expiry_table = next(
        (key.partition("|")[0] for key in total if key.partition("|")[2].startswith("EXPIRY#")), ""
    )
    if expiry:
        found.append({"table": expiry_table.rsplit("-", 1)[-1], "key": "EXPIRY#<day>#<shard>", "scope": "tenant",
                      "wru_per_transaction": expiry / len(samples) / EXPIRY_SHARDS,
                      "note": f"per shard; {EXPIRY_SHARDS} shards per day shared by every tenant of the stack"})  # fmt: skip
    for key, count in runs.items():
        table, _, value = key.partition("|")
        if count < 2 or value.startswith("EXPIRY#"):
            continue
        pattern = value.replace(names["tenant"], "<t>").replace(names["supplier"], "<supplier>")
        pattern = pattern.replace(names["sku"], "<sku>")
        scope = "sku" if "<sku>" in pattern else "supplier" if "<supplier>" in pattern else "tenant"
        found.append({"table": table.rsplit("-", 1)[-1], "key": pattern, "scope": scope,
                      "wru_per_transaction": total[key] / len(samples)})  # fmt: skip
    return sorted(found, key=lambda k: -k["wru_per_transaction"])


def _busiest_table(counts: dict[str, Any], units: str) -> float:
    """Units per order on the table (with its indexes) that takes the most; the total when the counts
    are not split by table."""
    by_table: Counter[str] = Counter()
    for name, figure in counts.get(f"dynamodb_{units}_by_table_index", {}).items():
        by_table[name.split("/", 1)[0]] += figure["median"]
    return max(by_table.values()) if by_table else counts[f"dynamodb_{units}"]["median"]


def capacity(order: dict[str, Any], keys: list[dict[str, Any]], stage_limit: float | None,
             quotas_path: Path = QUOTAS_PATH) -> dict[str, Any]:  # fmt: skip
    """Supplier orders per second that each default quota allows, from the measured per-order
    counts (medians), in us-east-1 and in the lowest-quota region; the one that binds first."""
    quotas = json.loads(quotas_path.read_text())["quotas"]
    counts = order["counts"]
    requests = counts["requests"]

    def n(key: str) -> float:
        return requests.get(key, {}).get("median", 0.0)

    per_order = {
        "express_start_execution_per_s": n("stepfunctions:StartExecution"),
        "lambda_concurrent_executions": counts["lambda_wall_ms"]["median"] / 1000,
        "apigateway_account_rps": counts["lambda_invocations_by_function"]
        .get("ApiFunction", {})
        .get("median", 0),
        # The on-demand quota is per table: the busiest table binds (its indexes counted with it,
        # the conservative reading; AWS applies it per table and per index).
        "dynamodb_on_demand_table_wru_per_s": _busiest_table(counts, "wru"),
        "dynamodb_on_demand_table_rru_per_s": _busiest_table(counts, "rru"),
        "sns_publish_per_s": n("sns:Publish") + n("sns:PublishBatch"),
    }
    limits: list[dict[str, Any]] = []
    for name, used in per_order.items():
        quota = quotas[name]
        limits.append({"quota": name, "per_order": used, "us-east-1": quota["us-east-1"], "lower": quota["lower"],
                       "orders_per_s_us_east_1": quota["us-east-1"] / used if used else None,
                       "orders_per_s_lower": quota["lower"] / used if used else None})  # fmt: skip
    cpu_s = counts["lambda_cpu_ms"]["median"] / 1000
    limits.append({"quota": "lambda_concurrent_executions (at CPU time only)", "per_order": cpu_s,
                   "us-east-1": 1000, "lower": 1000, "orders_per_s_us_east_1": 1000 / cpu_s if cpu_s else None,
                   "orders_per_s_lower": 1000 / cpu_s if cpu_s else None})  # fmt: skip
    partition = quotas["dynamodb_partition_wru_per_s"]["us-east-1"]
    for key in keys:
        if key["scope"] == "tenant":
            limits.append({"quota": f"dynamodb_partition_wru_per_s {key['table']} {key['key']}",
                           "per_order": key["wru_per_transaction"], "us-east-1": partition, "lower": partition,
                           "orders_per_s_us_east_1": partition / key["wru_per_transaction"],
                           "orders_per_s_lower": partition / key["wru_per_transaction"]})  # fmt: skip
    if stage_limit:
        api = per_order["apigateway_account_rps"]
        limits.append({"quota": "API stage ThrottlingRateLimit (template.yaml, ours)", "per_order": api,
                       "us-east-1": stage_limit, "lower": stage_limit,
                       "orders_per_s_us_east_1": stage_limit / api if api else None,
                       "orders_per_s_lower": stage_limit / api if api else None})  # fmt: skip
    per_key = {
        k["key"]: {"scope": k["scope"], "wru_per_order": k["wru_per_transaction"],
                   "orders_per_s": partition / k["wru_per_transaction"]}
        for k in keys if k["scope"] in ("supplier", "sku")
    }  # fmt: skip
    aws_limits = [item for item in limits if "(" not in item["quota"] or "CPU" in item["quota"]]
    conservative = [item for item in aws_limits if "CPU" not in item["quota"]]

    def binding(region: str) -> dict[str, Any]:
        candidates = [item for item in conservative if item[f"orders_per_s_{region}"]]
        return min(candidates, key=lambda item: item[f"orders_per_s_{region}"])

    east, low = binding("us_east_1"), binding("lower")
    return {
        "limits": limits,
        "per_supplier_and_sku_keys": per_key,
        "us_east_1": {"orders_per_s": east["orders_per_s_us_east_1"], "binding": east["quota"]},
        "lower_quota_region": {"orders_per_s": low["orders_per_s_lower"], "binding": low["quota"]},
        "note": "Lambda concurrency from the local wall time (moto on this machine: an upper bound of AWS's "
        "duration); the CPU-time row is the lower bound. The API stage throttle is our own template setting.",
    }

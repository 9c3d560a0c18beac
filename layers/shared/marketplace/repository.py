"""The single table: typed reads and conditional writes, nothing about any one entity's rules.

Every mutable record carries ``version``; :meth:`Table.update` writes only if the version is still
the one the caller read, so a stale writer (an old execution, a second admin) can never overwrite
a newer change: it gets :class:`~marketplace.errors.Conflict` instead.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from marketplace import config
from marketplace.adapters import aws
from marketplace.errors import Conflict, FieldError, InvalidInput, NotFound, TransientError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

_TRANSIENT = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
}


def to_item(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in record.items() if v is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: plain(_deserializer.deserialize(v)) for k, v in item.items()}


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_dynamo(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """A value as DynamoDB's deserializer gives it (numbers as Decimal, sets), in plain JSON types."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, set):
        return sorted(plain(v) for v in value)
    return value


class TransactionConflict(Conflict):
    """A transaction cancelled because a condition failed; ``reasons`` holds DynamoDB's
    CancellationReasons, one per item in order (with the old item where it was asked for)."""

    def __init__(self, reasons: list[dict[str, Any]]) -> None:
        super().__init__("the record changed since it was read")
        self.reasons = reasons


class TransactionCancelled(TransientError):
    """A transaction cancelled for another reason (a conflict with another transaction, a
    throttle): worth trying again; ``reasons`` as for :class:`TransactionConflict`."""

    def __init__(self, reasons: list[dict[str, Any]]) -> None:
        super().__init__(f"transaction cancelled: {[r.get('Code') for r in reasons]}")
        self.reasons = reasons


def translate(error: ClientError) -> Exception:
    """A DynamoDB error as the domain's error: Conflict for a failed condition, TransientError for
    what a retry may cure, the error itself for anything else (a bug: it surfaces as it is)."""
    code = error.response.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        return Conflict("the record changed since it was read")
    if code == "TransactionCanceledException":
        reasons = list(error.response.get("CancellationReasons") or [])
        if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
            return TransactionConflict(reasons)
        return TransactionCancelled(reasons)
    if code in _TRANSIENT:
        return TransientError(code)
    return error


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_token: str | None


class Table:
    def __init__(self, name: str | None = None, client: Any = None) -> None:
        self.name = name or config.table_name()
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("dynamodb")

    def get(self, pk: str, sk: str, consistent: bool = True) -> dict[str, Any] | None:
        """The item, or None; ``consistent=False`` reads at half the cost what may be up to about a
        second old (DynamoDB's eventual consistency)."""
        try:
            response = self.client.get_item(
                TableName=self.name, Key=to_item({"PK": pk, "SK": sk}), ConsistentRead=consistent
            )
        except ClientError as error:
            raise translate(error) from error
        item = response.get("Item")
        return from_item(item) if item else None

    def get_or_404(
        self, pk: str, sk: str, what: str, *, entity: str | None = None, tenant_id: str | None = None
    ) -> dict[str, Any]:
        """The record, or NotFound naming ``what``: also when it is of another ``entity``, or of
        another tenant than ``tenant_id`` (the key starts with the tenant; this checks it again, so
        that no id a caller writes into a key can reach another tenant's record)."""
        record = self.get(pk, sk)
        if record is None or (entity is not None and record.get("entity") != entity):
            raise NotFound(f"no {what}")
        if tenant_id is not None and record.get("tenantId") != tenant_id:
            raise NotFound(f"no {what}")
        return record

    def batch_get(self, keys: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
        """The records that exist among ``keys`` (consistent reads, 100 keys a request, unprocessed
        keys asked again), in no particular order."""
        wanted = list(dict.fromkeys(keys))
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), 100):
            request = {self.name: {"Keys": [to_item({"PK": pk, "SK": sk}) for pk, sk in wanted[start : start + 100]],
                                   "ConsistentRead": True}}  # fmt: skip
            while request:
                try:
                    response = self.client.batch_get_item(RequestItems=request)
                except ClientError as error:
                    raise translate(error) from error
                found += [from_item(i) for i in response.get("Responses", {}).get(self.name, [])]
                request = response.get("UnprocessedKeys") or {}
        return found

    def last_up_to(self, pk: str, sk_prefix: str, sk: str) -> dict[str, Any] | None:
        """The item of ``pk`` with the greatest sort key from ``sk_prefix`` up to ``sk`` included
        (a consistent read of one item): ``sk`` itself when it exists, else the one before it."""
        try:
            response = self.client.query(
                TableName=self.name, ConsistentRead=True, Limit=1, ScanIndexForward=False,
                KeyConditionExpression="PK = :pk AND SK BETWEEN :low AND :high",
                ExpressionAttributeValues=to_item({":pk": pk, ":low": sk_prefix, ":high": sk}),
            )  # fmt: skip
        except ClientError as error:
            raise translate(error) from error
        items = response.get("Items", [])
        return from_item(items[0]) if items else None

    def partition(self, pk: str, sk_prefix: str) -> Iterator[dict[str, Any]]:
        """Every item of ``pk`` whose sort key starts with ``sk_prefix``, in key order (all pages)."""
        token: str | None = None
        while True:
            page = self.query(pk, sk_prefix=sk_prefix, limit=500, next_token=token)
            yield from page.items
            if not page.next_token:
                return
            token = page.next_token

    def index_range(self, index: str, pk: str, low: str, high: str) -> Iterator[dict[str, Any]]:
        """Every item of index ``index``'s partition ``pk`` whose sort key is from ``low`` to
        ``high``, both included (the index's keys are named ``<index>PK`` and ``<index>SK``)."""
        kwargs: dict[str, Any] = {
            "TableName": self.name, "IndexName": index,
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#pk": f"{index}PK", "#sk": f"{index}SK"},
            "ExpressionAttributeValues": to_item({":pk": pk, ":low": low, ":high": high}),
        }  # fmt: skip
        yield from self._every(self.client.query, kwargs)

    def scan_where(self, where: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item whose attributes equal ``where`` (a whole-table Scan: for offline tools, such
        as the audit's ``verify``, never for a request)."""
        names = {f"#w{i}": name for i, name in enumerate(where)}
        values = to_item({f":w{i}": value for i, value in enumerate(where.values())})
        kwargs: dict[str, Any] = {
            "TableName": self.name, "ConsistentRead": True, "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "FilterExpression": " AND ".join(f"#w{i} = :w{i}" for i in range(len(where))),
        }  # fmt: skip
        yield from self._every(self.client.scan, kwargs)

    @staticmethod
    def _every(call: Any, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item a Query or Scan (``call``) answers, page after page."""
        while True:
            try:
                response = call(**kwargs)
            except ClientError as error:
                raise translate(error) from error
            yield from (from_item(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return
            kwargs = {**kwargs, "ExclusiveStartKey": response["LastEvaluatedKey"]}

    def delete(self, pk: str, sk: str) -> None:
        try:
            self.client.delete_item(TableName=self.name, Key=to_item({"PK": pk, "SK": sk}))
        except ClientError as error:
            raise translate(error) from error

    def transact(self, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems; TransactionConflict when a condition failed (its ``reasons`` say
        which item), TransactionCancelled (transient) when it was cancelled for another reason."""
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            raise translate(error) from error

    def put_new(self, record: Mapping[str, Any]) -> None:
        """Create; Conflict if a record with the same key exists."""
        try:
            self.client.put_item(
                TableName=self.name,
                Item=to_item(record),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as error:
            raise translate(error) from error

    def replace(self, record: Mapping[str, Any]) -> None:
        """Overwrite an item that still exists; Conflict when it was deleted meanwhile (a write
        that must not bring a deleted item back)."""
        try:
            self.client.put_item(
                TableName=self.name, Item=to_item(record), ConditionExpression="attribute_exists(PK)"
            )
        except ClientError as error:
            raise translate(error) from error

    def put_at(self, record: Mapping[str, Any], expected_version: int | None) -> None:
        """Create the item (``expected_version`` None: only while there is none) or overwrite it
        whole, only while its ``version`` is still ``expected_version``; Conflict otherwise."""
        if expected_version is None:
            self.put_new(record)
            return
        try:
            self.client.put_item(
                TableName=self.name, Item=to_item(record), ConditionExpression="#version = :expected",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues=to_item({":expected": expected_version}),
            )  # fmt: skip
        except ClientError as error:
            raise translate(error) from error

    def put(self, record: Mapping[str, Any]) -> None:
        """Unconditional write, for append-only records whose key is unique by construction."""
        try:
            self.client.put_item(TableName=self.name, Item=to_item(record))
        except ClientError as error:
            raise translate(error) from error

    def update(
        self,
        pk: str,
        sk: str,
        expected_version: int,
        changes: Mapping[str, Any],
        remove: Iterable[str] = (),
    ) -> dict[str, Any]:
        """SET ``changes``, REMOVE ``remove`` and bump ``version``, only if ``version`` is still
        ``expected_version``. Returns the record as written."""
        names = {"#version": "version"}
        values: dict[str, Any] = {":expected": expected_version, ":one": 1}
        sets = ["#version = #version + :one"]
        for i, (key, value) in enumerate(changes.items()):
            if key in ("PK", "SK", "version"):
                raise ValueError(f"{key} cannot be changed")
            names[f"#f{i}"] = key
            if value is None:
                continue
            values[f":v{i}"] = value
            sets.append(f"#f{i} = :v{i}")
        removes = [k for k, v in changes.items() if v is None] + list(remove)
        expression = "SET " + ", ".join(sets)
        if removes:
            for j, key in enumerate(removes):
                names[f"#r{j}"] = key
            expression += " REMOVE " + ", ".join(f"#r{j}" for j in range(len(removes)))
        names = {k: v for k, v in names.items() if k in expression}
        return self._update_item(
            pk, sk, expression, "attribute_exists(PK) AND #version = :expected", names, values
        )

    def _update_item(
        self, pk: str, sk: str, expression: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> dict[str, Any]:
        """One conditional UpdateItem of the item at (pk, sk); the item as written."""
        try:
            response = self.client.update_item(
                TableName=self.name,
                Key=to_item({"PK": pk, "SK": sk}),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_item(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            raise translate(error) from error
        return from_item(response["Attributes"])

    def add(
        self,
        pk: str,
        sk: str,
        counter: str,
        delta: int,
        changes: Mapping[str, Any],
        *,
        floor: int,
        ceiling: int,
        status_not_in: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Add ``delta`` to the number ``counter``, SET ``changes`` and bump ``version`` in one write,
        conditional on the result staying within ``[floor, ceiling]`` and the record's ``status``
        not being one of ``status_not_in``, but not on the version: a count that others move at the
        same time (a listing's stock, which every reservation moves) loses no change and needs no
        read first. Conflict when the record is gone or a condition refuses; returns it as written."""
        names = {"#version": "version", "#n": counter}
        values: dict[str, Any] = {":one": 1, ":delta": delta, ":low": floor - delta, ":high": ceiling - delta}
        sets = ["#n = #n + :delta", "#version = #version + :one"]
        for i, (key, value) in enumerate(changes.items()):
            if key in ("PK", "SK", "version", counter):
                raise ValueError(f"{key} cannot be changed here")
            names[f"#f{i}"], values[f":v{i}"] = key, value
            sets.append(f"#f{i} = :v{i}")
        condition = "attribute_exists(PK) AND #n BETWEEN :low AND :high"
        for j, status in enumerate(status_not_in):
            names["#status"], values[f":s{j}"] = "status", status
            condition += f" AND #status <> :s{j}"
        return self._update_item(pk, sk, "SET " + ", ".join(sets), condition, names, values)

    def take(self, pk: str, sk: str, counter: str, n: int, ceiling: int, expires_at: int) -> tuple[bool, int]:
        """Add ``n`` to the count ``counter`` of the item at (pk, sk), made when absent with
        ``expiresAt`` (TTL), unless that would pass ``ceiling``: (added, the count then). A refusal
        answers the count it found (``ReturnValuesOnConditionCheckFailure``), without a read."""
        try:
            response = self.client.update_item(
                TableName=self.name,
                Key=to_item({"PK": pk, "SK": sk}),
                UpdateExpression="ADD #n :n SET expiresAt = if_not_exists(expiresAt, :expires)",
                ConditionExpression="attribute_not_exists(#n) OR #n <= :room",
                ExpressionAttributeNames={"#n": counter},
                ExpressionAttributeValues=to_item({":n": n, ":room": ceiling - n, ":expires": expires_at}),
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise translate(error) from error
            found = from_item(error.response.get("Item") or {})
            return False, int(found.get(counter, ceiling))
        return True, int(from_item(response["Attributes"])[counter])

    def query(
        self,
        pk_value: str,
        *,
        index: str | None = None,
        pk_name: str = "PK",
        sk_prefix: str | None = None,
        limit: int = 50,
        next_token: str | None = None,
        newest_first: bool = False,
        sk_name: str = "SK",
        where: Mapping[str, Any] | None = None,
        project: Iterable[str] = (),
        page_field: str = "nextToken",
        sk_below: str | None = None,
        sk_between: tuple[str, str] | None = None,
        sk_above: str | None = None,
    ) -> Page:
        """One page of a partition. ``next_token`` is opaque to callers and bound to this partition.
        ``where`` keeps only the items whose attributes equal those values (a filter: ``limit``
        items are read, fewer may be returned, and the page may still have a token); ``project``
        reads only the attributes named (a page token still works: the key is always returned);
        ``page_field`` is the request field a bad ``next_token`` came in, which the 400 names."""
        names = {"#pk": pk_name}
        values: dict[str, Any] = {":pk": pk_value}
        condition = "#pk = :pk"
        if sk_prefix is not None:
            names["#sk"] = sk_name
            values[":sk"] = sk_prefix
            condition += " AND begins_with(#sk, :sk)"
        if sk_above is not None:  # only the sort keys after this one (records past the audit trail)
            names["#sk"] = sk_name
            values[":above"] = sk_above
            condition += " AND #sk > :above"
        if sk_below is not None:  # only the sort keys before this one (the deadlines already due)
            names["#sk"] = sk_name
            values[":below"] = sk_below
            condition += " AND #sk < :below"
        if sk_between is not None:  # the sort keys from the first to the last, both included
            names["#sk"] = sk_name
            values[":from"], values[":to"] = sk_between
            condition += " AND #sk BETWEEN :from AND :to"
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "Limit": limit,
            "ScanIndexForward": not newest_first,
        }
        if where:
            filters = []
            for i, (name, value) in enumerate(where.items()):
                names[f"#w{i}"], values[f":w{i}"] = name, value
                filters.append(f"#w{i} = :w{i}")
            kwargs["FilterExpression"] = " AND ".join(filters)
        kwargs["ExpressionAttributeValues"] = to_item(values)
        projected = list(project)
        if projected:
            for i, name in enumerate(projected):
                names[f"#p{i}"] = name
            kwargs["ProjectionExpression"] = ", ".join(f"#p{i}" for i in range(len(projected)))
        if index:
            kwargs["IndexName"] = index
        if next_token:
            kwargs["ExclusiveStartKey"] = decode_token(
                next_token, pk_name, pk_value, sk_name, sk_prefix, page_field, sk_above
            )
        try:
            response = self.client.query(**kwargs)
        except ClientError as error:
            raise translate(error) from error
        last = response.get("LastEvaluatedKey")
        return Page(
            items=[from_item(i) for i in response.get("Items", [])],
            next_token=encode_token(last) if last else None,
        )


def encode_token(key: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


# DynamoDB's limits on a key attribute (a partition key's value up to 2048 bytes, a sort key's up
# to 1024): a start key beyond them is refused by the service, so a token carrying one is refused here.
_KEY_BYTES = {"hash": 2048, "range": 1024}
TABLE_KEY = ("PK", "SK")


def decode_token(
    token: str,
    pk_name: str,
    pk_value: str,
    sk_name: str = "SK",
    sk_prefix: str | None = None,
    field: str = "nextToken",
    sk_above: str | None = None,
) -> dict[str, Any]:
    """A page token back to its key, validated as fully as DynamoDB will check it as an
    ExclusiveStartKey: exactly the table's key attributes plus the queried index's, each a non-empty
    string within the key size limits, in this partition (a token from another tenant is refused)
    and, for a query on a sort key prefix, within that prefix. Anything else is a 400 naming
    ``field`` (the request's name for the token) instead of a service error."""
    bad = InvalidInput([FieldError(field, "is not a token this listing issued")])
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        raise bad from None
    kinds = {TABLE_KEY[0]: "hash", TABLE_KEY[1]: "range", pk_name: "hash", sk_name: "range"}
    if not isinstance(key, dict) or set(key) != set(kinds):
        raise bad
    values = {}
    for name, kind in kinds.items():
        typed = key[name]
        if not isinstance(typed, dict) or set(typed) != {"S"} or not isinstance(typed["S"], str):
            raise bad
        try:
            size = len(typed["S"].encode())
        except UnicodeEncodeError:  # a lone surrogate: not a string DynamoDB can store
            raise bad from None
        if not 1 <= size <= _KEY_BYTES[kind]:
            raise bad
        values[name] = typed["S"]
    if values[pk_name] != pk_value or (sk_prefix is not None and not values[sk_name].startswith(sk_prefix)):
        raise bad
    if sk_above is not None and values[sk_name] <= sk_above:  # outside the query's range
        raise bad
    return key

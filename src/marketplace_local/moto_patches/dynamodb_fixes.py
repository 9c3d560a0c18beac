"""Makes moto's DynamoDB safe to use from many threads at once, as the local stack does.

moto's ``transact_write_items`` takes a deep copy of every table it touches and, when the
transaction is cancelled (a condition failed: an out-of-stock reservation, a duplicate
idempotency key), puts the copies back in place of the live tables. Found by a stalled test run:

* every write another thread made between the copy and the restore is lost (on AWS a cancelled
  transaction changes nothing, and other writers are unaffected);
* the restored table has a new stream shard object, so a Streams API shard iterator taken before
  (the stream pollers hold one) keeps reading the old object and never sees a later record.

The fix: one lock around moto's item operations and the Streams API's reads, so a transaction's
copy-and-restore cannot interleave with another write, nor a stream reader see its cancelled writes; and on a cancelled transaction the live stream shard is kept
(truncated to what it held before the transaction) in the restored table, so iterators stay valid.
Both are checked by tests/emulator/test_dynamodb_fixes.py, including the deviation on plain moto.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import threading
from typing import Any

_LOCK = threading.RLock()
_originals: list[tuple[Any, str, Any]] = []

# Every backend operation that reads or writes items: reads too, so that nobody sees a cancelled
# transaction's half-applied writes before they are rolled back.
_ITEM_OPERATIONS = (
    "put_item", "update_item", "delete_item", "batch_write_item", "get_item", "query", "scan",
    "batch_get_item", "transact_get_items", "execute_statement", "execute_transaction",
    "batch_execute_statement",
)  # fmt: skip


def _locked(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    return wrapper


class _Snapshots(threading.local):
    transact_items: list[dict[str, Any]] | None = None
    tables: dict[str, Any] | None = None


_snapshots = _Snapshots()


class _CopyForTransactions:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend. moto deep-copies every
    table a transaction touches, to put it back if the transaction is cancelled: that costs time
    in proportion to the whole table and its stream, under the lock above (a bulk import of 5,000
    listings stalled every other DynamoDB call for a minute). During a transaction a table's
    snapshot is made by :func:`_table_snapshot`; everything else is the real ``copy``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if _snapshots.transact_items is None or not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        return _table_snapshot(value, _snapshots.transact_items)


_MISSING = object()
_SAVED_ATTRIBUTE = "_marketplace_saved_partitions"


def _table_snapshot(table: Any, transact_items: list[dict[str, Any]]) -> Any:
    """What moto puts back if the transaction is cancelled: the table object, sharing the live
    item index, with copies of just the partitions the transaction touches (deep copies of the
    items it updates in place; a Put or Delete replaces the Item object). Copying the whole index
    cost time in proportion to the table, under the lock, for every transaction (a tenth of the
    stack's CPU in the fault run's profile); the partitions are put back by
    :func:`_transact_keeping_streams` when moto restores the snapshot."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    cache = _snapshots.tables
    if cache is not None and table.name in cache:  # moto copies a table once per item of the transaction
        return cache[table.name]
    snapshot = copy.copy(table)
    saved: dict[Any, Any] = {}
    for item in transact_items:
        op_type, op = next(iter(item.items()))
        if op.get("TableName") != table.name:
            continue
        key = op["Item"] if op_type == "Put" else op.get("Key", {})
        if table.hash_key_attr not in key:
            continue
        hash_value = DynamoType(key[table.hash_key_attr])
        if hash_value not in saved:
            stored = table.items.get(hash_value, _MISSING)
            saved[hash_value] = dict(stored) if stored is not _MISSING and table.has_range_key else stored
        if op_type != "Update" or saved[hash_value] is _MISSING:
            continue
        if table.has_range_key:
            range_value = DynamoType(key[table.range_key_attr])
            if range_value in saved[hash_value]:
                saved[hash_value][range_value] = copy.deepcopy(saved[hash_value][range_value])
        else:
            saved[hash_value] = copy.deepcopy(saved[hash_value])
    setattr(snapshot, _SAVED_ATTRIBUTE, saved)
    if cache is not None:
        cache[table.name] = snapshot
    return snapshot


def _put_back_partitions(table: Any) -> None:
    """After moto restored ``table`` (a snapshot): the touched partitions as they were before."""
    saved = table.__dict__.pop(_SAVED_ATTRIBUTE, None)
    if saved is None:
        return
    for hash_value, stored in saved.items():
        if stored is _MISSING:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = stored


def _transact_keeping_streams(method: Any) -> Any:
    @functools.wraps(method)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with _LOCK:
            live = {}
            for item in transact_items:
                _, op = next(iter(item.items()))
                table = self.tables.get(op.get("TableName"))
                if table is not None and getattr(table, "stream_shard", None) is not None:
                    live[table.name] = (table.stream_shard, len(table.stream_shard.items))
            _snapshots.transact_items = transact_items
            _snapshots.tables = {}
            try:
                return method(self, transact_items)
            except Exception:
                for snapshot in _snapshots.tables.values():
                    if self.tables.get(snapshot.name) is snapshot:  # moto put the snapshot back
                        _put_back_partitions(snapshot)
                for name, (shard, length) in live.items():
                    restored = self.tables.get(name)
                    if restored is not None:
                        del shard.items[length:]  # the cancelled transaction emitted nothing
                        shard.table = restored
                        restored.stream_shard = shard
                raise
            finally:
                for snapshot in _snapshots.tables.values():
                    snapshot.__dict__.pop(_SAVED_ATTRIBUTE, None)
                _snapshots.transact_items = None
                _snapshots.tables = None

    return transact_write_items


query_shortcuts = 0  # queries answered from the items of their hash key (a figure for tests)


def _query_by_hash_key(query: Any) -> Any:
    """moto answers a query by sorting every item of the table and comparing each one's hash key
    or index hash attribute (``Table.all_items``): every query (a tax id claim, a blocked list, a
    supplier's deliveries, ``GET /suppliers``, the expiry sweep) paid for the whole table, under the
    lock above; in the fault run's profile the thread holding that lock was nearly always there.

    moto is handed only the items its comparison can keep, in the same order (a filtered sorted
    list is the sorted filtered list), and its query runs unchanged on them: for a query of the
    table, the partition moto keeps under the hash key; for an index whose hash-key conditions are
    all strings (all of ours are), the items whose attributes hold exactly those strings."""
    signature = inspect.signature(query)

    def in_order(items: list[Any]) -> list[Any]:
        return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

    @functools.wraps(query)
    def wrapper(table: Any, *args: Any, **kwargs: Any) -> Any:
        global query_shortcuts
        call = signature.bind(table, *args, **kwargs).arguments
        hash_key, conditions = call.get("hash_key"), call.get("hash_key_conditions")
        if not call.get("index_name"):
            if hash_key is None:
                return query(table, *args, **kwargs)

            def matching_items() -> list[Any]:
                stored = table.items.get(hash_key)
                if stored is None:
                    return []
                return in_order(list(stored.values()) if table.range_key_attr else [stored])

        elif not conditions or any(getattr(value, "type", None) != "S" for _, value in conditions):
            return query(table, *args, **kwargs)
        else:
            wanted = [(name, value.value) for name, value in conditions]

            def matching_items() -> list[Any]:
                kept = []
                for hash_set in table.items.values():
                    for item in hash_set.values() if table.range_key_attr else (hash_set,):
                        attrs = item.attrs
                        if all((v := attrs.get(n)) is not None and v.type == "S" and v.value == w
                               for n, w in wanted):  # fmt: skip
                            kept.append(item)
                return in_order(kept)

        query_shortcuts += 1
        table.all_items = matching_items  # this call only: moto's operations run under _LOCK
        try:
            return query(table, *args, **kwargs)
        finally:
            table.__dict__.pop("all_items", None)

    return wrapper


def install() -> None:
    """Apply the fixes (idempotent)."""
    if _originals:
        return
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    _originals.append((Table, "query", Table.query))
    Table.query = _query_by_hash_key(Table.query)

    for name in _ITEM_OPERATIONS:
        original = getattr(DynamoDBBackend, name)
        _originals.append((DynamoDBBackend, name, original))
        setattr(DynamoDBBackend, name, _locked(original))
    # The Streams API reads the shard under the same lock: between a transaction's first write and
    # its cancellation the shard holds records that are then removed and whose sequence numbers the
    # next writes reuse; a stream poller that read one moved past a number that a real record then
    # took, and never saw that record (found by the fault run: a supplier's INSERT never reached the
    # router, its record stayed PENDING with no execution and nothing in a dead-letter queue).
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    for name in ("get_shard_iterator", "get_records"):
        original = getattr(DynamoDBStreamsBackend, name)
        _originals.append((DynamoDBStreamsBackend, name, original))
        setattr(DynamoDBStreamsBackend, name, _locked(original))
    original = DynamoDBBackend.transact_write_items
    _originals.append((DynamoDBBackend, "transact_write_items", original))
    DynamoDBBackend.transact_write_items = _transact_keeping_streams(original)
    models = importlib.import_module("moto.dynamodb.models")
    _originals.append((models, "copy", models.copy))
    models.copy = _CopyForTransactions()


def uninstall() -> None:
    while _originals:
        owner, name, value = _originals.pop()
        setattr(owner, name, value)

"""moto's DynamoDB under concurrency (marketplace_local.moto_patches.dynamodb_fixes): a cancelled transaction
neither loses other threads' writes nor cuts the stream off from its readers."""

from __future__ import annotations

import contextlib
import threading
import uuid

from tests.emulator import engine_scenarios as scenarios
from tests.emulator.test_engine import without_fix


def test_a_stream_iterator_still_sees_writes_after_a_cancelled_transaction(stack):
    result = scenarios.cancelled_transaction_and_stream(
        stack.client("dynamodb"), stack.client("dynamodbstreams")
    )
    assert result == {"first": 1, "later": ["second"]}


def test_a_stream_iterator_goes_blind_after_a_cancelled_transaction_in_plain_moto():
    assert without_fix("cancelled_transaction_and_stream") == {"first": 1, "later": []}


def test_writes_made_while_transactions_are_cancelled_are_never_lost(stack):
    ddb, table = stack.client("dynamodb"), stack.physical_id("MarketplaceTable")
    prefix = f"TEST#{uuid.uuid4().hex}"
    ddb.put_item(TableName=table, Item={"PK": {"S": f"{prefix}#taken"}, "SK": {"S": "X"}})
    stop = threading.Event()

    def cancel_transactions() -> None:
        while not stop.is_set():
            with contextlib.suppress(ddb.exceptions.TransactionCanceledException):
                ddb.transact_write_items(TransactItems=[{"Put": {
                    "TableName": table, "Item": {"PK": {"S": f"{prefix}#taken"}, "SK": {"S": "X"}},
                    "ConditionExpression": "attribute_not_exists(PK)"}}])  # fmt: skip

    canceller = threading.Thread(target=cancel_transactions)
    canceller.start()
    try:
        for i in range(150):
            ddb.put_item(TableName=table, Item={"PK": {"S": f"{prefix}#{i}"}, "SK": {"S": "X"}})
    finally:
        stop.set()
        canceller.join()
    found = sum(
        1 for i in range(150)
        if "Item" in ddb.get_item(TableName=table, Key={"PK": {"S": f"{prefix}#{i}"}, "SK": {"S": "X"}})
    )  # fmt: skip
    assert found == 150


def test_queries_answer_the_same_as_moto_scanning_the_whole_table(stack):
    """A query looks only at the items of its hash key (the table's partition, or the items whose
    index attribute holds the queried string): the same pages, in the same order, with the same
    keys to go on, as moto's scan of every item."""
    from moto.dynamodb.models.table import Table

    from marketplace_local.moto_patches import dynamodb_fixes

    ddb, table = stack.client("dynamodb"), stack.physical_id("MarketplaceTable")
    prefix = f"TEST#{uuid.uuid4().hex}"
    for n in range(12):
        ddb.put_item(TableName=table, Item={
            "PK": {"S": f"{prefix}#{n % 5}"}, "SK": {"S": f"R#{n:02d}"}, "n": {"N": str(n)},
            "GSI1PK": {"S": f"{prefix}#STATUS#{'A' if n % 3 else 'B'}"}, "GSI1SK": {"S": f"{n % 4}#{n:02d}"},
        })  # fmt: skip
    ddb.put_item(TableName=table, Item={"PK": {"S": f"{prefix}#x"}, "SK": {"S": "R"}})  # not in the index

    def pages(index: str | None = "GSI1", **kwargs) -> list:
        out, start = [], None
        where = {"IndexName": index} if index else {}
        while True:
            answer = ddb.query(
                TableName=table, **where, **kwargs, **({"ExclusiveStartKey": start} if start else {})
            )
            out.append(
                (answer["Items"], answer.get("LastEvaluatedKey"), answer["Count"], answer["ScannedCount"])
            )
            start = answer.get("LastEvaluatedKey")
            if not start:
                return out

    queries = [
        {"KeyConditionExpression": "GSI1PK = :pk", "ExpressionAttributeValues": {":pk": {"S": f"{prefix}#STATUS#A"}},
         "Limit": 3},
        {"KeyConditionExpression": "GSI1PK = :pk AND begins_with(GSI1SK, :sk)", "ScanIndexForward": False,
         "ExpressionAttributeValues": {":pk": {"S": f"{prefix}#STATUS#A"}, ":sk": {"S": "1#"}}},
        {"KeyConditionExpression": "GSI1PK = :pk", "FilterExpression": "n > :five", "Limit": 2,
         "ExpressionAttributeValues": {":pk": {"S": f"{prefix}#STATUS#B"}, ":five": {"N": "5"}}},
        {"KeyConditionExpression": "GSI1PK = :pk", "ExpressionAttributeValues": {":pk": {"S": f"{prefix}#none"}}},
    ]  # fmt: skip
    table_queries = [
        {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": f"{prefix}#1"}}, "Limit": 1},
        {"KeyConditionExpression": "PK = :pk AND begins_with(SK, :sk)", "ScanIndexForward": False,
         "ExpressionAttributeValues": {":pk": {"S": f"{prefix}#2"}, ":sk": {"S": "R#"}}},
        {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": f"{prefix}#none"}}},
    ]  # fmt: skip
    shortcuts = dynamodb_fixes.query_shortcuts
    fixed = [pages(**q) for q in queries] + [pages(index=None, **q) for q in table_queries]
    assert dynamodb_fixes.query_shortcuts > shortcuts + len(queries) + len(table_queries) - 1  # the fix ran
    assert Table.query.__wrapped__ is not None
    patched, Table.query = Table.query, Table.query.__wrapped__
    try:
        plain = [pages(**q) for q in queries] + [pages(index=None, **q) for q in table_queries]
    finally:
        Table.query = patched
    assert fixed == plain
    assert [len(items) for items, *_ in fixed[0]] == [3, 3, 2]
    assert dynamodb_fixes._originals  # installed by the stack

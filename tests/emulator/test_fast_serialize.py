"""marketplace_local.moto_patches.fast_serialize: moto's responses are the same bytes with the fast path as
without it, for the calls the local stack makes most (DynamoDB items of every attribute type,
queries, transactions' errors, stream records, Step Functions, SQS, Lambda)."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from marketplace_local import transport
from marketplace_local.moto_patches import fast_serialize


def _raw_client(stack, service: str):
    """A client whose answers are read as the raw response bodies moto produced."""
    client = boto3.session.Session().client(
        service, region_name=stack.config.region, endpoint_url=stack.moto_endpoint,
        aws_access_key_id="local", aws_secret_access_key="local",
    )  # fmt: skip
    bodies: list[bytes] = []
    client.meta.events.register(
        "before-parse", lambda response_dict, **_: bodies.append(response_dict["body"])
    )
    return client, bodies


def _both(call) -> tuple[bytes, bytes]:
    """The raw body of ``call`` with moto's own serializer, then with the fast path."""
    fast_serialize.uninstall()
    try:
        slow = call()
    finally:
        fast_serialize.install()
    return slow, call()


def _without_next_iterator(body: bytes) -> bytes:
    """GetRecords hands out a new random iterator on every call: the one part that may differ."""
    return re.sub(rb'"NextShardIterator": ?"[^"]*"', b'"NextShardIterator": "-"', body)


@pytest.fixture
def calls(stack):
    assert transport.installed(stack.moto_endpoint) is not None
    clients: dict[str, tuple] = {}

    def body_of(service: str, operation: str, **kwargs) -> bytes:
        if service not in clients:
            clients[service] = _raw_client(stack, service)
        client, bodies = clients[service]
        bodies.clear()
        with contextlib.suppress(ClientError):  # an error's body is compared like any other
            getattr(client, operation)(**kwargs)
        return bodies[-1]

    return body_of


def test_the_fast_path_is_installed_by_the_stack_and_only_once(stack):
    from moto.core import serialize

    installed = serialize.ResponseSerializer.get_value
    assert getattr(installed, "__wrapped__", None) is not None
    fast_serialize.install()
    assert serialize.ResponseSerializer.get_value is installed


def test_dynamodb_items_queries_and_errors_serialise_to_the_same_bytes(stack, calls):
    table = stack.physical_id("MarketplaceTable")
    pk = f"TEST#{uuid.uuid4().hex}"
    item = {
        "PK": {"S": pk}, "SK": {"S": "RECORD"}, "n": {"N": "12.50"}, "b": {"B": base64.b64encode(b"\x00\xff")},
        "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]}, "bs": {"BS": [b"x", b"y"]},
        "m": {"M": {"nested": {"L": [{"S": "x"}, {"NULL": True}, {"BOOL": False}, {"M": {}}]}}},
        "l": {"L": []}, "t": {"BOOL": True}, "nul": {"NULL": True}, "unicode": {"S": "Grüße ✓ \u2028"},
        "GSI1PK": {"S": f"{pk}#STATUS"}, "GSI1SK": {"S": "1"},
    }  # fmt: skip
    key = {"PK": {"S": pk}, "SK": {"S": "RECORD"}}
    calls("dynamodb", "put_item", TableName=table, Item=item)
    for operation, kwargs in [
        ("get_item", {"TableName": table, "Key": key, "ConsistentRead": True}),
        ("query", {"TableName": table, "KeyConditionExpression": "PK = :pk",
                   "ExpressionAttributeValues": {":pk": {"S": pk}}, "ReturnConsumedCapacity": "INDEXES"}),
        ("query", {"TableName": table, "IndexName": "GSI1", "KeyConditionExpression": "GSI1PK = :pk",
                   "ExpressionAttributeValues": {":pk": {"S": f"{pk}#STATUS"}}, "Limit": 1}),
        ("update_item", {"TableName": table, "Key": key, "UpdateExpression": "SET n = n + :one",
                         "ExpressionAttributeValues": {":one": {"N": "0"}}, "ReturnValues": "ALL_OLD"}),
        ("put_item", {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(PK)",
                      "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}),
        ("transact_write_items", {"TransactItems": [{"ConditionCheck": {
            "TableName": table, "Key": key, "ConditionExpression": "attribute_not_exists(PK)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}]}),
        ("describe_table", {"TableName": table}),
    ]:  # fmt: skip
        slow, fast = _both(lambda operation=operation, kwargs=kwargs: calls("dynamodb", operation, **kwargs))
        assert json.loads(fast) == json.loads(slow), operation
        assert fast == slow, operation


def test_stream_records_state_machines_queues_and_functions_serialise_to_the_same_bytes(stack, calls):
    stream_arn = stack.client("dynamodb").describe_table(TableName=stack.physical_id("MarketplaceTable"))[
        "Table"
    ]["LatestStreamArn"]
    streams = stack.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    machine = stack.physical_id("SupplierOnboardingStateMachine")
    cases = [
        ("dynamodbstreams", "describe_stream", {"StreamArn": stream_arn}),
        ("dynamodbstreams", "get_records", {"ShardIterator": iterator, "Limit": 50}),
        ("stepfunctions", "describe_state_machine", {"stateMachineArn": machine}),
        ("sqs", "get_queue_attributes", {"QueueUrl": stack.physical_id("CorrectionQueue"),
                                         "AttributeNames": ["QueueArn", "RedrivePolicy", "VisibilityTimeout"]}),
        ("lambda", "get_function_configuration", {"FunctionName": stack.physical_id("ApiFunction")}),
    ]  # fmt: skip
    for service, operation, kwargs in cases:
        slow, fast = _both(lambda s=service, o=operation, k=kwargs: calls(s, o, **k))
        assert _without_next_iterator(fast) == _without_next_iterator(slow), f"{service}.{operation}"

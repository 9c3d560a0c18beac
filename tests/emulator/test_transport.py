"""The in-process transport to the moto server (marketplace_local.transport): the same answers as over
HTTP, for this process's clients only, and moto's module list read once; and the local API's listen
backlog (both found by bench/throughput.py)."""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ClientError

from marketplace_local import transport


def _client(stack, service: str, endpoint: str | None = None, over_http: bool = False):
    client = boto3.session.Session().client(
        service, region_name=stack.config.region, endpoint_url=endpoint or stack.moto_endpoint,
        aws_access_key_id="local", aws_secret_access_key="local",
    )  # fmt: skip
    if over_http:
        client.meta.events.unregister("before-send", transport._before_send)
    return client


def _error(call) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    return error["Error"]["Code"], error["Error"]["Message"], error["ResponseMetadata"]["HTTPStatusCode"]


def test_calls_to_the_moto_endpoint_are_served_in_process_with_the_same_answers_as_http(stack):
    served = transport.installed(stack.moto_endpoint)
    assert served is not None
    table = stack.physical_id("MarketplaceTable")
    in_process, over_http = _client(stack, "dynamodb"), _client(stack, "dynamodb", over_http=True)
    key = {"PK": {"S": f"TEST#{uuid.uuid4().hex}"}, "SK": {"S": "RECORD"}}
    before = served.requests_in_this_thread()
    in_process.put_item(TableName=table, Item={**key, "n": {"N": "1"}, "s": {"SS": ["a", "b"]}})
    assert served.requests_in_this_thread() == before + 1
    over_http.update_item(TableName=table, Key=key, UpdateExpression="SET n = n + :one",
                          ExpressionAttributeValues={":one": {"N": "1"}})  # fmt: skip
    assert served.requests_in_this_thread() == before + 1  # that one went over the wire
    read_in_process = in_process.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    read_over_http = over_http.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert read_in_process == read_over_http
    assert read_in_process["n"] == {"N": "2"}

    condition = {"TableName": table, "Item": key, "ConditionExpression": "attribute_not_exists(PK)"}
    assert _error(lambda: in_process.put_item(**condition)) == _error(lambda: over_http.put_item(**condition))
    missing = {"TableName": f"no-such-table-{uuid.uuid4().hex}", "Key": key}
    assert _error(lambda: in_process.get_item(**missing)) == _error(lambda: over_http.get_item(**missing))


def test_other_protocols_go_through_it_too(stack):
    """Query-protocol SQS and JSON Step Functions, as the handlers and the engine call them."""
    served = transport.installed(stack.moto_endpoint)
    url = stack.physical_id("CorrectionQueue")
    in_process, over_http = _client(stack, "sqs"), _client(stack, "sqs", over_http=True)
    names = ["QueueArn", "VisibilityTimeout", "RedrivePolicy"]
    before = served.requests_in_this_thread()
    assert (
        in_process.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        == over_http.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    )
    machine = stack.physical_id("SupplierOnboardingStateMachine")
    described = _client(stack, "stepfunctions").describe_state_machine(stateMachineArn=machine)
    assert described["stateMachineArn"] == machine
    assert served.requests_in_this_thread() == before + 2


def test_the_engines_localhost_address_is_served_too_and_other_addresses_are_not(stack):
    served = transport.installed(stack.moto_endpoint)
    port = stack.config.moto_port
    before = served.requests_in_this_thread()
    sfn = _client(stack, "stepfunctions", endpoint=f"http://localhost:{port}")
    assert any(m["stateMachineArn"] == stack.physical_id("SupplierOnboardingStateMachine")
               for m in sfn.list_state_machines()["stateMachines"])  # fmt: skip
    assert served.requests_in_this_thread() == before + 1
    elsewhere = AWSPreparedRequest("GET", f"http://127.0.0.1:{port + 1}/", {}, b"", False)
    assert transport._before_send(elsewhere) is None


def test_moto_modules_are_listed_once_and_are_the_same_list():
    import moto.backends

    transport.cache_moto_module_list()
    cached = moto.backends.list_of_moto_modules
    assert list(cached()) == list(cached.__wrapped__())
    assert "dynamodb" in cached() and "stepfunctions" in cached()
    transport.cache_moto_module_list()  # idempotent: never wraps the wrapper
    assert moto.backends.list_of_moto_modules is cached


def test_an_exception_escaping_moto_is_a_500_as_over_http_never_a_python_exception(stack):
    served = transport.InProcessTransport(stack.moto_endpoint)  # not installed: the stack keeps its own

    def broken(environ, start_response):
        raise RuntimeError("dictionary changed size during iteration")

    served.app = broken
    request = AWSPreparedRequest("POST", f"{stack.moto_endpoint}/",
                                 {"X-Amz-Target": "DynamoDB_20120810.ListTables"}, b"{}", False)  # fmt: skip
    response = served.handle(request)
    assert response.status_code == 500
    assert b"Internal Server Error" in response.content


def test_the_local_api_accepts_a_burst_of_connections_beyond_socketservers_default_backlog(stack):
    import socket

    assert stack.api.server.request_queue_size >= 128
    host, port = stack.api.server.server_address[:2]
    sockets = [socket.create_connection((host, port), timeout=10) for _ in range(40)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n")
        answers = [sock.recv(64) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers), answers

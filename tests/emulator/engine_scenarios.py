"""Scenarios that show each deviation of moto's Step Functions engine from AWS.

Each scenario runs against whatever moto it is given: the local stack's server, with the fixes of
marketplace_local.moto_patches.engine installed, or — in a subprocess, see ``run_without_fixes`` — a plain
moto with none of them, which is how the tests prove that every fix is still needed.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import uuid
from typing import Any

ROLE = "arn:aws:iam::123456789012:role/scenario"


def _machine(sfn: Any, definition: dict[str, Any]) -> str:
    return sfn.create_state_machine(
        name=f"scenario-{uuid.uuid4().hex[:10]}", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]


def _wait(sfn: Any, arn: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.05)


def choice_on_missing_path(sfn: Any) -> dict[str, Any]:
    """A Choice rule on a path the input lacks: AWS fails with States.Runtime."""
    arn = _machine(sfn, {
        "StartAt": "Decide",
        "States": {
            "Decide": {"Type": "Choice",
                       "Choices": [{"Variable": "$.missing", "StringEquals": "x", "Next": "Matched"}],
                       "Default": "Defaulted"},
            "Matched": {"Type": "Succeed"},
            "Defaulted": {"Type": "Succeed"},
        },
    })  # fmt: skip
    execution = sfn.start_execution(stateMachineArn=arn, name="choice", input="{}")["executionArn"]
    described = _wait(sfn, execution, 10)
    history = sfn.get_execution_history(executionArn=execution)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    return {"status": described["status"], "error": described.get("error"), "entered": entered}


def unnamed_execution(sfn: Any) -> dict[str, Any]:
    """StartExecution without a name: AWS names the execution with a UUID."""
    arn = _machine(sfn, {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    described = _wait(sfn, execution, 10)
    return {"name": described.get("name"), "arn": execution}


def long_wait(sfn: Any, advance: Any = None) -> dict[str, Any]:
    """A Wait of an hour: with a driven clock it ends when the clock moves, not an hour later."""
    arn = _machine(sfn, {
        "StartAt": "Hour", "States": {"Hour": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
                                       "Done": {"Type": "Succeed"}},
    })  # fmt: skip
    execution = sfn.start_execution(stateMachineArn=arn, name="wait", input="{}")["executionArn"]
    time.sleep(0.5)
    before = sfn.describe_execution(executionArn=execution)["status"]
    started = time.monotonic()
    if advance is not None:
        # Move the clock until the Wait ends: a timer that had not started yet is caught by the next move.
        while (
            sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
            and time.monotonic() - started < 3
        ):
            advance(3600)
            time.sleep(0.1)
    after = _wait(sfn, execution, 3)["status"]
    return {"before": before, "after": after, "seconds": time.monotonic() - started}


def retry_backoff(sfn: Any, sqs: Any) -> dict[str, Any]:
    """A task that keeps failing with Retry IntervalSeconds 1000, BackoffRate 2, MaxAttempts 2."""
    arn = _machine(sfn, {
        "StartAt": "Send",
        "States": {
            "Send": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
                     "Parameters": {"QueueUrl": "http://localhost/123456789012/no-such-queue", "MessageBody": "x"},
                     "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1000, "BackoffRate": 2,
                                "MaxAttempts": 2}],
                     "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "GaveUp"}],
                     "End": True},
            "GaveUp": {"Type": "Succeed"},
        },
    })  # fmt: skip
    execution = sfn.start_execution(stateMachineArn=arn, name="retry", input="{}")["executionArn"]
    started = time.monotonic()
    described = _wait(sfn, execution, 5)
    return {"status": described["status"], "seconds": time.monotonic() - started}


def task_failure_cause(sfn: Any, sqs: Any) -> dict[str, Any]:
    """SendTaskFailure with a cause: AWS keeps the cause on the failed execution."""
    queue = sqs.create_queue(QueueName=f"scenario-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    arn = _machine(sfn, {
        "StartAt": "Wait",
        "States": {"Wait": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                            "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
                            "End": True}},
    })  # fmt: skip
    execution = sfn.start_execution(stateMachineArn=arn, name="cause", input="{}")["executionArn"]
    deadline = time.monotonic() + 10
    messages: list[dict[str, Any]] = []
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue).get("Messages", [])
    token = json.loads(messages[0]["Body"])["token"]
    sfn.send_task_failure(taskToken=token, error="RecordRejected", cause="fraudulent documents")
    described = _wait(sfn, execution, 10)
    return {"status": described["status"], "error": described.get("error"), "cause": described.get("cause")}


def client_creations(sfn: Any, sqs: Any) -> dict[str, Any]:
    """Three SQS tasks in one execution: how many boto3 clients does the engine build?"""
    from moto.stepfunctions.parser.asl.utils import boto_client

    real_boto3 = boto_client.boto3
    created = []

    class CountingBoto3:
        def client(self, *args: Any, **kwargs: Any) -> Any:
            created.append(kwargs.get("service_name"))
            return real_boto3.client(*args, **kwargs)

    queue = sqs.create_queue(QueueName=f"scenario-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    send = {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
            "Parameters": {"QueueUrl": queue, "MessageBody": "x"}, "ResultPath": None}  # fmt: skip
    arn = _machine(sfn, {
        "StartAt": "One",
        "States": {"One": {**send, "Next": "Two"}, "Two": {**send, "Next": "Three"}, "Three": {**send, "End": True}},
    })  # fmt: skip
    boto_client.boto3 = CountingBoto3()
    try:
        execution = sfn.start_execution(stateMachineArn=arn, name="clients", input="{}")["executionArn"]
        described = _wait(sfn, execution, 10)
    finally:
        boto_client.boto3 = real_boto3
    return {"status": described["status"], "sqs_clients_created": created.count("sqs")}


def states_all_on_a_data_error(sfn: Any) -> dict[str, Any]:
    """A Task whose Parameters read a missing path (States.Runtime), with a States.ALL catcher: AWS
    fails the execution; the catcher is not taken."""
    arn = _machine(sfn, {
        "StartAt": "Send",
        "States": {
            "Send": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
                     "Parameters": {"QueueUrl": "http://localhost/123456789012/no-such-queue",
                                    "MessageBody.$": "$.missing"},
                     "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": True},
            "Caught": {"Type": "Succeed"},
        },
    })  # fmt: skip
    execution = sfn.start_execution(stateMachineArn=arn, name="runtime", input="{}")["executionArn"]
    described = _wait(sfn, execution, 10)
    return {
        "status": described["status"],
        "error": described.get("error"),
        "entered": _entered(sfn, execution),
    }


def _entered(sfn: Any, execution: str) -> list[str]:
    history = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


# ------------------------------------------------------------------------ MockConfigFile cases
_QUEUE = "http://localhost/123456789012/no-such-queue"  # never called: every Task is mocked
_SEND = {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
         "Parameters": {"QueueUrl": _QUEUE, "MessageBody": "x"}}  # fmt: skip

MOCK_MACHINES: dict[str, dict[str, Any]] = {
    # one Task entered twice: the second entry must take response "1"
    "MockReentry": {
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Result": {"round": 0}, "Next": "Send"},
            "Send": {**_SEND, "ResultSelector": {"id.$": "$.MessageId"}, "ResultPath": "$.last", "Next": "Count"},
            "Count": {"Type": "Pass", "Parameters": {"round.$": "States.MathAdd($.round, 1)", "last.$": "$.last"},
                      "Next": "Again"},
            "Again": {"Type": "Choice", "Choices": [{"Variable": "$.round", "NumericLessThan": 2, "Next": "Send"}],
                      "Default": "Done"},
            "Done": {"Type": "Succeed"},
        },
    },
    # a mocked States.Timeout, caught by name
    "MockStatesError": {
        "StartAt": "Send",
        "States": {
            "Send": {**_SEND, "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "TimedOut"}], "End": True},
            "TimedOut": {"Type": "Succeed"},
        },
    },
    # a mocked DynamoDB error, caught by name
    "MockDynamoDBError": {
        "StartAt": "Write",
        "States": {
            "Write": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:updateItem",
                      "Parameters": {"TableName": "t", "Key": {"PK": {"S": "k"}}, "UpdateExpression": "SET a = :a",
                                     "ExpressionAttributeValues": {":a": {"S": "b"}}},
                      "Catch": [{"ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"], "Next": "Lost"}],
                      "End": True},
            "Lost": {"Type": "Succeed"},
        },
    },
}  # fmt: skip

MOCK_CONFIG = {
    "StateMachines": {
        "MockReentry": {"TestCases": {"TwoRounds": {"Send": "FirstThenSecond"}}},
        "MockStatesError": {"TestCases": {"TimesOut": {"Send": "TimedOut"}}},
        "MockDynamoDBError": {"TestCases": {"ConditionFails": {"Write": "ConditionFailed"}}},
    },
    "MockedResponses": {
        "FirstThenSecond": {"0": {"Return": {"MessageId": "first"}}, "1": {"Return": {"MessageId": "second"}}},
        "TimedOut": {"0": {"Throw": {"Error": "States.Timeout", "Cause": "mocked"}}},
        "ConditionFailed": {"0": {"Throw": {"Error": "DynamoDB.ConditionalCheckFailedException",
                                            "Cause": "mocked"}}},
    },
}  # fmt: skip


def mock_config_case(sfn: Any, machine: str, case: str) -> dict[str, Any]:
    """Run test case ``case`` of ``MOCK_CONFIG`` on ``machine`` (``<arn>#<case>``), with
    SFN_MOCK_CONFIG naming a file that holds ``MOCK_CONFIG``."""
    import os
    import tempfile

    from botocore.exceptions import ClientError

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "MockConfigFile.json")
        with open(path, "w") as file:
            json.dump(MOCK_CONFIG, file)
        before = os.environ.get("SFN_MOCK_CONFIG")
        os.environ["SFN_MOCK_CONFIG"] = path
        try:
            name = (
                f"{machine}{uuid.uuid4().hex[:8]}"  # machines are found by name, as in Step Functions Local
            )
            arn = sfn.create_state_machine(
                name=name, definition=json.dumps(MOCK_MACHINES[machine]), roleArn=ROLE
            )["stateMachineArn"]
            config = {**MOCK_CONFIG, "StateMachines": {name: MOCK_CONFIG["StateMachines"][machine]}}
            with open(path, "w") as file:
                json.dump(config, file)
            try:
                execution = sfn.start_execution(stateMachineArn=f"{arn}#{case}", name=case, input="{}")[
                    "executionArn"
                ]
            except ClientError as error:
                return {"status": None, "start_error": error.response["Error"]["Code"]}
            described = _wait(sfn, execution, 10)
        finally:
            if before is None:
                os.environ.pop("SFN_MOCK_CONFIG", None)
            else:
                os.environ["SFN_MOCK_CONFIG"] = before
    return {
        "status": described["status"],
        "error": described.get("error"),
        "output": json.loads(described.get("output") or "null"),
        "entered": _entered(sfn, execution),
    }


def run_without_fixes(name: str) -> dict[str, Any]:
    """Run one scenario on a plain moto (no fixes installed), in this process."""
    import boto3
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        if name.startswith("mock_config:"):
            # "mock_config:<machine>:<case>"; "mock_config_loaded:..." enables only the loader, to show
            # the deviations of moto's own mocking engine, which cannot run without it.
            return mock_config_case(sfn, *name.split(":")[1:])
        if name.startswith("mock_config_loaded:"):
            from marketplace_local.moto_patches import engine

            engine.install_mock_config_loader()
            return mock_config_case(sfn, *name.split(":")[1:])
        scenario = globals()[name]
        if name == "cancelled_transaction_and_stream":
            ddb = boto3.client("dynamodb", region_name="us-east-1")
            return scenario(ddb, boto3.client("dynamodbstreams", region_name="us-east-1"))
        sfn_only = ("choice_on_missing_path", "unnamed_execution", "long_wait", "entered_time",
                    "states_all_on_a_data_error")  # fmt: skip
        args = (sfn,) if name in sfn_only else (sfn, sqs)
        return scenario(*args)


def entered_time(sfn: Any) -> dict[str, Any]:
    """$$.State.EnteredTime as a state sees it."""
    arn = _machine(sfn, {"StartAt": "Look", "States": {"Look": {"Type": "Pass", "Parameters": {
        "entered.$": "$$.State.EnteredTime"}, "End": True}}})  # fmt: skip
    execution = sfn.start_execution(stateMachineArn=arn, name="time", input="{}")["executionArn"]
    return json.loads(_wait(sfn, execution, 10)["output"])


def cancelled_transaction_and_stream(ddb: Any, streams: Any) -> dict[str, Any]:
    """A shard iterator taken before a cancelled transaction: does it see a later write?"""
    table = f"scenario-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=table, KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST",
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})  # fmt: skip
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    ddb.put_item(TableName=table, Item={"PK": {"S": "first"}})
    first = streams.get_records(ShardIterator=iterator)
    with contextlib.suppress(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": {"PK": {"S": "first"}},
                                                         "ConditionExpression": "attribute_not_exists(PK)"}}])  # fmt: skip
    ddb.put_item(TableName=table, Item={"PK": {"S": "second"}})
    later = streams.get_records(ShardIterator=first["NextShardIterator"])
    return {
        "first": len(first["Records"]),
        "later": [r["dynamodb"]["Keys"]["PK"]["S"] for r in later["Records"]],
    }


if __name__ == "__main__":
    print(json.dumps(run_without_fixes(sys.argv[1]), default=str))

"""One parsed program per state machine definition (marketplace_local.moto_patches.asl_cache), shared by concurrent
executions that each keep their own retry counts."""

from __future__ import annotations

import json
import threading
import time
import uuid

from marketplace_local.moto_patches import asl_cache

ROLE = "arn:aws:iam::123456789012:role/asl-cache"


def _finished(sfn, arn: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise AssertionError(f"{arn} still running after {timeout}s")


def test_concurrent_executions_share_one_parse_and_keep_their_own_retry_counts(stack):
    sfn = stack.client("stepfunctions")
    # The queue name makes the definition (the cache key) unique to this test.
    definition = {
        "StartAt": "Send",
        "States": {
            "Send": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
                     "Parameters": {"QueueUrl": f"http://localhost/123456789012/none-{uuid.uuid4().hex}",
                                    "MessageBody": "x"},
                     "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 3}],
                     "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "GaveUp"}],
                     "End": True},
            "GaveUp": {"Type": "Pass", "End": True},
        },
    }  # fmt: skip
    machine = sfn.create_state_machine(
        name=f"asl-cache-{uuid.uuid4().hex[:10]}", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    parses_before = asl_cache.parses
    executions: list[str] = []
    lock = threading.Lock()

    def start(i: int) -> None:
        arn = sfn.start_execution(stateMachineArn=machine, name=f"run-{i}", input="{}")["executionArn"]
        with lock:
            executions.append(arn)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for arn in executions:
        assert _finished(sfn, arn)["status"] == "SUCCEEDED"
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        failures = [e for e in events if e["type"] == "TaskFailed"]
        # One attempt and three retries in every execution: no execution saw another's counter.
        assert len(failures) == 4, [e["type"] for e in events]
    assert len(executions) == 6
    assert asl_cache.parses == parses_before + 1
    program = asl_cache._programs[json.dumps(definition)]
    assert program.heap_key == program.heap_key  # created once, then stable


def test_without_the_cache_each_execution_parses_again(stack):
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    cached = ExecutionWorker._get_evaluation_entrypoint
    asl_cache.uninstall()
    try:
        assert ExecutionWorker._get_evaluation_entrypoint is not cached
        sfn = stack.client("stepfunctions")
        definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": uuid.uuid4().hex,
                                                                        "End": True}}})  # fmt: skip
        machine = sfn.create_state_machine(name=f"asl-plain-{uuid.uuid4().hex[:10]}", definition=definition,
                                           roleArn=ROLE)["stateMachineArn"]  # fmt: skip
        parses_before = asl_cache.parses
        arn = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
        assert _finished(sfn, arn)["status"] == "SUCCEEDED"
        assert asl_cache.parses == parses_before and definition not in asl_cache._programs
    finally:
        asl_cache.install()
    assert ExecutionWorker._get_evaluation_entrypoint is cached


def test_each_jsonpath_is_parsed_once_and_still_reads_each_executions_own_data(stack):
    sfn = stack.client("stepfunctions")
    field = f"f{uuid.uuid4().hex[:8]}"  # JSONPath texts unique to this test
    definition = json.dumps({"StartAt": "Pick", "States": {"Pick": {
        "Type": "Pass", "Parameters": {"picked.$": f"$.{field}.value", "tenant.$": "$.tenant"},
        "ResultPath": f"$.{field}_out", "End": True}}})  # fmt: skip
    machine = sfn.create_state_machine(name=f"asl-paths-{uuid.uuid4().hex[:10]}", definition=definition,
                                       roleArn=ROLE)["stateMachineArn"]  # fmt: skip
    before = asl_cache.jsonpath_parses
    outputs = []
    for n in range(3):
        arn = sfn.start_execution(
            stateMachineArn=machine, input=json.dumps({field: {"value": n}, "tenant": f"t{n}"})
        )["executionArn"]
        described = _finished(sfn, arn)
        assert described["status"] == "SUCCEEDED"
        outputs.append(json.loads(described["output"])[f"{field}_out"])
        if n == 0:
            first_run = asl_cache.jsonpath_parses - before
    assert outputs == [{"picked": n, "tenant": f"t{n}"} for n in range(3)]
    assert first_run >= 2  # the two Parameters paths and the ResultPath, at least
    assert asl_cache.jsonpath_parses - before == first_run  # the later executions parsed nothing

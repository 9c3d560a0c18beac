"""The fixes of marketplace_local.moto_patches.engine, each shown twice: AWS behaviour with the fix (in the local
stack), and the deviation it cures on plain moto (a subprocess with no fix installed). When a moto
upgrade cures a deviation, its `_without_fix` test fails and the fix can go."""

from __future__ import annotations

import os

import pytest

from tests.emulator import engine_scenarios as scenarios
from tests.emulator import run_scenario


def without_fix(name: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT", "MOTO_"))}
    env.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"})
    return run_scenario("tests.emulator.engine_scenarios", name, env)


@pytest.fixture
def sfn(stack):
    return stack.client("stepfunctions")


@pytest.fixture
def sqs(stack):
    return stack.client("sqs")


def test_choice_on_a_missing_path_fails_the_execution_as_on_aws(sfn):
    result = scenarios.choice_on_missing_path(sfn)
    assert result["status"] == "FAILED"
    assert result["error"] == "States.Runtime"
    assert "Defaulted" not in result["entered"]


def test_choice_on_a_missing_path_takes_the_default_in_plain_moto():
    result = without_fix("choice_on_missing_path")
    assert result["status"] == "SUCCEEDED"
    assert "Defaulted" in result["entered"]


def test_an_unnamed_execution_gets_a_uuid_name(sfn):
    result = scenarios.unnamed_execution(sfn)
    assert result["name"] and len(result["name"]) == 36
    assert result["arn"].endswith(":" + result["name"])


def test_an_unnamed_execution_has_no_name_in_plain_moto():
    result = without_fix("unnamed_execution")
    assert result["name"] in (None, "None")


def test_a_wait_state_ends_when_the_test_moves_the_clock(sfn, clock):
    result = scenarios.long_wait(sfn, advance=clock.advance)
    assert result["before"] == "RUNNING"
    assert result["after"] == "SUCCEEDED"
    assert result["seconds"] < 3


def test_a_wait_state_sleeps_in_real_time_in_plain_moto():
    result = without_fix("long_wait")
    assert result["before"] == "RUNNING"
    assert result["after"] == "RUNNING"  # still waiting for its real hour


def test_retry_intervals_are_recorded_not_slept(sfn, sqs, clock):
    before = len(clock.sleeps)
    result = scenarios.retry_backoff(sfn, sqs)
    assert result["status"] == "SUCCEEDED"  # retried twice, then caught
    assert result["seconds"] < 3
    assert clock.sleeps[before:] == [1000, 2000]


def test_retry_intervals_sleep_in_real_time_in_plain_moto():
    result = without_fix("retry_backoff")
    assert result["status"] == "RUNNING"  # still in its first 1000 s interval


def test_send_task_failure_keeps_its_cause(sfn, sqs):
    result = scenarios.task_failure_cause(sfn, sqs)
    assert result["status"] == "FAILED"
    assert result["error"] == "RecordRejected"
    assert result["cause"] == "fraudulent documents"


def test_send_task_failure_drops_the_cause_in_plain_moto():
    result = without_fix("task_failure_cause")
    assert result["status"] == "FAILED"
    assert not result["cause"]


def test_the_engine_reuses_one_client_per_service(sfn, sqs):
    result = scenarios.client_creations(sfn, sqs)
    assert result["status"] == "SUCCEEDED"
    assert result["sqs_clients_created"] <= 1


def test_the_engine_builds_a_client_per_task_in_plain_moto():
    result = without_fix("client_creations")
    assert result["status"] == "SUCCEEDED"
    assert result["sqs_clients_created"] == 3


AWS_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def test_entered_time_has_the_aws_format_and_follows_the_clock(sfn, clock):
    import re
    from datetime import UTC, datetime

    clock.advance(86400)
    entered = scenarios.entered_time(sfn)["entered"]
    assert re.fullmatch(AWS_TIME, entered), entered
    moment = datetime.strptime(entered, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    assert abs(moment - clock.now()) < 5


def test_entered_time_is_python_isoformat_in_plain_moto():
    import re

    entered = without_fix("entered_time")["entered"]
    assert not re.fullmatch(AWS_TIME, entered) and entered.endswith("+00:00")


def test_states_all_does_not_catch_a_data_error(sfn):
    result = scenarios.states_all_on_a_data_error(sfn)
    assert result["status"] == "FAILED"
    assert result["error"] == "States.Runtime"
    assert "Caught" not in result["entered"]


def test_states_all_catches_a_data_error_in_plain_moto():
    result = without_fix("states_all_on_a_data_error")
    assert result["status"] == "SUCCEEDED"
    assert result["entered"] == ["Send", "Caught"]


def test_a_mock_config_test_case_runs_its_mocked_responses(sfn):
    result = scenarios.mock_config_case(sfn, "MockReentry", "TwoRounds")
    assert result["status"] == "SUCCEEDED"
    assert result["entered"] == ["Init", "Send", "Count", "Again", "Send", "Count", "Again", "Done"]


def test_a_mock_config_test_case_cannot_start_in_plain_moto():
    result = without_fix("mock_config:MockReentry:TwoRounds")
    assert result["status"] is None and result["start_error"]


def test_a_state_entered_again_takes_the_next_mocked_response(sfn):
    """Step Functions Local counts a state's invocations per execution, entries and retries alike."""
    result = scenarios.mock_config_case(sfn, "MockReentry", "TwoRounds")
    assert result["output"] == {"round": 2, "last": {"id": "second"}}


def test_a_state_entered_again_takes_its_first_response_again_in_moto():
    result = without_fix("mock_config_loaded:MockReentry:TwoRounds")
    assert result["output"] == {"round": 2, "last": {"id": "first"}}


def test_a_mocked_states_error_is_thrown_and_caught_by_name(sfn):
    result = scenarios.mock_config_case(sfn, "MockStatesError", "TimesOut")
    assert result["status"] == "SUCCEEDED"
    assert result["entered"] == ["Send", "TimedOut"]


def test_a_mocked_states_error_is_refused_by_moto():
    result = without_fix("mock_config_loaded:MockStatesError:TimesOut")
    assert result["status"] == "FAILED"
    assert result["entered"] == ["Send"]


def test_a_mocked_dynamodb_error_keeps_its_name(sfn):
    result = scenarios.mock_config_case(sfn, "MockDynamoDBError", "ConditionFails")
    assert result["status"] == "SUCCEEDED"
    assert result["entered"] == ["Write", "Lost"]


def test_a_mocked_dynamodb_error_is_renamed_by_moto():
    result = without_fix("mock_config_loaded:MockDynamoDBError:ConditionFails")
    assert result["status"] == "FAILED"
    assert result["error"] == "DynamoDB.AmazonDynamoDBException"

"""Every test case of statemachines/test/MockConfigFile.json, run by the local stack's engine.

Each case starts ``<stateMachineArn>#<case>`` on the stack's state machine (template.yaml's ASL and
DefinitionSubstitutions), as AWS Step Functions Local runs it, with the mocked responses instead of
Lambda, DynamoDB, SQS and SNS, on the stack's manual clock (retries and timeouts do not wait). The
history must show the row of statemachines/test/expected.json: the states entered, in order, and the
end (status, error). tests/sfn_local holds Step Functions Local to the same table.
"""

from __future__ import annotations

import pytest

from tests import mock_config_cases as cases

CASES = [pytest.param(machine, case, id=f"{machine}-{case}") for machine, case in cases.all_cases()]


@pytest.mark.parametrize(("machine", "case"), CASES)
def test_case_enters_its_states_and_ends_as_the_table_says(machine, case, mock_config_runs):
    execution = mock_config_runs.run(machine, case)
    assert cases.problems(execution, cases.expected(machine)[case]) == [], execution.describe()


@pytest.mark.parametrize(("machine", "case"), CASES)
def test_case_invokes_each_mocked_state_as_often_as_it_defines_responses(machine, case, mock_config_runs):
    """Only mocked states are invoked (an unmocked Task would call the stack's real service), each as
    many times as its mocked response defines invocations: no response is left unused."""
    config = cases.load_mock_config()
    mocks = cases.case_mocks(machine, config)[case]
    defined = {
        state: cases.invocation_count(config["MockedResponses"][name]) for state, name in mocks.items()
    }
    assert dict(mock_config_runs.run(machine, case).invocations) == defined

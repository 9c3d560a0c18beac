"""Every MockConfigFile test case, of every state machine, run by AWS Step Functions Local, enters
the states and ends as ``statemachines/test/expected.json`` says: the same table the local stack's
engine is held to (tests/workflow/test_state_machine_cases.py), so the ASL runs the same on a
second engine besides moto.
"""

from __future__ import annotations

import pytest
from sfn_local_harness import DOCKER_SKIP_REASON, docker_available
from tests import mock_config_cases as cases

CASES = [pytest.param(machine, case, id=f"{machine}-{case}") for machine, case in cases.all_cases()]
# Retries wait in real time in Step Functions Local: WelcomeNotSent waits out about two minutes of
# backoff, QueueForHumanFailed about fifteen seconds.
CASE_SECONDS = 300

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not docker_available(), reason=DOCKER_SKIP_REASON),
    pytest.mark.timeout(900),  # the first test pulls the image
]


@pytest.mark.parametrize(("machine", "case"), CASES)
def test_case_runs_in_step_functions_local_as_the_table_says(machine, case, sfn_local, state_machine_arns):
    execution = sfn_local.run_case(
        state_machine_arns[machine], case, cases.execution_input(machine), timeout=CASE_SECONDS
    )
    assert cases.problems(execution, cases.expected(machine)[case]) == [], execution.describe()

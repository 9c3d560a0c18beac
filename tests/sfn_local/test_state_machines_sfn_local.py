"""Every MockConfigFile test case, of every state machine, run by AWS Step Functions Local, ends as
its name promises.

For each case the execution's final status and the last state entered must be those of
``EXPECTED[<state machine>]`` in tests/workflow/test_mock_config.py, and the states it enters, in
order, must be the ones the static walker predicts: the walker is checked against a real engine
here, and the ASL against a second engine besides moto.
"""

from __future__ import annotations

import pytest
from sfn_local_harness import DOCKER_SKIP_REASON, docker_available, static_model

MODEL = static_model()
CASES = [pytest.param(machine, case, id=f"{machine}-{case}") for machine, case in MODEL.all_cases()]

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not docker_available(), reason=DOCKER_SKIP_REASON),
    # the first test pulls the image; WelcomeNotSent and the *NotQueued cases wait out their retries
    pytest.mark.timeout(900),
]


@pytest.mark.parametrize(("machine", "case"), CASES)
def test_case_runs_in_step_functions_local_as_the_walker_predicts(
    machine, case, sfn_local, state_machine_arns
):
    expected = MODEL.EXPECTED[machine][case]
    predicted = MODEL.walk(machine, case)
    # Retries wait in real time in Step Functions Local: allow the longest backoff of the path.
    execution = sfn_local.run_case(
        state_machine_arns[machine],
        case,
        MODEL.MACHINES[machine].execution_input,
        timeout=60 + 1.5 * predicted.retry_wait_seconds,
    )
    report = execution.describe()
    assert execution.status == expected.status, report
    assert execution.last_state_entered == expected.end, report
    assert execution.entered == predicted.entered, report
    if expected.error is not None:
        assert execution.failure.get("error") == expected.error, report

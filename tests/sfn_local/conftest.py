"""Fixtures for the Step Functions Local suite: one container per test session (per xdist worker).

The fixtures are only set up by tests that run: where no Docker engine answers, the tests are
skipped before any of this happens.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sfn_local_harness import StepFunctionsLocal
from tests import mock_config_cases as cases


@pytest.fixture(scope="session")
def sfn_local() -> Iterator[StepFunctionsLocal]:
    local = StepFunctionsLocal.start(cases.MOCK_CONFIG_PATH)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def state_machine_arns(sfn_local: StepFunctionsLocal) -> dict[str, str]:
    """Every state machine with test cases, created from its own ASL under the name the MockConfigFile
    uses (SupplierOnboarding, ProductListing, SupplierOrder): name -> ARN. All are created STANDARD,
    the Express SupplierOrder too, so that their executions can be described and their histories read
    (``StepFunctionsLocal.create_state_machine`` says why)."""
    return {
        machine: sfn_local.create_state_machine(machine, cases.definition_text(machine))
        for machine in cases.machines()
    }

"""Shared fixtures.

The workflow and end-to-end levels use one local stack per test process (pytest-xdist gives each
worker its own, on free ports). The stack runs on a :class:`ManualClock`, so retry intervals are
recorded instead of slept and callback timeouts fire when a test moves the clock.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "",
    dump: bool = True,
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    # Show where every thread of the local stack stands: a stuck poller or handler is visible here.
    if dump:
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; last value: {last!r}")


def advance_until(
    clock: Any, seconds: float, predicate: Callable[[], Any], timeout: float = 20.0, what: str = ""
) -> Any:
    """Move the engine's clock by ``seconds`` until ``predicate`` holds. A wait that had not yet
    begun when the clock moved (its state entered, its timer not started) is caught by the next move."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        clock.advance(seconds)
        try:
            return wait_until(predicate, timeout=1.0, what=what, dump=False)
        except AssertionError:
            continue
    raise AssertionError(f"timed out after {timeout}s moving the clock until {what or predicate}")


@pytest.fixture(scope="session")
def clock():
    from marketplace_local.moto_patches import engine

    manual = engine.ManualClock()
    previous = engine.use_clock(manual)
    yield manual
    engine.use_clock(previous)


@pytest.fixture(scope="session")
def stack(clock, tmp_path_factory) -> Iterator[Any]:
    from marketplace_local.stack import LocalStack, StackConfig, free_port

    config = StackConfig(
        api_port=free_port(),
        moto_port=free_port(),
        state_dir=tmp_path_factory.mktemp("state"),
        run_schedules=False,  # tests drain explicitly
        # Two suppliers a settlement page, so a tenant's few suppliers take the workflow's loop over pages.
        parameter_overrides={"Stage": "test", "MaxValidationRounds": "3", "SettlementSuppliersPerPage": "2"},
    )
    local = LocalStack(config).start()
    yield local
    local.stop()
    assert_no_refusal()


def assert_no_refusal(logs: list[str] | None = None) -> None:
    """The template as it is grants every call its code makes (D50): a refusal recorded by the
    in-process stacks (or, given ``logs``, logged by a ``marketplace run``) fails the run, naming
    the role, action and resource. A test that takes a grant off on purpose marks its refusals
    expected (``iam_enforcement.refusals_expected``)."""
    from marketplace_local.moto_patches import iam_enforcement

    if logs is None:
        refused = [
            f"{role} may not {action} on {resource}" for role, action, resource in iam_enforcement.denied
        ]
    else:
        refused = [line.strip() for line in logs if "AccessDenied: " in line]
    assert not refused, "refused calls the template does not grant:\n" + "\n".join(sorted(set(refused)))


@pytest.fixture(scope="module")
def quiet_table(stack) -> Iterator[Any]:
    """A table shaped as the stack's (its keys and indexes, read from the stack's own table) with no
    stream: what a unit test writes there starts no workflow and announces nothing (D39), so the
    shared stack's onboarding cannot add a supplier event to what the test counts."""
    from marketplace.repository import Table

    dynamodb = stack.client("dynamodb")
    shape = dynamodb.describe_table(TableName=stack.physical_id("MarketplaceTable"))["Table"]
    name = f"quiet-{uuid.uuid4().hex[:12]}"
    indexes = [{k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
               for index in shape.get("GlobalSecondaryIndexes", [])]  # fmt: skip
    dynamodb.create_table(TableName=name, KeySchema=shape["KeySchema"], BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=shape["AttributeDefinitions"], GlobalSecondaryIndexes=indexes)  # fmt: skip
    yield Table(name, dynamodb)
    dynamodb.delete_table(TableName=name)


@pytest.fixture
def tenant() -> str:
    """A fresh tenant per test: tests share a stack, never a tenant."""
    return f"t-{uuid.uuid4().hex[:12]}"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A module marked ``xdist_group`` builds its costly fixture once because ``make test``'s
    ``--dist loadgroup`` sends the whole group to one worker. pytest-xdist marks a grouped test by
    suffixing its node id (``...@group``) on the worker; on a pytest it cannot do that on (9.2 with
    xdist 3.8, pytest-xdist issue 1386) grouping stops without a word and each worker builds the
    fixture again, minutes of the suite. Fail each such test instead, saying why."""
    if (
        getattr(item.config.option, "loadgroup", False)
        and item.get_closest_marker("xdist_group")
        and "@" not in item.nodeid
    ):
        pytest.fail(
            f"--dist loadgroup did not group this test: this pytest-xdist cannot group on pytest "
            f"{pytest.__version__}; use the version requirements-dev.txt pins",
            pytrace=False,
        )

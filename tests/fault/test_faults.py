"""Each kind of injected fault, one at a time, on the shared local stack: the fault reaches the path
that AWS would take (a state machine's Retry, an event source mapping's retry and bisection, a
redelivered batch), and the work still completes, once.

Faults are scoped to the test's own tenant (``only_matching``) and to one function, with a budget,
so that the other tests of the same process never see them and each test knows what was injected.
"""

from __future__ import annotations

import errno
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from marketplace_local.faults import FaultConfig, FaultInjector, WebhookReceiver
from marketplace_local.stack import StackConfig
from tests.conftest import wait_until
from tests.workflow.conftest import Onboarding

pytestmark = pytest.mark.fault


@pytest.fixture
def onboarding(stack, tenant) -> Onboarding:
    return Onboarding(stack, tenant)


@pytest.fixture
def inject(stack, tenant) -> Iterator[Any]:
    installed: list[FaultInjector] = []

    def install(**settings: Any) -> FaultInjector:
        injector = FaultInjector(FaultConfig(only_matching=tenant, **settings)).install(stack)
        installed.append(injector)
        return injector

    yield install
    for injector in installed:
        injector.uninstall()


def executions_of(onboarding: Onboarding, supplier_id: str) -> list[dict[str, Any]]:
    machine = onboarding.stack.physical_id("SupplierOnboardingStateMachine")
    listed = onboarding.sfn.list_executions(stateMachineArn=machine, maxResults=1000)["executions"]
    return [e for e in listed if f"-{supplier_id}-" in e["name"]]


# ----------------------------------------------------------------------------- configuration
def test_faults_are_off_unless_configured(stack):
    assert StackConfig().faults is None
    assert FaultConfig.from_env({}) is None
    assert stack.faults is None  # the shared stack runs without a configuration


def test_the_environment_variable_is_parsed_and_validated():
    config = FaultConfig.from_env({"MARKETPLACE_FAULTS": '{"transient": 0.2, "duplicate": 0.05, "seed": 3, '
                                                         '"webhook_down": [5, 20]}'})  # fmt: skip
    assert (config.transient, config.duplicate, config.seed, config.webhook_down) == (
        0.2,
        0.05,
        3,
        (5.0, 20.0),
    )
    for bad, reason in [
        ('{"transient": 1.5}', "transient must be a fraction"),
        ('{"transient": 0.7, "throttle": 0.5}', "must not exceed 1"),
        ('{"transiant": 0.2}', "unknown settings ['transiant']"),
        ('{"webhook_down": [5]}', "webhook_down must be"),
        ("[0.2]", "must be a JSON object"),
        ("transient=0.2", "not JSON"),
    ]:
        with pytest.raises(ValueError, match=None) as raised:
            FaultConfig.from_env({"MARKETPLACE_FAULTS": bad})
        assert reason in str(raised.value), (bad, raised.value)


# ----------------------------------------------------------------------------- Lambda errors
@pytest.mark.parametrize(("kind", "error"), [("transient", "Lambda.ServiceException"),
                                             ("throttle", "Lambda.TooManyRequestsException")])  # fmt: skip
def test_a_lambda_service_error_in_a_workflow_is_retried_and_the_work_completes_once(
    onboarding, inject, clock, kind, error
):
    validate = onboarding.stack.physical_id("ValidateSupplierFunction")
    injector = inject(**{kind: 1.0}, functions=[validate], budget=2)
    sleeps_before = len(clock.sleeps)
    supplier_id = onboarding.register()
    onboarding.wait_status(supplier_id, "APPROVED")
    arn = onboarding.execution_arn(supplier_id)
    onboarding.wait_execution(arn, "SUCCEEDED")
    failures = [
        e["taskFailedEventDetails"]["error"] for e in onboarding.history(arn) if "taskFailedEventDetails" in e
    ]
    assert failures == [error, error]  # the ASL's Retry saw the Lambda service's error, twice
    assert injector.injected[kind] == 2
    assert len(clock.sleeps) >= sleeps_before + 2  # backoff intervals, recorded by the manual clock
    assert [e["status"] for e in executions_of(onboarding, supplier_id)] == ["SUCCEEDED"]


def test_a_failed_stream_delivery_is_retried_by_the_mapping_and_starts_one_execution(onboarding, inject):
    router = onboarding.stack.physical_id("StreamRouterFunction")
    poller = next(p for p in onboarding.stack.pollers if p.function_name == router)
    injector = inject(transient=0.5, throttle=0.5, functions=[router], budget=3)
    retries = poller.stats.retries + poller.stats.bisections
    supplier_id = onboarding.register()
    onboarding.wait_status(supplier_id, "APPROVED")
    assert injector.injected["transient"] + injector.injected["throttle"] == 3
    assert poller.stats.retries + poller.stats.bisections >= retries + 3
    assert len(executions_of(onboarding, supplier_id)) == 1


# ----------------------------------------------------------------------------- stream deliveries
def test_a_batch_delivered_twice_starts_no_second_execution(onboarding, inject):
    router = onboarding.stack.physical_id("StreamRouterFunction")
    injector = inject(duplicate=1.0, functions=[router], budget=1)
    supplier_id = onboarding.register()
    onboarding.wait_status(supplier_id, "APPROVED")
    assert injector.injected["duplicate_stream"] == 1
    assert len(executions_of(onboarding, supplier_id)) == 1


def test_a_router_crash_mid_batch_loses_nothing_and_duplicates_nothing(onboarding, inject):
    router = onboarding.stack.physical_id("StreamRouterFunction")
    injector = inject(crash=1.0, functions=[router], budget=1)
    # Written within the mapping's batching window: one batch, which the router crashes in.
    suppliers = [onboarding.register() for _ in range(4)]
    for supplier_id in suppliers:
        onboarding.wait_status(supplier_id, "APPROVED")
    assert injector.injected["crash"] == 1, "the four records did not arrive in one batch"
    assert [len(executions_of(onboarding, s)) for s in suppliers] == [1, 1, 1, 1]


# ----------------------------------------------------------------------------- webhook receiver
def post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


def test_the_webhook_receiver_is_really_down_for_its_window_then_up_on_the_same_url():
    injector = FaultInjector(FaultConfig())
    receiver = WebhookReceiver(down_window=(0.0, 1.5), injector=injector).start()
    try:
        url = receiver.url
        wait_until(lambda: receiver.down_since is not None, timeout=5, what="the receiver down")
        with pytest.raises(urllib.error.URLError) as refused:
            post(url, {"event": "supplier_order.awaiting_acceptance"})
        assert (
            isinstance(refused.value.reason, ConnectionRefusedError)
            or getattr(refused.value.reason, "errno", None) == errno.ECONNREFUSED
        )
        wait_until(
            lambda: receiver.down_since is None and receiver.downtime, timeout=10, what="the receiver up"
        )
        assert (
            post(url, {"event": "supplier_order.awaiting_acceptance", "data": {"eventId": "so-1-v1"}}) == 204
        )
        assert [r["eventId"] for r in receiver.received()] == ["so-1-v1"]
        assert injector.injected["webhook_down"] == 1
    finally:
        receiver.stop()
    with socket.socket() as probe:  # stopped: nothing listens any more
        assert probe.connect_ex(("127.0.0.1", receiver.port)) != 0

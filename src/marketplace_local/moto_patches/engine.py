"""Makes moto's Step Functions engine behave as AWS does where it does not (each deviation found by trying moto; listed in docs/decisions.md, D5).

Each patch here fixes one deviation found by trying moto 5.2.x, and each has a test in
tests/emulator/test_engine.py that fails without it:

* strict Choice: a Choice rule on a missing path fails the execution with ``States.Runtime``
  (moto silently takes the Default);
* a clock the tests can drive: retry intervals, Wait states, TimeoutSeconds and HeartbeatSeconds
  go through :class:`Clock` (moto sleeps in real time);
* named executions: ``StartExecution`` without a name gets a UUID name, as on AWS (moto stores None);
* cached clients: the engine's service integrations reuse one boto3 client per service and region
  (moto builds a new client per task, which costs more than the task itself);
* ``SendTaskFailure`` keeps its ``cause`` (moto drops it);
* ``$$.State.EnteredTime`` has AWS's format, ``2026-11-23T10:00:00.123Z``, and follows the clock
  (moto writes Python's ``isoformat()``, ``...00.123456+00:00``);
* ``States.ALL`` in a Retry or Catch does not match ``States.Runtime``: a data error fails the
  execution, as on AWS (moto's wildcard matches it too, so a catcher hides it);
* MockConfigFile test cases, as Step Functions Local runs them: ``StartExecution`` on
  ``<stateMachineArn>#<TestCase>`` runs that test case of the file named by the environment variable
  ``SFN_MOCK_CONFIG`` (moto carries the mocking engine but stubs out its loader), with one response
  counter per state per execution, retries and re-entries included (moto counts by the retry count
  of the current entry), mocked ``States.*`` errors thrown as such (moto refuses them), and a mocked
  error of a DynamoDB task kept (moto renames it ``DynamoDB.AmazonDynamoDBException``).

moto has no extension points for any of these, so they are patches of named functions; the module
keeps the originals so that :func:`uninstall` restores them. Re-check each after a moto upgrade:
the pin in requirements-local.txt is deliberate.
"""

from __future__ import annotations

import datetime
import functools
import importlib
import json
import os
import threading
import time as _time
import types
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.choice.comparison import comparison_variable
from moto.stepfunctions.parser.asl.component.state.choice.comparison.comparison_operator_type import (
    ComparisonOperatorType,
)
from moto.stepfunctions.parser.asl.component.state.choice.comparison.variable import NoSuchVariable
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.mocking import mock_config

# The environment variable that names the MockConfigFile, as for Step Functions Local.
MOCK_CONFIG_ENV = "SFN_MOCK_CONFIG"

_RealEvent = threading.Event

_MODULES_USING_BOTO_CLIENT_FOR = [
    "state_task.lambda_eval_utils",
    *(
        f"state_task.service.state_task_service_{name}"
        for name in (
            "sqs",
            "sns",
            "dynamodb",
            "sfn",
            "events",
            "aws_sdk",
            "unsupported",
            "glue",
            "ecs",
            "batch",
        )
    ),
    "state_map.item_reader.eval.resource_eval_s3",
    "state_map.result_writer.resource_eval.resource_eval_s3",
]


# --------------------------------------------------------------------------------------- clock
class Clock:
    """Real time: what `make run` uses."""

    def now(self) -> float:
        return _time.time()

    def sleep(self, seconds: float) -> None:
        _time.sleep(seconds)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return _RealEvent.wait(event, timeout)

    def notify(self, event: threading.Event | None = None) -> None:
        """``event`` was set (None: the time moved): wake what waits for it (real time needs nothing)."""


class ManualClock(Clock):
    """A clock that the tests drive: real time plus the jumps a test makes with ``advance``.

    * ``sleep`` (retry intervals) returns at once and records the interval in ``sleeps``, so a test
      can assert the backoff without waiting for it;
    * ``wait`` with a timeout (Wait states, task TimeoutSeconds, callback HeartbeatSeconds) blocks
      until its event is set or until the test moves the clock past its deadline with ``advance``.

    Each timed wait has a condition of its own, registered under its event: setting an event wakes
    its own waiters only, and ``advance`` wakes them all. (With one condition for the whole clock,
    every event set woke every waiting execution: with a thousand records waiting for a fix, each
    heartbeat or callback of the fault run's drain queued behind a thousand wake-ups.)
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self._waiters: dict[int, list[threading.Condition]] = {}
        self.sleeps: list[float] = []

    def now(self) -> float:
        return _time.time() + self._offset

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        if timeout is None:
            return _RealEvent.wait(event)
        condition = threading.Condition()
        with self._lock:
            deadline = self.now() + timeout
            self._waiters.setdefault(id(event), []).append(condition)
        try:
            with condition:
                while not event.is_set() and self.now() < deadline:
                    # The bound only guards against a lost wake-up; set() and advance() notify.
                    condition.wait(1.0)
                return event.is_set()
        finally:
            with self._lock:
                waiting = self._waiters.get(id(event), [])
                waiting.remove(condition)
                if not waiting:
                    self._waiters.pop(id(event), None)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds
        self.notify()

    def notify(self, event: threading.Event | None = None) -> None:
        with self._lock:
            if event is None:
                conditions = [c for waiting in self._waiters.values() for c in waiting]
            else:
                conditions = list(self._waiters.get(id(event), ()))
        for condition in conditions:
            with condition:
                condition.notify_all()


_clock: Clock = Clock()


def use_clock(clock: Clock) -> Clock:
    """Make the engine use ``clock`` from now on; returns the previous one."""
    global _clock
    previous, _clock = _clock, clock
    return previous


def current_clock() -> Clock:
    return _clock


class ClockEvent(_RealEvent):
    """threading.Event whose timed waits run on the engine's clock."""

    def wait(self, timeout: float | None = None) -> bool:
        return _clock.wait(self, timeout)

    def set(self) -> None:
        super().set()
        _clock.notify(self)


class AwsDatetime(datetime.datetime):
    """datetime whose now() follows the engine's clock and whose isoformat() is AWS's."""

    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> AwsDatetime:  # type: ignore[override]
        moment = datetime.datetime.fromtimestamp(_clock.now(), tz or datetime.UTC)
        return cls.fromisoformat(datetime.datetime.isoformat(moment))

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        utc = self.astimezone(datetime.UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class _ModuleShim(types.ModuleType):
    """Stands in for `time` or `threading` inside one moto module: overrides a few names and
    passes everything else through to the real module."""

    def __init__(self, real: types.ModuleType, **overrides: Any) -> None:
        super().__init__(real.__name__)
        self._real = real
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


# --------------------------------------------------------------------------------------- patches
_originals: list[tuple[Any, str, Any]] = []


def _patch(owner: Any, name: str, value: Any) -> None:
    _originals.append((owner, name, getattr(owner, name)))
    setattr(owner, name, value)


def _strict_comparison_variable(self: Any, env: Any) -> None:
    """AWS fails a Choice rule whose Variable path is missing (unless the rule is IsPresent)."""
    self.variable.eval(env)
    value = env.stack[-1]
    if (
        isinstance(value, NoSuchVariable)
        and self.comparison_function.operator_type != ComparisonOperatorType.IsPresent
    ):
        path = self.variable.string_sampler.literal_value
        raise FailureEventException(
            failure_event=FailureEvent(
                env=env,
                error_name=StatesErrorName(typ=StatesErrorNameType.StatesRuntime),
                event_type=HistoryEventType.ExecutionFailed,
                event_details=EventDetails(
                    taskFailedEventDetails=TaskFailedEventDetails(
                        error=StatesErrorNameType.StatesRuntime.to_name(),
                        cause=f"Invalid path '{path}': The choice state's condition path "
                        "references an invalid value.",
                    )
                ),
            )
        )
    self.comparison_function.eval(env)


def _named_start_execution(original: Any) -> Any:
    @functools.wraps(original)
    def start_execution(self: Any, state_machine_arn: str, name: str | None = None, *args: Any, **kw: Any):
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kw)

    return start_execution


def _cached_boto_client_for(original: Any) -> Any:
    cache: dict[tuple[str, str, str | None], Any] = {}
    lock = threading.Lock()

    @functools.wraps(original)
    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # A service integration calls AWS with the state machine's role, as on AWS: moto's client
        # signs with a fixed key, so a client of the role's session is made instead when the local
        # stack assumed that role (marketplace_local.roles; D50). One client per role and session.
        from marketplace_local import roles

        session = roles.session_for(getattr(state_credentials, "role_arn", None))
        key = (
            region,
            service,
            getattr(state_credentials, "role_arn", None),
            session and session.access_key_id,
        )
        with lock:
            if key not in cache:
                cache[key] = (
                    original(region=region, service=service, state_credentials=state_credentials)
                    if session is None
                    else _role_client(region, service, session)
                )
            return cache[key]

    boto_client_for.cache = cache  # type: ignore[attr-defined]
    return boto_client_for


def _role_client(region: str, service: str, session: Any) -> Any:
    """moto's integration client (boto_client.boto_client_for: its endpoint and its configuration),
    signed with the role's session."""
    import boto3
    from botocore.config import Config
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

    return boto3.session.Session().client(
        service_name=service,
        region_name=region,
        endpoint_url=f"http://localhost:{moto_server_port()}",
        config=Config(
            parameter_validation=False,
            retries={"max_attempts": 0, "total_max_attempts": 1},
            connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
        ),
        **session.client_arguments(),
    )


def _strict_states_all(self: Any, env: Any) -> None:
    """AWS: ``States.ALL`` matches every error but ``States.Runtime``, which fails the execution."""
    error_name = env.stack[-1]
    if error_name == _STATES_RUNTIME and self._STATE_ALL_ERROR in self.error_names:
        env.stack.pop()
        env.stack.append(error_name in self.error_names)
        return
    _original_error_equals(self, env)


_STATES_RUNTIME = StatesErrorName(typ=StatesErrorNameType.StatesRuntime)
_original_error_equals: Any = None


# ------------------------------------------------------------------------------ mock config
class MockConfigError(Exception):
    """``<arn>#<case>`` names no test case of the MockConfigFile (or none is configured)."""


def load_mock_test_case(state_machine_name: str, test_case_name: str) -> mock_config.MockTestCase:
    """The test case of the MockConfigFile named by ``SFN_MOCK_CONFIG``, built with moto's own
    classes (moto's loader reads a pydantic model that moto does not ship: it returns None).

    Read at every start, so an edited file counts at the next execution. Each start gets its own
    MockTestCase, which carries that execution's response counters."""
    path = os.environ.get(MOCK_CONFIG_ENV)
    if not path:
        raise MockConfigError(
            f"{state_machine_name}#{test_case_name}: set {MOCK_CONFIG_ENV} to the MockConfigFile to run test cases"
        )
    config = json.loads(Path(path).read_text())
    cases = config.get("StateMachines", {}).get(state_machine_name, {}).get("TestCases", {})
    if test_case_name not in cases:
        raise MockConfigError(
            f"{path} has no test case {test_case_name!r} for state machine {state_machine_name!r}"
        )
    states = []
    for state_name, response_name in cases[test_case_name].items():
        if response_name not in config.get("MockedResponses", {}):
            raise MockConfigError(f"{path}: {test_case_name} names the missing response {response_name!r}")
        responses: list[mock_config.MockedResponse] = []
        for key, response in config["MockedResponses"][response_name].items():
            start, end = mock_config._parse_mocked_response_range(key)
            if "Return" in response:
                responses.append(mock_config.MockedResponseReturn(start, end, response["Return"]))
            else:
                throw = response["Throw"]
                responses.append(mock_config.MockedResponseThrow(start, end, throw["Error"], throw["Cause"]))
        states.append(mock_config.StateMockedResponses(state_name, response_name, responses))
    return mock_config.MockTestCase(state_machine_name, test_case_name, states)


_starting = threading.local()  # the test case of the execution this thread is starting


def _mock_config_start_execution(original: Any) -> Any:
    @functools.wraps(original)
    def start_execution(self: Any, state_machine_arn: str, name: str | None = None, *args: Any, **kw: Any):
        base_arn, separator, case = state_machine_arn.partition("#")
        if not separator:
            return original(self, state_machine_arn, name, *args, **kw)
        from moto.stepfunctions.exceptions import InvalidName

        machine = self.describe_state_machine(base_arn)
        try:
            _starting.test_case = load_mock_test_case(machine.name, case)
        except MockConfigError as error:
            raise InvalidName(str(error)) from error
        try:
            return original(self, base_arn, name, *args, **kw)
        finally:
            _starting.test_case = None

    return start_execution


def _worker_with_test_case(original: Any) -> Any:
    @functools.wraps(original)
    def get_start_execution_worker(self: Any) -> Any:
        worker = original(self)
        test_case = getattr(_starting, "test_case", None)
        if test_case is not None:
            self.mock_test_case = worker._mock_test_case = test_case
        return worker

    return get_start_execution_worker


_counter_lock = threading.Lock()


def _mocked_response_per_invocation(self: Any) -> mock_config.MockedResponse:
    """Step Functions Local: the n-th invocation of a state in an execution, whether a retry or a
    new entry, takes response n (moto takes the entry's retry count, so a re-entered state
    starts again at "0")."""
    if not self.is_mocked_mode():
        raise RuntimeError("Cannot retrieve mocked response: execution is not operating in mocked mode")
    state_name, test_case = self.next_state_name, self.mock_test_case
    responses = test_case.state_mocked_responses[state_name].mocked_responses
    with _counter_lock:
        counters = test_case.__dict__.setdefault("invocations", Counter())
        invocation = counters[state_name]
        counters[state_name] += 1
    if invocation >= len(responses):
        raise RuntimeError(
            f"No mocked response for invocation {invocation} of state {state_name!r} "
            f"({test_case.state_machine_name}#{test_case.test_case_name} defines {len(responses)})"
        )
    return responses[invocation]


def _mocked_throw_keeping_states_errors(env: Any, mocked_response: Any) -> None:
    """A mocked ``States.Timeout`` is thrown as that error (moto's CustomErrorName refuses it)."""
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName

    error = mocked_response.error
    try:
        error_name: Any = StatesErrorName.from_name(error)
    except ValueError:
        error_name = CustomErrorName(error)
    raise FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=error_name,
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                taskFailedEventDetails=TaskFailedEventDetails(error=error, cause=mocked_response.cause)
            ),
        )
    )


def _dynamodb_keeps_failure_events(original: Any) -> Any:
    @functools.wraps(original)
    def from_error(self: Any, env: Any, ex: Exception) -> Any:
        if isinstance(ex, FailureEventException):
            return ex.failure_event
        return original(self, env, ex)

    return from_error


def install() -> None:
    """Apply every patch (idempotent)."""
    if _originals:
        return
    from moto.stepfunctions.parser import models as parser_models
    from moto.stepfunctions.parser.asl.component.common.error_name import error_equals_decl
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state import state as state_module
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
    from moto.stepfunctions.parser.asl.eval import environment
    from moto.stepfunctions.parser.asl.eval.callback import callback
    from moto.stepfunctions.parser.asl.utils import boto_client

    _patch(comparison_variable.ComparisonVariable, "_eval_body", _strict_comparison_variable)
    global _original_error_equals
    _original_error_equals = error_equals_decl.ErrorEqualsDecl._eval_body
    _patch(error_equals_decl.ErrorEqualsDecl, "_eval_body", _strict_states_all)
    _install_mock_config_patches()

    time_shim = _ModuleShim(_time, sleep=lambda s: _clock.sleep(s), time=lambda: _clock.now())
    threading_shim = _ModuleShim(threading, Event=ClockEvent)
    _patch(retrier_decl, "time", time_shim)
    _patch(wait_function, "time", time_shim)
    _patch(execute_state, "threading", threading_shim)
    _patch(environment, "threading", threading_shim)
    _patch(callback, "Event", ClockEvent)
    _patch(state_module, "datetime", _ModuleShim(datetime, datetime=AwsDatetime))

    backend_cls = parser_models.StepFunctionsParserBackend
    _patch(backend_cls, "start_execution", _named_start_execution(backend_cls.start_execution))
    _install_task_failure_patch(backend_cls)

    cached = _cached_boto_client_for(boto_client.boto_client_for)
    _patch(boto_client, "boto_client_for", cached)
    # Each service integration imported the function by name: patch every such module.
    for module_name in _MODULES_USING_BOTO_CLIENT_FOR:
        module = importlib.import_module(f"moto.stepfunctions.parser.asl.component.state.exec.{module_name}")
        _patch(module, "boto_client_for", cached)


def install_mock_config_loader() -> None:
    """Only the loader: ``<arn>#<case>`` runs a test case with moto's own mocking engine (install()
    applies it; tests/engine_scenarios.py applies it alone to show the deviations of that engine)."""
    from moto.stepfunctions.parser import models as parser_models
    from moto.stepfunctions.parser.backend import execution

    backend_cls = parser_models.StepFunctionsParserBackend
    _patch(backend_cls, "start_execution", _mock_config_start_execution(backend_cls.start_execution))
    worker = execution.Execution._get_start_execution_worker
    _patch(execution.Execution, "_get_start_execution_worker", _worker_with_test_case(worker))


def _install_mock_config_patches() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import mock_eval_utils
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_dynamodb as dynamodb_task,
    )
    from moto.stepfunctions.parser.asl.eval import environment

    install_mock_config_loader()
    _patch(environment.Environment, "get_current_mocked_response", _mocked_response_per_invocation)
    _patch(mock_eval_utils, "_eval_mocked_response_throw", _mocked_throw_keeping_states_errors)
    task_cls = dynamodb_task.StateTaskServiceDynamoDB
    _patch(task_cls, "_from_error", _dynamodb_keeps_failure_events(task_cls._from_error))


def _install_task_failure_patch(backend_cls: Any) -> None:
    """moto's SendTaskFailure handler drops ``cause`` before it reaches the backend."""
    from moto.stepfunctions import responses

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return responses.EmptyResult()

    _patch(responses.StepFunctionResponse, "send_task_failure", send_task_failure)


def uninstall() -> None:
    """Undo every patch (the tests use it to show each deviation comes back without its fix)."""
    while _originals:
        owner, name, value = _originals.pop()
        setattr(owner, name, value)

"""Makes moto's Step Functions engine behave as AWS does where it does not (each deviation found by trying moto; listed in docs/decisions.md, D5).

Each patch here fixes one deviation found by trying moto 5.2.x, and each has a test in
tests/unit/test_engine.py that fails without it:

* strict Choice: a Choice rule on a missing path fails the execution with ``States.Runtime``
  (moto silently takes the Default);
* a clock the tests can drive: retry intervals, Wait states, TimeoutSeconds and HeartbeatSeconds
  go through :class:`Clock` (moto sleeps in real time);
* named executions: ``StartExecution`` without a name gets a UUID name, as on AWS (moto stores None);
* cached clients: the engine's service integrations reuse one boto3 client per service and region
  (moto builds a new client per task, which costs more than the task itself);
* ``SendTaskFailure`` keeps its ``cause`` (moto drops it);
* ``$$.State.EnteredTime`` has AWS's format, ``2026-11-23T10:00:00.123Z``, and follows the clock
  (moto writes Python's ``isoformat()``, ``...00.123456+00:00``).

moto has no extension points for any of these, so they are patches of named functions; the module
keeps the originals so that :func:`uninstall` restores them. Re-check each after a moto upgrade:
the pin in requirements-local.txt is deliberate.
"""

from __future__ import annotations

import datetime
import functools
import importlib
import threading
import time as _time
import types
import uuid
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
        # One client per role as well: moto's client ignores the role today, but a client made
        # for one execution role is never handed to another.
        key = (region, service, getattr(state_credentials, "role_arn", None))
        with lock:
            if key not in cache:
                cache[key] = original(region=region, service=service, state_credentials=state_credentials)
            return cache[key]

    boto_client_for.cache = cache  # type: ignore[attr-defined]
    return boto_client_for


def install() -> None:
    """Apply every patch (idempotent)."""
    if _originals:
        return
    from moto.stepfunctions.parser import models as parser_models
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state import state as state_module
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
    from moto.stepfunctions.parser.asl.eval import environment
    from moto.stepfunctions.parser.asl.eval.callback import callback
    from moto.stepfunctions.parser.asl.utils import boto_client

    _patch(comparison_variable.ComparisonVariable, "_eval_body", _strict_comparison_variable)

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

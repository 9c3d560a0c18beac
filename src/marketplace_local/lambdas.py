"""Runs the real Lambda handlers in this process, as Lambda would run them.

Every function of template.yaml is registered with its handler, code directory, environment,
timeout and memory. An invocation — from the HTTP API, the stream poller, or moto's Step Functions
engine through moto's Lambda Invoke — imports the handler's module once (a warm container), runs
it with the function's own environment and a Lambda context, and turns an exception into the
``{"errorType", "errorMessage", "stackTrace"}`` payload with the function-error flag set, which
is what ASL ``Retry``/``Catch`` match on.

Each function runs one invocation at a time (one warm container per function): that keeps
module-level state (Powertools logger keys, metrics) as private to an invocation as on AWS.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


class ThreadLocalEnviron(MutableMapping[str, str]):
    """os.environ with a per-thread overlay: a handler sees its own function's environment while
    other functions run in other threads with theirs. Writes go to the real environment."""

    def __init__(self, real: MutableMapping[str, str]) -> None:
        self._real = real
        self._local = threading.local()

    def _overlay(self) -> dict[str, str] | None:
        return getattr(self._local, "overlay", None)

    @contextmanager
    def overlay(self, variables: dict[str, str]) -> Iterator[None]:
        previous = self._overlay()
        self._local.overlay = {**(previous or {}), **variables}
        try:
            yield
        finally:
            self._local.overlay = previous

    def __getitem__(self, key: str) -> str:
        overlay = self._overlay()
        if overlay is not None and key in overlay:
            return overlay[key]
        return self._real[key]

    def __setitem__(self, key: str, value: str) -> None:
        overlay = self._overlay()
        if overlay is not None and key in overlay:
            overlay[key] = value
        else:
            self._real[key] = value

    def __delitem__(self, key: str) -> None:
        overlay = self._overlay()
        if overlay is not None and key in overlay:
            del overlay[key]
        else:
            del self._real[key]

    def __iter__(self) -> Iterator[str]:
        overlay = self._overlay() or {}
        yield from overlay
        yield from (k for k in self._real if k not in overlay)

    def __len__(self) -> int:
        return len(set(self._real) | set(self._overlay() or {}))

    def copy(self) -> dict[str, str]:
        return dict(self)

    # os.environ API that some libraries use
    def setdefault(self, key: str, default: str = "") -> str:  # type: ignore[override]
        if key not in self:
            self[key] = default
        return self[key]


def install_environ() -> ThreadLocalEnviron:
    if not isinstance(os.environ, ThreadLocalEnviron):
        # Replacing the mapping is the point: the overlay wraps, it never clears.
        os.environ = ThreadLocalEnviron(os.environ)  # type: ignore[assignment]  # noqa: B003
    return os.environ  # type: ignore[return-value]


@dataclass
class LambdaContext:
    """The context object Lambda passes to a handler (the attributes Powertools reads)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    timeout_seconds: int
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: int = 3
    memory: int = 128
    # LoggingConfig: LogFormat, ApplicationLogLevel, SystemLogLevel (Lambda's defaults: Text, INFO, INFO)
    log_config: dict[str, str] = field(default_factory=dict)
    module: ModuleType | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    invocations: int = 0


@dataclass
class InvocationResult:
    payload: str
    errored: bool
    duration_ms: float

    def json(self) -> Any:
        return json.loads(self.payload)


class LambdaError(Exception):
    """A Lambda invocation ended in a function error; carries AWS's error payload."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(f"{payload.get('errorType')}: {payload.get('errorMessage')}")
        self.payload = payload


# A fault injector may raise an exception (it then surfaces as the function's error) before a
# handler runs. The fault-injection issue plugs in here; nothing is registered by default.
Interceptor = Callable[[FunctionSpec, Any], None]


class LambdaRuntime:
    def __init__(self, base_environment: dict[str, str]) -> None:
        self.functions: dict[str, FunctionSpec] = {}
        self.base_environment = dict(base_environment)
        self.interceptors: list[Interceptor] = []
        self.environ = install_environ()

    def register(self, spec: FunctionSpec) -> None:
        self.functions[spec.name] = spec

    def by_logical_id(self, logical_id: str) -> FunctionSpec:
        for spec in self.functions.values():
            if spec.logical_id == logical_id:
                return spec
        raise KeyError(logical_id)

    def _environment(self, spec: FunctionSpec) -> dict[str, str]:
        # With JSON logs Lambda tells the runtime the format and the application log level, and
        # Powertools' Logger takes that level over its own (POWERTOOLS_LOG_LEVEL).
        log_controls = (
            {"AWS_LAMBDA_LOG_FORMAT": "JSON",
             "AWS_LAMBDA_LOG_LEVEL": spec.log_config.get("ApplicationLogLevel", "INFO").upper()}
            if spec.log_config.get("LogFormat") == "JSON" else {}
        )  # fmt: skip
        return {
            **self.base_environment,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            **log_controls,
            "_HANDLER": spec.handler,
            **spec.environment,
        }

    def _load(self, spec: FunctionSpec) -> Callable[[Any, Any], Any]:
        module_path, _, attr = spec.handler.rpartition(".")
        if spec.module is None:
            file = spec.code_dir / (module_path.replace(".", "/") + ".py")
            module_name = f"_lambda_{spec.logical_id}_{module_path.replace('.', '_')}"
            module_spec = importlib.util.spec_from_file_location(module_name, file)
            if module_spec is None or module_spec.loader is None:
                raise ImportError(f"cannot load handler module {file}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            # Lambda puts the function's code directory on sys.path: a handler may import the
            # modules beside it (functions/api/app.py includes its routers that way).
            sys.path.insert(0, str(spec.code_dir))
            try:
                module_spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(spec.code_dir))
            isolate_metrics(module)
            spec.module = module
        return getattr(spec.module, attr)

    def invoke(self, function_name: str, event: Any) -> InvocationResult:
        """Invoke synchronously; never raises for a handler's error (see ``errored``)."""
        name = function_name.rsplit(":", 1)[-1] if function_name.startswith("arn:") else function_name
        spec = self.functions.get(name)
        if spec is None:
            payload = {
                "errorType": "ResourceNotFoundException",
                "errorMessage": f"Function not found: {name}",
            }
            return InvocationResult(json.dumps(payload), True, 0.0)
        request_id = str(uuid.uuid4())
        with spec.lock, self.environ.overlay(self._environment(spec)):
            # The timeout counts from here: waiting for this function's one warm container is a
            # local artefact (Lambda would run the invocations side by side), not the handler's time.
            started = time.perf_counter()
            spec.invocations += 1
            context = LambdaContext(
                function_name=spec.name,
                function_version="$LATEST",
                invoked_function_arn=spec.arn,
                memory_limit_in_mb=spec.memory,
                aws_request_id=request_id,
                log_group_name=f"/aws/lambda/{spec.name}",
                log_stream_name=f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
                timeout_seconds=spec.timeout,
            )
            try:
                for interceptor in self.interceptors:
                    interceptor(spec, event)
                handler = self._load(spec)
                result = handler(event, context)
                payload, errored = json.dumps(result), False
            except Exception as exc:
                payload, errored = json.dumps(error_payload(exc)), True
        duration = time.perf_counter() - started
        if duration > spec.timeout:
            # Lambda would have stopped the handler at its timeout; report what AWS reports.
            message = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ')} {request_id} Task timed out after {spec.timeout:.2f} seconds"
            payload, errored = json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": message}), True
        return InvocationResult(payload, errored, duration * 1000)

    def invoke_or_raise(self, function_name: str, event: Any) -> Any:
        result = self.invoke(function_name, event)
        if result.errored:
            raise LambdaError(result.json())
        return result.json()

    def install_moto_hook(self) -> None:
        """Route moto's Lambda Invoke (used by the Step Functions engine and by boto3 clients
        pointed at the moto server) to this runtime."""
        from moto.awslambda.models import LambdaFunction

        runtime = self

        def _invoke_lambda(fn: Any, event: Any = None) -> tuple[str, bool, str]:
            if isinstance(event, str | bytes):
                event = json.loads(event or "{}")
            result = runtime.invoke(fn.function_name, event if event is not None else {})
            return result.payload, result.errored, ""

        LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]


def error_payload(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc)[1:],
    }


def isolate_metrics(module: ModuleType) -> None:
    """Give each Powertools ``Metrics`` of a handler module sets of its own.

    Powertools keeps the metric, dimension and metadata sets at class level: on Lambda one process is
    one function, so that is harmless. Here every function shares one process, and one function's
    flush could publish or clear another's metrics, or find metrics, lose them to another thread's
    clear, and then fail with ``SchemaValidationError: Must contain at least one metric``. Each
    function's invocations are serialised by its lock, so private sets make flushes independent."""
    from aws_lambda_powertools import Metrics

    for value in list(vars(module).values()):
        if isinstance(value, Metrics):
            metric_set: dict[str, Any] = {}
            dimension_set: dict[str, str] = dict(value.provider.default_dimensions)
            metadata_set: dict[str, Any] = {}
            sets = (metric_set, dimension_set, metadata_set)
            for holder in (value, value.provider):
                holder.metric_set, holder.dimension_set, holder.metadata_set = sets

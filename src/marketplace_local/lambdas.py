"""Runs the real Lambda handlers in this process, as Lambda would run them.

Every function of template.yaml is registered with its handler, code directory, environment,
timeout and memory. An invocation — from the HTTP API, the stream poller, or moto's Step Functions
engine through moto's Lambda Invoke — imports the handler's module once (a warm container), runs
it with the function's own environment and a Lambda context, and turns an exception into the
``{"errorType", "errorMessage", "stackTrace"}`` payload with the function-error flag set, which
is what ASL ``Retry``/``Catch`` match on.

Each function has a pool of warm instances, as Lambda has execution environments: an invocation
takes an idle instance, or starts a new one (a cold start) while the pool is below its size, so a
function runs as many invocations at once as it has instances. The size is the function's
``ReservedConcurrentExecutions`` when the template sets it (then an invocation finding every instance
busy is throttled, as Lambda throttles it), else ``MARKETPLACE_LAMBDA_CONCURRENCY`` (default 4; an
invocation finding every instance busy waits for one: Lambda would start another environment).
An instance is its own import of the handler module, the modules beside it and the function's
layer packages, so module-level state (Powertools objects, boto3 clients, caches, a router's current
event) is private to the instance as it is to a Lambda execution environment.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import logging
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


def _without_event_loop(
    handler: Callable[[Any, Any], Any],
    event: Any,
    context: Any,
    environ: ThreadLocalEnviron,
    variables: dict[str, str],
) -> Any:
    """``handler(event, context)`` as Lambda calls it, with no asyncio event loop running: a
    handler may ``asyncio.run`` (Powertools' AsyncBatchProcessor does). A caller whose thread runs a
    loop (a browser test's driver, an async test) has it call from a thread of its own, with the
    function's environment."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return handler(event, context)
    outcome: dict[str, Any] = {}

    def run() -> None:
        with environ.overlay(variables):
            try:
                outcome["result"] = handler(event, context)
            except BaseException as exc:  # re-raised in the caller's thread
                outcome["error"] = exc

    thread = threading.Thread(target=run, name="lambda-handler")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


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


# The pool size of a function whose template sets no reserved concurrency.
CONCURRENCY_VARIABLE = "MARKETPLACE_LAMBDA_CONCURRENCY"
DEFAULT_CONCURRENCY = 4
THROTTLED = "TooManyRequestsException"


def default_concurrency() -> int:
    text = os.environ.get(CONCURRENCY_VARIABLE, str(DEFAULT_CONCURRENCY))
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise ValueError(f"{CONCURRENCY_VARIABLE} must be a whole number of at least 1, not {text!r}")
    return int(text)


@dataclass
class Instance:
    """One warm execution environment: the function's own import of its handler module and of
    every module under its code and layer directories."""

    index: int
    main: ModuleType
    modules: dict[str, ModuleType]


class Peak:
    """The most invocations of one function in flight at once while it is watched."""

    def __init__(self, now: int) -> None:
        self.value = now


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
    # ReservedConcurrentExecutions: the pool's size, and invocations beyond it are throttled.
    reserved_concurrency: int | None = None
    # The function's layers' local directories: their packages are imported once per instance.
    layer_dirs: tuple[Path, ...] = ()
    # The execution role, and the session of it that Lambda puts in the function's environment
    # (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: marketplace_local.roles).
    role_arn: str = ""
    credentials: dict[str, str] = field(default_factory=dict)
    invocations: int = 0
    throttles: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    waiting: int = 0  # invocations waiting for an instance
    instances: list[Instance] = field(default_factory=list)
    _idle: list[Instance] = field(default_factory=list)
    _starting: int = 0
    _started: int = 0
    _size: int | None = None
    _peaks: list[Peak] = field(default_factory=list)
    _patches: list[Callable[[Instance], None]] = field(default_factory=list)
    _condition: threading.Condition = field(default_factory=threading.Condition)

    @property
    def size(self) -> int:
        """How many instances the pool may hold."""
        if self._size is None:
            self._size = (
                self.reserved_concurrency if self.reserved_concurrency is not None else default_concurrency()
            )
        return self._size

    @property
    def module(self) -> ModuleType | None:
        """The first instance's handler module (None before the first invocation)."""
        return self.instances[0].main if self.instances else None

    @contextmanager
    def watch(self) -> Iterator[Peak]:
        """Yields a :class:`Peak` that follows how many invocations run at once inside the block."""
        with self._condition:
            peak = Peak(self.in_flight)
            self._peaks.append(peak)
        try:
            yield peak
        finally:
            with self._condition:
                self._peaks.remove(peak)


@dataclass
class InvocationResult:
    payload: str
    errored: bool
    duration_ms: float
    # Lambda refused the invocation: the function's reserved concurrency was in use.
    throttled: bool = False

    def json(self) -> Any:
        return json.loads(self.payload)


class LambdaError(Exception):
    """A Lambda invocation ended in a function error; carries AWS's error payload."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(f"{payload.get('errorType')}: {payload.get('errorMessage')}")
        self.payload = payload


class _ModuleSwap:
    """Instances start one at a time, each taking the function's modules out of ``sys.modules``
    while it imports its own copies; meanwhile no other thread may import one of those modules.

    ``sys.modules`` is one dict for the whole process, and the process imports the layer's modules
    too (a test's ``from marketplace.orders import refund`` while the stack it shares starts an
    instance): a thread whose import ran across a swap lost its half-made module (a dataclass then
    failed, as its module was not in ``sys.modules``). So ``import`` statements naming one of the
    functions' top-level modules take a shared hold for the whole import, a swap waits until none is
    held and holds the swap alone (an import not begun yet waits for a swap waiting: else imports
    in a loop could hold off an instance start for ever). Python has no hook around an import but ``builtins.__import__``,
    which every ``import`` statement calls; no library offers this, hence the hand-written lock."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._importing = 0  # threads inside an import of a function's module
        self._swapping: int | None = None  # the thread starting an instance
        self._waiting = 0  # threads waiting to start one: an import not begun yet waits for them
        self._depth = threading.local()
        self.names: set[str] = set()  # top-level modules and packages of the functions' directories
        self._original: Callable[..., ModuleType] | None = None

    def install(self) -> None:
        import builtins

        with self._changed:
            if self._original is None:
                self._original = builtins.__import__
                builtins.__import__ = self._import

    def _import(
        self, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> ModuleType:
        assert self._original is not None
        top = (name if level == 0 else (globals or {}).get("__package__") or "").partition(".")[0]
        if top not in self.names or self._swapping == threading.get_ident():
            return self._original(name, globals, locals, fromlist, level)
        with self.importing():
            return self._original(name, globals, locals, fromlist, level)

    @contextmanager
    def importing(self) -> Iterator[None]:
        depth = getattr(self._depth, "value", 0)
        if not depth:
            with self._changed:
                self._changed.wait_for(lambda: self._swapping is None and not self._waiting)
                self._importing += 1
        self._depth.value = depth + 1
        try:
            yield
        finally:
            self._depth.value = depth
            if not depth:
                with self._changed:
                    self._importing -= 1
                    self._changed.notify_all()

    @contextmanager
    def swapping(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._swapping == me:  # an instance starting another while it imports
            yield
            return
        with self._changed:
            self._waiting += 1
            self._changed.wait_for(lambda: self._swapping is None and not self._importing)
            self._waiting -= 1
            self._swapping = me
        try:
            yield
        finally:
            with self._changed:
                self._swapping = None
                self._changed.notify_all()


_SWAP = _ModuleSwap()


def _top_level_names(directory: Path) -> set[str]:
    return {p.stem if p.suffix == ".py" else p.name for p in directory.iterdir()
            if p.suffix == ".py" or (p.is_dir() and not p.name.startswith((".", "__")))}  # fmt: skip


def _is_under(module: ModuleType | None, directories: tuple[str, ...]) -> bool:
    file = getattr(module, "__file__", None)
    return isinstance(file, str) and _real_path(file).startswith(directories)


@functools.cache
def _real_path(file: str) -> str:
    # Every module's file is resolved at each instance start: cached, as files do not move.
    return os.path.realpath(file)


_starting_instance = threading.local()


def _instance_loggers() -> None:
    """Give the Powertools ``Logger`` objects an instance creates a standard library logger of the
    instance's own (idempotent).

    Powertools names the standard library logger after the service and keeps the logger's keys (the
    request id, cold start and correlation id that ``inject_lambda_context`` appends) in that logger's
    handler; a second ``Logger`` of the same service reuses the first's handler. On Lambda only one
    execution environment lives in a process; here the instances of a function share one, and their
    invocations running at once would write each other's request id. While an instance imports, its
    ``Logger`` objects get ``<service>#<instance>`` instead (``<service>#<instance>.<module>`` for a
    child): nothing a formatter prints comes from that name. Outside an instance's import, Powertools'
    own naming is unchanged."""
    from aws_lambda_powertools.logging import logger as powertools

    original = powertools.Logger._get_logger
    if getattr(original, "__wrapped__", None) is not None:
        return

    def _get_logger(self: Any) -> logging.Logger:
        tag = getattr(_starting_instance, "tag", None)
        if tag is None:
            return original(self)
        name = f"{self.service}#{tag}"
        if self.child:
            # called from here as Powertools calls it from its own _get_logger: the same frames up
            name = f"{name}.{powertools._get_caller_filename()}"
        return logging.getLogger(name)

    _get_logger.__wrapped__ = original  # type: ignore[attr-defined]
    powertools.Logger._get_logger = _get_logger  # type: ignore[method-assign]


class _PerThread:
    """A class attribute each thread reads and writes on its own: one data descriptor, placed both on
    the class (for ``instance.attr``) and on its metaclass (for ``Class.attr = value``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._local = threading.local()

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        try:
            return self._local.value
        except AttributeError:
            raise AttributeError(self.name) from None

    def __set__(self, obj: Any, value: Any) -> None:
        self._local.value = value


def _per_thread_router_event() -> None:
    """Make Powertools' ``BaseRouter.current_event`` and ``BaseRouter.lambda_context`` per thread
    (idempotent).

    The REST resolver keeps the event it resolves on the class (``BaseRouter.current_event = ...``),
    so that split routers see it. On Lambda one process is one execution environment and runs one
    request at a time; here the API function's instances share a process, and a request running
    beside another read the other's body and headers (an order validated against a stock
    adjustment's body; an Idempotency-Key "still in progress" that was another request's). An
    instance runs an invocation in one thread, so a per-thread value is the execution environment's
    own. Powertools has no setting for this, hence the descriptor."""
    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

    if isinstance(BaseRouter.__dict__.get("current_event"), _PerThread):
        return
    slots = {name: _PerThread(name) for name in ("current_event", "lambda_context")}
    for name, slot in slots.items():  # in the class's own dict, while its metaclass is still plain
        setattr(BaseRouter, name, slot)
    BaseRouter.__class__ = type("PerThreadRouterMeta", (type(BaseRouter),), dict(slots))


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
        _ = spec.size  # a bad MARKETPLACE_LAMBDA_CONCURRENCY stops the stack now, with the reason
        for directory in (spec.code_dir, *spec.layer_dirs):
            _SWAP.names |= _top_level_names(directory)
        _SWAP.install()
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
            **spec.credentials,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            **log_controls,
            "_HANDLER": spec.handler,
            **spec.environment,
        }

    def _start_instance(self, spec: FunctionSpec, index: int) -> Instance:
        """Import the handler module afresh, with fresh copies of the modules beside it and of the
        layers' packages, as a new execution environment would.

        Python keeps one module per name (``sys.modules``), and the handler's ``import routes`` or
        ``from marketplace import ...`` would find the modules another instance imported. So, under
        one import lock (:class:`_ModuleSwap`), the modules from the function's code and layer directories are taken out of
        ``sys.modules``, the handler is imported (which imports its own copies), those copies are
        kept with the instance and the previous modules are put back. Later, each instance's code
        reaches its own copies through its module globals. Third-party packages (Powertools,
        boto3) are imported once per process; their objects that the instance creates are its own,
        and what Powertools keeps per process is made per instance (loggers, metrics, the event a
        resolver resolves)."""
        module_path, _, _ = spec.handler.rpartition(".")
        file = spec.code_dir / (module_path.replace(".", "/") + ".py")
        module_name = f"_lambda_{spec.logical_id}_{index}_{module_path.replace('.', '_')}"
        private = tuple(os.path.realpath(d) + os.sep for d in (spec.code_dir, *spec.layer_dirs))
        with _SWAP.swapping():
            module_spec = importlib.util.spec_from_file_location(module_name, file)
            if module_spec is None or module_spec.loader is None:
                raise ImportError(f"cannot load handler module {file}")
            module = importlib.util.module_from_spec(module_spec)
            previous = {name: m for name, m in list(sys.modules.items()) if _is_under(m, private)}
            for name in previous:
                del sys.modules[name]
            sys.modules[module_name] = module
            # Lambda puts the function's code directory on sys.path: a handler may import the
            # modules beside it (functions/api/app.py includes its routers that way).
            sys.path.insert(0, str(spec.code_dir))
            _instance_loggers()
            _per_thread_router_event()
            _starting_instance.tag = f"{spec.logical_id}-{index}"
            try:
                module_spec.loader.exec_module(module)
            finally:
                _starting_instance.tag = None
                sys.path.remove(str(spec.code_dir))
                own = {name: m for name, m in list(sys.modules.items()) if _is_under(m, private)}
                for name in own:
                    del sys.modules[name]
                sys.modules.update(previous)
        for each in own.values():
            isolate_metrics(each)
        return Instance(index=index, main=module, modules=own)

    def _acquire(self, spec: FunctionSpec) -> Instance | None:
        with self.environ.overlay(self._environment(spec)):  # a new instance imports with it (init)
            return self._acquire_instance(spec)

    def _acquire_instance(self, spec: FunctionSpec) -> Instance | None:
        """An idle instance, a new one while the pool has room, or (every instance busy) None when
        the function's reserved concurrency is in use; else wait for one to finish."""
        with spec._condition:
            while not spec._idle and len(spec.instances) + spec._starting >= spec.size:
                if spec.reserved_concurrency is not None:
                    spec.throttles += 1
                    return None
                spec.waiting += 1
                try:
                    spec._condition.wait()
                finally:
                    spec.waiting -= 1
            instance = spec._idle.pop() if spec._idle else None
            if instance is None:
                spec._starting += 1
                index = spec._started
                spec._started += 1
            spec.invocations += 1
            spec.in_flight += 1
            spec.max_in_flight = max(spec.max_in_flight, spec.in_flight)
            for peak in spec._peaks:
                peak.value = max(peak.value, spec.in_flight)
        if instance is not None:
            return instance
        try:
            instance = self._start_instance(spec, index)
        except BaseException:
            with spec._condition:
                spec._starting -= 1
                spec.in_flight -= 1
                spec._condition.notify()
            raise
        with spec._condition:
            spec._starting -= 1
            for patch in spec._patches:
                patch(instance)
            spec.instances.append(instance)
        return instance

    @contextmanager
    def patched(
        self, logical_id: str, module: str, attribute: str, make: Callable[[Any], Any]
    ) -> Iterator[None]:
        """For the block, ``attribute`` (a dotted path) of ``module`` is ``make(original)`` in every
        instance of the function, those running and those that start meanwhile; then restored.

        A test's seam into the handlers: an instance has its own copy of the layer's modules, so a
        test patching the copy it imported itself no longer reaches them (nor could it on Lambda)."""
        spec = self.by_logical_id(logical_id)
        applied: list[tuple[Any, str, Any]] = []

        def patch(instance: Instance) -> None:
            *path, name = attribute.split(".")
            owner: Any = instance.modules[module]
            for part in path:
                owner = getattr(owner, part)
            original = owner.__dict__.get(name, getattr(owner, name))
            setattr(owner, name, make(getattr(owner, name)))
            applied.append((owner, name, original))

        with spec._condition:
            spec._patches.append(patch)
            for instance in spec.instances:
                patch(instance)
        try:
            yield
        finally:
            with spec._condition:
                spec._patches.remove(patch)
                for owner, name, original in reversed(applied):
                    setattr(owner, name, original)

    def _release(self, spec: FunctionSpec, instance: Instance) -> None:
        with spec._condition:
            spec._idle.append(instance)
            spec.in_flight -= 1
            spec._condition.notify()

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
        try:
            instance = self._acquire(spec)
        except Exception as exc:  # the handler module failed to import: Lambda's Runtime.ImportModuleError
            return InvocationResult(json.dumps(error_payload(exc)), True, 0.0)
        if instance is None:
            payload = {"errorType": THROTTLED, "errorMessage": "Rate Exceeded.",
                       "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}  # fmt: skip
            return InvocationResult(json.dumps(payload), True, 0.0, throttled=True)
        try:
            with self.environ.overlay(self._environment(spec)):
                # The timeout counts from here: waiting for an instance of a function without reserved
                # concurrency is a local artefact (Lambda would start another), not the handler's time.
                started = time.perf_counter()
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
                    _, _, attr = spec.handler.rpartition(".")
                    handler = getattr(instance.main, attr)
                    result = _without_event_loop(
                        handler, event, context, self.environ, self._environment(spec)
                    )
                    payload, errored = json.dumps(result), False
                except Exception as exc:
                    payload, errored = json.dumps(error_payload(exc)), True
        finally:
            self._release(spec, instance)
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

        from moto.core.exceptions import JsonRESTError

        class TooManyRequestsException(JsonRESTError):
            # Lambda answers Invoke with HTTP 429 when the reserved concurrency is in use: boto3
            # raises it, and Step Functions reports it as Lambda.TooManyRequestsException.
            code = 429

            def __init__(self) -> None:
                super().__init__(THROTTLED, "Rate Exceeded.")

        def _invoke_lambda(fn: Any, event: Any = None) -> tuple[str, bool, str]:
            if isinstance(event, str | bytes):
                event = json.loads(event or "{}")
            result = runtime.invoke(fn.function_name, event if event is not None else {})
            if result.throttled:
                raise TooManyRequestsException()
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
    one execution environment, so that is harmless. Here every function and every instance shares one
    process, and one instance's flush could publish or clear another's metrics, or find metrics, lose
    them to another thread's clear, and then fail with ``SchemaValidationError: Must contain at least
    one metric``. An instance runs one invocation at a time, so private sets make flushes independent."""
    from aws_lambda_powertools import Metrics

    for value in list(vars(module).values()):
        if isinstance(value, Metrics) and not getattr(value, "_local_isolated", False):
            metric_set: dict[str, Any] = {}
            dimension_set: dict[str, str] = dict(value.provider.default_dimensions)
            metadata_set: dict[str, Any] = {}
            sets = (metric_set, dimension_set, metadata_set)
            for holder in (value, value.provider):
                holder.metric_set, holder.dimension_set, holder.metadata_set = sets
            value._local_isolated = True  # type: ignore[attr-defined]

"""Fault injection for the local stack: what the fault tests and ``make faults`` switch on.

Off unless configured: a :class:`FaultConfig` in ``StackConfig.faults``, or the environment variable
``MARKETPLACE_FAULTS`` holding the same settings as a JSON object for ``marketplace run``::

    MARKETPLACE_FAULTS='{"transient": 0.2, "throttle": 0.05, "duplicate": 0.05, "crash": 0.05, "seed": 7}'

Nothing here touches a Lambda handler, the layer or the state machines: faults enter through the
local stack's own seams, where AWS would produce them.

* ``transient`` / ``throttle``: that fraction of Lambda invocations fails before the handler runs,
  with the error the Lambda service itself returns: ``ServiceException`` (HTTP 500) and
  ``TooManyRequestsException`` (HTTP 429). Step Functions reports them to the state machine as
  ``Lambda.ServiceException`` and ``Lambda.TooManyRequestsException`` (what the ASL ``Retry`` blocks
  match); an event source mapping sees a failed invocation and retries, bisects, and finally sends
  the batch to its on-failure destination, as the real mapping does. API Gateway's synchronous
  invocations are spared unless ``api`` is true (the caller would get a 502 instead of a retry).
* ``duplicate``: that fraction of stream and SQS batches is delivered twice (streams and SQS are
  at-least-once).
* ``crash``: that fraction of stream batches of two records or more is "crashed" mid-batch: the
  function handles the first part of the batch for real, then its runtime dies
  (``Runtime.ExitError``), so the mapping must deliver the whole batch again.
* ``webhook_down``: ``[start, seconds]``: a webhook receiver (:class:`WebhookReceiver`) stops
  listening ``start`` seconds after it starts, for ``seconds``.
* ``seed``: the random generator's seed, so a run can be repeated;
* scope: ``only_matching``: inject only into invocations whose event mentions this string (tests
  scope faults to their own tenant on a shared stack); ``functions``: only into these functions
  (names); ``budget``: at most this many faults in all, then none.

Each injected fault is counted in :attr:`FaultInjector.injected` (by kind) and
:attr:`FaultInjector.by_function`.
"""

from __future__ import annotations

import hmac
import http.server
import json
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from marketplace import webhooks
from marketplace_local.lambdas import FunctionSpec, InvocationResult

ENV_VARIABLE = "MARKETPLACE_FAULTS"

# The Lambda service's own error codes (Invoke API), and the runtime's on a crashed process.
SERVICE_EXCEPTION = "ServiceException"
THROTTLED = "TooManyRequestsException"
RUNTIME_EXIT = "Runtime.ExitError"

KINDS = ("transient", "throttle", "duplicate_stream", "duplicate_queue", "crash", "webhook_down")


@dataclass(frozen=True)
class FaultConfig:
    transient: float = 0.0
    throttle: float = 0.0
    duplicate: float = 0.0
    crash: float = 0.0
    webhook_down: tuple[float, float] | None = None
    seed: int = 0
    api: bool = False
    only_matching: str | None = None
    functions: tuple[str, ...] | None = None
    budget: int | None = None

    def __post_init__(self) -> None:
        errors = []
        for name in ("transient", "throttle", "duplicate", "crash"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                errors.append(f"{name} must be a fraction from 0 to 1, not {value!r}")
        if self.transient + self.throttle > 1:
            errors.append("transient + throttle must not exceed 1")
        if self.webhook_down is not None:
            window = self.webhook_down
            if (
                not isinstance(window, list | tuple)
                or len(window) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in window)
            ):
                errors.append(f"webhook_down must be [start seconds, duration seconds], not {window!r}")
            else:
                object.__setattr__(self, "webhook_down", (float(window[0]), float(window[1])))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            errors.append(f"seed must be an integer, not {self.seed!r}")
        if not isinstance(self.api, bool):
            errors.append(f"api must be true or false, not {self.api!r}")
        if self.only_matching is not None and (
            not isinstance(self.only_matching, str) or not self.only_matching
        ):
            errors.append("only_matching must be a non-empty string")
        if self.functions is not None:
            if not isinstance(self.functions, list | tuple) or not all(
                isinstance(f, str) and f for f in self.functions
            ):
                errors.append("functions must be a list of function names")
            else:
                object.__setattr__(self, "functions", tuple(self.functions))
        if self.budget is not None and (
            isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 0
        ):
            errors.append(f"budget must be a whole number of faults, not {self.budget!r}")
        if errors:
            raise ValueError("fault configuration: " + "; ".join(errors))

    @classmethod
    def from_json(cls, text: str) -> FaultConfig:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"fault configuration: not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("fault configuration: must be a JSON object")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"fault configuration: unknown settings {unknown}")
        return cls(**data)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> FaultConfig | None:
        """The configuration in ``MARKETPLACE_FAULTS``, or None (no faults) when it is unset or empty."""
        text = (environ if environ is not None else os.environ).get(ENV_VARIABLE, "").strip()
        return cls.from_json(text) if text else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class InjectedFault(Exception):
    """Base of the injected errors; the class name is the Lambda ``errorType``."""


def _error_class(name: str) -> type[InjectedFault]:
    # The error type travels as the exception's class name (marketplace_local.lambdas.error_payload);
    # Step Functions' names for Lambda service errors carry a dot, which a class statement cannot.
    return type(name, (InjectedFault,), {})


_STATES_ERRORS = {
    "transient": _error_class(f"Lambda.{SERVICE_EXCEPTION}"),
    "throttle": _error_class(f"Lambda.{THROTTLED}"),
}


class FaultInjector:
    """Decides, with a seeded generator, which invocations and deliveries fail, and counts them."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)
        self._lock = threading.Lock()
        self._local = threading.local()
        self.injected: Counter[str] = Counter()
        self.by_function: Counter[tuple[str, str]] = Counter()
        self._installed: list[tuple[Any, Any]] = []
        self._reserved = 0  # faults decided but not yet counted (the budget)

    # ------------------------------------------------------------------ decisions
    def _roll(self, fraction: float) -> bool:
        if fraction <= 0:
            return False
        with self._lock:
            return self._random.random() < fraction

    def _spend(self) -> bool:
        """True if the budget allows one more fault (and takes it)."""
        with self._lock:
            if self.config.budget is None:
                return True
            if sum(self.injected.values()) + self._reserved >= self.config.budget:
                return False
            self._reserved += 1
            return True

    def _count(self, kind: str, function_name: str) -> None:
        with self._lock:
            if self.config.budget is not None and self._reserved:
                self._reserved -= 1
            self.injected[kind] += 1
            self.by_function[(kind, function_name)] += 1

    def _in_scope(self, event: Any, function_name: str) -> bool:
        if self.config.functions is not None and function_name not in self.config.functions:
            return False
        if self.config.only_matching is None:
            return True
        return self.config.only_matching in json.dumps(event, default=str)

    def _failure(self, function_name: str, event: Any) -> str | None:
        """ "transient", "throttle" or None for one invocation."""
        if not self._in_scope(event, function_name):
            return None
        with self._lock:
            draw = self._random.random()
        if draw < self.config.transient:
            kind = "transient"
        elif draw < self.config.transient + self.config.throttle:
            kind = "throttle"
        else:
            return None
        if not self._spend():
            return None
        self._count(kind, function_name)
        return kind

    # ------------------------------------------------------------------ seams
    def intercept(self, spec: FunctionSpec, event: Any) -> None:
        """A :class:`marketplace_local.lambdas.Interceptor`: fails an invocation before its handler runs.
        Invocations made by an event source mapping are decided in :meth:`deliveries` instead."""
        if getattr(self._local, "mapping", False):
            return
        if (
            not self.config.api
            and isinstance(event, dict)
            and "httpMethod" in event
            and "requestContext" in event
        ):
            return
        kind = self._failure(spec.name, event)
        if kind is not None:
            raise _STATES_ERRORS[kind](
                f"injected fault: {'Rate Exceeded.' if kind == 'throttle' else 'Service unavailable.'}"
            )

    def deliveries(
        self, source: str, invoke: Callable[[str, Any], InvocationResult]
    ) -> Callable[[str, Any], InvocationResult]:
        """Wraps an event source mapping's invoke (``source``: "stream" or "queue") with the faults of
        a mapping: service errors and throttles, duplicate batches, and crashes mid-batch."""

        def faulty(function_name: str, event: Any) -> InvocationResult:
            self._local.mapping = True
            try:
                return self._deliver(source, invoke, function_name, event)
            finally:
                self._local.mapping = False

        faulty.__wrapped__ = invoke  # type: ignore[attr-defined]
        return faulty

    def _deliver(self, source: str, invoke: Callable[[str, Any], InvocationResult], function_name: str,
                 event: Any) -> InvocationResult:  # fmt: skip
        kind = self._failure(function_name, event)
        if kind is not None:
            code = SERVICE_EXCEPTION if kind == "transient" else THROTTLED
            return _errored(code, f"injected fault: {code}")
        records = event.get("Records", []) if isinstance(event, dict) else []
        in_scope = self._in_scope(event, function_name)
        if (
            source == "stream"
            and len(records) >= 2
            and in_scope
            and self._roll(self.config.crash)
            and self._spend()
        ):
            with self._lock:
                handled = self._random.randint(1, len(records) - 1)
            invoke(function_name, {**event, "Records": records[:handled]})
            self._count("crash", function_name)
            return _errored(RUNTIME_EXIT, f"RequestId: {uuid.uuid4()} Error: Runtime exited with error: signal: killed "
                                          f"(injected crash after {handled} of {len(records)} records)")  # fmt: skip
        result = invoke(function_name, event)
        if in_scope and self._roll(self.config.duplicate) and self._spend():
            self._count(f"duplicate_{source}", function_name)
            again = invoke(function_name, event)
            if not result.errored:
                result = again
        return result

    # ------------------------------------------------------------------ installing
    def install(self, stack: Any) -> FaultInjector:
        """Plug into a started :class:`marketplace_local.stack.LocalStack`: the runtime's interceptors and
        every poller's invoke. :meth:`uninstall` undoes it (tests on a shared stack)."""
        stack.runtime.interceptors.append(self.intercept)
        for poller in stack.pollers:
            source = "queue" if poller.kind == "queue-poller" else "stream"
            self._installed.append((poller, poller.invoke))
            poller.invoke = self.deliveries(source, poller.invoke)
        self._runtime = stack.runtime
        return self

    def uninstall(self) -> None:
        runtime = getattr(self, "_runtime", None)
        if runtime is not None and self.intercept in runtime.interceptors:
            runtime.interceptors.remove(self.intercept)
        for poller, invoke in self._installed:
            poller.invoke = invoke
        self._installed.clear()

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "injected": {kind: self.injected.get(kind, 0) for kind in KINDS},
                "byFunction": {f"{kind}:{name}": n for (kind, name), n in sorted(self.by_function.items())},
            }


def _errored(error_type: str, message: str) -> InvocationResult:
    return InvocationResult(json.dumps({"errorType": error_type, "errorMessage": message}), True, 0.0)


# ---------------------------------------------------------------------------------- webhook receiver
class WebhookReceiver:
    """A supplier's webhook endpoint on loopback that can be down for a while.

    Records every POST (delivery id, event, event id, supplier order, whether the signature matched
    the supplier's secret). While down it does not listen at all: the delivery function sees
    "connection refused", as with a receiver whose server is off. ``down_window`` is
    ``(start, seconds)`` after :meth:`start`; :meth:`go_down`/:meth:`come_up` do it by hand.
    """

    def __init__(self, down_window: tuple[float, float] | None = None, host: str = "127.0.0.1",
                 injector: FaultInjector | None = None) -> None:  # fmt: skip
        self.host = host
        self.injector = injector
        self.down_window = down_window
        self.secrets: dict[str, str] = {}  # supplier id -> signing secret
        self.requests: list[dict[str, Any]] = []
        self.refused_while_down = 0
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self.port = 0
        self.down_since: float | None = None
        self.downtime: list[tuple[float, float]] = []
        self._timer: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hooks/marketplace"

    def start(self, window: bool = True) -> WebhookReceiver:
        """Listen; and begin the down window now, unless ``window`` is false (see :meth:`start_window`)."""
        self._listen()
        if window:
            self.start_window()
        return self

    def start_window(self) -> None:
        if self.down_window is not None and self._timer is None:
            start, seconds = self.down_window

            def window() -> None:
                if self._stop.wait(start):
                    return
                self.go_down()
                self._stop.wait(seconds)
                self.come_up()

            self._timer = threading.Thread(target=window, name="webhook-receiver-window", daemon=True)
            self._timer.start()

    def _listen(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._record(dict(self.headers.items()), raw)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True).start()
        self._server = server

    def _record(self, headers: dict[str, str], raw: bytes) -> None:
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        supplier_id = str(data.get("supplierId", ""))
        secret = self.secrets.get(supplier_id)
        # Signed: the Standard Webhooks signature (D30) matches, and so does the deprecated one while
        # it is sent. (The unit and end-to-end receivers verify with the standardwebhooks package.)
        timestamp = lowered.get("webhook-timestamp", "")
        standard = webhooks.standard_signature(
            lowered.get("webhook-id", ""), int(timestamp) if timestamp.isdigit() else 0, raw, secret or ""
        )
        legacy = lowered.get("x-marketplace-signature")
        signed = (
            bool(secret)
            and hmac.compare_digest(lowered.get("webhook-signature", ""), standard)
            and (legacy is None or hmac.compare_digest(legacy, webhooks.sign(raw, secret or "")))
        )
        with self._lock:
            self.requests.append({
                "delivery": lowered.get("x-marketplace-delivery"), "event": body.get("event"),
                "eventId": data.get("eventId"), "supplierOrderId": data.get("supplierOrderId"),
                "supplierId": supplier_id, "signed": signed, "at": time.time(),
            })  # fmt: skip

    def go_down(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            self.down_since = time.time()  # only once nothing listens any more
        if self.injector is not None:
            self.injector._count("webhook_down", self.url)

    def come_up(self) -> None:
        with self._lock:
            if self.down_since is not None:
                self.downtime.append((self.down_since, time.time()))
            self.down_since = None
        if self._server is None:
            self._listen()

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

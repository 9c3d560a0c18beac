"""In-process Lambda runtime: environment, context, errors as Lambda reports them."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from marketplace_local.lambdas import (
    CONCURRENCY_VARIABLE,
    FunctionSpec,
    LambdaError,
    LambdaRuntime,
    default_concurrency,
)
from tests.conftest import wait_until


@pytest.fixture
def runtime(tmp_path: Path) -> LambdaRuntime:
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(
        textwrap.dedent("""
        import os, time
        IMPORTED_WITH = os.environ.get("GREETING")

        class TransientError(Exception):
            pass

        def handler(event, context):
            if event.get("asyncio_run"):
                import asyncio

                async def greet():
                    return os.environ.get("GREETING")

                return {"greeting": asyncio.run(greet())}
            if event.get("raise"):
                raise TransientError("try again")
            if event.get("sleep"):
                time.sleep(event["sleep"])
            return {
                "greeting": os.environ.get("GREETING"),
                "imported_with": IMPORTED_WITH,
                "region": os.environ.get("AWS_REGION"),
                "function": context.function_name,
                "arn": context.invoked_function_arn,
                "memory": context.memory_limit_in_mb,
                "remaining_ms": context.get_remaining_time_in_millis(),
                "request_id": context.aws_request_id,
                "log_format": os.environ.get("AWS_LAMBDA_LOG_FORMAT"),
                "log_level": os.environ.get("AWS_LAMBDA_LOG_LEVEL"),
            }
    """)
    )
    rt = LambdaRuntime({"AWS_REGION": "eu-west-1"})
    for name, greeting in (("hello", "hi"), ("bonjour", "salut")):
        rt.register(FunctionSpec(logical_id=name.title(), name=name, arn=f"arn:aws:lambda:eu-west-1:1:function:{name}",
                                 code_dir=tmp_path / "fn", handler="app.handler",
                                 environment={"GREETING": greeting}, timeout=1, memory=256))  # fmt: skip
    return rt


def test_a_handler_runs_with_its_own_environment_and_a_lambda_context(runtime):
    result = runtime.invoke_or_raise("hello", {})
    assert result["greeting"] == "hi" and result["imported_with"] == "hi"
    assert result["region"] == "eu-west-1"
    assert result["function"] == "hello" and result["arn"].endswith(":function:hello")
    assert result["memory"] == 256 and 0 < result["remaining_ms"] <= 1000
    assert "GREETING" not in os.environ  # nothing leaks into the process environment
    assert result["log_format"] is None and result["log_level"] is None  # no LoggingConfig: Lambda's Text


def test_a_handler_may_run_asyncio_even_when_its_caller_runs_an_event_loop(runtime):
    """Lambda calls a handler with no event loop running (Powertools' AsyncBatchProcessor calls
    ``asyncio.run``); a caller whose thread runs one, as a browser test's driver does, changes nothing."""
    import asyncio

    async def from_a_running_loop():
        return runtime.invoke_or_raise("hello", {"asyncio_run": True})

    assert runtime.invoke_or_raise("hello", {"asyncio_run": True}) == {"greeting": "hi"}
    # The loop runs in a thread of the test's own: the worker's main thread may run one already
    # (Playwright's sync API keeps one there for the browser tests of the same worker).
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, from_a_running_loop()).result() == {"greeting": "hi"}


def test_api_requests_running_at_once_in_instances_of_one_function_each_see_their_own_event(tmp_path):
    """Powertools keeps the event being resolved on a class (``BaseRouter.current_event``): on Lambda
    one process is one execution environment; here the instances share a process, and a request
    must still never read another's body or headers."""
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "app.py").write_text(
        textwrap.dedent("""
        import time
        from aws_lambda_powertools.event_handler import APIGatewayRestResolver

        app = APIGatewayRestResolver()

        @app.post("/echo")
        def echo():
            time.sleep(0.02)  # another instance resolves its own request meanwhile
            return {"body": app.current_event.json_body, "key": app.current_event.headers["Idempotency-Key"],
                    "request": app.lambda_context.aws_request_id}

        def handler(event, context):
            return {"answer": app.resolve(event, context), "request": context.aws_request_id}
    """)
    )
    rt = LambdaRuntime({"AWS_REGION": "eu-west-1"})
    rt.register(FunctionSpec(logical_id="Api", name="api", arn="arn:aws:lambda:eu-west-1:1:function:api",
                             code_dir=tmp_path / "api", handler="app.handler", environment={},
                             timeout=5, reserved_concurrency=4))  # fmt: skip

    def call(n: int) -> tuple[dict, str]:
        event = {"httpMethod": "POST", "path": "/echo", "resource": "/echo", "body": json.dumps({"n": n}),
                 "headers": {"Idempotency-Key": f"key-{n}"}, "requestContext": {"stage": "local"}}  # fmt: skip
        result = rt.invoke_or_raise("api", event)
        return json.loads(result["answer"]["body"]), result["request"]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(call, range(40)))
    assert [(a["body"], a["key"]) for a, _ in answers] == [({"n": n}, f"key-{n}") for n in range(40)]
    assert all(a["request"] == request for a, request in answers)


def test_json_logs_tell_the_handler_their_format_and_level_as_lambda_does(runtime, tmp_path):
    runtime.register(FunctionSpec(logical_id="Json", name="json", arn="arn:aws:lambda:eu-west-1:1:function:json",
                                  code_dir=tmp_path / "fn", handler="app.handler", environment={},
                                  log_config={"LogFormat": "JSON", "ApplicationLogLevel": "warn",
                                              "SystemLogLevel": "WARN"}))  # fmt: skip
    result = runtime.invoke_or_raise("json", {})
    assert (result["log_format"], result["log_level"]) == ("JSON", "WARN")


def test_functions_running_at_once_see_only_their_own_environment(runtime):
    results: dict[str, list[str]] = {"hello": [], "bonjour": []}

    def call(name: str) -> None:
        for _ in range(20):
            results[name].append(runtime.invoke_or_raise(name, {"sleep": 0.001})["greeting"])

    threads = [threading.Thread(target=call, args=(n,)) for n in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results["hello"]) == {"hi"} and set(results["bonjour"]) == {"salut"}


def test_an_exception_becomes_lambdas_error_payload(runtime):
    result = runtime.invoke("hello", {"raise": True})
    assert result.errored
    payload = result.json()
    assert payload["errorType"] == "TransientError"
    assert payload["errorMessage"] == "try again"
    assert any("handler" in line for line in payload["stackTrace"])
    with pytest.raises(LambdaError, match="TransientError"):
        runtime.invoke_or_raise("hello", {"raise": True})


def test_a_handler_that_outlives_its_timeout_is_reported_as_timed_out(runtime):
    result = runtime.invoke("hello", {"sleep": 1.2})
    assert result.errored
    assert result.json()["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in result.json()["errorMessage"]


def test_an_unknown_function_is_a_resource_not_found_error(runtime):
    result = runtime.invoke("arn:aws:lambda:eu-west-1:1:function:nope", {})
    assert result.errored and result.json()["errorType"] == "ResourceNotFoundException"


def test_interceptors_can_fail_an_invocation_before_the_handler(runtime):
    class Throttled(Exception):
        pass

    def throttle(spec, event):
        raise Throttled("Rate exceeded")

    runtime.interceptors.append(throttle)
    result = runtime.invoke("hello", {})
    assert result.errored and result.json()["errorType"] == "Throttled"


def test_each_function_keeps_its_own_powertools_metrics(tmp_path):
    # Powertools keeps metrics at class level; on Lambda a process is one function, here it is not.
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "metrics_app.py").write_text(
        textwrap.dedent("""
        from aws_lambda_powertools import Metrics
        metrics = Metrics(namespace="Test", service="test")

        def handler(event, context):
            metrics.add_metric(name=event["name"], unit="Count", value=1)
            return sorted(metrics.metric_set)
    """)
    )
    rt = LambdaRuntime({"AWS_REGION": "eu-west-1"})
    for name in ("first", "second"):
        rt.register(FunctionSpec(logical_id=name.title(), name=name, arn=f"arn:aws:lambda:eu-west-1:1:function:{name}",
                                 code_dir=tmp_path / "fn", handler="metrics_app.handler",
                                 environment={}, timeout=1, memory=128))  # fmt: skip
    assert rt.invoke_or_raise("first", {"name": "A"}) == ["A"]
    assert rt.invoke_or_raise("second", {"name": "B"}) == ["B"]  # not A's metric too
    assert rt.invoke_or_raise("first", {"name": "C"}) == ["A", "C"]


# ---------------------------------------------------------------- a pool of instances per function


@pytest.fixture
def pooled(tmp_path: Path):
    """A function whose handler keeps state in its own module, in a module beside it and in its
    layer's package, and can wait on a barrier the test hands it (the event is passed in-process)."""
    (tmp_path / "layer" / "pool_layer").mkdir(parents=True)
    (tmp_path / "layer" / "pool_layer" / "__init__.py").write_text("CALLS = []\n")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "beside.py").write_text("CALLS = []\n")
    (tmp_path / "code" / "app.py").write_text(
        textwrap.dedent("""
        import beside, pool_layer
        CALLS = []

        def handler(event, context):
            for calls in (CALLS, beside.CALLS, pool_layer.CALLS):
                calls.append(1)
            if "barrier" in event:
                event["barrier"].wait(timeout=5)
            return {"instance": id(CALLS), "calls": [len(CALLS), len(beside.CALLS), len(pool_layer.CALLS)]}
    """)
    )
    sys.path.insert(0, str(tmp_path / "layer"))  # the layer's package, importable as on Lambda
    rt = LambdaRuntime({"AWS_REGION": "eu-west-1"})

    def register(name: str = "pooled", **settings) -> FunctionSpec:
        spec = FunctionSpec(logical_id=name.title(), name=name, arn=f"arn:aws:lambda:eu-west-1:1:function:{name}",
                            code_dir=tmp_path / "code", handler="app.handler", environment={}, timeout=10,
                            layer_dirs=(tmp_path / "layer",), **settings)  # fmt: skip
        rt.register(spec)
        return spec

    yield rt, register
    sys.path.remove(str(tmp_path / "layer"))
    for name in ("beside", "pool_layer"):
        sys.modules.pop(name, None)


def at_once(runtime: LambdaRuntime, name: str, count: int, barrier: threading.Barrier) -> list:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: runtime.invoke(name, {"barrier": barrier}), range(count)))


def test_invocations_of_one_function_run_at_once_each_in_an_instance_of_its_own(pooled):
    runtime, register = pooled
    spec = register()
    # Four invocations all waiting for each other: with one invocation at a time they never meet.
    with spec.watch() as peak:
        results = at_once(runtime, "pooled", 4, threading.Barrier(4))
    assert not any(r.errored for r in results), [r.payload for r in results]
    assert peak.value == 4 and spec.max_in_flight == 4 and len(spec.instances) == 4
    # Each ran in its own instance: its module, the module beside it and the layer's package are
    # its own imports, so each saw only its own call.
    assert len({r.json()["instance"] for r in results}) == 4
    assert [r.json()["calls"] for r in results] == [[1, 1, 1]] * 4
    assert len({id(i.modules["pool_layer"]) for i in spec.instances}) == 4
    assert len({id(i.modules["beside"]) for i in spec.instances}) == 4
    # The process's own modules are left as they were: no instance's copy is in sys.modules.
    assert "beside" not in sys.modules and all(sys.modules.get("pool_layer") is not i.modules["pool_layer"]
                                               for i in spec.instances)  # fmt: skip


def test_an_idle_instance_is_reused_warm(pooled):
    runtime, register = pooled
    spec = register()
    calls = [runtime.invoke_or_raise("pooled", {}) for _ in range(3)]
    assert [c["calls"] for c in calls] == [[1, 1, 1], [2, 2, 2], [3, 3, 3]]
    assert len(spec.instances) == 1 and spec.max_in_flight == 1


def test_the_pool_size_defaults_to_the_local_setting_and_a_busy_pool_makes_callers_wait(pooled, monkeypatch):
    runtime, register = pooled
    monkeypatch.setenv(CONCURRENCY_VARIABLE, "2")
    spec = register()
    assert spec.size == 2
    # Three callers, two instances: the third waits for one (Lambda would start another), then runs
    # in the instance that finished first.
    barrier = threading.Barrier(3)
    with ThreadPoolExecutor(3) as pool:
        busy = [pool.submit(runtime.invoke, "pooled", {"barrier": barrier}) for _ in range(2)]
        wait_until(lambda: spec.in_flight == 2, what="both instances busy")
        third = pool.submit(runtime.invoke, "pooled", {})
        wait_until(lambda: spec.waiting == 1, what="the third caller waiting for an instance")
        assert not third.done()
        barrier.wait(timeout=5)
        results = [b.result() for b in busy] + [third.result()]
    assert not any(r.errored for r in results), [r.payload for r in results]
    assert results[2].json()["calls"] == [2, 2, 2]
    assert len(spec.instances) == 2 and spec.max_in_flight == 2 and spec.throttles == 0


def test_a_bad_local_pool_size_is_refused_with_the_reason(pooled, monkeypatch):
    _, register = pooled
    monkeypatch.setenv(CONCURRENCY_VARIABLE, "0")
    with pytest.raises(ValueError, match=f"{CONCURRENCY_VARIABLE} must be a whole number of at least 1"):
        register()


def test_reserved_concurrency_sizes_the_pool_and_an_invocation_beyond_it_is_throttled(pooled):
    runtime, register = pooled
    spec = register(reserved_concurrency=2)
    assert spec.size == 2
    first, second = threading.Barrier(3), threading.Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        busy = [pool.submit(runtime.invoke, "pooled", {"barrier": first}) for _ in range(2)]
        wait_until(lambda: spec.in_flight == 2, what="both instances busy")
        throttled = runtime.invoke("pooled", {"barrier": second})
        first.wait(timeout=5)  # let the two finish
        assert not any(b.result().errored for b in busy)
    assert throttled.errored and throttled.throttled
    assert throttled.json()["errorType"] == "TooManyRequestsException" and spec.throttles == 1
    assert runtime.invoke_or_raise("pooled", {})["calls"][0] == 2  # a warm instance again


@contextmanager
def no_instance_to_spare(spec: FunctionSpec) -> Iterator[None]:
    """The function's reserved concurrency all in use (as if 0 were reserved, and no instance idle:
    an earlier test may have left a warm one), for the block."""
    with spec._condition:
        saved = spec.reserved_concurrency, spec._size, spec._idle[:]
        spec.reserved_concurrency, spec._size = 0, 0
        spec._idle.clear()
    try:
        yield
    finally:
        with spec._condition:
            spec.reserved_concurrency, spec._size = saved[:2]
            spec._idle.extend(saved[2])
            spec._condition.notify_all()


def test_a_throttled_invoke_is_what_boto3_step_functions_and_api_gateway_see_from_lambda(stack):
    """Through moto's Lambda Invoke (the API's drain call, Step Functions' Task states) an HTTP 429
    (Step Functions names it Lambda.TooManyRequestsException); through the API a 500."""
    import boto3
    import botocore.exceptions
    from botocore.config import Config

    drain = stack.runtime.by_logical_id("CorrectionDrainFunction")
    client = boto3.session.Session().client("lambda", region_name=stack.config.region, endpoint_url=stack.moto_endpoint,
                                            config=Config(retries={"max_attempts": 1}))  # fmt: skip
    with no_instance_to_spare(drain), pytest.raises(botocore.exceptions.ClientError) as raised:
        client.invoke(FunctionName=drain.name, Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429

    with no_instance_to_spare(stack.runtime.by_logical_id("ApiFunction")):
        answer = requests.get(f"{stack.api_url}/health", timeout=30)
    assert (answer.status_code, answer.json()) == (500, {"message": "Internal server error"})
    assert requests.get(f"{stack.api_url}/health", timeout=30).status_code == 200


def test_the_pool_of_each_function_follows_the_template(stack, monkeypatch):
    monkeypatch.delenv(CONCURRENCY_VARIABLE, raising=False)
    assert default_concurrency() == 4  # the local default
    monkeypatch.undo()
    resources = stack.template.resources_of_type("AWS::Lambda::Function")
    for spec in stack.runtime.functions.values():
        reserved = resources[spec.logical_id]["Properties"].get("ReservedConcurrentExecutions")
        assert spec.reserved_concurrency == (None if reserved is None else int(reserved))
        assert spec.size == (int(reserved) if reserved is not None else default_concurrency())
        # Every function has the shared layer; its package is imported once per instance.
        assert [d.name for d in spec.layer_dirs] == ["shared"]
        assert (spec.layer_dirs[0] / "marketplace" / "__init__.py").is_file()


def test_each_instance_logs_with_its_own_powertools_keys(tmp_path, capsys):
    """Powertools keeps a logger's keys (the request id ``inject_lambda_context`` appends) in the
    handler of the standard library logger named after the service. Two instances running at once
    must not share it: each line carries the request id of the invocation that wrote it."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.py").write_text(
        textwrap.dedent("""
        from aws_lambda_powertools import Logger
        logger = Logger(service="pool-logs")

        @logger.inject_lambda_context
        def handler(event, context):
            event["barrier"].wait(timeout=5)  # both invocations have appended their keys
            logger.info("after the barrier")
            return context.aws_request_id
    """)
    )
    runtime = LambdaRuntime({"AWS_REGION": "eu-west-1"})
    runtime.register(FunctionSpec(logical_id="Logs", name="logs", arn="arn:aws:lambda:eu-west-1:1:function:logs",
                                  code_dir=tmp_path / "logs", handler="app.handler", environment={}, timeout=10))  # fmt: skip
    results = at_once(runtime, "logs", 2, threading.Barrier(2))
    ids = {r.json() for r in results}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "after the barrier" in line]
    assert len(ids) == 2 and sorted(line["function_request_id"] for line in lines) == sorted(ids)


def test_a_patch_reaches_every_instance_running_or_started_meanwhile_and_is_undone(pooled):
    runtime, register = pooled
    spec = register()
    assert runtime.invoke_or_raise("pooled", {})["calls"] == [1, 1, 1]  # one warm instance
    with runtime.patched("Pooled", "beside", "CALLS", lambda original: ["patched"] * 10):
        results = at_once(runtime, "pooled", 2, threading.Barrier(2))  # the warm one and a new one
        assert len(spec.instances) == 2
        assert sorted(r.json()["calls"][1] for r in results) == [11, 11]
    # Undone: the warm instance has its own list back (its one call), the new one its empty list.
    assert [i.modules["beside"].CALLS for i in spec.instances] == [[1], []]


def test_reserved_concurrency_and_layers_are_read_from_the_template(tmp_path, stack):
    from marketplace_local.provision import Provisioner
    from marketplace_local.template import load

    for folder in ("layer", "capped", "open"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "app.py").write_text("def handler(event, context):\n    return 1\n")
    (tmp_path / "template.yaml").write_text(
        textwrap.dedent("""
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Shared:
            Type: AWS::Serverless::LayerVersion
            Properties: {ContentUri: layer/}
          Capped:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: capped/, Handler: app.handler, Runtime: python3.12, ReservedConcurrentExecutions: 2,
                         Layers: [!Ref Shared]}
          Open:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: open/, Handler: app.handler, Runtime: python3.12}
    """)
    )
    runtime = LambdaRuntime({"AWS_REGION": stack.config.region})
    Provisioner(load(tmp_path / "template.yaml"), stack.client, runtime, stack.config.region, "123456789012",
                f"pool-{uuid.uuid4().hex[:8]}").provision()  # fmt: skip
    capped, open_ = runtime.by_logical_id("Capped"), runtime.by_logical_id("Open")
    assert (capped.reserved_concurrency, capped.size, capped.layer_dirs) == (
        2,
        2,
        ((tmp_path / "layer").resolve(),),
    )
    assert (open_.reserved_concurrency, open_.size, open_.layer_dirs) == (None, default_concurrency(), ())


def test_the_process_may_import_a_layer_module_while_instances_start(pooled, tmp_path):
    # The test process imports the layer's modules too (a unit test's `from marketplace.orders
    # import refund` while the session's stack starts instances). An instance start takes the layer's
    # modules out of sys.modules while it imports its own; an import by another thread at that moment
    # lost its half-made module (a dataclass then failed: its module was not in sys.modules).
    slow = textwrap.dedent("""
        from __future__ import annotations
        import time
        from dataclasses import dataclass
        time.sleep(0.01)

        @dataclass
        class Made:
            name: str
        """)
    for k in range(300):  # a module not imported yet at each turn
        (tmp_path / "layer" / "pool_layer" / f"slow{k}.py").write_text(slow)
    runtime, register = pooled
    for n in range(30):
        register(f"pooled{n}")
    stop = threading.Event()

    def start_instances() -> None:
        for n in range(30):
            if stop.is_set():
                return
            runtime.invoke_or_raise(f"pooled{n}", {})

    starter = threading.Thread(target=start_instances)
    starter.start()
    imported = 0
    try:
        while starter.is_alive() and imported < 300:
            module = __import__(
                f"pool_layer.slow{imported}", fromlist=["Made"]
            )  # as an import statement does
            assert module.Made("x").name == "x" and sys.modules[f"pool_layer.slow{imported}"] is module
            imported += 1
    finally:
        stop.set()
        starter.join()
        for k in range(imported):
            sys.modules.pop(f"pool_layer.slow{k}", None)
    assert imported > 0

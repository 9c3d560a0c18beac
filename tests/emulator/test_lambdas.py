"""In-process Lambda runtime: environment, context, errors as Lambda reports them."""

from __future__ import annotations

import os
import textwrap
import threading
from pathlib import Path

import pytest

from marketplace_local.lambdas import FunctionSpec, LambdaError, LambdaRuntime


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

"""AWS Step Functions Local (the ``amazon/aws-stepfunctions-local`` image) with our MockConfigFile.

Starts one container with ``statemachines/test/MockConfigFile.json`` mounted read-only and named by
``SFN_MOCK_CONFIG``, creates every state machine the file has test cases for, each from its own ASL
(template.yaml's DefinitionUri) with its DefinitionSubstitutions filled (``tests/mock_config_cases.py``:
parameters at their defaults, resources as dummy ARNs) and each as STANDARD, the Express SupplierOrder
too (see ``create_state_machine``), runs
a test case by starting an execution of ``<stateMachineArn>#<TestCase>``, polls
``DescribeExecution`` until the execution leaves RUNNING or a deadline passes, and reads the whole
execution history.

Only the Docker CLI is used (no Python Docker SDK): ``docker info`` decides whether the tests can
run, ``docker run``/``docker port``/``docker logs``/``docker rm -f <id>`` manage the one container
this harness started, and nothing else.

Settings (environment):
  SFN_LOCAL_IMAGE            image to run (default ``amazon/aws-stepfunctions-local:latest``)
  SFN_LOCAL_STARTUP_SECONDS  how long the container may take to answer (default 120)
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from tests.mock_config_cases import Execution

DOCKER_SKIP_REASON = "no Docker engine: Step Functions Local tests run where Docker exists"

IMAGE = os.environ.get("SFN_LOCAL_IMAGE", "amazon/aws-stepfunctions-local:latest")
STARTUP_SECONDS = float(os.environ.get("SFN_LOCAL_STARTUP_SECONDS", "120"))
CONTAINER_PORT = 8083  # Step Functions Local listens here
CONTAINER_MOCK_CONFIG = "/home/StepFunctionsLocal/MockConfigFile.json"
REGION = "us-east-1"  # Step Functions Local's default region and account 123456789012
ROLE_ARN = "arn:aws:iam::123456789012:role/DummyStepFunctionsRole"
POLL_SECONDS = 0.2


@functools.cache
def docker_available() -> bool:
    """True when a Docker CLI is on PATH and ``docker info`` reaches an engine."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        subprocess.run([docker, "info"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    docker = shutil.which("docker")
    if docker is None:
        raise RuntimeError("the docker CLI is not on PATH")
    return subprocess.run([docker, *args], capture_output=True, text=True, timeout=timeout, check=check)


class StepFunctionsLocal:
    """One Step Functions Local container, started and removed by this harness."""

    def __init__(self, container_id: str, endpoint: str) -> None:
        self.container_id = container_id
        self.endpoint = endpoint
        self.client = boto3.client(
            "stepfunctions",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )

    # ------------------------------------------------------------------------------ lifecycle
    @classmethod
    def start(cls, mock_config: Path) -> StepFunctionsLocal:
        mount = f"type=bind,readonly,source={mock_config.resolve()},destination={CONTAINER_MOCK_CONFIG}"
        run = _docker(
            "run", "--detach",
            "--publish", f"127.0.0.1::{CONTAINER_PORT}",
            "--mount", mount,
            "--env", f"SFN_MOCK_CONFIG={CONTAINER_MOCK_CONFIG}",
            "--env", f"AWS_DEFAULT_REGION={REGION}",
            IMAGE,
            timeout=900,  # the first run pulls the image
            check=False,
        )  # fmt: skip
        if run.returncode != 0:
            raise RuntimeError(f"docker run {IMAGE} failed: {run.stderr.strip()}")
        container_id = run.stdout.strip().splitlines()[-1]
        local = None
        try:
            published = _docker("port", container_id, f"{CONTAINER_PORT}/tcp").stdout.strip().splitlines()[0]
            local = cls(container_id, f"http://127.0.0.1:{published.rsplit(':', 1)[1]}")
            local.wait_until_ready(STARTUP_SECONDS)
        except BaseException:
            if local is not None:
                local.stop()
            else:
                _docker("rm", "--force", container_id, check=False)
            raise
        return local

    def wait_until_ready(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self.client.list_state_machines(maxResults=1)
                return
            except (BotoCoreError, ClientError) as error:
                last_error = error
            if not self.running():
                raise RuntimeError(f"Step Functions Local exited while starting:\n{self.logs()}")
            time.sleep(POLL_SECONDS)
        raise RuntimeError(
            f"Step Functions Local did not answer within {seconds:.0f} s ({last_error}):\n{self.logs()}"
        )

    def running(self) -> bool:
        inspect = _docker("inspect", "--format", "{{.State.Running}}", self.container_id, check=False)
        return inspect.stdout.strip() == "true"

    def logs(self, tail: int = 200) -> str:
        logs = _docker("logs", "--tail", str(tail), self.container_id, check=False)
        return (logs.stdout + logs.stderr).strip()

    def stop(self) -> None:
        _docker("rm", "--force", self.container_id, check=False)

    # ------------------------------------------------------------------------------ use
    def create_state_machine(self, name: str, definition: str) -> str:
        """Create ``name`` from its definition, always as a STANDARD state machine.

        SupplierOrder is EXPRESS in template.yaml, and is created STANDARD here on purpose: this
        harness polls DescribeExecution and reads GetExecutionHistory, which AWS does not offer for
        Express executions (their history goes to CloudWatch Logs only), and whether Step Functions
        Local serves them for an EXPRESS machine cannot be relied on (it is unsupported and lags the
        service). The ASL runs the same in either type as long as it uses nothing only Standard
        runs (``.waitForTaskToken``, ``.sync``): tests/workflow/test_mock_config.py
        (``test_express_machines_use_only_what_express_runs``) checks that. Not reproduced here:
        Express's at-least-once start semantics and its five-minute limit.
        """
        try:
            created = self.client.create_state_machine(
                name=name, definition=definition, roleArn=ROLE_ARN, type="STANDARD"
            )
        except ClientError as error:
            raise RuntimeError(
                f"Step Functions Local refused the {name} definition: {error}. It lags AWS (it is "
                "unsupported): a field the ASL uses (e.g. JitterStrategy, MaxDelaySeconds) may be unknown "
                f"to image {IMAGE}.\n{self.logs(50)}"
            ) from error
        return created["stateMachineArn"]

    def run_case(
        self, state_machine_arn: str, case: str, execution_input: dict[str, Any], timeout: float
    ) -> Execution:
        """Start ``<arn>#<case>``, wait for it to leave RUNNING (at most ``timeout`` s), read its history."""
        name = f"{case[:60]}-{uuid.uuid4().hex[:12]}"
        started = self.client.start_execution(
            stateMachineArn=f"{state_machine_arn}#{case}", name=name, input=json.dumps(execution_input)
        )
        arn = started["executionArn"]
        deadline = time.monotonic() + timeout
        status = self.client.describe_execution(executionArn=arn)["status"]
        while status == "RUNNING" and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            status = self.client.describe_execution(executionArn=arn)["status"]
        machine = state_machine_arn.rsplit(":", 1)[-1]
        execution = Execution(f"{machine}/{case}", arn, status, self.history(arn))
        if status == "RUNNING":
            self.client.stop_execution(
                executionArn=arn, error="TestDeadline", cause=f"still running after {timeout} s"
            )
            raise AssertionError(
                f"{execution.case} still RUNNING after {timeout:.0f} s\n{execution.describe()}"
            )
        return execution

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for page in self.client.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events += page["events"]
        return sorted(events, key=lambda event: event["id"])

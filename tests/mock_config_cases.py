"""The MockConfigFile test cases and where each must go: the one home of both runs.

``statemachines/test/MockConfigFile.json`` holds the test cases (Step Functions Local's format);
``statemachines/test/expected.json`` holds, per state machine, the input every case starts with and,
per case, its end: the execution's ``status``, its ``error`` when it fails, and its ``path``, every
state entered in order (the last one is where it ends). Two engines run every case and are held to
that table: the local stack's engine (moto with ``marketplace_local.moto_patches.engine``'s patches,
``tests/workflow/test_state_machine_cases.py``) and, where Docker runs, AWS Step Functions Local
(``tests/sfn_local``). A renamed state or a new case is an edit of these two files only.

Which ASL a MockConfigFile state machine runs comes from template.yaml: the name ``X`` is the
``AWS::Serverless::StateMachine`` resource ``XStateMachine``, whose ``DefinitionUri`` is the ASL and
whose ``DefinitionSubstitutions`` fill its placeholders.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = ROOT / "template.yaml"
MOCK_CONFIG_PATH = ROOT / "statemachines" / "test" / "MockConfigFile.json"
EXPECTED_PATH = ROOT / "statemachines" / "test" / "expected.json"
# A state machine's name in the MockConfigFile is its template logical id without this suffix.
TEMPLATE_SUFFIX = "StateMachine"
REGION, ACCOUNT = "us-east-1", "123456789012"

# For Step Functions Local, which creates the machines outside the stack: DefinitionSubstitutions that
# name resources get these stand-ins (every Task is mocked, none is called); those that are template
# parameters get the parameter's default. The local stack fills them with its own resources.
DUMMY_RESOURCES = {
    "ValidateFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ValidateFunction",
    "SupplierOrderStepsFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:SupplierOrderStepsFunction",
    "TableName": "MarketplaceTable",
    "CorrectionQueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/CorrectionQueue",
    "NotificationsTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:SupplierNotifications",
}


# ----------------------------------------------------------------------------- the two files
@dataclass(frozen=True)
class Expected:
    status: str  # SUCCEEDED or FAILED
    path: tuple[str, ...]  # every state entered, in order
    error: str | None = None  # the execution's error, when it fails

    @property
    def end(self) -> str:
        return self.path[-1]


def load_mock_config() -> dict[str, Any]:
    return json.loads(MOCK_CONFIG_PATH.read_text())


@cache
def _expected_file() -> dict[str, Any]:
    return json.loads(EXPECTED_PATH.read_text())


def machines() -> list[str]:
    return list(_expected_file())


def execution_input(machine: str) -> dict[str, Any]:
    """The input a case starts with: what the stream router gives a new record of the machine's kind
    (the kind's registry entry builds it, keys and all), for the record the table names."""
    from marketplace import registry

    named = _expected_file()[machine]["input"]
    return registry.KINDS[named["kind"]].start_input(named["tenantId"], named["recordId"], 1)


def expected(machine: str) -> dict[str, Expected]:
    return {
        case: Expected(entry["status"], tuple(entry["path"]), entry.get("error"))
        for case, entry in _expected_file()[machine]["cases"].items()
    }


def all_cases() -> list[tuple[str, str]]:
    """(state machine, test case) for every case of the table."""
    return [(machine, case) for machine in machines() for case in expected(machine)]


def case_mocks(machine: str, config: dict[str, Any] | None = None) -> dict[str, dict[str, str]]:
    """A state machine's test cases in the MockConfigFile: case -> {Task state -> mocked response name}."""
    config = config or load_mock_config()
    return config["StateMachines"][machine]["TestCases"]


# ------------------------------------------------------------------------------ response keys
_KEY = re.compile(r"(0|[1-9]\d*)(?:-(0|[1-9]\d*))?")


def invocation_range(key: str) -> tuple[int, int]:
    """``"3"`` -> (3, 3); ``"1-2"`` -> (1, 2). Raises ValueError for anything else."""
    match = _KEY.fullmatch(key)
    if not match:
        raise ValueError(f"{key!r} is neither an invocation number nor a range like '1-2'")
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) is not None else start
    if match.group(2) is not None and end <= start:
        raise ValueError(f"{key!r}: a range must end after it starts")
    return start, end


def invocation_count(mocked_response: dict[str, Any]) -> int:
    """How many invocations a mocked response defines (its keys are contiguous from 0)."""
    return max(invocation_range(key)[1] for key in mocked_response) + 1


def response_for(mocked_response: dict[str, Any], invocation: int) -> dict[str, Any] | None:
    for key, response in mocked_response.items():
        start, end = invocation_range(key)
        if start <= invocation <= end:
            return response
    return None


# ---------------------------------------------------------------------------------- template
@cache
def _sam() -> dict[str, Any]:
    from marketplace_local.template import load_sam

    return load_sam(TEMPLATE_PATH)


@cache
def template_state_machines() -> dict[str, str]:
    """MockConfigFile name -> logical id, for every AWS::Serverless::StateMachine of template.yaml."""
    return {
        logical_id.removesuffix(TEMPLATE_SUFFIX): logical_id
        for logical_id, resource in _sam()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::StateMachine"
    }


def template_resource(machine: str) -> dict[str, Any]:
    logical_ids = template_state_machines()
    if machine not in logical_ids:
        raise KeyError(
            f"template.yaml has no AWS::Serverless::StateMachine {machine}{TEMPLATE_SUFFIX} "
            f"(its state machines: {sorted(logical_ids.values())})"
        )
    return _sam()["Resources"][logical_ids[machine]]


def template_type(machine: str) -> str:
    """The machine's Type in template.yaml: STANDARD (the default) or EXPRESS."""
    return str(template_resource(machine)["Properties"].get("Type", "STANDARD"))


def asl_path(machine: str) -> Path:
    """The machine's ASL file: its DefinitionUri in template.yaml."""
    uri = template_resource(machine)["Properties"]["DefinitionUri"]
    if not isinstance(uri, str) or uri.startswith("s3://"):
        raise AssertionError(f"{machine}: DefinitionUri {uri!r} is not a local file")
    return (TEMPLATE_PATH.parent / uri).resolve()


def substitutions(machine: str) -> dict[str, str]:
    """The machine's DefinitionSubstitutions from template.yaml, with values outside the stack: a
    literal (a kind's ApprovedStatus, its WorkflowActor) as it is written, a template parameter's
    default, a stand-in for a resource."""
    from marketplace_local.template import parameter_values

    parameters = parameter_values(_sam())
    declared = template_resource(machine)["Properties"].get("DefinitionSubstitutions", {})
    values = {}
    for key, value in declared.items():
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            values[key] = str(value)
        elif isinstance(value, dict) and list(value) == ["Ref"] and value["Ref"] in parameters:
            values[key] = str(parameters[value["Ref"]])
        else:
            values[key] = DUMMY_RESOURCES.get(key, f"dummy-{key}")
    return values


@cache
def definition_text(machine: str) -> str:
    """The machine's ASL with every ``${...}`` placeholder filled, still valid JSON."""
    text = asl_path(machine).read_text()
    for key, value in substitutions(machine).items():
        text = text.replace("${" + key + "}", value)
    left = sorted(set(re.findall(r"\$\{[A-Za-z0-9_]+\}", text)))
    assert not left, f"{machine}: placeholders without a DefinitionSubstitution in template.yaml: {left}"
    json.loads(text)
    return text


def load_asl(machine: str) -> dict[str, Any]:
    return json.loads(definition_text(machine))


def load_raw_asl(machine: str) -> dict[str, Any]:
    return json.loads(asl_path(machine).read_text())


# ---------------------------------------------------------------------------- what an engine did
@dataclass(frozen=True)
class Call:
    """One invocation of a Task state, read from the history: what it sent, what it got."""

    state: str
    request: Any  # the Task's parameters, evaluated
    returned: Any = None  # its result (TaskSucceeded output), if it succeeded
    error: str | None = None  # its error (TaskFailed), if it failed


@dataclass
class Execution:
    """What an engine did with one test case."""

    case: str  # "<state machine>/<test case>"
    arn: str
    status: str
    events: list[dict[str, Any]] = field(repr=False)

    @property
    def entered(self) -> list[str]:
        """Every state entered, in order (a retried Task is entered once)."""
        return [
            event["stateEnteredEventDetails"]["name"]
            for event in self.events
            if event["type"].endswith("StateEntered")
        ]

    @property
    def failure(self) -> dict[str, Any]:
        """``{"error", "cause"}`` of the ExecutionFailed event, or ``{}``."""
        for event in reversed(self.events):
            if event["type"] == "ExecutionFailed":
                return event.get("executionFailedEventDetails", {})
        return {}

    @property
    def calls(self) -> list[Call]:
        """Every Task invocation, retries included, in order."""
        calls: list[Call] = []
        state, request = None, None
        for event in self.events:
            if "stateEnteredEventDetails" in event:
                state = event["stateEnteredEventDetails"]["name"]
            elif event["type"] == "TaskScheduled":
                request = json.loads(event["taskScheduledEventDetails"]["parameters"])
            elif event["type"] == "TaskSucceeded":
                output = json.loads(event["taskSucceededEventDetails"]["output"])
                calls.append(Call(str(state), request, returned=output))
            elif event["type"] in ("TaskFailed", "TaskTimedOut"):
                details = event.get("taskFailedEventDetails") or event.get("taskTimedOutEventDetails") or {}
                calls.append(Call(str(state), request, error=details.get("error")))
        return calls

    @property
    def invocations(self) -> Counter:
        return Counter(call.state for call in self.calls)

    def describe(self) -> str:
        lines = [f"{self.case}: {self.status} after {' -> '.join(self.entered)}"]
        if self.failure:
            lines.append(f"  failed: {self.failure.get('error')}: {self.failure.get('cause')}")
        lines += [f"  {event['id']:>3} {event['type']}" for event in self.events]
        return "\n".join(lines)


def problems(execution: Execution, wanted: Expected) -> list[str]:
    """How an execution differs from its row of the table: status, path, error."""
    found = []
    if execution.status != wanted.status:
        found.append(f"status {execution.status}, expected {wanted.status}")
    if tuple(execution.entered) != wanted.path:
        found.append(f"entered {' > '.join(execution.entered)}\n  expected {' > '.join(wanted.path)}")
    if wanted.error is not None and execution.failure.get("error") != wanted.error:
        found.append(f"error {execution.failure.get('error')}, expected {wanted.error}")
    return found

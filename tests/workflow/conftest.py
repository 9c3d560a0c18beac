"""Helpers for driving the supplier onboarding workflow in the local stack."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from marketplace.principal import Principal
from marketplace.repository import Table
from marketplace.suppliers import Suppliers
from tests.conftest import wait_until

VALID = {
    "legalName": "Acme Ltd", "taxId": "12-3456789", "country": "US", "contactEmail": "ops@acme.com",
    "website": "https://www.acme.com", "phone": "+1 5551234567",
    "address": {"line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"},
}  # fmt: skip


@dataclass
class Onboarding:
    """One tenant's view of the stack, with the calls a workflow test needs."""

    stack: Any
    tenant: str

    @property
    def suppliers(self) -> Suppliers:
        return Suppliers(self.table)

    def principal(self, role: str = "retailer") -> Principal:
        return Principal(subject=f"{role}-user", tenant_id=self.tenant, roles=frozenset({role}))

    def register(self, **overrides: Any) -> str:
        body = {**VALID, "taxId": unique_ein(), **overrides}
        return self.suppliers.register(self.principal(), body)["supplierId"]

    def record(self, supplier_id: str) -> dict[str, Any]:
        return self.suppliers.get(self.tenant, supplier_id)

    def wait_status(self, supplier_id: str, *statuses: str, min_version: int = 1) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            record = self.record(supplier_id)
            return record if record["status"] in statuses and record["version"] >= min_version else None

        return wait_until(reached, what=f"supplier {supplier_id} in {statuses} (v>={min_version})")

    def fix(self, supplier_id: str, **changes: Any) -> dict[str, Any]:
        return self.suppliers.update(self.principal("admin"), supplier_id, changes, None)

    # ---------------------------------------------------------------- executions
    @property
    def sfn(self) -> Any:
        return self.stack.client("stepfunctions")

    def execution_arn(self, supplier_id: str, version: int = 1) -> str:
        machine = self.stack.physical_id("SupplierOnboardingStateMachine")
        name = f"supplier-{supplier_id}-v{version}"
        return machine.replace(":stateMachine:", ":execution:") + ":" + name

    def wait_execution(self, arn: str, *statuses: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            try:
                described = self.sfn.describe_execution(executionArn=arn)
            except self.sfn.exceptions.ExecutionDoesNotExist:
                return None
            return described if described["status"] in statuses else None

        return wait_until(done, what=f"execution {arn.rsplit(':', 1)[-1]} in {statuses}")

    def history(self, arn: str) -> list[dict[str, Any]]:
        return self.sfn.get_execution_history(executionArn=arn)["events"]

    def entered(self, arn: str) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history(arn)
            if "stateEnteredEventDetails" in e
        ]

    def wait_entered(self, arn: str, state: str, times: int = 1) -> list[str]:
        """Until ``state`` was entered ``times`` times. For the correction wait (a callback task)
        also until its message is sent (``TaskSubmitted``): entered a moment before, a drain in that
        moment finds nothing to resume (its :meth:`drain` waits only for messages already sent)."""

        def reached() -> list[str] | None:
            events = self.history(arn)
            names = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
            if names.count(state) < times:
                return None
            if state == "WaitForFix" and sum(e["type"] == "TaskSubmitted" for e in events) < times:
                return None
            return names

        return wait_until(reached, what=f"{state} entered {times}x")

    # ---------------------------------------------------------------- correction queue
    @property
    def table(self) -> Table:
        return Table(self.stack.physical_id("MarketplaceTable"), self.stack.client("dynamodb"))

    def queued(self, supplier_id: str, queue: str = "CorrectionQueue") -> list[dict[str, Any]]:
        """The corrections held for this record: for the correction queue, the ones parked in the
        tenant's partition (where its drain reads them; messages still on the queue are parked
        within a poll, :meth:`drain` waits for them); for another queue, its messages, read by
        receiving the whole queue (hiding each message while reading), then made visible again."""
        if queue == "CorrectionQueue":
            return [{**b, "_attributes": {}} for b in self.queued_all() if b.get("recordId") == supplier_id]
        sqs, url = self.stack.client("sqs"), self.stack.physical_id(queue)
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(1000):
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30,
                                           MessageAttributeNames=["All"]).get("Messages", [])  # fmt: skip
            if not messages:
                break
            seen.update({m["MessageId"]: m for m in messages})
        for message in seen.values():
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        found = []
        for message in seen.values():
            try:
                body = json.loads(message["Body"])
            except ValueError:
                body = {"raw": message["Body"]}
            about = body.get("recordId") if isinstance(body, dict) else None
            if about == supplier_id or message["Body"] == supplier_id:
                found.append({**body, "_attributes": message.get("MessageAttributes", {})})
        return found

    def queued_all(self) -> list[dict[str, Any]]:
        """Every correction parked for this tenant (item bodies)."""
        from marketplace.corrections import Parked

        return [json.loads(item["body"]) for page in Parked(self.table).pages(self.tenant) for item in page]

    def unparked(self) -> list[dict[str, Any]]:
        """This tenant's messages still on the correction queue, in any state (not received)."""
        from tests.fault.harness import held_corrections

        return [m for m in held_corrections(self.stack, self.table, self.tenant) if m["State"] != "parked"]

    def drain(self, budget_ms: int | None = None) -> dict[str, Any]:
        """The tenant's drain, as the API runs it, once every message sent so far is parked."""
        wait_until(lambda: not self.unparked(), what="every correction message parked")
        runtime = self.stack.runtime
        name = self.stack.physical_id("CorrectionDrainFunction")
        event = {"source": "test", "tenantId": self.tenant}
        event |= {"deadlineMs": int(time.time() * 1000) + budget_ms} if budget_ms is not None else {}
        report = runtime.invoke_or_raise(name, event)
        return report["byTenant"].get(self.tenant, {}) | {"_all": report}


def activate_rule_pack(onboarding: Onboarding, change: Any) -> int:
    """Activate, for the onboarding's tenant, the default rule pack as ``change`` (a function of the
    document) leaves it, through the domain as its admin would (D51); the version it got."""
    import copy

    from marketplace import rule_packs

    admin = Principal("ada", onboarding.tenant, frozenset({"admin"}))
    document = copy.deepcopy(rule_packs.default_document())
    change(document)
    rule_packs.put_draft(onboarding.table, admin, document, None)
    return int(rule_packs.activate(onboarding.table, admin, None)["version"])


@pytest.fixture
def shop(onboarding: Onboarding) -> Any:
    """The tenant's suppliers, listings and orders, driven through the domain (the order tests' Shop);
    imported here, not at the top: the test modules import this one."""
    from tests.workflow.test_product_listing import Listings
    from tests.workflow.test_supplier_orders import Shop

    return Shop(Listings(onboarding))


@pytest.fixture
def api(stack: Any, tenant: str) -> Any:
    """The tenant's HTTP API through the local gateway, as each role (test_api_races.Api)."""
    from tests.workflow.test_api_races import Api

    return Api(stack, tenant)


def inbox(stack: Any, filter_policy: dict[str, Any]) -> str:
    """An SQS queue subscribed to the supplier-notifications topic with a filter policy (raw
    delivery): what a subscriber of those events receives."""
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName=f"inbox-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.client("sns").subscribe(
        TopicArn=stack.physical_id("SupplierNotificationsTopic"), Protocol="sqs", Endpoint=arn,
        Attributes={"FilterPolicy": json.dumps(filter_policy), "RawMessageDelivery": "true"},
    )  # fmt: skip
    return url


def received(stack: Any, url: str) -> list[dict[str, Any]]:
    """Every message the inbox holds now, read and deleted, as the events' bodies."""
    sqs, bodies = stack.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def unique_ein() -> str:
    digits = f"{uuid.uuid4().int % 10**9:09d}"
    return f"{digits[:2]}-{digits[2:]}"


@pytest.fixture
def onboarding(stack, tenant) -> Onboarding:
    return Onboarding(stack, tenant)


# ------------------------------------------------------------------------ MockConfigFile cases
class MockConfigRuns:
    """Runs the MockConfigFile's test cases in the local stack's engine, each once (cached).

    The state machines are the stack's own (created by the provisioner from template.yaml with its
    DefinitionSubstitutions), created once more under their MockConfigFile names, which is how the
    engine finds a case: ``SFN_MOCK_CONFIG`` names the file and ``<arn>#<case>`` starts the case, as in
    Step Functions Local. They keep the template's type (SupplierOrder is EXPRESS)."""

    def __init__(self, stack: Any) -> None:
        from tests import mock_config_cases as cases

        self.stack, self.sfn = stack, stack.client("stepfunctions")
        self.arns: dict[str, str] = {}
        for machine in cases.machines():
            arn = stack.physical_id(cases.template_state_machines()[machine])
            described = self.sfn.describe_state_machine(stateMachineArn=arn)
            self.arns[machine] = self.create(self.sfn, machine, described["definition"])
        self._runs: dict[tuple[str, str], Any] = {}

    def create(self, sfn: Any, machine: str, definition: str) -> str:
        described = self.sfn.describe_state_machine(
            stateMachineArn=self.stack.physical_id(f"{machine}StateMachine")
        )
        return sfn.create_state_machine(
            name=machine, definition=definition, roleArn=described["roleArn"], type=described["type"]
        )["stateMachineArn"]

    def run(self, machine: str, case: str) -> Any:
        if (machine, case) not in self._runs:
            self._runs[machine, case] = self.start(self.sfn, self.arns[machine], machine, case)
        return self._runs[machine, case]

    def start(self, sfn: Any, machine_arn: str, machine: str, case: str) -> Any:
        from tests import mock_config_cases as cases

        started = sfn.start_execution(
            stateMachineArn=f"{machine_arn}#{case}",
            name=f"{case[:60]}-{uuid.uuid4().hex[:12]}",
            input=json.dumps(cases.execution_input(machine)),
        )
        arn = started["executionArn"]
        status = wait_until(
            lambda: (s := sfn.describe_execution(executionArn=arn)["status"]) != "RUNNING" and s,
            timeout=30, what=f"{machine}/{case} to end",
        )  # fmt: skip
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return cases.Execution(f"{machine}/{case}", arn, status, sorted(events, key=lambda e: e["id"]))

    def run_changed(self, machine: str, case: str, asl: dict[str, Any]) -> Any:
        """Run ``case`` on a changed definition of ``machine``: created under the same name in another
        region (machines are found by name), and deleted again. A state the change left unmocked
        calls that region, where the stack has no table or queue and the machine's role no grant:
        those refusals are the change's doing, not the template's (D50)."""
        import boto3

        from marketplace_local.moto_patches import iam_enforcement

        sfn = boto3.client(
            "stepfunctions", region_name="eu-west-1", endpoint_url=self.stack.moto_endpoint,
            aws_access_key_id="local", aws_secret_access_key="local",
        )  # fmt: skip
        arn = self.create(sfn, machine, json.dumps(asl))
        role = sfn.describe_state_machine(stateMachineArn=arn)["roleArn"]
        try:
            with iam_enforcement.refusals_expected(role):
                return self.start(sfn, arn, machine, case)
        finally:
            sfn.delete_state_machine(stateMachineArn=arn)


@pytest.fixture(scope="session")
def mock_config_runs(stack) -> Iterator[MockConfigRuns]:
    from marketplace_local.moto_patches.engine import MOCK_CONFIG_ENV
    from tests.mock_config_cases import MOCK_CONFIG_PATH

    before = os.environ.get(MOCK_CONFIG_ENV)
    os.environ[MOCK_CONFIG_ENV] = str(MOCK_CONFIG_PATH)
    try:
        yield MockConfigRuns(stack)
    finally:
        if before is None:
            os.environ.pop(MOCK_CONFIG_ENV, None)
        else:
            os.environ[MOCK_CONFIG_ENV] = before

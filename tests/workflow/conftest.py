"""Helpers for driving the supplier onboarding workflow in the local stack."""

from __future__ import annotations

import json
import uuid
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
        return Suppliers(Table(self.stack.physical_id("MarketplaceTable"), self.stack.client("dynamodb")))

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
        return wait_until(lambda: (s := self.entered(arn)).count(state) >= times and s,
                          what=f"{state} entered {times}x")  # fmt: skip

    # ---------------------------------------------------------------- correction queue
    def queued(self, supplier_id: str, queue: str = "CorrectionQueue") -> list[dict[str, Any]]:
        """The queue's messages about this supplier. Reads the whole queue (hiding each message
        while reading), then makes every message visible again."""
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

    def drain(self, budget_ms: int | None = None) -> dict[str, Any]:
        runtime = self.stack.runtime
        name = self.stack.physical_id("CorrectionDrainFunction")
        event = {"source": "test"} | ({"budgetMs": budget_ms} if budget_ms is not None else {})
        report = runtime.invoke_or_raise(name, event)
        return report["byTenant"].get(self.tenant, {}) | {"_all": report}


def unique_ein() -> str:
    digits = f"{uuid.uuid4().int % 10**9:09d}"
    return f"{digits[:2]}-{digits[2:]}"


@pytest.fixture
def onboarding(stack, tenant) -> Onboarding:
    return Onboarding(stack, tenant)

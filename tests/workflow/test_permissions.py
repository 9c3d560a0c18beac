"""The template's permissions bite (D50): a flow whose role lacks one grant of template.yaml fails
with AWS's AccessDenied error, and ends where the design says such a failure ends, not silently.

The stack's roles hold the transformed template's policies (one inline policy per SAM policy
template). Taking one of them off the running role is what deploying a copy of the template without
that statement gives; each test puts it back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from marketplace_local import roles
from marketplace_local.moto_patches import iam_enforcement
from tests.conftest import wait_until


def _policy_granting(stack: Any, role_id: str, action: str, resource_id: str) -> str:
    """The name of the role's policy, in the transformed template, that grants ``action`` on the
    resource ``resource_id`` (found by its reference, so the test follows the template)."""
    found = []
    for policy in stack.template.resources[role_id]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if action in actions and resource_id in json.dumps(statement["Resource"]):
                found.append(policy["PolicyName"])
    (name,) = found
    return name


@contextmanager
def without_policy(stack: Any, role_id: str, policy_name: str) -> Iterator[None]:
    """The role without one of its policies, enforced even when this run turned enforcement off
    (MARKETPLACE_IAM=off); the refusals it causes are this test's, not a gap in the template."""
    iam, role = stack.client("iam"), stack.physical_id(role_id)
    saved = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
    iam.delete_role_policy(RoleName=role, PolicyName=policy_name)
    try:
        with roles.enforcement(), iam_enforcement.refusals_expected(stack.attribute(role_id, "Arn")):
            yield
    finally:
        iam.put_role_policy(RoleName=role, PolicyName=policy_name, PolicyDocument=json.dumps(saved))


def test_onboarding_whose_role_may_not_invoke_validation_is_flagged_for_a_human_naming_access_denied(
    onboarding, stack
):
    """Without the onboarding machine's LambdaInvokePolicy on ValidateSupplierFunction, the Validate
    task is refused with Lambda.AccessDeniedException (AWS's message in the cause), which no Retry
    retries: the Catch flags the record as a system error and parks it for an operator, naming the error."""
    name = _policy_granting(
        stack, "SupplierOnboardingStateMachineRole", "lambda:InvokeFunction", "ValidateSupplierFunction"
    )
    with without_policy(stack, "SupplierOnboardingStateMachineRole", name):
        supplier_id = onboarding.register()
        record = onboarding.wait_status(supplier_id, "FLAGGED")
        (message,) = wait_until(lambda: onboarding.queued(supplier_id), what="system error message")
    (flag,) = message["flags"]
    assert flag["reason"].startswith("system error Lambda.AccessDeniedException"), flag
    arn = onboarding.execution_arn(supplier_id)
    (failure,) = [
        e["taskFailedEventDetails"] for e in onboarding.history(arn) if "taskFailedEventDetails" in e
    ]
    assert failure["error"] == "Lambda.AccessDeniedException"
    assert "is not authorized to perform: lambda:InvokeFunction" in failure["cause"]
    entered = onboarding.entered(arn)
    assert entered[:2] == ["Prepare", "Validate"] and "MarkSystemFlagged" in entered, entered
    assert entered.count("Validate") == 1  # not retried: AccessDenied is not a transient error
    assert record["status"] == "FLAGGED"

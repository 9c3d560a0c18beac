"""Which stream records start which workflow, and the start itself; and what follows an approval
(an approved proposal becomes its record's live version, marketplace.proposals).

A record version starts at most one execution: the name is derived from the record's id and
version, and Step Functions refuses a second Standard execution with the same name. A repeated
delivery of the same record therefore lands on ``ExecutionAlreadyExists``, which is success.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from marketplace import registry
from marketplace.adapters import aws
from marketplace.errors import TransientError
from marketplace.repository import Table
from marketplace.reviewed import PENDING, REJECTED


@dataclass(frozen=True)
class Started:
    name: str
    duplicate: bool


def workflow_for(
    event_name: str, new_image: dict[str, Any] | None, old_image: dict[str, Any] | None = None
) -> tuple[str, str, dict[str, Any]] | None:
    """(state machine ARN, execution name, input) for a new record of a kind that has a workflow
    (every kind of :mod:`marketplace.registry`), else None. A proposal (a kind with an
    ``on_approval``) is also new when it is written PENDING over its record's finished one."""
    if not new_image:
        return None
    kind = registry.find(new_image.get("entity"))
    if kind is None:
        return None
    renewed = (
        event_name == "MODIFY" and kind.on_approval is not None and new_image.get("status") == PENDING
        and (old_image or {}).get("status") in (REJECTED, kind.approved)
    )  # fmt: skip
    if event_name != "INSERT" and not renewed:
        return None
    record_id, version = kind.record_id(new_image), int(new_image.get("version", 1))
    return (
        os.environ[kind.state_machine_env],
        kind.execution_name(record_id, version),
        kind.start_input(str(new_image["tenantId"]), record_id, version),
    )


def route(
    event_name: str, new_image: dict[str, Any] | None, old_image: dict[str, Any] | None = None
) -> Started | None:
    target = workflow_for(event_name, new_image, old_image)
    if target is None:
        return None
    return start(*target)


def follow_approval(
    event_name: str,
    new_image: dict[str, Any] | None,
    old_image: dict[str, Any] | None,
    table: Table | None = None,
) -> str | None:
    """What follows a record's approval, for a kind that has something follow it (an approved
    proposal becomes its record's live version): what it did, or None for any other change."""
    if event_name != "MODIFY" or not new_image:
        return None
    kind = registry.find(new_image.get("entity"))
    if kind is None or kind.on_approval is None:
        return None
    if new_image.get("status") != kind.approved or (old_image or {}).get("status") == kind.approved:
        return None
    return kind.on_approval(table or Table(), new_image)


def start(state_machine_arn: str, name: str, execution_input: dict[str, Any]) -> Started:
    try:
        aws.client("stepfunctions").start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(execution_input, default=str)
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ExecutionAlreadyExists":
            return Started(name, duplicate=True)
        if code in ("ThrottlingException", "ServiceUnavailable", "InternalServerError"):
            raise TransientError(code) from error
        raise
    return Started(name, duplicate=False)

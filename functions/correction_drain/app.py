"""The admin drain: resumes fixed records' workflows from the parked corrections (see
marketplace.corrections). Runs on a schedule (every tenant's corrections) and when an admin asks
(POST /admin/corrections/drain: the event names the admin's tenant, and only its corrections are read).

Resuming is made idempotent here with Powertools idempotency, keyed on the message's kind,
tenant, record and flagged version: a message delivered twice resumes its workflow once.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import config, registry
from marketplace.adapters import aws
from marketplace.corrections import Correction, Drain
from marketplace.observability import NO_TENANT, count, observed

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()
# The shared client: one DynamoDB model loaded per cold start, not one for us and one for Powertools.
persistence = DynamoDBPersistenceLayer(
    table_name=os.environ["IDEMPOTENCY_TABLE_NAME"], boto3_client=aws.client("dynamodb")
)
idempotency = IdempotencyConfig(
    event_key_jmespath="[kind, tenantId, recordId, flaggedVersion]",
    expires_after_seconds=14 * 24 * 3600,  # the queue's retention: a message cannot come back later
)


def _drain() -> Drain:
    return Drain(
        sfn=aws.client("stepfunctions"),
        state_machine_arns={
            name: os.environ[kind.state_machine_env] for name, kind in registry.KINDS.items()
        },
    )


@idempotent_function(data_keyword_argument="correction", config=idempotency, persistence_store=persistence)
def resume_once(correction: dict[str, Any], version: int, nonce: str) -> dict[str, str]:
    parsed = Correction(
        kind=correction["kind"], tenant_id=correction["tenantId"], record_id=correction["recordId"],
        flagged_version=correction["flaggedVersion"], task_token=correction.get("taskToken"), flags=[],
    )  # fmt: skip
    return {"outcome": _drain().resume(parsed, version), "nonce": nonce}


def _resume(correction: Correction, version: int) -> str:
    """Resume once per message; a replayed message (same key) is reported as a duplicate."""
    nonce = str(uuid.uuid4())
    result = resume_once(correction=correction.idempotency_payload(), version=version, nonce=nonce)
    return result["outcome"] if result["nonce"] == nonce else "duplicates"


def _time_budget(event: dict[str, Any], context: LambdaContext) -> Callable[[], float]:
    """Seconds this drain may still spend: this function's own time left, less a margin to report,
    and no later than a caller's ``deadlineMs`` (epoch milliseconds: the API, which must answer
    within its own timeout). A deadline, not a duration: the caller's SDK retries a throttled
    Invoke with the same payload, and a duration would restart with each retry."""
    deadline = event.get("deadlineMs") if isinstance(event, dict) else None
    caller = float(deadline) / 1000 if isinstance(deadline, int | float) and deadline > 0 else float("inf")

    def seconds_left() -> float:
        own = context.get_remaining_time_in_millis() / 1000 - 2.0
        return min(own, caller - time.time())

    return seconds_left


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    tenant = event.get("tenantId") if isinstance(event, dict) else None
    tenant = tenant if isinstance(tenant, str) and tenant else None  # none: the schedule, every tenant
    report = _drain().run(tenant, resume=_resume, seconds_left=_time_budget(event, context))
    result = report.as_dict()
    logger.info("correction queue drained", extra={k: v for k, v in result.items() if k != "byTenant"})
    for outcome in ("resumed", "restarted", "waiting", "closed", "duplicates", "requeued"):
        per_tenant = {t: counts.get(outcome, 0) for t, counts in result["byTenant"].items()}
        per_tenant[NO_TENANT] = result[outcome] - sum(per_tenant.values())  # a correction naming none
        for tenant_id, counted in per_tenant.items():
            if counted:
                count(metrics, f"Corrections{outcome.title()}", tenant_id, counted)
    return result

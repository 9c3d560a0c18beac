"""Starts the settlements that are due: for each tenant with ledger entries, its period that last
closed (weekly by default), one execution of the settlement workflow named by the tenant and the period.

Runs hourly on a schedule; "now" is the scheduled event's ``time``. An execution of that name
already started is left alone (Step Functions keeps a Standard execution's name for 90 days), so
an hourly run starts each tenant's period once, and a rerun after a failure starts nothing twice;
an execution that failed is started again by hand (D45).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import clock, config, keys, statements
from marketplace.adapters import aws
from marketplace.observability import count, observed
from marketplace.repository import Table

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = clock.scheduled(event)
    sfn, machine = aws.client("stepfunctions"), config.require("SETTLEMENT_STATE_MACHINE_ARN")
    started, running = [], []
    for due in statements.due(Table(), now):
        name = keys.execution_name("SETTLEMENT", f"{due['tenantId']}-{due['periodId']}", 1)
        try:
            sfn.start_execution(
                stateMachineArn=machine, name=name, input=json.dumps({**due, "nextToken": None})
            )
            started.append(name)
            count(metrics, "SettlementsStarted", due["tenantId"])
        except sfn.exceptions.ExecutionAlreadyExists:
            running.append(name)
    logger.info("settlements", extra={"as_of": now.isoformat(), "started": started, "already": len(running)})
    return {"started": started, "already": running}

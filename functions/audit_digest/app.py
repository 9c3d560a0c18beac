"""Writes a digest of each tenant's audit chains changed since the last run to the write-once bucket
(``marketplace.audit.write_digests``, D48). "Now" is the scheduled event's ``time``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace import audit, clock, config, keys
from marketplace.observability import count, observed
from marketplace.repository import Table

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()


@observed(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = clock.scheduled(event)
    written = audit.write_digests(Table(), audit.DigestStore(), now)
    logger.info("audit digests written", extra={"as_of": clock.iso(now), "digests": len(written)})
    for key in written:  # one digest per tenant
        count(metrics, "AuditDigestsWritten", keys.audit_digest_tenant(key))
    return {"digests": written}

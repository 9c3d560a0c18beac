"""Settings from the function's environment (template.yaml sets every one of them)."""

from __future__ import annotations

import os


def require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set (template.yaml sets it)")
    return value


def table_name() -> str:
    return require("TABLE_NAME")


# The template's PinnedTenant parameter (D53): set on a premium tenant's own stack, empty on the pool.
PINNED_TENANT_VARIABLE = "PINNED_TENANT"


def pinned_tenant() -> str | None:
    """The one tenant this stack serves (a silo), or None: the pool serves every tenant."""
    return os.environ.get(PINNED_TENANT_VARIABLE) or None


# What Powertools' Tracer patches for X-Ray: the AWS SDK (every DynamoDB, SQS, SNS, Step Functions
# call becomes a subsegment) and http.client (the webhook POSTs). Its default, every library the
# X-Ray SDK knows, imports `requests` just to patch it: about 90 ms of every cold start, for a
# library no handler uses (bench/imports.py measures it).
TRACED_MODULES = ("botocore", "httplib")

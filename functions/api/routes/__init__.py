"""The API's routes, one Powertools router per resource; app.py includes them all.

Each route declares who may call it beside its path (``middlewares=[allow(...)]``, policy.py), reads
its request with request.py and calls one domain object. The function's Powertools ``logger``,
``tracer`` and ``metrics`` are made here, once, and app.py decorates its handler with these same
objects: a metric a router adds is flushed by the handler's ``log_metrics`` (and the local stack,
which gives each function's ``Metrics`` sets of its own, finds this one in app.py)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

from marketplace import config

logger = Logger()
tracer = Tracer(patch_modules=config.TRACED_MODULES)
metrics = Metrics()

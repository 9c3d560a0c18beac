"""Every metric carries its tenant (D52): ``observability.count`` writes one EMF document per tenant
of an invocation, each with the tenant as a dimension, and no handler counts any other way."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aws_lambda_powertools import Metrics

from marketplace.observability import NO_TENANT, TENANT, count

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def metrics() -> Metrics:
    # Powertools keeps the sets at class level: a fresh start, and nothing left for the next test.
    made = Metrics(namespace="Marketplace", service="svc")
    made.clear_metrics()
    yield made
    made.clear_metrics()


def documents(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]


def counted(document: dict) -> dict[str, object]:
    names = [m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    return {name: document[name] for name in names}


def test_a_batch_of_two_tenants_is_counted_in_one_document_per_tenant(metrics, capsys):
    count(metrics, "WorkflowsStarted", "t-one")
    count(metrics, "WorkflowsStarted", "t-two")
    count(metrics, "LedgerEntries", "t-one", 4)
    count(metrics, "WorkflowsStarted", "t-one")
    metrics.flush_metrics()
    found = documents(capsys.readouterr().out)
    assert [(d[TENANT], counted(d)) for d in found] == [
        # Another tenant's count is written at once; the invocation's own tenant's at the end.
        ("t-two", {"WorkflowsStarted": [1.0]}),
        ("t-one", {"WorkflowsStarted": [1.0, 1.0], "LedgerEntries": [4.0]}),
    ]
    for document in found:
        (dimensions,) = document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        assert set(dimensions) == {"service", TENANT}, dimensions
        assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Marketplace"
        assert document["service"] == "svc"


def test_the_next_invocation_starts_with_no_tenant(metrics, capsys):
    count(metrics, "AuditEntries", "t-one")
    metrics.flush_metrics()
    count(metrics, "AuditEntries", NO_TENANT)
    metrics.flush_metrics()
    assert [d[TENANT] for d in documents(capsys.readouterr().out)] == ["t-one", NO_TENANT]


def test_no_handler_counts_a_metric_without_its_tenant():
    """``metrics.add_metric`` would publish a metric with no tenant dimension: every count goes
    through ``observability.count``."""
    direct = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "functions").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.add_metric\(|single_metric\(", line)
    ]
    assert direct == []

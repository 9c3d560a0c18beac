"""The bench's arithmetic on hand-checked examples: DynamoDB item sizes and capacity units by AWS's
published rules, index writes, the cost of one transaction from its counts, and the capacity
derivation."""

from __future__ import annotations

import dataclasses
import json

import pytest
from bench import costs


# ------------------------------------------------------------------ item sizes
@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"PK": {"S": "abc"}}, 2 + 3),  # name + UTF-8 bytes
        ({"é": {"S": "ü"}}, 2 + 2),  # both counted in UTF-8 bytes
        ({"n": {"N": "123.45"}}, 1 + 3 + 1),  # 5 significant digits: ceil(5/2) + 1
        ({"n": {"N": "1000"}}, 1 + 1 + 1),  # trailing zeros trimmed: "1"
        ({"n": {"N": "-0.0012"}}, 1 + 1 + 1),  # leading zeros trimmed: "12"
        ({"b": {"BOOL": True}, "z": {"NULL": True}}, 2 + 2),
        ({"b": {"B": b"\x00\x01\x02"}}, 1 + 3),
        ({"m": {"M": {"a": {"S": "x"}}}}, 1 + 3 + (1 + 1 + 1)),  # 3 bytes + (name + value + 1) per entry
        ({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}, 1 + 3 + (2 + 1) + (2 + 1)),
        ({"s": {"SS": ["ab", "c"]}}, 1 + 3),
        ({}, 0),
    ],
)
def test_item_size_follows_the_aws_rules(item, size):
    assert costs.item_size(item) == size


def test_write_units_per_started_kilobyte_and_double_in_a_transaction():
    assert [costs.write_units(n) for n in (0, 1, 1024, 1025, 2048, 2049)] == [1, 1, 1, 2, 2, 3]
    assert costs.write_units(1025, transactional=True) == 4


def test_read_units_per_started_4kb_half_when_eventually_consistent_double_in_a_transaction():
    assert costs.read_units(0) == 0.5  # a miss still costs the minimum
    assert costs.read_units(4096) == 0.5
    assert costs.read_units(4097) == 1.0
    assert costs.read_units(4097, consistent=True) == 2.0
    assert costs.read_units(100, transactional=True) == 2.0


def test_index_writes_move_put_touch_or_skip():
    indexes = [("GSI1", ["GSI1PK", "GSI1SK"]), ("GSI3", ["GSI3PK", "GSI3SK"])]
    base = {"PK": {"S": "p"}, "SK": {"S": "s"}, "GSI1PK": {"S": "STATUS#A"}, "GSI1SK": {"S": "1"}}
    moved = {**base, "GSI1PK": {"S": "STATUS#B"}}
    touched = {**base, "note": {"S": "x"}}
    # Key changed: a delete of the old index item and a put of the new one; GSI3 holds neither.
    assert costs.index_writes(indexes, base, moved) == [("GSI1", 1, "STATUS#A"), ("GSI1", 1, "STATUS#B")]
    assert costs.index_writes(indexes, base, touched) == [("GSI1", 1, "STATUS#A")]
    assert costs.index_writes(indexes, base, base) == []  # nothing changed, nothing written
    assert costs.index_writes(indexes, None, base) == [("GSI1", 1, "STATUS#A")]  # a new item
    assert costs.index_writes(indexes, base, None) == [("GSI1", 1, "STATUS#A")]  # a delete
    big = {**base, "blob": {"S": "x" * 1500}}  # 1.5 KB: 2 units in the index too
    assert costs.index_writes(indexes, None, big) == [("GSI1", 2, "STATUS#A")]
    # An INCLUDE (or KEYS_ONLY) index holds only its projected attributes: the blob is not written there.
    included = [("GSI4", ["GSI1PK", "GSI1SK"], ["PK", "SK", "GSI1PK", "GSI1SK", "hash"])]
    assert costs.index_writes(included, None, big) == [("GSI4", 1, "STATUS#A")]


# ------------------------------------------------------------------ cost of one transaction
def sample(**overrides):
    base = {
        "requests": {}, "wru": {}, "rru": {}, "invocations": {}, "wall_ms": {}, "cpu_ms": {},
        "log_bytes": 0, "esm_invocations": 0, "executions": [],
    }  # fmt: skip
    return {**base, **overrides}


@pytest.fixture
def prices():
    return costs.load_prices()


def test_prices_are_dated_and_name_their_source(prices):
    assert prices["as_of"] and prices["region"] == "us-east-1"
    assert all(entry["source"] and entry["usd"] > 0 for entry in prices["prices"].values())
    # After the November 2024 on-demand reduction.
    assert prices["prices"]["dynamodb_on_demand_per_wru"]["usd"] * 1e6 == pytest.approx(0.625)
    assert prices["prices"]["dynamodb_on_demand_per_rru"]["usd"] * 1e6 == pytest.approx(0.125)


def test_cost_of_dynamodb_api_and_lambda_by_hand(prices):
    one = sample(
        wru={"T": 8, "T/GSI1": 2},
        rru={"T": 3.5},
        invocations={"ApiFunction": 2, "Other": 1},
        wall_ms={"ApiFunction": 200.0, "Other": 100.0},
    )
    usd = costs.cost_of(one, prices, {"ApiFunction": 512, "Other": 1024})
    assert usd["DynamoDB writes"] * 1e6 == pytest.approx(10 * 0.625)
    assert usd["DynamoDB reads"] * 1e6 == pytest.approx(3.5 * 0.125)
    assert usd["API Gateway"] * 1e6 == pytest.approx(2 * 3.50)
    assert usd["Lambda requests"] * 1e6 == pytest.approx(3 * 0.20)
    # 0.2 s at 0.5 GB + 0.1 s at 1 GB = 0.2 GB-s
    assert usd["Lambda duration"] == pytest.approx(0.2 * 0.0000133334)


def test_cost_of_step_functions_sns_sqs_logs_by_hand(prices):
    one = sample(
        requests={"sns:Publish": 3, "sqs:SendMessage": 2, "sqs:DeleteMessageBatch": 1, "sns:Unrelated": 0},
        executions=[
            {"type": "EXPRESS", "transitions": 5, "duration_ms": 250.0},
            {"type": "STANDARD", "transitions": 6, "duration_ms": 9000.0},
        ],
        invocations={"F": 2},
        wall_ms={"F": 0.0},
        log_bytes=1_000_000,
    )
    usd = costs.cost_of(one, prices, {"F": 128})
    assert usd["Step Functions Standard"] * 1e6 == pytest.approx(6 * 25.0)  # $0.025 per 1,000
    # $1/M requests + 250 ms billed as 300 ms at 64 MB: 0.3 * 0.0625 GB-s
    assert usd["Step Functions Express"] == pytest.approx(1e-6 + 0.3 * 0.0625 * 0.00001667)
    assert usd["SNS"] * 1e6 == pytest.approx(3 * (0.50 + 0.60))  # publish + one HTTP delivery each
    assert usd["SQS"] * 1e6 == pytest.approx(3 * 0.40)
    # 1 MB of handler output + 2 invocations x 360 B of Lambda's own lines, at $0.50/GB
    assert usd["CloudWatch Logs"] == pytest.approx((1_000_000 + 720) / 1e9 * 0.5)
    # traces: 2 executions, sampled at 5%, $5/M
    assert usd["X-Ray"] * 1e6 == pytest.approx(2 * 0.05 * 5.0)


def test_a_publish_batch_is_billed_as_one_request_and_its_messages_as_deliveries(prices):
    one = sample(requests={"sns:PublishBatch": 1, costs.SNS_MESSAGES: 10})
    assert costs.cost_of(one, prices, {})["SNS"] * 1e6 == pytest.approx(1 * 0.50 + 10 * 0.60)


def test_lambdas_own_lines_are_counted_only_where_its_system_log_level_sends_them(prices):
    one = sample(invocations={"Quiet": 3, "Chatty": 2}, wall_ms={}, log_bytes=1_000)
    usd = costs.cost_of(one, prices, {}, {"Quiet": "WARN", "Chatty": "INFO"})
    assert usd["CloudWatch Logs"] == pytest.approx((1_000 + 2 * 360) / 1e9 * 0.5)  # Chatty's only
    assert costs.cost_of(one, prices, {})["CloudWatch Logs"] == pytest.approx((1_000 + 5 * 360) / 1e9 * 0.5)


def test_report_per_million_adds_the_services_and_amortises_the_sweeper(prices):
    order = sample(requests={"stepfunctions:StartExecution": 1}, wru={"T": 4}, elapsed_s=1.0, stream_reads=0,
                   wru_by_key={"T|TENANT#t1#X": 4})  # fmt: skip
    sweep = sample(rru={"T/GSI3": 600.0}, elapsed_s=1.0, stream_reads=0, wru_by_key={},
                   invocations={"ExpireSupplierOrdersFunction": 1}, wall_ms={"ExpireSupplierOrdersFunction": 500.0},
                   cpu_ms={"ExpireSupplierOrdersFunction": 100.0}, calls={"ExpireSupplierOrdersFunction": 100})  # fmt: skip
    # A whole lifecycle: the order's counts, 6 WRU more, and two sweeper runs that each did the empty
    # run's work and fired one transition (a read, 0.5 RRU; 50 ms of wall time, 10 ms of CPU).
    lifecycle = sample(
        requests={"stepfunctions:StartExecution": 1},
        wru={"T": 10},
        rru={"T/GSI3": 1200.0, "T": 0.5},
        elapsed_s=3.0,
        stream_reads=0,
        wru_by_key={"T|TENANT#t1#X": 4, "T|TENANT#t1#SO#1": 6},
        invocations={"ExpireSupplierOrdersFunction": 2},
        wall_ms={"ExpireSupplierOrdersFunction": 1100.0},
        cpu_ms={"ExpireSupplierOrdersFunction": 220.0},
        calls={"ExpireSupplierOrdersFunction": 206},
    )
    measured = {
        "samples": {"onboarding": [order, order], "order": [order, order], "lifecycle": [lifecycle, lifecycle],
                    "sweep": [sweep]},
        "memory_mb": {}, "webhook_requests_received": 0,
        "names": {"tenant": "t1", "supplier": "s1", "sku": "k1"}, "api_stage_rate_limit_per_s": None,
    }  # fmt: skip
    out = costs.report(measured, prices)
    # One run: 600 RRU, a Lambda request, 0.5 s at 128 MB, Lambda's own log lines.
    sweep_usd = 600 * 0.125e-6 + 1 * 0.2e-6 + 0.5 * 128 / 1024 * 0.0000133334 + 360 * 0.5e-9
    sweeper = sweep_usd / (1000 * 60)  # one run a minute over a minute of 1,000 orders/s
    by_service = out["order"]["usd_per_million_by_service"]
    assert by_service["Expiry sweeper (amortised)"]["median"] == pytest.approx(sweeper * 1e6)
    assert out["order"]["usd_per_million"]["median"] == pytest.approx(4 * 0.625 + sweeper * 1e6)
    # One tenant-wide partition key written 4 WRU per order: 250 orders/s before it throttles.
    assert out["order"]["hot_keys"] == [
        {"table": "T", "key": "TENANT#<t>#X", "scope": "tenant", "wru_per_transaction": 4.0}
    ]
    assert out["capacity"]["us_east_1"] == {
        "orders_per_s": 250.0,
        "binding": "dynamodb_partition_wru_per_s T TENANT#<t>#X",
    }
    # The lifecycle's two sweeper runs less their fixed part (the empty run's 600 RRU, invocation
    # and time each), plus the same amortised share: its writes, its one read, the firing's time.
    life = out["lifecycle"]
    firing_gb_s = 0.1 * 128 / 1024
    assert life["usd_per_million"]["median"] == pytest.approx(
        (10 * 0.625e-6 + 0.5 * 0.125e-6 + firing_gb_s * 0.0000133334) * 1e6 + sweeper * 1e6
    )
    assert life["usd_per_million_with_whole_sweeper_runs"]["median"] == pytest.approx(
        (life["usd_per_million"]["median"] - sweeper * 1e6) + 2 * sweep_usd * 1e6
    )
    # 6 requests firing one order's two transitions, at an empty run's 5 ms (1 ms CPU) per request:
    # 30 ms (6 ms), so 33 (167) orders/s for a serial run.
    assert life["sweeper_firing"]["requests_per_order"] == 6
    assert life["sweeper_firing"]["orders_per_s_wall"] == pytest.approx(1 / 0.030)
    assert life["sweeper_firing"]["orders_per_s_cpu"] == pytest.approx(1 / 0.006)
    assert {k["key"]: k["wru_per_transaction"] for k in life["hot_keys"]} == {
        "TENANT#<t>#X": 4.0, "TENANT#<t>#SO#1": 6.0}  # fmt: skip
    assert out["lifecycle_capacity"]["us_east_1"]["orders_per_s"] == pytest.approx(1000 / 6)


def test_the_audit_trails_share_is_what_the_audit_function_requested(prices):
    """D48: the audit's entries, links and GSI4 writes are the audit function's requests; the report
    prints them apart, in units and in dollars per million."""
    order = sample(wru={"T": 9, "T/GSI4": 2}, rru={"T": 3}, elapsed_s=1.0, stream_reads=0, wru_by_key={},
                   wru_by_function={"AuditFunction": 5, "ApiFunction": 6}, rru_by_function={"AuditFunction": 2, "ApiFunction": 1})  # fmt: skip
    sweep = sample(rru={"T/GSI3": 600.0}, elapsed_s=1.0, stream_reads=0, wru_by_key={},
                   invocations={"ExpireSupplierOrdersFunction": 1}, wall_ms={"ExpireSupplierOrdersFunction": 500.0},
                   cpu_ms={"ExpireSupplierOrdersFunction": 100.0}, calls={"ExpireSupplierOrdersFunction": 100})  # fmt: skip
    measured = {
        "samples": {"onboarding": [order], "order": [order], "lifecycle": [order], "sweep": [sweep]},
        "memory_mb": {}, "webhook_requests_received": 0,
        "names": {"tenant": "t1", "supplier": "s1", "sku": "k1"}, "api_stage_rate_limit_per_s": None,
    }  # fmt: skip
    out = costs.report(measured, prices)["order"]
    assert (out["counts"]["dynamodb_wru_audit"]["median"], out["counts"]["dynamodb_rru_audit"]["median"]) == (
        5,
        2,
    )
    assert out["usd_per_million_audit_dynamodb"]["median"] == pytest.approx(5 * 0.625 + 2 * 0.125)


def test_the_ledgers_share_is_the_writes_to_ledger_partitions(prices):
    """D42: a delivered order's sale and commission are two entries in the supplier's ledger
    partition; the report prints their write units and their dollars per million apart."""
    lifecycle = sample(wru={"T": 12}, elapsed_s=1.0, stream_reads=0,
                       wru_by_key={"T|TENANT#t1#LEDGER#s1": 2, "T|TENANT#t1#SO#1": 10})  # fmt: skip
    sweep = sample(rru={"T/GSI3": 30.0}, elapsed_s=1.0, stream_reads=0, wru_by_key={},
                   invocations={"ExpireSupplierOrdersFunction": 1}, wall_ms={"ExpireSupplierOrdersFunction": 50.0},
                   cpu_ms={"ExpireSupplierOrdersFunction": 10.0}, calls={"ExpireSupplierOrdersFunction": 30})  # fmt: skip
    measured = {
        "samples": {"onboarding": [lifecycle], "order": [lifecycle], "lifecycle": [lifecycle], "sweep": [sweep]},
        "memory_mb": {}, "webhook_requests_received": 0,
        "names": {"tenant": "t1", "supplier": "s1", "sku": "k1"}, "api_stage_rate_limit_per_s": None,
    }  # fmt: skip
    out = costs.report(measured, prices)["order"]
    # The ledger partition's 2 WRU of the order's 12.
    assert out["counts"]["dynamodb_wru_ledger"]["median"] == 2
    assert out["usd_per_million_ledger_dynamodb"]["median"] == pytest.approx(2 * 0.625)


def test_capacity_picks_the_quota_that_binds_first_per_region(tmp_path):
    quotas = json.loads(costs.QUOTAS_PATH.read_text())
    path = tmp_path / "quotas.json"
    path.write_text(json.dumps(quotas))

    def figure(value):
        return {"median": value, "min": value, "max": value}

    order = {"counts": {
        "requests": {"stepfunctions:StartExecution": figure(1), "sns:Publish": figure(3)},
        "lambda_wall_ms": figure(100.0), "lambda_cpu_ms": figure(50.0),
        "lambda_invocations_by_function": {"ApiFunction": figure(2)},
        "dynamodb_wru": figure(8), "dynamodb_rru": figure(4),
    }}  # fmt: skip
    out = costs.capacity(order, [], stage_limit=None, quotas_path=path)
    q = quotas["quotas"]
    # 40,000 WRU/s / 8 = 5,000; API 10,000 / 2 = 5,000; Express 6,000; Lambda 1,000 / 0.1 s = 10,000
    assert out["us_east_1"]["orders_per_s"] == pytest.approx(
        min(
            q["dynamodb_on_demand_table_wru_per_s"]["us-east-1"] / 8,
            q["apigateway_account_rps"]["us-east-1"] / 2,
        )
    )
    # lowest region: SNS 1,500 / 3 = 500 binds before API 2,500 / 2
    assert out["lower_quota_region"] == {"orders_per_s": pytest.approx(500.0), "binding": "sns_publish_per_s"}

    # The table quota is per table: the busiest one (with its indexes) binds, not the sum of all.
    order["counts"]["dynamodb_wru"] = figure(30)
    order["counts"]["dynamodb_wru_by_table_index"] = {
        "Main": figure(20),
        "Main/GSI1": figure(5),
        "Idem": figure(5),
    }
    limits = {x["quota"]: x for x in costs.capacity(order, [], stage_limit=None, quotas_path=path)["limits"]}
    assert limits["dynamodb_on_demand_table_wru_per_s"]["per_order"] == 25


def test_the_fair_share_simulation_counts_what_the_limiter_lets_in_and_writes():
    from bench import fair_share

    over = fair_share.simulate(instances=1, offered_per_s=200, limit=100, seconds=3)
    assert over["steady_admitted_per_s"] == 100 and over["refused"] == 300
    assert over["of_limit"] == 1.0
    under = fair_share.simulate(instances=4, offered_per_s=50, limit=100, seconds=3)
    assert under["refused"] == 0 and under["admitted_per_s"] == 50
    # $ per million orders = writes per request x 2 requests an order x 1e6 x the WRU price.
    per_request = under["writes_per_million_requests"] / 1e6
    assert under["wru_usd_per_million_orders"] == pytest.approx(per_request * 2 * 1e6 * 0.000000625)


# ------------------------------------------------------------------ throughput variants
def test_each_throughput_variant_sets_options_the_stack_has_and_iam_off_differs_from_fast_by_the_check():
    """--serve sets each option on StackConfig by name: a misspelt one would be a new attribute that
    nothing reads, and the variant would measure the defaults."""
    from bench.throughput import VARIANTS

    from marketplace_local.stack import StackConfig

    options = {f.name for f in dataclasses.fields(StackConfig)}
    assert {name for variant in VARIANTS.values() for name in variant} <= options
    assert VARIANTS["iam-off"] == {**VARIANTS["fast"], "enforce_iam": False}

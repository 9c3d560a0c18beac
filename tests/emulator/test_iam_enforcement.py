"""moto's IAM evaluation given each request's real resource (marketplace_local.moto_patches.iam_enforcement,
D50), shown failing on plain moto and passing with the patch (D5), each in a fresh process."""

from __future__ import annotations

import json
import os

import boto3
import pytest

from marketplace_local import roles
from tests.emulator import run_scenario


def scenario(mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    return run_scenario("tests.emulator.iam_scenarios", mode, env)


def test_plain_moto_refuses_every_call_of_a_policy_that_names_arns():
    """moto evaluates every request's resource as ``*``: a grant on the table's ARN grants nothing, its
    refusal is the query protocol's XML (boto3 reads the DynamoDB error code as "403"), and a caller
    with keys moto does not know (the operator) is refused too."""
    assert scenario("plain") == {
        "get granted table": "403",
        "put granted table": "403",
        "get other table": "403",
        "transaction update granted": "403",
        "transaction put granted": "403",
        "publish granted topic": "AccessDenied",
        "operator puts": "403",
    }


def test_with_the_patch_a_role_may_do_what_its_policy_grants_on_the_resources_it_names():
    """Granted: GetItem and UpdateItem on one table, Publish on one topic. A transaction's item is
    authorised as its own action (an Update passes, a Put does not); refusals are DynamoDB's
    AccessDeniedException; the operator (plain keys) is never refused."""
    assert scenario("patched") == {
        "get granted table": "ok",
        "put granted table": "AccessDeniedException",
        "get other table": "AccessDeniedException",
        "transaction update granted": "ok",
        "transaction put granted": "AccessDeniedException",
        "publish granted topic": "ok",
        "operator puts": "ok",
    }


def test_each_function_runs_with_a_session_of_its_own_execution_role(stack):
    """As Lambda does: the function's environment holds its role's session, and AWS knows the caller
    as that role (sts:GetCallerIdentity, which no policy can refuse)."""
    for logical_id in ("ApiFunction", "ValidateSupplierFunction"):
        environment = stack.runtime._environment(stack.runtime.by_logical_id(logical_id))
        sts = boto3.session.Session().client(
            "sts",
            region_name=stack.config.region,
            endpoint_url=stack.moto_endpoint,
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=environment["AWS_SESSION_TOKEN"],
        )
        role = stack.physical_id(stack.template.resources[logical_id]["Properties"]["Role"]["Fn::GetAtt"][0])
        assert f":assumed-role/{role}/" in sts.get_caller_identity()["Arn"]


def test_enforcement_is_on_unless_the_switch_turns_it_off_and_names_itself_otherwise(monkeypatch):
    monkeypatch.delenv("MARKETPLACE_IAM", raising=False)
    assert roles.enforcement_from_env() is True  # make run and make test enforce (D50)
    monkeypatch.setenv("MARKETPLACE_IAM", "OFF")
    assert roles.enforcement_from_env() is False
    monkeypatch.setenv("MARKETPLACE_IAM", "on")
    assert roles.enforcement_from_env() is True
    monkeypatch.setenv("MARKETPLACE_IAM", "maybe")
    with pytest.raises(ValueError, match="MARKETPLACE_IAM must be on or off"):
        roles.enforcement_from_env()


def test_the_least_privilege_report_marks_each_grant_used_or_never_used(tmp_path):
    from marketplace_local import iam_report

    queue = "arn:aws:sqs:us-east-1:123456789012:q"
    statement = {"policy": "p0", "Effect": "Allow", "Action": ["sqs:SendMessage*", "sqs:DeleteMessage"]}
    usage = {
        "granted": {"FnRole": [{**statement, "Resource": queue}]},
        "used": [["FnRole", "sqs:SendMessage", queue]],
        "denied": [["FnRole", "sqs:PurgeQueue", queue]],
    }
    (tmp_path / "usage-1.json").write_text(json.dumps(usage))
    rows = iam_report.report(tmp_path)["FnRole"]
    assert rows == [
        {
            "policy": "p0",
            "source": "p0",
            "action": "sqs:SendMessage*",
            "resources": [queue],
            "used": [f"sqs:SendMessage {queue}"],
        },
        {"policy": "p0", "source": "p0", "action": "sqs:DeleteMessage", "resources": [queue], "used": []},
        {"denied": f"sqs:PurgeQueue {queue}"},
    ]


def test_one_action_granted_on_two_resources_by_one_policy_is_two_rows_each_used_or_not(tmp_path):
    """A written policy often grants one action twice (Query on the table and on an index, PutItem
    on two tables): a call on one resource does not mark the other used."""
    from marketplace_local import iam_report

    table = "arn:aws:dynamodb:us-east-1:123456789012:table/t"
    statements = [{"policy": "p0", "Sid": "Table", "Effect": "Allow", "Action": "dynamodb:Query", "Resource": table},
                  {"policy": "p0", "Sid": "Index", "Effect": "Allow", "Action": "dynamodb:Query",
                   "Resource": f"{table}/index/GSI3"}]  # fmt: skip
    usage = {"granted": {"FnRole": statements}, "used": [["FnRole", "dynamodb:Query", table]], "denied": []}
    (tmp_path / "usage-1.json").write_text(json.dumps(usage))
    rows = iam_report.report(tmp_path)["FnRole"]
    assert [(r["resources"], r["used"]) for r in rows] == [
        ([table], [f"dynamodb:Query {table}"]),
        ([f"{table}/index/GSI3"], []),
    ]
    problems = iam_report.problems({"FnRole": rows}, [])
    assert problems == [
        f"FnRole: dynamodb:Query on {table}/index/GSI3 is never used [p0]: tighten the template or give "
        "the reason in iam-reasons.yaml"
    ]


def test_a_role_policy_is_known_by_the_sam_policy_template_or_statement_that_wrote_it():
    from marketplace_local import iam_report

    sam = {"Resources": {"FnFunction": {"Properties": {"Policies": [
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess", {"DynamoDBCrudPolicy": {"TableName": "t"}},
        {"Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:q"}]}]}}}}  # fmt: skip
    assert iam_report.policy_source(sam, "FnFunctionRole", "FnFunctionRolePolicy1") == "DynamoDBCrudPolicy"
    assert iam_report.policy_source(sam, "FnFunctionRole", "FnFunctionRolePolicy2") == "Statement"
    assert (
        iam_report.policy_source(sam, "FnFunctionRole", "AWSXrayWriteOnlyAccess") == "AWSXrayWriteOnlyAccess"
    )
    assert iam_report.policy_source(sam, "FnFunctionRole", "FnFunctionRolePolicy7") == "FnFunctionRolePolicy7"


def test_the_check_fails_on_a_grant_never_used_unless_a_reason_keeps_it_and_on_every_refusal(
    tmp_path, capsys
):
    """``make iam-report``'s check: an unused grant without a reason in iam-reasons.yaml fails it,
    naming the role, action and resource; a reason (for the role, or ``*`` for every role) keeps it."""
    from marketplace_local import iam_report

    queue = "arn:aws:sqs:us-east-1:123456789012:local-ImportQueue"
    usage = {
        "granted": {"FnRole": [{"policy": "p0", "Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:DeleteMessage"],
                                "Resource": queue}]},
        "used": [["FnRole", "sqs:SendMessage", queue]],
        "denied": [],
    }  # fmt: skip
    (tmp_path / "usage-1.json").write_text(json.dumps(usage))
    reasons = tmp_path / "reasons.yaml"
    reasons.write_text("[]\n")
    assert iam_report.main([str(tmp_path), "--check", "--reasons", str(reasons)]) == 1
    assert f"FnRole: sqs:DeleteMessage on {queue} is never used" in capsys.readouterr().err
    for role, scope in (
        ("FnRole", ""),
        ("*", ""),
        ("FnRole", "resource: ImportQueue\n  "),
        ("*", "policy: p0\n  "),
    ):
        reasons.write_text(f"- role: '{role}'\n  action: sqs:DeleteMessage\n  {scope}reason: why it stays\n")
        assert iam_report.main([str(tmp_path), "--check", "--reasons", str(reasons)]) == 0, (role, scope)
        assert "unused (*) sqs:DeleteMessage" in capsys.readouterr().out
    for scope in ("resource: OtherQueue", "policy: p1"):  # a reason for another grant keeps nothing here
        reasons.write_text(f"- role: FnRole\n  action: sqs:DeleteMessage\n  {scope}\n  reason: r\n")
        assert iam_report.main([str(tmp_path), "--check", "--reasons", str(reasons)]) == 1, scope
    usage["denied"] = [["FnRole", "sqs:PurgeQueue", queue]]
    (tmp_path / "usage-1.json").write_text(json.dumps(usage))
    reasons.write_text("- role: FnRole\n  action: sqs:DeleteMessage\n  reason: why it stays\n")
    assert iam_report.main([str(tmp_path), "--check", "--reasons", str(reasons)]) == 1
    assert f"FnRole: refused sqs:PurgeQueue {queue}" in capsys.readouterr().err


def test_a_refusal_fails_the_run_unless_the_test_took_the_grant_off_on_purpose(monkeypatch):
    """What the shared stack's teardown and each `marketplace run`'s check (tests/conftest.py): a
    refused call is listed with its role, action and resource; the refusals of a role while a test
    holds ``refusals_expected`` for it are that test's, and only those."""
    from marketplace_local.moto_patches import iam_enforcement
    from tests.conftest import assert_no_refusal

    monkeypatch.setattr(iam_enforcement, "denied", [])
    monkeypatch.setattr(iam_enforcement, "expected", [])
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/t"
    role, other = "arn:aws:iam::123456789012:role/a", "arn:aws:iam::123456789012:role/b"
    with iam_enforcement.refusals_expected(role):
        iam_enforcement.record(role, "dynamodb:PutItem", table, allowed=False)
        iam_enforcement.record(other, "dynamodb:GetItem", table, allowed=False)
    iam_enforcement.record(role, "dynamodb:Scan", table, allowed=False)
    assert iam_enforcement.expected == [(role, "dynamodb:PutItem", table)]
    with pytest.raises(AssertionError, match="refused calls the template does not grant") as refused:
        assert_no_refusal()
    assert f"{other} may not dynamodb:GetItem on {table}" in str(refused.value)
    assert f"{role} may not dynamodb:Scan on {table}" in str(refused.value)
    assert "PutItem" not in str(refused.value)
    line = "2026-12-07 15:25:30,553 WARNING marketplace_local.iam AccessDenied: r may not s3:GetObject on o"
    with pytest.raises(AssertionError, match="r may not s3:GetObject on o"):
        assert_no_refusal(["Marketplace API ready at http://127.0.0.1:1", line])
    assert_no_refusal(["Marketplace API ready at http://127.0.0.1:1"])

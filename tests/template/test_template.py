"""Template level: template.yaml checked offline, with no AWS account and no fakes.

What is checked: cfn-lint is silent; the SAM transform succeeds and yields the resources the
design relies on (stream, PITR and KMS on the table, the correction queue's redrive, the stream
mappings' failure handling, Cognito's tenant attributes and groups, python3.12 on arm64, a log
group with retention per function, state machine definitions that match their substitutions);
IAM least privilege; every checkov skip in .checkov.yaml carries its reason and names the resources
it lets through, and checkov passes when its virtual environment (`make validate`) exists.

Each rule is a function returning a list of problems, so a failure names what regressed, and the
rules are themselves tested on small broken templates at the end of this file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import lint, lint_file

from marketplace.access import ROLES
from marketplace_local import iam_report
from marketplace_local.template import Template, load, load_sam

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_CONFIG = ROOT / ".checkov.yaml"

RUNTIME = "python3.12"
ARCHITECTURES = ["arm64"]
STREAM_ROUTER = "StreamRouterFunction"
CORRECTION_QUEUE = "CorrectionQueue"
CORRECTION_DLQ = "CorrectionDeadLetterQueue"
USER_POOL_ATTRIBUTES = {"tenant_id", "supplier_id"}
USER_POOL_GROUPS = set(ROLES)  # every role the API knows is a group of the pool (the operator's too)

# The only Allow statements that may name Resource "*", by Sid: the actions they may hold, and why.
WILDCARD_RESOURCE_ALLOWLIST: dict[str, tuple[frozenset[str], str]] = {
    "DeliverLogs": (
        frozenset(
            {
                "logs:CreateLogDelivery",
                "logs:GetLogDelivery",
                "logs:UpdateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups",
            }
        ),
        "A state machine's CloudWatch Logs delivery: these actions support no resource-level "
        "permissions, so AWS documents them on Resource '*'.",
    ),
    "ResumeWaitingExecutions": (
        frozenset({"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}),
        "The drain answers callback tokens issued by service-integration Task states; IAM cannot "
        "scope those to a state machine (only activity tasks have a resource).",
    ),
}

# AWS managed policies a role may carry (SAM attaches them itself), by name after ':policy/'.
MANAGED_POLICY_ALLOWLIST = {
    "service-role/AWSLambdaBasicExecutionRole": "SAM's default for every function: write its own logs",
    "AWSXrayWriteOnlyAccess": "SAM adds it for Tracing: put X-Ray segments, nothing else",
    "service-role/AWSLambdaDynamoDBExecutionRole": "SAM adds it for a DynamoDB stream event: read the stream",
    "service-role/AWSLambdaSQSQueueExecutionRole": "SAM adds it for an SQS event: receive and delete its messages",
}

SAM_POLICY_OWNERS = {"AWS::Serverless::Function", "AWS::Serverless::StateMachine"}

# SAM policy templates that grant a table's or a queue's whole set of actions (Scan, BatchWriteItem,
# DescribeTable, a message's visibility...): a function holds written statements of the actions its
# code calls instead (D50).
WIDE_POLICY_TEMPLATES = {"DynamoDBCrudPolicy", "DynamoDBReadPolicy", "DynamoDBWritePolicy", "SQSPollerPolicy"}


# --------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def tpl() -> Template:
    return load()


def target(value: Any) -> str | None:
    """The logical id that a Ref or Fn::GetAtt names, else None."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and isinstance(arg, str):
            return arg
        if key == "Fn::GetAtt":
            return arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
    return None


def get_att(value: Any) -> tuple[str, str] | None:
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        arg = value["Fn::GetAtt"]
        logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
        return logical_id, attribute
    return None


def of_type(resources: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources.items() if v.get("Type") == resource_type}


def props(resource: dict[str, Any]) -> dict[str, Any]:
    return resource.get("Properties") or {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def stream_mappings(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Event source mappings that read a DynamoDB table's stream."""
    found = {}
    for logical_id, mapping in of_type(resources, "AWS::Lambda::EventSourceMapping").items():
        source = get_att(props(mapping).get("EventSourceArn"))
        if source and source[1] == "StreamArn":
            found[logical_id] = mapping
    return found


# ------------------------------------------------------------------------------------ the rules
def table_problems(resources: dict[str, Any]) -> list[str]:
    problems = []
    tables = of_type(resources, "AWS::DynamoDB::Table")
    if not tables:
        return ["no AWS::DynamoDB::Table"]
    keys = of_type(resources, "AWS::KMS::Key")
    for logical_id, table in tables.items():
        p = props(table)
        if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{logical_id}: point-in-time recovery is not enabled")
        sse = p.get("SSESpecification", {})
        if sse.get("SSEEnabled") is not True or sse.get("SSEType") != "KMS":
            problems.append(f"{logical_id}: not encrypted with KMS (SSESpecification {sse})")
        elif target(sse.get("KMSMasterKeyId")) not in keys:
            problems.append(f"{logical_id}: KMSMasterKeyId is not a key of this template")
    streamed = {get_att(props(m)["EventSourceArn"])[0] for m in stream_mappings(resources).values()}
    if not streamed:
        problems.append("no event source mapping reads a table's stream")
    for logical_id in sorted(streamed):
        view = props(tables.get(logical_id, {})).get("StreamSpecification", {}).get("StreamViewType")
        if view != "NEW_AND_OLD_IMAGES":
            problems.append(
                f"{logical_id}: stream view is {view!r}, the router and audit need NEW_AND_OLD_IMAGES"
            )
    return problems


def queue_problems(resources: dict[str, Any]) -> list[str]:
    problems = []
    queues = of_type(resources, "AWS::SQS::Queue")
    keys = of_type(resources, "AWS::KMS::Key")
    if CORRECTION_QUEUE not in queues:
        return [f"no {CORRECTION_QUEUE}"]
    redrive = props(queues[CORRECTION_QUEUE]).get("RedrivePolicy") or {}
    dlq = target(redrive.get("deadLetterTargetArn"))
    if dlq != CORRECTION_DLQ or dlq not in queues:
        problems.append(f"{CORRECTION_QUEUE}: redrive goes to {dlq!r}, not to the queue {CORRECTION_DLQ}")
    elif not isinstance(redrive.get("maxReceiveCount"), int) or redrive["maxReceiveCount"] < 1:
        problems.append(f"{CORRECTION_QUEUE}: maxReceiveCount {redrive.get('maxReceiveCount')!r}")
    else:
        # A standard queue keeps a message's first enqueue time when it is dead-lettered: a DLQ with
        # a shorter retention than its source would delete moved messages early.
        source = props(queues[CORRECTION_QUEUE]).get("MessageRetentionPeriod", 345600)
        kept = props(queues[dlq]).get("MessageRetentionPeriod", 345600)
        if kept < source:
            problems.append(f"{dlq}: keeps messages {kept}s, less than {CORRECTION_QUEUE}'s {source}s")
    for logical_id, resource in {**queues, **of_type(resources, "AWS::SNS::Topic")}.items():
        if target(props(resource).get("KmsMasterKeyId")) not in keys:
            problems.append(f"{logical_id}: not encrypted with a key of this template")
    return problems


def user_pool_problems(resources: dict[str, Any]) -> list[str]:
    pools = of_type(resources, "AWS::Cognito::UserPool")
    if len(pools) != 1:
        return [f"expected one user pool, found {sorted(pools)}"]
    ((pool_id, pool),) = pools.items()
    problems = []
    schema = {a["Name"]: a for a in props(pool).get("Schema", [])}
    for name in sorted(USER_POOL_ATTRIBUTES):
        attribute = schema.get(name)
        if attribute is None:
            problems.append(f"{pool_id}: no custom attribute {name}")
        elif attribute.get("AttributeDataType") != "String" or attribute.get("Mutable") is not False:
            problems.append(f"{pool_id}: custom:{name} must be an immutable String, is {attribute}")
    groups = {
        props(g).get("GroupName")
        for g in of_type(resources, "AWS::Cognito::UserPoolGroup").values()
        if target(props(g).get("UserPoolId")) == pool_id
    }
    if missing := USER_POOL_GROUPS - groups:
        problems.append(f"{pool_id}: groups {sorted(missing)} are missing")
    for client_id, client in of_type(resources, "AWS::Cognito::UserPoolClient").items():
        readable = set(props(client).get("ReadAttributes", []))
        if missing := {f"custom:{n}" for n in USER_POOL_ATTRIBUTES} - readable:
            problems.append(f"{client_id}: cannot read {sorted(missing)}, so tokens would lack the claims")
    return problems


def mapping_problems(resources: dict[str, Any]) -> list[str]:
    problems = []
    mappings = stream_mappings(resources)
    if not any(target(props(m).get("FunctionName")) == STREAM_ROUTER for m in mappings.values()):
        problems.append(f"no stream event source mapping invokes {STREAM_ROUTER}")
    queues = of_type(resources, "AWS::SQS::Queue")
    for logical_id, mapping in mappings.items():
        p = props(mapping)
        filters = (p.get("FilterCriteria") or {}).get("Filters") or []
        if not filters:
            problems.append(f"{logical_id}: no FilterCriteria, every table write would invoke it")
        for f in filters:
            try:
                json.loads(f["Pattern"])
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"{logical_id}: filter pattern is not JSON ({exc}): {f!r}")
        if p.get("BisectBatchOnFunctionError") is not True:
            problems.append(f"{logical_id}: BisectBatchOnFunctionError is not on")
        if "ReportBatchItemFailures" not in (p.get("FunctionResponseTypes") or []):
            problems.append(f"{logical_id}: FunctionResponseTypes lacks ReportBatchItemFailures")
        retries = p.get("MaximumRetryAttempts", -1)
        if not isinstance(retries, int) or retries < 0:
            problems.append(
                f"{logical_id}: MaximumRetryAttempts {retries!r}: a poison record would block its shard"
            )
        destination = target(((p.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"))
        if destination not in queues:
            problems.append(f"{logical_id}: on-failure destination {destination!r} is not an SQS queue here")
    return problems


def function_problems(resources: dict[str, Any]) -> list[str]:
    problems = []
    functions = of_type(resources, "AWS::Lambda::Function")
    if not functions:
        return ["no AWS::Lambda::Function"]
    log_groups = {
        json.dumps(props(g).get("LogGroupName"), sort_keys=True): (logical_id, g)
        for logical_id, g in of_type(resources, "AWS::Logs::LogGroup").items()
    }
    for logical_id, function in sorted(functions.items()):
        p = props(function)
        if p.get("Runtime") != RUNTIME:
            problems.append(f"{logical_id}: Runtime {p.get('Runtime')!r}, expected {RUNTIME}")
        if p.get("Architectures") != ARCHITECTURES:
            problems.append(
                f"{logical_id}: Architectures {p.get('Architectures')!r}, expected {ARCHITECTURES}"
            )
        name = json.dumps({"Fn::Sub": f"/aws/lambda/${{{logical_id}}}"}, sort_keys=True)
        if name not in log_groups:
            problems.append(f"{logical_id}: no log group /aws/lambda/${{{logical_id}}}")
        elif "RetentionInDays" not in props(log_groups[name][1]):
            problems.append(f"{log_groups[name][0]}: no RetentionInDays, logs would be kept forever")
    return problems


def state_machine_problems(sam: dict[str, Any], paths: dict[str, Path]) -> list[str]:
    problems = []
    machines = of_type(sam["Resources"], "AWS::Serverless::StateMachine")
    if not machines:
        return ["no AWS::Serverless::StateMachine"]
    for logical_id, machine in sorted(machines.items()):
        path = paths.get(logical_id)
        if path is None or not path.is_file():
            problems.append(
                f"{logical_id}: DefinitionUri {props(machine).get('DefinitionUri')!r} is not a file"
            )
            continue
        text = path.read_text()
        try:
            json.loads(text)
        except ValueError as exc:
            problems.append(f"{logical_id}: {path.name} is not JSON: {exc}")
            continue
        placeholders = set(re.findall(r"\$\{([^}]+)\}", text))
        substitutions = set(props(machine).get("DefinitionSubstitutions") or {})
        if unknown := placeholders - substitutions:
            problems.append(
                f"{logical_id}: {path.name} uses {sorted(unknown)} with no DefinitionSubstitutions"
            )
        if unused := substitutions - placeholders:
            problems.append(
                f"{logical_id}: DefinitionSubstitutions {sorted(unused)} are not used in {path.name}"
            )
    return problems


# IAM
def written_statements(sam: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, statement) for each policy statement written in the SAM template (key policies aside)."""
    for logical_id, resource in sam["Resources"].items():
        p = props(resource)
        if resource.get("Type") in SAM_POLICY_OWNERS:
            for i, policy in enumerate(as_list(p.get("Policies") or [])):
                if isinstance(policy, dict) and "Statement" in policy:
                    for statement in as_list(policy["Statement"]):
                        yield f"{logical_id} Policies[{i}]", statement
        yield from documents(logical_id, p)


def documents(logical_id: str, p: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Statements of AWS::IAM::Role/Policy/ManagedPolicy and resource policy documents."""
    for i, policy in enumerate(p.get("Policies") or []):
        if isinstance(policy, dict) and "PolicyDocument" in policy:
            for statement in as_list(policy["PolicyDocument"].get("Statement", [])):
                yield f"{logical_id} Policies[{i}] {policy.get('PolicyName', '')}".rstrip(), statement
    if isinstance(p.get("PolicyDocument"), dict):
        for statement in as_list(p["PolicyDocument"].get("Statement", [])):
            yield f"{logical_id} PolicyDocument", statement


def expanded_statements(cfn: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The same after the transform: includes what SAM's policy templates expand to."""
    for logical_id, resource in cfn["Resources"].items():
        if resource.get("Type") != "AWS::KMS::Key":
            yield from documents(logical_id, props(resource))


def statement_problems(where: str, statement: dict[str, Any]) -> list[str]:
    if statement.get("Effect") != "Allow":
        return []
    sid = statement.get("Sid")
    label = f"{where} Sid={sid or '-'}"
    problems = []
    for key in ("NotAction", "NotResource"):
        if key in statement:
            problems.append(f"{label}: {key} grants everything it does not name")
    actions = [a for a in as_list(statement.get("Action", [])) if isinstance(a, str)]
    for action in actions:
        if action == "*" or re.fullmatch(r"[A-Za-z0-9-]+:\*", action):
            problems.append(f"{label}: Action {action!r} is a wildcard; name the actions")
    if "*" in as_list(statement.get("Resource", [])):
        allowed = WILDCARD_RESOURCE_ALLOWLIST.get(sid)
        if allowed is None:
            problems.append(
                f"{label}: Resource '*' (add a reason to WILDCARD_RESOURCE_ALLOWLIST, or scope it)"
            )
        elif extra := set(actions) - allowed[0]:
            problems.append(
                f"{label}: Resource '*' is allowed only for {sorted(allowed[0])}, also has {sorted(extra)}"
            )
    return problems


def managed_policy_problems(cfn: dict[str, Any]) -> list[str]:
    problems = []
    for logical_id, role in of_type(cfn["Resources"], "AWS::IAM::Role").items():
        for arn in props(role).get("ManagedPolicyArns", []):
            name = arn.split(":policy/", 1)[-1] if isinstance(arn, str) else json.dumps(arn)
            if name not in MANAGED_POLICY_ALLOWLIST:
                problems.append(f"{logical_id}: managed policy {name} is not in MANAGED_POLICY_ALLOWLIST")
    return problems


def key_policy_problems(resources: dict[str, Any]) -> list[str]:
    """Key policies: Resource '*' is inherent (it means this key); kms:* only for the account root,
    the default statement that lets IAM policies grant the key and keeps it manageable."""
    problems = []
    root = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
    for logical_id, key in of_type(resources, "AWS::KMS::Key").items():
        for statement in as_list(props(key).get("KeyPolicy", {}).get("Statement", [])):
            if statement.get("Effect") != "Allow":
                continue
            label = f"{logical_id} KeyPolicy Sid={statement.get('Sid', '-')}"
            principal = statement.get("Principal")
            if principal == "*" or (isinstance(principal, dict) and "*" in as_list(principal.get("AWS", []))):
                problems.append(f"{label}: Principal '*'")
            wildcard = [a for a in as_list(statement.get("Action", [])) if a in ("*", "kms:*")]
            if wildcard and principal != {"AWS": root}:
                problems.append(
                    f"{label}: {wildcard} granted to {principal}, only the account root may have it"
                )
    return problems


# ------------------------------------------------------------------------------------ the tests
def test_cfn_lint_reports_no_error_or_warning():
    matches = [m for m in lint_file(TEMPLATE_PATH) if m.rule.severity != "informational"]
    assert not matches, "\n".join(f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches)


def lint_resolved(sam: dict[str, Any]) -> list[str]:
    """cfn-lint on the template with its AWS::Include files in place (cfn-lint leaves an include
    unread, so a bad reference in api/openapi.yaml is only seen this way; `make validate` too)."""
    matches = lint(json.dumps(sam), config={"regions": ["us-east-1"]})
    return [f"{m.rule.id}: {m.message}" for m in matches if m.rule.severity != "informational"]


def test_cfn_lint_reports_nothing_in_the_included_openapi_document():
    assert lint_resolved(load_sam()) == []
    sam = load_sam()  # and it sees a reference there that names no resource
    paths = sam["Resources"]["MarketplaceApi"]["Properties"]["DefinitionBody"]["paths"]
    integration = next(iter(next(iter(paths.values())).values()))["x-amazon-apigateway-integration"]
    integration["uri"]["Fn::Sub"] = integration["uri"]["Fn::Sub"].replace("ApiFunction.Arn", "ApiFunctio.Arn")
    assert any("E1019" in m and "ApiFunctio" in m for m in lint_resolved(sam))


def test_the_sam_transform_expands_every_resource_offline(tpl):
    types = {r["Type"] for r in tpl.resources.values()}
    assert not {t for t in types if t.startswith("AWS::Serverless::")}, types
    expected = {
        "AWS::KMS::Key",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::SNS::Topic",
        "AWS::Cognito::UserPool",
        "AWS::Cognito::UserPoolGroup",
        "AWS::Lambda::Function",
        "AWS::Lambda::LayerVersion",
        "AWS::Lambda::EventSourceMapping",
        "AWS::StepFunctions::StateMachine",
        "AWS::ApiGateway::RestApi",
        "AWS::Logs::LogGroup",
        "AWS::IAM::Role",
    }
    assert expected <= types, f"missing after the transform: {sorted(expected - types)}"


def test_tables_have_pitr_and_kms_and_the_streamed_table_has_both_images(tpl):
    assert table_problems(tpl.resources) == []


def test_the_correction_queue_redrives_to_its_dead_letter_queue_and_everything_is_encrypted(tpl):
    assert queue_problems(tpl.resources) == []


def test_the_user_pool_carries_tenant_and_supplier_and_the_three_groups(tpl):
    assert user_pool_problems(tpl.resources) == []


def test_stream_mappings_filter_bisect_report_item_failures_and_keep_failed_batches(tpl):
    assert mapping_problems(tpl.resources) == []


def test_every_function_is_python312_on_arm64_with_a_log_group_that_expires(tpl):
    assert function_problems(tpl.resources) == []


def test_state_machine_definitions_exist_and_match_their_substitutions(tpl):
    assert state_machine_problems(tpl.sam, tpl.local_paths) == []


def test_written_policy_statements_name_their_actions_and_resources(tpl):
    statements = list(written_statements(tpl.sam))
    assert statements, "found no policy statement in template.yaml: the collector is broken"
    assert [p for where, s in statements for p in statement_problems(where, s)] == []


def test_no_function_holds_a_policy_template_that_grants_more_than_its_code_calls(tpl):
    held = [
        f"{logical_id} Policies[{i}] {name}"
        for logical_id, resource in tpl.sam["Resources"].items()
        if resource.get("Type") in SAM_POLICY_OWNERS
        for i, policy in enumerate(as_list(props(resource).get("Policies") or []))
        if isinstance(policy, dict)
        for name in policy
        if name in WIDE_POLICY_TEMPLATES
    ]
    assert held == []


def test_expanded_role_policies_name_their_actions_and_resources(tpl):
    """The same rule after the transform, so a SAM policy template that grants '*' is caught too."""
    statements = list(expanded_statements(tpl.cfn))
    assert statements
    assert [p for where, s in statements for p in statement_problems(where, s)] == []
    assert managed_policy_problems(tpl.cfn) == []


def test_every_reason_kept_for_an_unused_grant_names_a_grant_of_the_template(tpl):
    """iam-reasons.yaml holds why a grant no test uses stays (make iam-report, D50): each entry has
    a reason and names a role's grant that the transformed template still holds."""
    reasons = iam_report.load_reasons()
    assert reasons, "iam-reasons.yaml holds no reason: the reader is broken"
    assert iam_report.stale_reasons(tpl.sam, tpl.cfn, reasons) == []


def test_a_reason_for_a_grant_the_template_does_not_hold_is_stale(tpl):
    reasons = [{"role": "ImportFunctionRole", "action": "dynamodb:DeleteTable", "reason": "none"},
               {"role": "ApiFunctionRole", "policy": "Statement", "action": "dynamodb:Scan", "reason": "r"},
               {"role": "*", "policy": "AWSXrayWriteOnlyAccess", "action": "xray:PutTraceSegments", "reason": "r"},
               {"role": "ApiFunctionRole", "policy": "Statement", "action": "dynamodb:Query", "reason": "r"}]  # fmt: skip
    assert iam_report.stale_reasons(tpl.sam, tpl.cfn, reasons) == reasons[:2]


def test_key_policies_give_kms_star_to_the_account_root_only(tpl):
    assert key_policy_problems(tpl.resources) == []


def checkov_skips(text: str) -> dict[str, dict[str, str]]:
    """The skips of .checkov.yaml with their comments: check id -> {resource: reason}, in the layout
    that file describes at its top."""
    skips: dict[str, dict[str, str]] = {}
    comments: list[str] = []
    lines = text.splitlines()
    for line in lines[lines.index("skip-check:") + 1 :]:
        if not line.startswith(" "):
            break  # the next setting
        if line.startswith("  #"):
            comments.append(line[3:])
            continue
        entry = re.fullmatch(r"  - (\S+)", line)
        if entry:
            check_id = entry.group(1)
            assert check_id not in skips, f"{check_id} is skipped twice"
            assert comments and comments[0].startswith(f" {check_id}: "), f"{check_id}: no '# {check_id}: '"
            # Indented 3: resources, then their reason (a trailing comma: more resources on the next
            # line). Indented 5: the reason goes on.
            items: list[str] = []
            for comment in comments[1:]:
                if comment.startswith("     ") or (
                    comment.startswith("   ") and items and items[-1].endswith(",")
                ):
                    items[-1] += " " + comment.strip()
                elif comment.startswith("   "):
                    items.append(comment.strip())
            skips[check_id] = {}
            for item in items:
                names, _, reason = item.partition(": ")
                skips[check_id].update((name, reason) for name in names.split(", "))
        comments = []
    return skips


def test_every_checkov_suppression_names_a_check_and_gives_a_reason(tpl):
    text = CHECKOV_CONFIG.read_text()
    skips = checkov_skips(text)
    assert skips, "no checkov skip found in .checkov.yaml: the reader is broken, or update this test"
    assert sorted(skips) == sorted(yaml.safe_load(text)["skip-check"]), "the reader missed a skip"
    problems = []
    for check_id, reasons in skips.items():
        if not re.fullmatch(r"CKV2?_AWS_\d+", check_id):
            problems.append(f"skip id {check_id!r}")
        if not reasons:
            problems.append(f"{check_id} names no resource that it is skipped for")
        for logical_id, reason in reasons.items():
            if logical_id not in tpl.sam["Resources"]:
                problems.append(f"{check_id}: {logical_id} is no resource of template.yaml")
            if len(reason.split()) < 8:
                problems.append(f"{check_id}: {logical_id} is skipped without a written reason")
    # One home for the skips: none left in a resource's Metadata, where checkov would also read them.
    for logical_id, resource in tpl.sam["Resources"].items():
        if "checkov" in (resource.get("Metadata") or {}):
            problems.append(f"{logical_id}: a checkov skip in its Metadata (they live in .checkov.yaml)")
    assert problems == []


def run_checkov(*args: str, cwd: Path) -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.skip("checkov is not installed: `make test` and `make validate` install it in .venv-checkov")
    result = subprocess.run(
        [str(CHECKOV), "--quiet", "--framework", "cloudformation", "--skip-download", "-o", "json",
         "-f", str(TEMPLATE_PATH), *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, env={**os.environ, "HOME": str(cwd)},
    )  # fmt: skip
    assert result.stdout.strip(), (
        f"checkov printed no report (exit {result.returncode}): {result.stderr[-2000:]}"
    )
    report = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    return report


def test_checkov_finds_nothing(tpl, tmp_path):
    report = run_checkov("--config-file", str(CHECKOV_CONFIG), cwd=tmp_path)
    failed = report.get("results", {}).get("failed_checks", [])
    assert not failed, "\n".join(f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in failed)
    assert report["summary"]["passed"] > 0


def test_checkov_skips_name_every_resource_they_let_through(tmp_path):
    """checkov's configuration skips a check for the whole template: run the skipped checks without
    it, and each fails exactly on the resources its comment names, so every other resource is still
    held to it (a function that loses its dead-letter queue fails here)."""
    skips = checkov_skips(CHECKOV_CONFIG.read_text())
    report = run_checkov("--check", ",".join(skips), cwd=tmp_path)  # no .checkov.yaml in tmp_path
    failing: dict[str, set[str]] = {check_id: set() for check_id in skips}
    for check in report.get("results", {}).get("failed_checks", []):
        failing[check["check_id"]].add(check["resource"].rsplit(".", 1)[-1])
    problems = [
        f"{check_id} fails on {sorted(failing[check_id] - set(reasons))}, which its comment does not name"
        for check_id, reasons in skips.items()
        if failing[check_id] - set(reasons)
    ] + [
        f"{check_id} is skipped for {sorted(set(reasons) - failing[check_id])}, which pass it: drop them"
        for check_id, reasons in skips.items()
        if set(reasons) - failing[check_id]
    ]
    assert problems == []


# ------------------------------------------------------- the rules catch what they are meant to
def test_the_rules_catch_a_regressed_template(tpl):
    """Each rule, fed a copy of the template with one thing broken, reports it."""
    import copy

    def broken(change) -> dict[str, Any]:
        resources = copy.deepcopy(tpl.resources)
        change(resources)
        return resources

    def set_prop(logical_id, key, value):
        return lambda r: props(r[logical_id]).__setitem__(key, value)

    def mapping_of(resources, function):
        return next(
            props(m)
            for m in stream_mappings(resources).values()
            if target(props(m)["FunctionName"]) == function
        )

    assert table_problems(
        broken(set_prop("MarketplaceTable", "StreamSpecification", {"StreamViewType": "KEYS_ONLY"}))
    )
    assert table_problems(
        broken(lambda r: props(r["MarketplaceTable"]).pop("PointInTimeRecoverySpecification"))
    )
    assert table_problems(broken(lambda r: props(r["IdempotencyTable"]).pop("SSESpecification")))
    assert queue_problems(broken(lambda r: props(r[CORRECTION_QUEUE]).pop("RedrivePolicy")))
    assert queue_problems(broken(set_prop(CORRECTION_DLQ, "MessageRetentionPeriod", 60)))
    assert queue_problems(broken(lambda r: props(r["SupplierNotificationsTopic"]).pop("KmsMasterKeyId")))
    assert user_pool_problems(broken(lambda r: props(r["UserPool"])["Schema"].pop()))
    assert user_pool_problems(broken(lambda r: r.pop("AdminGroup")))
    assert mapping_problems(broken(lambda r: mapping_of(r, STREAM_ROUTER).pop("FilterCriteria")))
    assert mapping_problems(broken(lambda r: mapping_of(r, STREAM_ROUTER).pop("BisectBatchOnFunctionError")))
    assert mapping_problems(broken(lambda r: mapping_of(r, STREAM_ROUTER).pop("FunctionResponseTypes")))
    assert mapping_problems(broken(lambda r: mapping_of(r, STREAM_ROUTER).pop("DestinationConfig")))
    assert mapping_problems(broken(lambda r: mapping_of(r, STREAM_ROUTER).pop("MaximumRetryAttempts")))
    assert function_problems(broken(set_prop("ApiFunction", "Runtime", "python3.11")))
    assert function_problems(broken(set_prop("ApiFunction", "Architectures", ["x86_64"])))
    assert function_problems(broken(lambda r: r.pop("AuditFunctionLogGroup")))
    assert function_problems(broken(lambda r: props(r["AuditFunctionLogGroup"]).pop("RetentionInDays")))

    sam = copy.deepcopy(tpl.sam)
    props(sam["Resources"]["SupplierOnboardingStateMachine"])["DefinitionSubstitutions"]["Unused"] = "x"
    assert state_machine_problems(sam, tpl.local_paths)
    sam = copy.deepcopy(tpl.sam)
    props(sam["Resources"]["SupplierOnboardingStateMachine"])["DefinitionSubstitutions"].pop("TableName")
    assert state_machine_problems(sam, tpl.local_paths)

    allow = {"Effect": "Allow"}
    assert statement_problems("t", {**allow, "Action": "dynamodb:*", "Resource": "arn:t"})
    assert statement_problems("t", {**allow, "Action": ["sqs:SendMessage", "*"], "Resource": "arn:q"})
    assert statement_problems("t", {**allow, "Action": "dynamodb:GetItem", "Resource": "*"})
    assert statement_problems(
        "t", {**allow, "Sid": "DeliverLogs", "Action": "logs:PutLogEvents", "Resource": "*"}
    )
    assert statement_problems("t", {**allow, "NotAction": "iam:*", "Resource": "arn:x"})
    assert not statement_problems(
        "t", {**allow, "Sid": "DeliverLogs", "Action": "logs:GetLogDelivery", "Resource": "*"}
    )
    assert not statement_problems("t", {"Effect": "Deny", "Action": "*", "Resource": "*"})
    sam = copy.deepcopy(tpl.sam)
    props(sam["Resources"]["AuditFunction"])["Policies"].append(
        {"Statement": [{**allow, "Action": "s3:*", "Resource": "*"}]}
    )
    assert [p for w, s in written_statements(sam) for p in statement_problems(w, s)]
    cfn = copy.deepcopy(tpl.cfn)
    props(cfn["Resources"]["AuditFunctionRole"])["ManagedPolicyArns"].append(
        "arn:aws:iam::aws:policy/AdministratorAccess"
    )
    assert managed_policy_problems(cfn)
    keys = broken(lambda r: props(r["DataKey"])["KeyPolicy"]["Statement"][1].__setitem__("Action", "kms:*"))
    assert key_policy_problems(keys)


def _alarmed_values(tpl, namespace: str, dimension: str) -> set[str]:
    """The Ref/GetAtt targets that the template's alarms watch for a metric namespace."""
    found: set[str] = set()
    for resource in tpl.sam["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        metrics = [props] + [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        for metric in metrics:
            if metric.get("Namespace") != namespace:
                continue
            for dim in metric.get("Dimensions", []):
                if dim["Name"] == dimension:
                    value = dim["Value"]
                    target = value.get("Ref") or (value.get("Fn::GetAtt") or [None])[0]
                    found.add(target)
    return found


def test_every_dead_letter_queue_has_a_depth_alarm(tpl):
    sam = tpl.sam["Resources"]
    dead_letter = set()
    for resource in sam.values():
        redrive = (resource.get("Properties") or {}).get("RedrivePolicy")
        if resource["Type"] == "AWS::SQS::Queue" and redrive:
            dead_letter.add(redrive["deadLetterTargetArn"]["Fn::GetAtt"][0])
        function_dlq = ((resource.get("Properties") or {}).get("DeadLetterQueue") or {}).get("TargetArn")
        if function_dlq:
            dead_letter.add(function_dlq["Fn::GetAtt"][0])
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            on_failure = ((event.get("Properties") or {}).get("DestinationConfig") or {}).get("OnFailure")
            if on_failure:
                dead_letter.add(on_failure["Destination"]["Fn::GetAtt"][0])
    assert dead_letter, "the collector found no dead-letter queue: update this test"
    assert dead_letter <= _alarmed_values(tpl, "AWS/SQS", "QueueName")


def test_every_state_machine_has_a_failed_executions_alarm(tpl):
    machines = {k for k, v in tpl.sam["Resources"].items() if v["Type"] == "AWS::Serverless::StateMachine"}
    assert machines and machines <= _alarmed_values(tpl, "AWS/States", "StateMachineArn")


def test_every_alarm_notifies_someone(tpl):
    alarms = {k: v for k, v in tpl.sam["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms and all(a["Properties"].get("AlarmActions") for a in alarms.values())


def test_the_webhook_delivery_pool_holds_a_whole_batch():
    """The delivery function runs a batch's records at once in a pool of DELIVERY_CONCURRENCY
    threads: a batch larger than the pool would make some deliveries wait for others' receivers."""
    from marketplace.webhooks import DELIVERY_CONCURRENCY

    events = load_sam()["Resources"]["WebhookDeliveryFunction"]["Properties"]["Events"]
    sizes = [e["Properties"]["BatchSize"] for e in events.values() if e["Type"] == "SQS"]
    assert sizes and all(size <= DELIVERY_CONCURRENCY for size in sizes), sizes


def test_the_audit_stream_filter_names_exactly_the_audited_kinds(tpl):
    """Adding an audited kind is one line in marketplace.audit.AUDITED; its stream filter must name it
    too (for a change and for a deletion), or its changes never reach the audit function."""
    from marketplace import audit

    mapping = props(tpl.sam["Resources"]["AuditFunction"])["Events"]["TableStream"]["Properties"]
    for pattern in (json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]):
        image = pattern["dynamodb"].get("NewImage") or pattern["dynamodb"]["OldImage"]
        assert set(image["entity"]["S"]) == set(audit.AUDITED), pattern


def test_the_audit_digests_are_written_once(tpl):
    """The digest bucket locks each object in COMPLIANCE mode (D48): no one deletes or rewrites one."""
    bucket = props(tpl.sam["Resources"]["AuditDigestBucket"])
    assert bucket["ObjectLockEnabled"] is True
    assert bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"


def test_the_stage_lets_each_tier_reach_its_limit_within_the_account_quota(tpl):
    """The stage's limit is the pool's (D52): at least the largest tier's, so that a tenant can reach
    its own, and no more than API Gateway's default account quota, which a stage cannot pass."""
    from marketplace import tenants

    (setting,) = props(tpl.sam["Resources"]["MarketplaceApi"])["MethodSettings"]
    quota = json.loads((ROOT / "bench" / "quotas.json").read_text())["quotas"]["apigateway_account_rps"]
    assert max(tenants.REQUEST_LIMITS.values()) <= setting["ThrottlingRateLimit"] <= quota["us-east-1"]
    assert setting["ThrottlingBurstLimit"] <= 5000, "the account's burst quota"


def test_the_tenant_dashboard_shows_metrics_the_functions_emit_by_its_tenant_variable(tpl):
    """One dashboard for every tenant (D52): its variable sets the tenant dimension every metric
    carries, and each widget's metric is one that the named service's function counts."""
    from marketplace.observability import TENANT

    resources = tpl.sam["Resources"]
    body = json.loads(
        props(resources["TenantDashboard"])["DashboardBody"]["Fn::Sub"].replace("${AWS::Region}", "r")
    )
    (variable,) = body["variables"]
    assert (variable["type"], variable["property"], variable["populateFrom"]) == ("property", TENANT, TENANT)
    code = {
        props(r)["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]: "\n".join(
            p.read_text() for p in (ROOT / props(r)["CodeUri"]).rglob("*.py")
        )
        for r in resources.values()
        if r["Type"] == "AWS::Serverless::Function"
    }
    shown = [metric for widget in body["widgets"] for metric in widget["properties"]["metrics"]]
    assert len(shown) >= 20
    for namespace, name, *pairs in shown:
        dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
        assert namespace == "Marketplace" and set(dimensions) == {"service", TENANT}, (name, dimensions)
        source = code[dimensions["service"]]
        # Counted by name, or by an f-string that starts with a prefix of it (f"Suppliers{outcome}").
        prefixes = re.findall(r'f"([A-Z][A-Za-z]+)\{', source)
        assert f'"{name}"' in source or any(name.startswith(p) for p in prefixes), (
            dimensions["service"],
            name,
        )

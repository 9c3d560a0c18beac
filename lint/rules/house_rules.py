"""The project's house rules for template.yaml, as cfn-lint rules (cfn-lint 1.x plugin API).

cfn-lint 1.x validates a SAM template as written (it merges Globals but no longer runs the SAM
transform), so each rule reads both the SAM resources (AWS::Serverless::Function with its Events,
DeadLetterQueue, EventInvokeConfig and Policies) and the plain CloudFormation ones
(AWS::Lambda::Function, AWS::Lambda::EventSourceMapping, AWS::Events::Rule, IAM policies).

  E9001  every Lambda function has an AWS::Logs::LogGroup named for it, with RetentionInDays
  E9002  every function invoked asynchronously has somewhere for failed events to go
  E9003  every SQS queue has a RedrivePolicy, unless it is itself a dead-letter queue
  E9004  no identity or resource policy allows the action "*" or "<service>:*"

Load them with ``cfn-lint --append-rules lint/rules template.yaml`` (``make validate`` does).
cfn-lint loads each file of this folder on its own (not as a package), so the helpers live here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch

FUNCTION = "AWS::Lambda::Function"
SAM_FUNCTION = "AWS::Serverless::Function"
# SAM event source types: streams (need an on-failure destination), queues (need a redrive policy),
# and the ones Lambda invokes asynchronously. Api, HttpApi, Cognito, ALB and the rest are synchronous.
SAM_STREAM_EVENTS = {"DynamoDB", "Kinesis", "MSK", "SelfManagedKafka", "DocumentDB"}
SAM_ASYNC_EVENTS = {"Schedule", "ScheduleV2", "EventBridgeRule", "CloudWatchEvent", "SNS", "S3",
                    "CloudWatchLogs", "IoTRule", "SES"}  # fmt: skip
QUEUE = "AWS::SQS::Queue"

# Services that invoke a Lambda function asynchronously (the event is queued by Lambda, and a
# failure after Lambda's own retries is lost unless the function has a DLQ or an on-failure
# destination). API Gateway, Cognito, ALB and Step Functions invoke synchronously: the caller sees
# the error.
ASYNC_PRINCIPALS = {
    "events.amazonaws.com", "sns.amazonaws.com", "s3.amazonaws.com", "logs.amazonaws.com",
    "ses.amazonaws.com", "iot.amazonaws.com", "lambda.alarms.cloudwatch.amazonaws.com",
    "config.amazonaws.com", "codecommit.amazonaws.com",
}  # fmt: skip


# ------------------------------------------------------------------------------------ helpers
def referenced(value: Any) -> set[str]:
    """Logical ids that ``value`` points at through Ref, Fn::GetAtt or Fn::Sub, at any depth."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, inner in node.items():
                if key == "Ref" and isinstance(inner, str):
                    found.add(inner)
                elif key == "Fn::GetAtt":
                    target = inner.split(".", 1)[0] if isinstance(inner, str) else inner[0]
                    if isinstance(target, str):
                        found.add(target)
                elif key == "Fn::Sub":
                    text = inner if isinstance(inner, str) else inner[0]
                    if isinstance(text, str):
                        found.update(m.split(".", 1)[0] for m in re.findall(r"\$\{([^}!]+)\}", text))
                    walk(inner)
                else:
                    walk(inner)
        elif isinstance(node, list):
            for inner in node:
                walk(inner)

    walk(value)
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def properties(resource: Any) -> dict[str, Any]:
    props = resource.get("Properties", {}) if isinstance(resource, dict) else {}
    return props if isinstance(props, dict) else {}


def dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def resources_of(cfn: Any, *resource_types: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cfn.get_resources(list(resource_types)).items() if isinstance(v, dict)}


def functions_of(cfn: Any) -> dict[str, dict[str, Any]]:
    return resources_of(cfn, FUNCTION, SAM_FUNCTION)


def sam_events(function: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(event name, event type, event properties) of a SAM function."""
    events = properties(function).get("Events") or {}
    for name, event in events.items() if isinstance(events, dict) else ():
        if isinstance(event, dict):
            yield name, str(event.get("Type")), dig(event, "Properties") or {}


def failure_targets(cfn: Any) -> dict[str, list[str]]:
    """Every place a failed event or message is sent, by the logical id of the resource named:
    queue redrive targets, on-failure destinations, function DLQs, rule and schedule DLQs."""
    places: dict[str, list[str]] = {}

    def add(value: Any, where: str) -> None:
        for logical_id in referenced(value):
            places.setdefault(logical_id, []).append(where)

    for name, queue in resources_of(cfn, QUEUE).items():
        add(dig(properties(queue), "RedrivePolicy", "deadLetterTargetArn"), f"{name} RedrivePolicy")
    for name, mapping in resources_of(cfn, "AWS::Lambda::EventSourceMapping").items():
        add(dig(properties(mapping), "DestinationConfig", "OnFailure", "Destination"), f"{name} OnFailure")
    for name, config in resources_of(cfn, "AWS::Lambda::EventInvokeConfig").items():
        add(dig(properties(config), "DestinationConfig", "OnFailure", "Destination"), f"{name} OnFailure")
    for name, function in functions_of(cfn).items():
        props = properties(function)
        add(dig(props, "DeadLetterConfig", "TargetArn"), f"{name} DeadLetterConfig")
        add(dig(props, "DeadLetterQueue", "TargetArn"), f"{name} DeadLetterQueue")
        add(
            dig(props, "EventInvokeConfig", "DestinationConfig", "OnFailure", "Destination"),
            f"{name} OnFailure",
        )
        for event, _, event_props in sam_events(function):
            add(
                dig(event_props, "DestinationConfig", "OnFailure", "Destination"), f"{name} {event} OnFailure"
            )
            add(dig(event_props, "DeadLetterConfig", "Arn"), f"{name} {event} DeadLetterConfig")
    for name, rule in resources_of(cfn, "AWS::Events::Rule").items():
        for target in as_list(properties(rule).get("Targets") or []):
            add(dig(target, "DeadLetterConfig", "Arn"), f"{name} target DeadLetterConfig")
    for name, schedule in resources_of(cfn, "AWS::Scheduler::Schedule").items():
        add(dig(properties(schedule), "Target", "DeadLetterConfig", "Arn"), f"{name} DeadLetterConfig")
    return places


# ------------------------------------------------------------------------------------ E9001
class FunctionLogGroup(CloudFormationLintRule):
    """Every function's logs go to a log group the stack owns, so that they expire."""

    id = "E9001"
    shortdesc = "Every Lambda function has a log group with a retention"
    description = (
        "Each AWS::Lambda::Function needs an AWS::Logs::LogGroup named /aws/lambda/<function> (or "
        "named in the function's LoggingConfig) with RetentionInDays; otherwise Lambda creates one "
        "that keeps logs forever and that the stack does not own."
    )
    source_url = "https://github.com/aws-samples/aws-serverless-ecommerce-platform"
    tags = ["house", "lambda", "logs"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        functions = functions_of(cfn)
        groups = resources_of(cfn, "AWS::Logs::LogGroup")
        named: dict[str, list[str]] = {}  # function -> the log groups that name it
        for group_id, group in groups.items():
            name = properties(group).get("LogGroupName")
            text = name if isinstance(name, str) else ""
            if isinstance(name, dict) and "Fn::Sub" in name:
                sub = name["Fn::Sub"]
                text = sub if isinstance(sub, str) else str(sub[0])
            for function_id in functions:
                if f"/aws/lambda/${{{function_id}}}" in text or (
                    not text and function_id in referenced(name)  # Fn::Join with a Ref
                ):
                    named.setdefault(function_id, []).append(group_id)
        for function_id, function in functions.items():
            configured = dig(properties(function), "LoggingConfig", "LogGroup")
            for group_id in referenced(configured) & set(groups):
                named.setdefault(function_id, []).append(group_id)
        matches = []
        for function_id in functions:
            candidates = named.get(function_id, [])
            if not candidates:
                matches.append(RuleMatch(["Resources", function_id],
                                         f"{function_id} has no AWS::Logs::LogGroup named /aws/lambda/${{{function_id}}}"))  # fmt: skip
                continue
            for group_id in candidates:
                if "RetentionInDays" not in properties(groups[group_id]):
                    matches.append(RuleMatch(["Resources", group_id, "Properties"],
                                             f"{group_id} (the log group of {function_id}) has no RetentionInDays"))  # fmt: skip
        return matches


# ------------------------------------------------------------------------------------ E9002
class AsyncFailureDestination(CloudFormationLintRule):
    """Nothing invoked asynchronously fails silently."""

    id = "E9002"
    shortdesc = "Every asynchronously invoked function has a DLQ or an on-failure destination"
    description = (
        "A stream event source mapping (DynamoDB, Kinesis) needs DestinationConfig.OnFailure; an SQS "
        "event source mapping's queue needs a RedrivePolicy; a function invoked asynchronously (an "
        "EventBridge rule or schedule, SNS, S3, or any service principal that invokes asynchronously) "
        "needs a DeadLetterConfig, an AWS::Lambda::EventInvokeConfig with OnFailure, or a DLQ on the "
        "rule's or schedule's target."
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html"
    tags = ["house", "lambda", "dlq"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        functions = functions_of(cfn)
        queues = resources_of(cfn, QUEUE)
        resources = cfn.get_resources()
        matches = []
        for name, mapping in resources_of(cfn, "AWS::Lambda::EventSourceMapping").items():
            props = properties(mapping)
            sources = referenced(props.get("EventSourceArn"))
            source_types = {resources.get(s, {}).get("Type") for s in sources}
            source_text = str(props.get("EventSourceArn"))
            is_stream = source_types & {
                "AWS::DynamoDB::Table",
                "AWS::DynamoDB::GlobalTable",
                "AWS::Kinesis::Stream",
            }
            if (is_stream or ":kinesis:" in source_text or "/stream/" in source_text) and not dig(
                props, "DestinationConfig", "OnFailure", "Destination"
            ):
                matches.append(RuleMatch(["Resources", name, "Properties"],
                                         f"{name} reads a stream but has no DestinationConfig.OnFailure"))  # fmt: skip
            for queue_id in sources & set(queues):
                if not properties(queues[queue_id]).get("RedrivePolicy"):
                    matches.append(RuleMatch(["Resources", queue_id, "Properties"],
                                             f"{queue_id} feeds {name} but has no RedrivePolicy"))  # fmt: skip

        # Which functions are invoked asynchronously, and which failure paths each has.
        invoked: dict[str, list[str]] = {}
        covered: set[str] = set()

        def note(target: Any, how: str, dead_letter: Any = None) -> None:
            for function_id in referenced(target) & set(functions):
                invoked.setdefault(function_id, []).append(how)
                if dead_letter:
                    covered.add(function_id)

        for name, rule in resources_of(cfn, "AWS::Events::Rule").items():
            for target in as_list(properties(rule).get("Targets") or []):
                note(dig(target, "Arn"), f"rule {name}", dig(target, "DeadLetterConfig", "Arn"))
        for name, schedule in resources_of(cfn, "AWS::Scheduler::Schedule").items():
            target = dig(properties(schedule), "Target")
            note(dig(target, "Arn"), f"schedule {name}", dig(target, "DeadLetterConfig", "Arn"))
        for name, subscription in resources_of(cfn, "AWS::SNS::Subscription").items():
            if str(properties(subscription).get("Protocol", "")).lower() == "lambda":
                note(properties(subscription).get("Endpoint"), f"SNS subscription {name}")
        for name, topic in resources_of(cfn, "AWS::SNS::Topic").items():
            for subscription in as_list(properties(topic).get("Subscription") or []):
                if str(dig(subscription, "Protocol") or "").lower() == "lambda":
                    note(dig(subscription, "Endpoint"), f"SNS topic {name}")
        for name, bucket in resources_of(cfn, "AWS::S3::Bucket").items():
            for config in as_list(
                dig(properties(bucket), "NotificationConfiguration", "LambdaConfigurations") or []
            ):
                note(dig(config, "Function"), f"S3 bucket {name}")
        for name, permission in resources_of(cfn, "AWS::Lambda::Permission").items():
            principal = properties(permission).get("Principal")
            if isinstance(principal, str) and principal in ASYNC_PRINCIPALS:
                note(properties(permission).get("FunctionName"), f"{principal} (permission {name})")

        for function_id, function in functions.items():
            props = properties(function)
            if (
                dig(props, "DeadLetterConfig", "TargetArn")
                or dig(props, "DeadLetterQueue", "TargetArn")
                or dig(props, "EventInvokeConfig", "DestinationConfig", "OnFailure", "Destination")
            ):
                covered.add(function_id)
            for event, kind, event_props in sam_events(function):
                where = ["Resources", function_id, "Properties", "Events", event]
                if kind in SAM_STREAM_EVENTS and not dig(
                    event_props, "DestinationConfig", "OnFailure", "Destination"
                ):
                    matches.append(RuleMatch(where, f"{function_id} event {event} reads a stream but has no "
                                                    "DestinationConfig.OnFailure"))  # fmt: skip
                if kind == "SQS":
                    for queue_id in referenced(event_props.get("Queue")) & set(queues):
                        if not properties(queues[queue_id]).get("RedrivePolicy"):
                            matches.append(RuleMatch(["Resources", queue_id, "Properties"],
                                                     f"{queue_id} feeds {function_id} but has no RedrivePolicy"))  # fmt: skip
                if kind in SAM_ASYNC_EVENTS:
                    invoked.setdefault(function_id, []).append(f"{kind} event {event}")
                    if dig(event_props, "DeadLetterConfig"):
                        covered.add(function_id)
        for config in resources_of(cfn, "AWS::Lambda::EventInvokeConfig").values():
            props = properties(config)
            if dig(props, "DestinationConfig", "OnFailure", "Destination"):
                covered.update(referenced(props.get("FunctionName")) & set(functions))
        for function_id, how in sorted(invoked.items()):
            if function_id not in covered:
                matches.append(RuleMatch(["Resources", function_id],
                                         f"{function_id} is invoked asynchronously ({', '.join(sorted(set(how)))}) "
                                         "but has no DeadLetterConfig, EventInvokeConfig OnFailure or target DLQ"))  # fmt: skip
        return matches


# ------------------------------------------------------------------------------------ E9003
class QueueRedrive(CloudFormationLintRule):
    """A message that keeps failing ends somewhere someone looks, never loops or vanishes."""

    id = "E9003"
    shortdesc = "Every SQS queue has a dead-letter queue, unless it is one"
    description = (
        "Each AWS::SQS::Queue needs a RedrivePolicy, unless it is itself a dead-letter queue: named "
        "by another queue's RedrivePolicy, an on-failure destination, a function's DeadLetterConfig, "
        "or a rule's or schedule's DeadLetterConfig."
    )
    source_url = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html"
    tags = ["house", "sqs", "dlq"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        dead_letter = failure_targets(cfn)
        matches = []
        for name, queue in resources_of(cfn, QUEUE).items():
            if properties(queue).get("RedrivePolicy") or name in dead_letter:
                continue
            matches.append(RuleMatch(["Resources", name, "Properties"],
                                     f"{name} has no RedrivePolicy and is no queue's or function's dead-letter queue"))  # fmt: skip
        return matches


# ------------------------------------------------------------------------------------ E9004
def statements(document: Any) -> Iterator[dict[str, Any]]:
    for statement in as_list(dig(document, "Statement") or []):
        if isinstance(statement, dict):
            yield statement


def policy_documents(cfn: Any) -> Iterator[tuple[list[Any], Any, bool]]:
    """(path, policy document, is_key_policy) for every identity and resource policy."""
    for name, resource in cfn.get_resources().items():
        if not isinstance(resource, dict):
            continue
        kind, props = resource.get("Type"), properties(resource)
        if kind in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
            for i, policy in enumerate(as_list(props.get("Policies") or [])):
                yield ["Resources", name, "Properties", "Policies", i], dig(policy, "PolicyDocument"), False
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy",
                      "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy"):  # fmt: skip
            yield ["Resources", name, "Properties", "PolicyDocument"], props.get("PolicyDocument"), False
        elif kind == "AWS::KMS::Key":
            yield ["Resources", name, "Properties", "KeyPolicy"], props.get("KeyPolicy"), True
        elif kind in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):  # SAM, as written
            for i, policy in enumerate(as_list(props.get("Policies") or [])):
                if isinstance(policy, dict) and "Statement" in policy:
                    yield ["Resources", name, "Properties", "Policies", i], policy, False


def _is_account_root(principal: Any) -> bool:
    aws = dig(principal, "AWS")
    text = str(aws)
    return aws is not None and ":root" in text and "AWS::AccountId" in text


class NoWildcardActions(CloudFormationLintRule):
    """Least privilege: a policy names the actions it allows."""

    id = "E9004"
    shortdesc = "No policy allows the action * or <service>:*"
    description = (
        "An Allow statement of an IAM (inline, managed, SAM-generated) or resource policy may not "
        "name the action '*' or '<service>:*', nor use NotAction. A KMS key policy may give kms:* to "
        "the account root only (the key's default policy, which hands control to IAM)."
    )
    source_url = "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#grant-least-privilege"
    tags = ["house", "iam"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for path, document, key_policy in policy_documents(cfn):
            for index, statement in enumerate(statements(document)):
                if statement.get("Effect") != "Allow":
                    continue
                where = [*path, "Statement", index]
                if "NotAction" in statement:
                    matches.append(RuleMatch(where, f"{'/'.join(map(str, path))}: Allow with NotAction"))
                wide = [a for a in as_list(statement.get("Action") or []) if isinstance(a, str)
                        and (a.strip() == "*" or re.fullmatch(r"[A-Za-z0-9-]+:\*", a.strip()))]  # fmt: skip
                if key_policy and wide and _is_account_root(statement.get("Principal")):
                    continue
                if wide:
                    matches.append(RuleMatch(where, f"{'/'.join(map(str, path))}: allows {', '.join(wide)}"))
        return matches

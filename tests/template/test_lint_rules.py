"""The house cfn-lint rules in lint/rules/: template.yaml passes them, and each one catches a small
template that breaks it (so the rules can fail), while the same template put right passes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from cfnlint.api import lint_file
from cfnlint.config import ConfigMixIn, ManualArgs
from cfnlint.decode.decode import decode_str
from cfnlint.rules import Rules
from cfnlint.runner import run_template_by_data

from marketplace_local.template import TEMPLATE_PATH

pytestmark = pytest.mark.template

RULES = Path(__file__).resolve().parents[2] / "lint" / "rules"
HOUSE = ("E9001", "E9002", "E9003", "E9004")


HOUSE_RULES = Rules.create_from_directory(str(RULES))  # only ours: cfn-lint's own take seconds per template


def test_the_folder_holds_the_four_house_rules():
    assert sorted(HOUSE_RULES) == list(HOUSE)


def house_findings(text: str) -> list[str]:
    template, errors = decode_str(textwrap.dedent(text))
    assert not errors and template is not None, errors
    matches = run_template_by_data(template, ConfigMixIn(regions=["us-east-1"]), HOUSE_RULES)
    return sorted(f"{m.rule.id} {m.message}" for m in matches if m.rule.id in HOUSE)


def ids(text: str) -> set[str]:
    return {f.split(" ", 1)[0] for f in house_findings(text)}


def test_the_template_passes_the_house_rules():
    matches = lint_file(TEMPLATE_PATH, config=ManualArgs(append_rules=[str(RULES)], regions=["us-east-1"]))
    found = [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches if m.rule.id in HOUSE]
    assert not found, "\n".join(found)


SAM = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
"""

FUNCTION = """\
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      CodeUri: s3://bucket/worker.zip
{extra}
"""

LOG_GROUP = """\
  WorkerLogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: !Sub /aws/lambda/${{Worker}}
{retention}
"""


def sam_function(extra: str = "", log_group: bool = True, retention: bool = True, more: str = "") -> str:
    text = SAM + FUNCTION.format(extra=textwrap.indent(textwrap.dedent(extra), " " * 6))
    if log_group:
        text += LOG_GROUP.format(retention="      RetentionInDays: 30" if retention else "")
    return text + more


# A plain CloudFormation function (no SAM), indented as the tests' templates are; plain_with adds
# resources after it.
PLAIN_FUNCTION = """\
    AWSTemplateFormatVersion: "2010-09-09"
    Resources:
      Fn:
        Type: AWS::Lambda::Function
        Properties:
          Runtime: python3.12
          Handler: app.handler
          Role: arn:aws:iam::123456789012:role/r
          Code: {ZipFile: "def handler(e, c): pass"}
    """


def plain_with(resources: str) -> str:
    return PLAIN_FUNCTION.rstrip(" ") + resources


# ------------------------------------------------------------------------------------ E9001
def test_e9001_a_function_needs_a_log_group_with_retention():
    assert "E9001" in ids(sam_function(log_group=False))
    assert "E9001" in ids(sam_function(retention=False))
    assert "E9001" not in ids(sam_function())
    plain = PLAIN_FUNCTION
    assert "E9001" in ids(plain)
    joined = plain_with("""\
      FnLogs:
        Type: AWS::Logs::LogGroup
        Properties:
          LogGroupName: !Join ["", ["/aws/lambda/", !Ref Fn]]
          RetentionInDays: 7
    """)
    assert "E9001" not in ids(joined)


# ------------------------------------------------------------------------------------ E9002
QUEUE_WITH_DLQ = """
  Dlq:
    Type: AWS::SQS::Queue
  Work:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy: {deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 5}
"""


def test_e9002_a_scheduled_function_needs_a_dead_letter_queue():
    schedule = """\
    Events:
      Hourly:
        Type: Schedule
        Properties: {Schedule: rate(1 hour)}
    """
    assert "E9002" in ids(sam_function(schedule, more=QUEUE_WITH_DLQ))
    with_dlq = schedule + "DeadLetterQueue: {Type: SQS, TargetArn: !GetAtt Dlq.Arn}\n"
    assert "E9002" not in ids(sam_function(with_dlq, more=QUEUE_WITH_DLQ))
    on_failure = (
        schedule
        + "EventInvokeConfig: {DestinationConfig: {OnFailure: {Type: SQS, Destination: !GetAtt Dlq.Arn}}}\n"
    )
    assert "E9002" not in ids(sam_function(on_failure, more=QUEUE_WITH_DLQ))


def test_e9002_a_stream_mapping_needs_an_on_failure_destination_and_a_queue_mapping_a_redrive():
    stream = """\
    Events:
      Changes:
        Type: DynamoDB
        Properties:
          Stream: arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000
          StartingPosition: TRIM_HORIZON
    """
    assert "E9002" in ids(sam_function(stream, more=QUEUE_WITH_DLQ))
    kept = stream + "      DestinationConfig: {OnFailure: {Type: SQS, Destination: !GetAtt Dlq.Arn}}\n"
    assert "E9002" not in ids(sam_function(kept, more=QUEUE_WITH_DLQ))
    from_queue = """\
    Events:
      Jobs:
        Type: SQS
        Properties: {Queue: !GetAtt Dlq.Arn}
    """
    assert "E9002" in ids(sam_function(from_queue, more=QUEUE_WITH_DLQ))  # Dlq has no redrive
    assert "E9002" not in ids(sam_function(from_queue.replace("Dlq.Arn", "Work.Arn"), more=QUEUE_WITH_DLQ))


def test_e9002_plain_cloudformation_async_invokers_are_found():
    template = plain_with("""\
      Uploads:
        Type: AWS::Lambda::Permission
        Properties:
          Action: lambda:InvokeFunction
          FunctionName: !Ref Fn
          Principal: s3.amazonaws.com
      Dlq:
        Type: AWS::SQS::Queue
    """)
    assert any("s3.amazonaws.com" in f for f in house_findings(template))
    invoke_config = """\
      FnFailures:
        Type: AWS::Lambda::EventInvokeConfig
        Properties:
          FunctionName: !Ref Fn
          Qualifier: $LATEST
          DestinationConfig: {OnFailure: {Destination: !GetAtt Dlq.Arn}}
    """
    assert "E9002" not in ids(template.rstrip(" ") + invoke_config)


# ------------------------------------------------------------------------------------ E9003
def test_e9003_a_queue_needs_a_redrive_policy_unless_it_is_a_dead_letter_queue():
    lonely = SAM + "  Lonely:\n    Type: AWS::SQS::Queue\n"
    assert [f for f in house_findings(lonely) if f.startswith("E9003 Lonely")]
    assert "E9003" not in ids(SAM + textwrap.indent(textwrap.dedent(QUEUE_WITH_DLQ), "  "))
    # A function's DLQ, or a stream mapping's on-failure destination, is a dead-letter queue.
    with_dlq = "DeadLetterQueue: {Type: SQS, TargetArn: !GetAtt Dlq.Arn}\n"
    assert "E9003" not in ids(sam_function(with_dlq, more="\n  Dlq:\n    Type: AWS::SQS::Queue\n"))


# ------------------------------------------------------------------------------------ E9004
def test_e9004_no_policy_allows_a_wildcard_action():
    def role(action: str, effect: str = "Allow") -> str:
        return SAM + textwrap.indent(textwrap.dedent(f"""\
            Role:
              Type: AWS::IAM::Role
              Properties:
                AssumeRolePolicyDocument:
                  Statement: [{{Effect: Allow, Principal: {{Service: lambda.amazonaws.com}}, Action: sts:AssumeRole}}]
                Policies:
                  - PolicyName: p
                    PolicyDocument:
                      Statement: [{{Effect: {effect}, Action: ["{action}"], Resource: "*"}}]
            """), "  ")  # fmt: skip

    assert "E9004" in ids(role("*"))
    assert "E9004" in ids(role("s3:*"))
    assert "E9004" not in ids(role("s3:GetObject"))
    assert "E9004" not in ids(role("s3:Get*"))
    assert "E9004" not in ids(role("s3:*", effect="Deny"))
    sam_statement = """\
    Policies:
      - Statement:
          - {Effect: Allow, Action: "dynamodb:*", Resource: "*"}
    """
    assert "E9004" in ids(sam_function(sam_statement))
    key = SAM + textwrap.indent(textwrap.dedent("""\
        Key:
          Type: AWS::KMS::Key
          Properties:
            KeyPolicy:
              Statement:
                - {Effect: Allow, Principal: {AWS: !Sub "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}, Action: "kms:*", Resource: "*"}
                - {Effect: Allow, Principal: {Service: logs.amazonaws.com}, Action: "kms:*", Resource: "*"}
        """), "  ")  # fmt: skip
    found = house_findings(key)
    assert len([f for f in found if f.startswith("E9004")]) == 1, found

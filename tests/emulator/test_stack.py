"""What the local stack builds from template.yaml (read from the running test stack)."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from marketplace_local.stack import schedule_interval


def test_every_function_of_the_template_runs_in_process(stack):
    functions = stack.template.resources_of_type("AWS::Lambda::Function")
    assert {spec.logical_id for spec in stack.runtime.functions.values()} == set(functions)


def test_every_stream_mapping_of_the_template_has_a_poller(stack):
    mappings = stack.template.resources_of_type("AWS::Lambda::EventSourceMapping")
    functions = {stack.physical_id(m["Properties"]["FunctionName"]["Ref"]) for m in mappings.values()}
    assert {p.settings.function_name for p in stack.pollers} == functions


def test_the_schedules_come_from_the_template(stack):
    by_target = {s["target"]["Arn"].rsplit(":", 1)[-1]: s for s in stack.provisioned.schedules}
    assert schedule_interval(by_target[stack.physical_id("CorrectionDrainFunction")]["expression"]) == 3600
    assert schedule_interval(by_target[stack.physical_id("ExpireSupplierOrdersFunction")]["expression"]) == 60


def test_the_state_machine_definition_has_its_substitutions_resolved(stack):
    arn = stack.physical_id("SupplierOnboardingStateMachine")
    definition = stack.client("stepfunctions").describe_state_machine(stateMachineArn=arn)["definition"]
    assert "${" not in definition
    assert stack.attribute("ValidateSupplierFunction", "Arn") in definition


def test_queues_keep_their_redrive_policy(stack):
    url = stack.physical_id("CorrectionQueue")
    attributes = stack.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    assert stack.attribute("CorrectionDeadLetterQueue", "Arn") in attributes["Attributes"]["RedrivePolicy"]


def test_the_table_has_its_indexes_and_stream(stack):
    table = stack.client("dynamodb").describe_table(TableName=stack.physical_id("MarketplaceTable"))["Table"]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"GSI1", "GSI2", "GSI3", "GSI4"}
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_the_audit_digest_bucket_keeps_what_is_written(stack):
    """Object Lock as the template sets it: a digest's version cannot be deleted, as on S3 (D48)."""
    s3, bucket = stack.client("s3"), stack.physical_id("AuditDigestBucket")
    rule = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["Rule"]
    assert rule["DefaultRetention"]["Mode"] == "COMPLIANCE"
    key = f"audit-digests/emulator-test/{uuid.uuid4().hex}.json"
    version = s3.put_object(Bucket=bucket, Key=key, Body=b"{}", ChecksumAlgorithm="SHA256")["VersionId"]
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    assert s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read() == b"{}"


@pytest.mark.parametrize(("expression", "seconds"), [("rate(1 minute)", 60), ("rate(5 minutes)", 300),
                                                     ("rate(2 hours)", 7200), ("rate(1 day)", 86400)])  # fmt: skip
def test_rate_expressions(expression, seconds):
    assert schedule_interval(expression) == seconds


def test_cron_expressions_are_refused_rather_than_ignored():
    with pytest.raises(ValueError, match="only rate"):
        schedule_interval("cron(0 12 * * ? *)")


def test_every_function_logs_json_without_lambdas_own_lines(stack):
    # template.yaml Globals; the bench counts Lambda's START/END/REPORT lines by this setting.
    expected = {"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "WARN"}
    other = {spec.logical_id: spec.log_config for spec in stack.runtime.functions.values()
             if spec.log_config != expected}  # fmt: skip
    assert other == {}


def test_free_ports_are_never_given_twice_and_no_outgoing_connection_can_take_them():
    """The ports a test gives its stacks and receivers: each one once (two answers of port 0 could be
    the same port while neither is bound), each below the kernel's ephemeral range (from which any
    outgoing connection may take a port before its server binds it), each one a server can bind."""
    import socket

    from marketplace_local.stack import _ephemeral_low, free_port

    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(port < _ephemeral_low() for port in ports)
    for port in ports[:20]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))

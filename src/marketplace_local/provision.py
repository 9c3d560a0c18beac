"""Creates every resource of template.yaml in the moto server, in dependency order.

Each CloudFormation type that the local stack emulates has one creator below; the creator gets the
resource's properties with intrinsics resolved and returns its Ref value and attributes, as
CloudFormation would. Types that moto does not need to hold (IAM-free authorizer pieces, API
deployments, alarms) are recorded with synthetic identifiers so that references to them resolve,
and are listed by :attr:`Provisioner.not_emulated` so nothing is skipped silently.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marketplace_local.lambdas import FunctionSpec, LambdaRuntime
from marketplace_local.streams import MappingSettings, QueueMappingSettings
from marketplace_local.template import Resolver, Template, TemplateError, creation_order

log = logging.getLogger("marketplace_local.provision")

# Resource types that exist on AWS but have no local counterpart, each with the reason.
NOT_EMULATED = {
    "AWS::Cognito::UserPoolClient": "tokens are signed by the local key in .local/ (marketplace token)",
    "AWS::Lambda::Permission": "the local HTTP API and engine call handlers in-process",
    "AWS::Lambda::LayerVersion": "the layer's package is installed in the local virtual environment",
    "AWS::ApiGateway::Deployment": "the local HTTP API serves the RestApi body directly",
    "AWS::ApiGateway::Stage": "the local HTTP API serves the RestApi body directly, with the stage's throttle",
    "AWS::CloudWatch::Alarm": "no metrics are emitted to moto locally",
    "AWS::CloudWatch::Dashboard": "no metrics are emitted to moto locally",
    "AWS::CloudFront::Distribution": "the local HTTP API serves web/ at /console/ and /portal/ itself",
    "AWS::CloudFront::OriginAccessControl": "no CloudFront locally: the local HTTP API serves web/",
    "AWS::CloudFront::Function": "the local HTTP API maps folders to index.html and serves the API at /",
}


@dataclass
class Physical:
    ref: Any
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Provisioned:
    """What the local stack needs to know after provisioning."""

    physical: dict[str, Physical] = field(default_factory=dict)
    stream_mappings: list[MappingSettings] = field(default_factory=list)
    queue_mappings: list[QueueMappingSettings] = field(default_factory=list)
    rest_apis: dict[str, dict[str, Any]] = field(default_factory=dict)  # logical id -> resolved body
    schedules: list[dict[str, Any]] = field(default_factory=list)
    not_emulated: dict[str, str] = field(default_factory=dict)  # logical id -> reason


class Provisioner:
    def __init__(
        self,
        template: Template,
        clients: Callable[[str], Any],
        runtime: LambdaRuntime,
        region: str,
        account_id: str,
        stack_name: str,
    ) -> None:
        self.template, self.client, self.runtime = template, clients, runtime
        self.region, self.account_id, self.stack_name = region, account_id, stack_name
        self.result = Provisioned()
        refs: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
            **template.parameters,
        }
        self.resolver = Resolver(refs=refs, get_att=self._get_att)
        self._creators: dict[str, Callable[[str, dict[str, Any]], Physical]] = {
            "AWS::KMS::Key": self._kms_key,
            "AWS::DynamoDB::Table": self._dynamodb_table,
            "AWS::SQS::Queue": self._sqs_queue,
            "AWS::SNS::Topic": self._sns_topic,
            "AWS::SNS::Subscription": self._sns_subscription,
            "AWS::IAM::Role": self._iam_role,
            "AWS::Logs::LogGroup": self._log_group,
            "AWS::Lambda::Function": self._lambda_function,
            "AWS::Lambda::EventSourceMapping": self._event_source_mapping,
            "AWS::StepFunctions::StateMachine": self._state_machine,
            "AWS::ApiGateway::RestApi": self._rest_api,
            "AWS::Scheduler::Schedule": self._schedule,
            "AWS::Events::Rule": self._events_rule,
            "AWS::S3::Bucket": self._s3_bucket,
            "AWS::S3::BucketPolicy": self._s3_bucket_policy,
            "AWS::Cognito::UserPool": self._user_pool,
            "AWS::Cognito::UserPoolGroup": self._user_pool_group,
        }

    # ------------------------------------------------------------------ driver
    def provision(self) -> Provisioned:
        resources = self.template.resources
        for logical_id in creation_order(resources):
            resource = resources[logical_id]
            rtype = resource["Type"]
            creator = self._creators.get(rtype)
            if creator is None:
                if rtype not in NOT_EMULATED:
                    raise TemplateError(
                        f"{logical_id}: the local stack cannot emulate {rtype}; add a creator in "
                        "marketplace_local/provision.py or a reason to NOT_EMULATED"
                    )
                self.result.not_emulated[logical_id] = NOT_EMULATED[rtype]
                physical = self._synthetic(logical_id, rtype)
            else:
                props = self.resolver(resource.get("Properties", {}))
                physical = creator(logical_id, props)
            self.result.physical[logical_id] = physical
            self.resolver.refs[logical_id] = physical.ref
        return self.result

    def _get_att(self, logical_id: str, attribute: str) -> Any:
        physical = self.result.physical.get(logical_id)
        if physical is None:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute}: {logical_id} is not created (yet)")
        if attribute not in physical.attributes:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute}: no such attribute locally")
        return physical.attributes[attribute]

    def _name(self, logical_id: str, limit: int = 64) -> str:
        return f"{self.stack_name}-{logical_id}"[:limit]

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account_id}:{resource}"

    def _synthetic(self, logical_id: str, rtype: str) -> Physical:
        ident = self._name(logical_id).lower()
        attributes: dict[str, Any] = {"Arn": self._arn(rtype.split("::")[1].lower(), ident)}
        if rtype == "AWS::Lambda::LayerVersion":
            ident = self._arn("lambda", f"layer:{self._name(logical_id)}:1")
        return Physical(ref=ident, attributes=attributes)

    # ------------------------------------------------------------------ creators
    def _user_pool(self, logical_id: str, props: dict[str, Any]) -> Physical:
        """The user pool in moto's Cognito, with its groups (below): provisioning a tenant creates
        its first admins there as on AWS (docs/decisions.md D47). The local API still verifies the
        tokens the local key signs (marketplace token), not Cognito's."""
        schema = [{k: a[k] for k in ("Name", "AttributeDataType", "Mutable") if k in a}
                  for a in props.get("Schema", [])]  # fmt: skip
        pool = self.client("cognito-idp").create_user_pool(
            PoolName=self._name(logical_id, 128), UsernameAttributes=props.get("UsernameAttributes", []),
            Schema=schema,
        )["UserPool"]  # fmt: skip
        ident = pool["Id"]
        return Physical(ref=ident, attributes={
            "Arn": pool["Arn"], "ProviderName": f"cognito-idp.{self.region}.amazonaws.com/{ident}",
            "ProviderURL": f"https://cognito-idp.{self.region}.amazonaws.com/{ident}",
        })  # fmt: skip

    def _user_pool_group(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self.client("cognito-idp").create_group(
            GroupName=props["GroupName"],
            UserPoolId=props["UserPoolId"],
            Description=props.get("Description", ""),
        )
        return Physical(ref=props["GroupName"])

    def _kms_key(self, logical_id: str, props: dict[str, Any]) -> Physical:
        kwargs: dict[str, Any] = {"Description": props.get("Description", logical_id)}
        if "KeyPolicy" in props:
            kwargs["Policy"] = json.dumps(props["KeyPolicy"])
        meta = self.client("kms").create_key(**kwargs)["KeyMetadata"]
        if props.get("EnableKeyRotation"):
            self.client("kms").enable_key_rotation(KeyId=meta["KeyId"])
        return Physical(ref=meta["KeyId"], attributes={"Arn": meta["Arn"], "KeyId": meta["KeyId"]})

    def _dynamodb_table(self, logical_id: str, props: dict[str, Any]) -> Physical:
        ddb = self.client("dynamodb")
        name = props.get("TableName") or self._name(logical_id, 255)
        kwargs: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if "ProvisionedThroughput" in props:
            kwargs["ProvisionedThroughput"] = props["ProvisionedThroughput"]
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if key in props:
                kwargs[key] = props[key]
        if "StreamSpecification" in props:
            kwargs["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": props["StreamSpecification"]["StreamViewType"],
            }
        sse = props.get("SSESpecification")
        if sse:
            kwargs["SSESpecification"] = {
                "Enabled": bool(sse.get("SSEEnabled")),
                "SSEType": sse.get("SSEType", "KMS"),
                **({"KMSMasterKeyId": sse["KMSMasterKeyId"]} if sse.get("KMSMasterKeyId") else {}),
            }
        table = ddb.create_table(**kwargs)["TableDescription"]
        if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        return Physical(
            ref=name,
            attributes={"Arn": table["TableArn"], "StreamArn": table.get("LatestStreamArn")},
        )

    def _sqs_queue(self, logical_id: str, props: dict[str, Any]) -> Physical:
        fifo = bool(props.get("FifoQueue"))
        name = props.get("QueueName") or self._name(logical_id, 75) + (".fifo" if fifo else "")
        attributes = {}
        for key, value in props.items():
            if key in ("QueueName", "Tags"):
                continue
            if key in ("RedrivePolicy", "RedriveAllowPolicy"):
                value = json.dumps(value) if isinstance(value, dict) else value
            elif isinstance(value, bool):
                value = str(value).lower()
            attributes[key] = str(value)
        url = self.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self._arn("sqs", name)
        return Physical(ref=url, attributes={"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _sns_topic(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("TopicName") or self._name(logical_id, 256)
        attributes = {
            k: str(v) for k, v in props.items() if k in ("KmsMasterKeyId", "DisplayName", "FifoTopic")
        }
        arn = self.client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
        for sub in props.get("Subscription", []):
            self.client("sns").subscribe(TopicArn=arn, Protocol=sub["Protocol"], Endpoint=sub["Endpoint"])
        return Physical(ref=arn, attributes={"TopicArn": arn, "TopicName": name})

    def _sns_subscription(self, logical_id: str, props: dict[str, Any]) -> Physical:
        attributes = {}
        for key in ("FilterPolicy", "FilterPolicyScope", "RawMessageDelivery", "RedrivePolicy"):
            if key in props:
                value = props[key]
                attributes[key] = (
                    json.dumps(value)
                    if isinstance(value, dict)
                    else str(value).lower()
                    if isinstance(value, bool)
                    else str(value)
                )
        arn = self.client("sns").subscribe(
            TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"],
            Attributes=attributes, ReturnSubscriptionArn=True,
        )["SubscriptionArn"]  # fmt: skip
        return Physical(ref=arn, attributes={"Arn": arn})

    def _iam_role(self, logical_id: str, props: dict[str, Any]) -> Physical:
        iam = self.client("iam")
        name = props.get("RoleName") or self._name(logical_id)
        role = iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"])
        )["Role"]
        for policy in props.get("Policies", []):
            # SAM's policy templates omit Version, which IAM accepts and moto refuses.
            document = {"Version": "2012-10-17", **policy["PolicyDocument"]}
            iam.put_role_policy(
                RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(document)
            )
        for arn in props.get("ManagedPolicyArns", []):
            # An AWS managed policy (the ones SAM adds: AWSLambdaBasicExecutionRole, the stream and
            # queue execution roles) with the document moto ships for it; moto holds AWS managed
            # policies only when told to load all of them, so it is put on the role inline (D50).
            iam.put_role_policy(
                RoleName=name,
                PolicyName=arn.rsplit("/", 1)[-1],
                PolicyDocument=json.dumps(aws_managed_policy(arn)),
            )
        return Physical(ref=name, attributes={"Arn": role["Arn"], "RoleId": role["RoleId"]})

    def _log_group(self, logical_id: str, props: dict[str, Any]) -> Physical:
        logs = self.client("logs")
        name = props.get("LogGroupName") or self._name(logical_id, 512)
        logs.create_log_group(logGroupName=name)
        if "RetentionInDays" in props:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
        return Physical(ref=name, attributes={"Arn": self._arn("logs", f"log-group:{name}:*")})

    def _lambda_function(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("FunctionName") or self._name(logical_id)
        code_dir = self.template.local_path(logical_id)
        environment = {k: str(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()}
        function = self.client("lambda").create_function(
            FunctionName=name,
            Runtime=props["Runtime"],
            Role=props["Role"],
            Handler=props["Handler"],
            Code={"ZipFile": _zip_directory(code_dir)},
            Timeout=int(props.get("Timeout", 3)),
            MemorySize=int(props.get("MemorySize", 128)),
            Architectures=props.get("Architectures", ["x86_64"]),
            Environment={"Variables": environment},
            **({"LoggingConfig": props["LoggingConfig"]} if props.get("LoggingConfig") else {}),
        )
        self.runtime.register(
            FunctionSpec(
                logical_id=logical_id,
                name=name,
                arn=function["FunctionArn"],
                code_dir=code_dir,
                handler=props["Handler"],
                environment=environment,
                timeout=int(props.get("Timeout", 3)),
                memory=int(props.get("MemorySize", 128)),
                log_config={k: str(v) for k, v in (props.get("LoggingConfig") or {}).items()},
                reserved_concurrency=(
                    int(props["ReservedConcurrentExecutions"])
                    if "ReservedConcurrentExecutions" in props
                    else None
                ),
                layer_dirs=tuple(self._layer_dir(arn) for arn in props.get("Layers", [])),
                role_arn=props["Role"],
            )
        )
        return Physical(ref=name, attributes={"Arn": function["FunctionArn"]})

    def _layer_dir(self, arn: str) -> Path:
        """The local directory of a layer of this template, by the ARN a function names it with
        (the transform names the layer's code after its SAM logical id)."""
        for logical_id, physical in self.result.physical.items():
            resource = self.template.resources[logical_id]
            if physical.ref == arn and resource["Type"] == "AWS::Lambda::LayerVersion":
                key = resource["Properties"]["Content"]["S3Key"]
                return self.template.local_path(key.rsplit("/", 1)[-1])
        raise TemplateError(f"the layer {arn} is not one of this template's layers")

    def _event_source_mapping(self, logical_id: str, props: dict[str, Any]) -> Physical:
        # Not created in moto: moto's own delivery ignores the mapping's settings (FilterCriteria, BatchSize, retries).
        source = props["EventSourceArn"]
        enabled = props.get("Enabled", True) is not False
        if ":dynamodb:" in source:
            if enabled:
                self.result.stream_mappings.append(MappingSettings.from_properties(props))
        elif ":sqs:" in source:
            if enabled:
                self.result.queue_mappings.append(QueueMappingSettings.from_properties(props))
        else:
            raise TemplateError(
                f"{logical_id}: only DynamoDB stream and SQS mappings are emulated, not {source}"
            )
        uuid = f"{logical_id}-local"
        return Physical(ref=uuid, attributes={"Id": uuid})

    def _state_machine(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("StateMachineName") or self._name(logical_id, 80)
        if "DefinitionString" in props:
            definition = props["DefinitionString"]
        elif "Definition" in props:
            definition = json.dumps(props["Definition"])
        else:
            definition = self.template.local_path(logical_id).read_text()
        for key, value in props.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        json.loads(definition)  # a substitution that broke the JSON fails here, not at run time
        arn = self.client("stepfunctions").create_state_machine(
            name=name,
            definition=definition,
            roleArn=props["RoleArn"],
            type=props.get("StateMachineType", "STANDARD"),
        )["stateMachineArn"]
        return Physical(ref=arn, attributes={"Arn": arn, "Name": name})

    def _rest_api(self, logical_id: str, props: dict[str, Any]) -> Physical:
        if "Body" not in props:
            raise TemplateError(f"{logical_id}: the local HTTP API needs the RestApi's OpenAPI Body")
        self.result.rest_apis[logical_id] = props["Body"]
        api_id = f"local{logical_id.lower()}"[:10]
        return Physical(ref=api_id, attributes={"RootResourceId": "root"})

    def _schedule(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self.result.schedules.append(
            {"logical_id": logical_id, "expression": props["ScheduleExpression"], "target": props["Target"]}
        )
        arn = self._arn("scheduler", f"schedule/default/{self._name(logical_id)}")
        return Physical(ref=self._name(logical_id), attributes={"Arn": arn})

    def _events_rule(self, logical_id: str, props: dict[str, Any]) -> Physical:
        if "ScheduleExpression" not in props:
            raise TemplateError(f"{logical_id}: only scheduled EventBridge rules are emulated")
        for target in props.get("Targets", []):
            self.result.schedules.append(
                {"logical_id": logical_id, "expression": props["ScheduleExpression"], "target": target}
            )
        name = self._name(logical_id)
        return Physical(ref=name, attributes={"Arn": self._arn("events", f"rule/{name}")})

    def _s3_bucket(self, logical_id: str, props: dict[str, Any]) -> Physical:
        """The bucket with the settings moto holds: encryption, public access block, versioning,
        lifecycle rules (moto stores them; it never expires objects by itself), Object Lock (moto
        refuses to delete a locked version, as S3 does)."""
        s3 = self.client("s3")
        name = props.get("BucketName") or self._name(logical_id, 63).lower()
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=bool(props.get("ObjectLockEnabled")))
        lock = props.get("ObjectLockConfiguration")
        if lock:
            retention = lock["Rule"]["DefaultRetention"]
            s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
                "ObjectLockEnabled": lock["ObjectLockEnabled"],
                "Rule": {"DefaultRetention": {"Mode": retention["Mode"], "Days": int(retention["Days"])}},
            })  # fmt: skip
        if "BucketEncryption" in props:
            s3.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSide...
                    "Rules": [
                        {
                            **{k: v for k, v in rule.items() if k != "ServerSideEncryptionByDefault"},
                            "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                        }
                        for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                    ]
                },
            )
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
            )
        rules = (props.get("LifecycleConfiguration") or {}).get("Rules")
        if rules:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in rules]}
            )
        arn = f"arn:aws:s3:::{name}"
        return Physical(
            ref=name,
            attributes={"Arn": arn, "DomainName": f"{name}.s3.amazonaws.com",
                        "RegionalDomainName": f"{name}.s3.{self.region}.amazonaws.com"},
        )  # fmt: skip

    def _s3_bucket_policy(self, logical_id: str, props: dict[str, Any]) -> Physical:
        """The policy without its TLS-only statements: moto enforces bucket policies, and the local
        endpoint is plain HTTP on loopback, which such a statement would refuse (every other
        statement is kept and enforced as on AWS)."""
        document = dict(props["PolicyDocument"])
        statements = [s for s in _as_list(document.get("Statement")) if not _requires_tls(s)]
        if len(statements) != len(_as_list(document.get("Statement"))):
            log.info("%s: TLS-only statements are not applied to the local HTTP endpoint", logical_id)
        if statements:
            document["Statement"] = statements
            self.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(document))
        return Physical(ref=f"{props['Bucket']}-policy")


@functools.cache
def _aws_managed_policies() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.loads(aws_managed_policies_data)


def aws_managed_policy(arn: str) -> dict[str, Any]:
    if not arn.startswith("arn:aws:iam::aws:policy/"):
        raise TemplateError(f"{arn}: only AWS managed policies are emulated in ManagedPolicyArns")
    policies = _aws_managed_policies()
    name = arn.rsplit("/", 1)[-1]
    if name not in policies:
        raise TemplateError(f"{arn}: no such AWS managed policy")
    return policies[name]["Document"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _requires_tls(statement: dict[str, Any]) -> bool:
    condition = (statement.get("Condition") or {}).get("Bool") or {}
    return statement.get("Effect") == "Deny" and str(condition.get("aws:SecureTransport")).lower() == "false"


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape (the two spell the fields differently)."""
    converted: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"]}
    converted["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        converted["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    if "AbortIncompleteMultipartUpload" in rule:
        converted["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        }
    return converted


def _zip_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()

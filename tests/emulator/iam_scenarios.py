"""A role's policy naming real ARNs, evaluated by moto's IAM: what each call answers.

Run as ``python -m tests.emulator.iam_scenarios plain|patched`` (a fresh process, so plain moto is
really plain); prints one JSON line: each call's outcome, "ok" or the error code boto3 raised.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.authorization import enable_iam_authentication

REGION = "us-east-1"
ACCOUNT = "123456789012"


def _outcome(call: Any) -> str:
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"]
    return "ok"


def run(patched: bool) -> dict[str, str]:
    if patched:
        from marketplace_local.moto_patches import iam_enforcement

        iam_enforcement.install()
    with mock_aws():
        operator = boto3.session.Session(
            aws_access_key_id="operator", aws_secret_access_key="operator", region_name=REGION
        )
        ddb = operator.client("dynamodb")
        for name in ("Granted", "Other"):
            ddb.create_table(
                TableName=name, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
            )  # fmt: skip
        topic = operator.client("sns").create_topic(Name="granted")["TopicArn"]
        table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Granted"
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"], "Resource": table},
            {"Effect": "Allow", "Action": "sns:Publish", "Resource": topic},
        ]}  # fmt: skip
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                 "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip
        iam = operator.client("iam")
        role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.put_role_policy(RoleName="fn", PolicyName="p", PolicyDocument=json.dumps(policy))
        credentials = operator.client("sts").assume_role(RoleArn=role, RoleSessionName="fn")["Credentials"]
        session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=REGION,
        )
        fn_ddb, fn_sns = session.client("dynamodb"), session.client("sns")
        key = {"PK": {"S": "a"}}
        update = {"TableName": "Granted", "Key": key, "UpdateExpression": "SET n = :n",
                  "ExpressionAttributeValues": {":n": {"N": "1"}}}  # fmt: skip
        with enable_iam_authentication():
            return {
                "get granted table": _outcome(lambda: fn_ddb.get_item(TableName="Granted", Key=key)),
                "put granted table": _outcome(lambda: fn_ddb.put_item(TableName="Granted", Item=key)),
                "get other table": _outcome(lambda: fn_ddb.get_item(TableName="Other", Key=key)),
                "transaction update granted": _outcome(
                    lambda: fn_ddb.transact_write_items(TransactItems=[{"Update": update}])
                ),
                "transaction put granted": _outcome(
                    lambda: fn_ddb.transact_write_items(
                        TransactItems=[{"Put": {"TableName": "Granted", "Item": key}}]
                    )
                ),
                "publish granted topic": _outcome(lambda: fn_sns.publish(TopicArn=topic, Message="m")),
                "operator puts": _outcome(lambda: ddb.put_item(TableName="Other", Item=key)),
            }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1] == "patched")))

"""moto's IAM evaluation, given each request's real resource and AWS's error (decision D50).

moto can authorise requests (``moto.core.authorization``: once ``INITIAL_NO_AUTH_ACTION_COUNT``
requests have been served, each one is checked by ``moto.iam.access_control`` against the policies
of the IAM user or assumed role whose keys signed it). Four deviations keep that from enforcing a
SAM template's policies; this module fixes each:

1. **The resource.** moto evaluates every request of DynamoDB, SNS, Step Functions, Lambda, KMS and
   Cognito, and SQS's GetQueueUrl, against the resource ``*``: a statement naming a table ARN, as every SAM policy template
   does, refuses everything. Here each request names the ARNs AWS authorises it on: the table (and
   ``/index/<name>`` for an index query), each table of a batch, the stream, the topic, the state
   machine or execution, the function, the key, the user pool. SQS and S3 already name theirs.
2. **The action of a transaction.** AWS authorises each item of ``TransactWriteItems`` as the item's
   own action (``dynamodb:PutItem``, ``UpdateItem``, ``DeleteItem``, ``ConditionCheckItem``) on its
   table, and ``TransactGetItems`` as ``dynamodb:GetItem``: moto checks one action for the request.
3. **The action's IAM name.** moto checks the operation's name; IAM names a few differently: Lambda's
   Invoke is ``lambda:InvokeFunction``, SNS's PublishBatch is ``sns:Publish``, SQS's batch calls are
   their single calls' actions.
4. **The error.** moto answers every refusal with the query protocol's XML ``AccessDenied``; AWS
   answers ``AccessDeniedException`` in the JSON protocols (DynamoDB, SQS, Step Functions, Lambda,
   KMS, Cognito) and ``AuthorizationError`` in SNS, each naming the principal, action and resource.
   S3 keeps moto's ``AccessDenied``, which is AWS's.

Who is checked: a request signed by a session of an assumed role (what the local stack gives every
function, state machine and event source mapping). Any other key is the account's operator, who may
do everything as the account's root user may: the test harness, the CLI, the provisioner. So a test
or a tool using plain keys is never refused, and each caller of the template is held to its role.
A request with no ``Authorization`` header (a presigned S3 URL) is not evaluated (docs/reliability.md).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

log = logging.getLogger("marketplace_local.iam")
_originals: list[tuple[Any, str, Any]] = []

# DynamoDB transaction items: the key of each item and the IAM action AWS authorises it as.
_TRANSACT_WRITE = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                   "ConditionCheck": "ConditionCheckItem"}  # fmt: skip

# One (action or None for the request's own, resource ARN) per authorisation AWS makes.
Check = tuple[str | None, str]


def _patch(owner: Any, name: str, value: Any) -> None:
    _originals.append((owner, name, owner.__dict__.get(name)))
    setattr(owner, name, value)


def _params(response: Any) -> dict[str, Any]:
    """The request's parameters, whatever the protocol (JSON body or query string)."""
    parsed = getattr(response, "params", None)
    if isinstance(parsed, dict) and parsed:
        return parsed
    body = getattr(response, "body", None)
    if isinstance(body, dict):
        return body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body.lstrip().startswith("{"):
        try:
            loaded = json.loads(body)
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            return loaded
    query = getattr(response, "querystring", None) or {}
    return {k: v[0] if isinstance(v, list) and v else v for k, v in query.items()}


def _arn(response: Any, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{response.region}:{response.current_account}:{resource}"


def _table(response: Any, name: str) -> str:
    return name if name.startswith("arn:") else _arn(response, "dynamodb", f"table/{name}")


def _dynamodb(response: Any) -> list[Check]:
    params = _params(response)
    if "TransactItems" in params:
        checks: list[Check] = []
        for item in params["TransactItems"]:
            for key, operation in item.items():
                action = _TRANSACT_WRITE.get(key, "GetItem" if key == "Get" else None)
                checks.append((action, _table(response, operation["TableName"])))
        return checks
    if "RequestItems" in params:
        return [(None, _table(response, name)) for name in params["RequestItems"]]
    if "TableName" in params:
        table = _table(response, params["TableName"])
        return [(None, f"{table}/index/{params['IndexName']}" if params.get("IndexName") else table)]
    return [(None, "*")]


def _dynamodb_streams(response: Any) -> list[Check]:
    params = _params(response)
    # moto's shard iterator is "<stream arn>|1|<id>"; AWS authorises GetRecords on the stream.
    arn = params.get("StreamArn") or str(params.get("ShardIterator") or "").split("|", 1)[0]
    return [(None, arn or "*")]


def _sqs(original: Callable[[Any], str]) -> Callable[[Any], Any]:
    """moto names the queue of a request by its QueueUrl: GetQueueUrl (QueueName) and CreateQueue
    were evaluated on ``*``."""

    def determine(response: Any) -> Any:
        params = _params(response)
        if params.get("QueueName") and not params.get("QueueUrl"):
            return [(None, _arn(response, "sqs", params["QueueName"]))]
        return original(response)

    return determine


def _sns(response: Any) -> list[Check]:
    params = _params(response)
    return [(None, params.get("TopicArn") or params.get("TargetArn") or "*")]


def _stepfunctions(response: Any) -> list[Check]:
    params = _params(response)
    for key in ("executionArn", "stateMachineArn", "mapRunArn", "activityArn"):
        if params.get(key):
            return [(None, params[key])]
    return [(None, "*")]


def _kms(response: Any) -> list[Check]:
    key = str(_params(response).get("KeyId") or "")
    if not key:
        return [(None, "*")]
    if key.startswith("arn:"):
        return [(None, key)]
    if key.startswith("alias/"):
        from moto.kms.models import kms_backends

        backend = kms_backends[response.current_account][response.region]
        key = backend.get_key_id_from_alias(key) or key
    return [(None, _arn(response, "kms", f"key/{key}"))]


def _cognito_idp(response: Any) -> list[Check]:
    pool = _params(response).get("UserPoolId")
    return [(None, _arn(response, "cognito-idp", f"userpool/{pool}") if pool else "*")]


def _lambda(response: Any) -> list[Check]:
    """The function a request names in its path (``/2015-03-31/functions/<name or ARN>/...``)."""
    match = re.search(r"/functions/([^/]+)", response.path)
    if not match:
        return [(None, "*")]
    name = unquote(match.group(1))
    if not name.startswith("arn:"):
        name = _arn(response, "lambda", f"function:{name}")
    return [(None, ":".join(name.split(":")[:7]))]  # without a version or alias qualifier


def _role_session(response: Any) -> Any | None:
    """The assumed-role session that signed the request, or None (the operator)."""
    from moto.sts.models import sts_backends

    authorization = response.headers.get("Authorization") or ""
    key = authorization.partition("Credential=")[2].partition("/")[0]
    if not key or "X-Amz-Security-Token" not in response.headers:
        return None
    for backend in sts_backends[response.current_account].values():
        for session in backend.assumed_roles:
            if session.access_key_id == key:
                return session
    return None


def _checks(response: Any, resource: Any) -> Iterator[Check]:
    if isinstance(resource, list):
        yield from resource
    else:
        yield (None, resource)


# What each role was allowed and refused while enforcement was on: (role ARN, action, resource).
used: set[tuple[str, str, str]] = set()
denied: list[tuple[str, str, str]] = []
# Refusals a test caused on purpose (a grant taken off the role, :func:`refusals_expected`).
expected: list[tuple[str, str, str]] = []
_record_lock = threading.Lock()


@contextmanager
def refusals_expected(role_arn: str) -> Iterator[None]:
    """While open, the role's refusals are what a test is there to cause (a statement taken off the
    role): they are moved from :data:`denied`, which must stay empty in a run of the template as it
    is, to :data:`expected`."""
    with _record_lock:
        start = len(denied)
    try:
        yield
    finally:
        with _record_lock:
            before, window = denied[:start], denied[start:]
            expected.extend(d for d in window if d[0] == role_arn)
            denied[:] = before + [d for d in window if d[0] != role_arn]


def record(role_arn: str, action: str, resource: str, *, allowed: bool) -> None:
    with _record_lock:
        if allowed:
            used.add((role_arn, action, resource))
        else:
            denied.append((role_arn, action, resource))
            log.warning("AccessDenied: %s may not %s on %s", role_arn.rsplit("/", 1)[-1], action, resource)


def _authorize(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def authorize(self: Any, iam_request_cls: type, resource: Any = "*") -> None:
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin

        if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
            return original(self, iam_request_cls, "*")  # counts the request, as moto does
        session = _role_session(self)
        if session is None:
            return None  # the operator
        _request(self, iam_request_cls, None).check_signature()
        for action, arn in _checks(self, resource):
            request = _request(self, iam_request_cls, action)
            try:
                request.check_action_permitted(arn)
            except Exception:
                record(session.role_arn, request._action, arn, allowed=False)
                raise
            record(session.role_arn, request._action, arn, allowed=True)
        return None

    authorize.__wrapped__ = original  # type: ignore[attr-defined]
    return authorize


def _request(response: Any, iam_request_cls: type, action: str | None) -> Any:
    from urllib.parse import urlparse

    path = response.raw_path
    if urlparse(response.uri).query:
        path += "?" + urlparse(response.uri).query
    return iam_request_cls(
        account_id=response.current_account, method=response.method, path=path, data=response.data,
        body=response.raw_body, headers=response.headers, action=action or _iam_action(response),
    )  # fmt: skip


# Operations whose IAM action has another name (the Service Authorization Reference).
_IAM_ACTIONS = {
    ("lambda", "Invoke"): "InvokeFunction",
    ("sns", "PublishBatch"): "Publish",
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
}


def _iam_action(response: Any) -> str:
    operation = response._get_action()
    scope = (response.headers.get("Authorization") or "").partition("Credential=")[2].split("/")
    service = scope[3] if len(scope) > 3 else ""
    return _IAM_ACTIONS.get((service, operation), operation)


def _remember_resource(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def check_action_permitted(self: Any, resource: str) -> None:
        self._checked_resource = resource
        return original(self, resource)

    return check_action_permitted


# The error code AWS answers a refusal with, by the signing name of the service.
_JSON_DENIED = {
    "dynamodb",
    "sqs",
    "states",
    "lambda",
    "kms",
    "cognito-idp",
    "sts",
    "events",
    "scheduler",
    "logs",
}


def _access_denied(self: Any) -> None:
    from moto.core.exceptions import AccessDeniedError, JsonRESTError, _RESTError

    resource = getattr(self, "_checked_resource", "*")
    message = (
        f"User: {self._access_key.arn} is not authorized to perform: {self._action} on resource: "
        f"{resource} because no identity-based policy allows the {self._action} action"
    )
    if self._service in _JSON_DENIED:
        error = JsonRESTError("AccessDeniedException", message)
        error.code = 400 if self._service in ("dynamodb", "states") else 403
        raise error
    if self._service == "sns":
        error = _RESTError("AuthorizationError", message)  # the query protocol's XML error
        error.code = 403
        raise error
    raise AccessDeniedError(user_arn=self._access_key.arn, action=self._action)


def install() -> None:
    """Apply every fix (idempotent)."""
    if _originals:
        return
    from moto.awslambda.responses import LambdaResponse
    from moto.cognitoidp.responses import CognitoIdpResponse
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    from moto.iam.access_control import IAMRequest, IAMRequestBase
    from moto.kms.responses import KmsResponse
    from moto.sns.responses import SNSResponse
    from moto.sqs.responses import SQSResponse
    from moto.stepfunctions.responses import StepFunctionResponse

    _patch(ActionAuthenticatorMixin, "_authenticate_and_authorize_action",
           _authorize(ActionAuthenticatorMixin._authenticate_and_authorize_action))  # fmt: skip
    _patch(
        IAMRequestBase, "check_action_permitted", _remember_resource(IAMRequestBase.check_action_permitted)
    )
    _patch(IAMRequest, "_raise_access_denied", _access_denied)
    for handler, determine in (
        (DynamoHandler, _dynamodb),
        (DynamoDBStreamsHandler, _dynamodb_streams),
        (SNSResponse, _sns),
        (StepFunctionResponse, _stepfunctions),
        (KmsResponse, _kms),
        (CognitoIdpResponse, _cognito_idp),
    ):
        _patch(handler, "_determine_resource", determine)
    _patch(SQSResponse, "_determine_resource", _sqs(SQSResponse._determine_resource))
    _patch(LambdaResponse, "_determine_resource", _lambda)


def uninstall() -> None:
    while _originals:
        owner, name, value = _originals.pop()
        if value is None:
            delattr(owner, name)
        else:
            setattr(owner, name, value)

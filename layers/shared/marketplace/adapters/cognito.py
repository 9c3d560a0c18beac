"""A tenant's admins as users of the Cognito user pool: AdminCreateUser, then AdminAddUserToGroup.

The API's Cognito authorizer reads these users' tokens: ``custom:tenant_id`` is the tenant, the
``admin`` group the role (marketplace.principal). Cognito mails each new user a temporary password.
Locally the same calls reach moto's Cognito (the local stack creates the pool and its groups); the
local API verifies tokens the local key signs, which ``marketplace tenant create`` prints for them.
"""

from __future__ import annotations

import os
from typing import Any

from marketplace.access import ADMIN
from marketplace.adapters import aws
from marketplace.errors import Conflict, FieldError, InvalidInput


class TenantAdmins:
    def __init__(self, user_pool_id: str | None = None, client: Any = None) -> None:
        self.user_pool_id = user_pool_id or os.environ["USER_POOL_ID"]
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("cognito-idp")

    def create(self, tenant_id: str, email: str, field: str) -> str:
        """The admin ``email`` of ``tenant_id`` (its ``sub``), created in the ``admin`` group. A user
        already there for this tenant is taken as it is (a retried creation); one of another tenant
        is a 409 naming ``field``."""
        errors = self.client.exceptions
        try:
            user = self.client.admin_create_user(
                UserPoolId=self.user_pool_id, Username=email, DesiredDeliveryMediums=["EMAIL"],
                UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"},
                                {"Name": "custom:tenant_id", "Value": tenant_id}],
            )["User"]  # fmt: skip
            attributes = user.get("Attributes", [])
        except errors.UsernameExistsException:
            attributes = self.client.admin_get_user(UserPoolId=self.user_pool_id, Username=email)[
                "UserAttributes"
            ]
        except errors.InvalidParameterException as exc:
            raise InvalidInput([FieldError(field, str(exc.response["Error"]["Message"]))]) from None
        found = {a["Name"]: a["Value"] for a in attributes}
        if found.get("custom:tenant_id") != tenant_id:
            raise Conflict(f"{field}: {email} is already a user of another tenant")
        self.client.admin_add_user_to_group(UserPoolId=self.user_pool_id, Username=email, GroupName=ADMIN)
        return str(found.get("sub") or email)

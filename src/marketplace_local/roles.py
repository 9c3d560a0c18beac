"""Every caller of the template with its own role, and the switch that enforces the roles (D50).

On AWS a function's code calls AWS with its execution role's credentials (Lambda assumes the role
and puts the session in the function's environment), a state machine's service integrations with
the state machine's role, and an event source mapping reads its stream or queue with the function's
role. The local stack does the same: it assumes each ``AWS::IAM::Role`` of the transformed template
(created with its policies by :mod:`marketplace_local.provision`) through moto's STS and hands each
caller its role's session. With enforcement on, moto then authorises every call of those sessions
against the role's policies (:mod:`marketplace_local.moto_patches.iam_enforcement`); anything else
(the test harness, the CLI) signs as the account's operator and is never refused.

Enforcement is on by default; ``MARKETPLACE_IAM=off`` turns it off for one run (the roles are
assumed and used either way).
"""

from __future__ import annotations

import os
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

ENFORCEMENT_VARIABLE = "MARKETPLACE_IAM"


# `make run` and `make test` enforce the template's policies (D50); MARKETPLACE_IAM=off skips the
# check for one run, when investigating (the roles are still assumed and used).
DEFAULT_ENFORCEMENT = "on"


def enforcement_from_env() -> bool:
    """``MARKETPLACE_IAM``: ``on`` or ``off`` (default :data:`DEFAULT_ENFORCEMENT`); anything else
    stops the stack."""
    value = os.environ.get(ENFORCEMENT_VARIABLE, DEFAULT_ENFORCEMENT).strip().lower()
    if value not in ("on", "off"):
        raise ValueError(f"{ENFORCEMENT_VARIABLE} must be on or off, not {value!r}")
    return value == "on"


@dataclass(frozen=True)
class RoleSession:
    """One assumed role's temporary credentials."""

    role_arn: str
    access_key_id: str
    secret_access_key: str
    session_token: str

    def environment(self) -> dict[str, str]:
        """The variables Lambda gives a function running with this role."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }

    def client_arguments(self) -> dict[str, str]:
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
        }


class Roles:
    """The sessions of the template's roles, assumed once each through moto's STS."""

    def __init__(self, sts: Any) -> None:
        self._sts = sts
        self._sessions: dict[str, RoleSession] = {}
        self._lock = threading.Lock()

    def session(self, role_arn: str) -> RoleSession:
        with self._lock:
            if role_arn not in self._sessions:
                credentials = self._sts.assume_role(
                    RoleArn=role_arn, RoleSessionName=role_arn.rsplit("/", 1)[-1][:64], DurationSeconds=43200
                )["Credentials"]
                self._sessions[role_arn] = RoleSession(
                    role_arn,
                    credentials["AccessKeyId"],
                    credentials["SecretAccessKey"],
                    credentials["SessionToken"],
                )
            return self._sessions[role_arn]

    def known(self, role_arn: str) -> RoleSession | None:
        """The session of a role already assumed (a state machine's role is assumed when created)."""
        with self._lock:
            return self._sessions.get(role_arn)


# The running stacks' roles, newest first: moto's Step Functions engine (a process-wide singleton)
# finds a state machine's role session here (marketplace_local.moto_patches.engine).
_active: list[Roles] = []


def activate(roles: Roles) -> None:
    _active.insert(0, roles)


def deactivate(roles: Roles) -> None:
    if roles in _active:
        _active.remove(roles)


def session_for(role_arn: str | None) -> RoleSession | None:
    if not role_arn:
        return None
    for roles in list(_active):
        found = roles.known(role_arn)
        if found is not None:
            return found
    return None


def enforcement() -> AbstractContextManager[None]:
    """While open, moto authorises every request (moto's own switch: its initial no-auth count at 0)."""
    from moto.core.authorization import enable_iam_authentication

    return enable_iam_authentication()

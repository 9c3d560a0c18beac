"""Who is calling: the claims that API Gateway's Cognito authorizer passes to the API.

The groups are the one claim whose shape the authorizer loses. The ID token carries
``cognito:groups`` as a JSON list; a REST API's Cognito authorizer hands every claim over as a
string and joins a list with commas (``["retailer", "admin"]`` becomes ``"retailer,admin"``), an HTTP
API's JWT authorizer as ``"[retailer admin]"``. A Cognito group name may contain a comma (not a
space), so ``"x,admin"`` is either two groups or one group named ``x,admin``, which must not make
anyone an admin. The groups are therefore read from the token itself, the one in the request's
``Authorization`` header that the authorizer has just verified, and the flattened claim only when
no token came with the claims (a caller that is not the gateway: tests, tools).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from marketplace.access import OPERATOR, ROLES, require_role
from marketplace.errors import Unauthorized


@dataclass(frozen=True)
class Principal:
    subject: str
    tenant_id: str
    roles: frozenset[str]
    supplier_id: str | None = None
    # The tenant's smoke test acts with this set (marketplace.tenants): every record it creates
    # carries ``testData: true`` (:meth:`marker`), which no event, ledger, statement or metric counts.
    test_data: bool = False

    @classmethod
    def from_claims(cls, claims: dict[str, Any] | None, authorization: str | None = None) -> Principal:
        """The caller of the authorizer's ``claims``; ``authorization`` is the request's header, the
        token those claims were read from (its groups are read from it, see the module's doc)."""
        if not claims:
            raise Unauthorized("no authorizer claims")
        tenant = str(claims.get("custom:tenant_id") or "").strip()
        subject = str(claims.get("sub") or "").strip()
        if not subject:
            raise Unauthorized("the token has no tenant_id or sub claim")
        if authorization:
            groups = token_groups(authorization, subject)
        else:
            groups = parse_groups(claims.get("cognito:groups"))
        roles = frozenset(groups) & ROLES
        if OPERATOR in roles:
            # The platform's operator belongs to no tenant (D47): a token that mixes the two is
            # nobody's, refused like a bad token.
            if tenant or roles != {OPERATOR}:
                raise Unauthorized("an operator token carries no tenant and no tenant role")
            return cls(subject=subject, tenant_id="", roles=roles)
        if not tenant:
            raise Unauthorized("the token has no tenant_id or sub claim")
        if not roles:
            # A user in none of our groups has no identity here: refused like a bad token, on every
            # route alike, before any route could tell what exists.
            raise Unauthorized(f"the token is in none of the groups {', '.join(sorted(ROLES))}")
        supplier_id = str(claims.get("custom:supplier_id") or "").strip() or None
        if "supplier" in roles and supplier_id is None:
            raise Unauthorized("a supplier token has no supplier_id claim")
        return cls(subject=subject, tenant_id=tenant, roles=roles, supplier_id=supplier_id)

    @property
    def is_operator(self) -> bool:
        return OPERATOR in self.roles

    def marker(self) -> dict[str, bool]:
        """What a record this caller creates carries to say it is test data (nothing otherwise)."""
        return {"testData": True} if self.test_data else {}

    @property
    def actor(self) -> str:
        """Who did it, as the records' ``createdBy``/``updatedBy`` and the audit trail say it."""
        return f"{'+'.join(sorted(self.roles)) or 'user'}:{self.subject}"

    @staticmethod
    def acting_as(actor: str) -> frozenset[str]:
        """Who an ``actor`` (:attr:`actor`, or a system actor such as ``system:deadline-sweeper``) acted
        as: its roles, or ``system``."""
        return frozenset(actor.partition(":")[0].split("+"))

    def require(self, *roles: str) -> None:
        """403 unless the caller has one of ``roles`` (``marketplace.access.require_role``)."""
        require_role(self, roles)


def token_groups(authorization: str, subject: str) -> list[str]:
    """``cognito:groups`` as the ID token in ``authorization`` carries it: a list, each name whole.

    The signature is not checked here: the gateway's authorizer checked this very header before
    the function ran (its claims are the ones we got), and the ``sub`` must be theirs. Decoded by
    hand, as the JWT libraries do with verification off: three lines of base64 and JSON, for which
    the shared layer would otherwise ship a JWT library it never uses to verify."""
    token = authorization.removeprefix("Bearer ").strip()
    parts = token.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not a JWT")
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("the Authorization header is not the token the authorizer verified") from exc
    if not isinstance(payload, dict) or str(payload.get("sub") or "").strip() != subject:
        raise Unauthorized("the Authorization header is not the token the authorizer verified")
    return parse_groups(payload.get("cognito:groups"))


def parse_groups(value: Any) -> list[str]:
    """Groups as a list (the token's own claim), or flattened to a string by an authorizer:
    API Gateway HTTP API's ``"[a b]"`` (names hold no spaces, so split on spaces only) or a REST
    API's ``"a,b"`` (ambiguous for a name with a comma: :func:`token_groups` is preferred)."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        return text[1:-1].split()
    return [g.strip() for g in text.split(",") if g.strip()]

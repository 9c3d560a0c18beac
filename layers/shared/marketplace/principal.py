"""Who is calling: the claims that API Gateway's Cognito authorizer passes to the API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from marketplace.access import ROLES, require_role
from marketplace.errors import Unauthorized


@dataclass(frozen=True)
class Principal:
    subject: str
    tenant_id: str
    roles: frozenset[str]
    supplier_id: str | None = None

    @classmethod
    def from_claims(cls, claims: dict[str, Any] | None) -> Principal:
        if not claims:
            raise Unauthorized("no authorizer claims")
        tenant = str(claims.get("custom:tenant_id") or "").strip()
        subject = str(claims.get("sub") or "").strip()
        if not tenant or not subject:
            raise Unauthorized("the token has no tenant_id or sub claim")
        roles = frozenset(parse_groups(claims.get("cognito:groups"))) & ROLES
        if not roles:
            # A user in none of our groups has no identity here: refused like a bad token, on every
            # route alike, before any route could tell what exists.
            raise Unauthorized(f"the token is in none of the groups {', '.join(sorted(ROLES))}")
        supplier_id = str(claims.get("custom:supplier_id") or "").strip() or None
        if "supplier" in roles and supplier_id is None:
            raise Unauthorized("a supplier token has no supplier_id claim")
        return cls(subject=subject, tenant_id=tenant, roles=roles, supplier_id=supplier_id)

    @property
    def actor(self) -> str:
        """Who did it, as the records' ``createdBy``/``updatedBy`` and the audit trail say it."""
        return f"{'+'.join(sorted(self.roles)) or 'user'}:{self.subject}"

    def require(self, *roles: str) -> None:
        """403 unless the caller has one of ``roles`` (``marketplace.access.require_role``)."""
        require_role(self, roles)


def parse_groups(value: Any) -> list[str]:
    """Groups arrive as a list, a comma-separated string or API Gateway's "[a b]" string."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        return [g for g in re.split(r"[\s,]+", text[1:-1]) if g]
    return [g.strip() for g in text.split(",") if g.strip()]

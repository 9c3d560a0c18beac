"""Who may do what: the role sets and the one rule of which suppliers a caller sees.

The API declares each route's roles beside the route (``functions/api/routes/policy.py``) and
enforces them through these functions, before the route runs; the domain asks the same functions
when it needs the rule on a record it has read (a supplier order's supplier).

Two refusals, on purpose different (docs/decisions.md D10):

* a role that may not call an action at all is ``403 forbidden``, whatever the id;
* a caller that may call it, but not on this supplier (a supplier asking for another supplier's
  record), is ``404 not_found``, exactly as an id that does not exist, so that ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from marketplace.errors import Forbidden, NotFound

if TYPE_CHECKING:
    from marketplace.principal import Principal

RETAILER, SUPPLIER, ADMIN = "retailer", "supplier", "admin"
# The platform's operator: above the tenants and a member of none (docs/decisions.md D47). Its token
# carries no tenant; only the /platform/ routes allow it, so it reads no tenant's data.
OPERATOR = "operator"
# The roles of a tenant's members.
TENANT_ROLES = frozenset({RETAILER, SUPPLIER, ADMIN})
# The Cognito groups a token may carry; a token in none of them is refused (Principal.from_claims).
ROLES = TENANT_ROLES | {OPERATOR}
# The tenant's own staff: they see every supplier of their tenant. A supplier sees only itself.
STAFF = frozenset({RETAILER, ADMIN})


def require_known(roles: Iterable[str]) -> frozenset[str]:
    """``roles`` as a set, if it is a non-empty set of known roles (a mistake in code otherwise)."""
    allowed = frozenset(roles)
    if not allowed or allowed - ROLES:
        raise ValueError(f"roles must be some of {sorted(ROLES)}, not {sorted(allowed)}")
    return allowed


def require_role(principal: Principal, roles: Iterable[str]) -> frozenset[str]:
    """The caller's roles among ``roles`` (the roles it acts in here); 403 if it has none."""
    allowed = require_known(roles)
    acting = principal.roles & allowed
    if not acting:
        raise Forbidden(f"this action needs one of the roles: {', '.join(sorted(allowed))}")
    return acting


def sees_supplier(principal: Principal, supplier_id: str | None, roles: Iterable[str] = ROLES) -> bool:
    """Whether the caller, acting in those of its roles that are among ``roles``, may see
    ``supplier_id``'s records: the tenant's staff see all its suppliers, a supplier only itself.
    ``roles`` matters for a caller with several roles on an action only suppliers may take (its
    webhook): there it acts as a supplier, so only for itself."""
    acting = principal.roles & frozenset(roles)
    if acting & STAFF:
        return True
    return SUPPLIER in acting and supplier_id is not None and principal.supplier_id == supplier_id


def require_supplier(principal: Principal, supplier_id: str, roles: Iterable[str] = ROLES) -> None:
    """404 unless the caller may see ``supplier_id`` (see :func:`sees_supplier`)."""
    if not sees_supplier(principal, supplier_id, roles):
        raise NotFound(f"no supplier {supplier_id}")


def authorize(principal: Principal, roles: Iterable[str], supplier_id: str | None = None) -> None:
    """The whole check of a route: the role first (403), then, when the route names a supplier,
    that the caller sees it (404)."""
    allowed = require_known(roles)
    require_role(principal, allowed)
    if supplier_id is not None:
        require_supplier(principal, supplier_id, allowed)


def supplier_scope(principal: Principal, supplier_id: str | None) -> str | None:
    """The supplier a listing across suppliers is for (``GET /supplier-orders?supplierId=``): a
    supplier's own whatever it names (another's is 404), the one staff name (None: they named
    none, which the caller refuses as a 400)."""
    if principal.roles & STAFF:
        return supplier_id or None
    require_role(principal, {SUPPLIER})
    if supplier_id and supplier_id != principal.supplier_id:
        raise NotFound(f"no supplier {supplier_id}")
    return principal.supplier_id

"""Who may call a route: declared beside the route, enforced here, before the route runs.

    @router.post("/suppliers/<supplierId>/products", middlewares=[allow("supplier", "retailer", "admin")])
    def register_product(supplierId: str) -> Response:
        principal = caller(router)

:func:`allow` is a Powertools route middleware. It reads the caller from the authorizer's claims
(401 for claims no token of ours has), refuses a suspended tenant's caller (403 naming the
suspension, D47), a request over the tenant's request limit (429 with ``Retry-After``, the fair
share: D52), a role the route does not allow (403), and on a path that names a ``<supplierId>`` a
supplier that is not that one (404, as an unknown id: D10); the rules are ``marketplace.access``. The route then gets the caller with :func:`caller`. Every route
declares its policy: ``tests/unit/test_api_routes.py`` fails for a route without one, and checks the
roles against those the OpenAPI body names for the operation.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import APIGatewayRestResolver, BaseRouter, Response
from aws_lambda_powertools.event_handler.middlewares import BaseMiddlewareHandler, NextMiddleware

from marketplace import access, tenants
from marketplace.errors import Throttled
from marketplace.fair_share import FairShare
from marketplace.observability import count
from marketplace.principal import Principal
from routes import metrics

_PRINCIPAL = "principal"  # the resolver context's key for the caller of this request
fair_share = FairShare()  # this instance's leases of each tenant's requests (D52)


class Policy(BaseMiddlewareHandler):
    """A route's policy; ``roles`` empty means a public route (no token: ``/health``)."""

    def __init__(self, roles: frozenset[str]) -> None:
        super().__init__()
        self.roles = roles

    def handler(self, app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
        if self.roles:
            event = app.current_event
            principal = Principal.from_claims(
                event.request_context.authorizer.claims, event.headers.get("Authorization")
            )
            if not principal.is_operator:
                # A suspended tenant's tokens: 403 naming the suspension on every route, before
                # anything else is told (a cached read, D47).
                tenants.require_active(principal.tenant_id)
                _admit(principal.tenant_id)
            supplier_id = app.request.path_parameters.get("supplierId")
            access.authorize(principal, self.roles, supplier_id)
            app.append_context(**{_PRINCIPAL: principal})
        return next_middleware(app)

    def __repr__(self) -> str:
        return f"allow({', '.join(sorted(self.roles))})" if self.roles else "public()"


def _admit(tenant_id: str) -> None:
    """The tenant's request within its limit, or 429 (counted as ``RequestsThrottled``)."""
    limit, tier = tenants.request_limit(tenant_id)
    try:
        fair_share.admit(tenant_id, limit, tier)
    except Throttled:
        count(metrics, "RequestsThrottled", tenant_id)
        raise


def allow(*roles: str) -> Policy:
    """Callers with one of ``roles`` (``marketplace.access.ROLES``); a supplier only for itself."""
    access.require_known(roles)
    return Policy(frozenset(roles))


def public() -> Policy:
    """No token needed, no caller: only for what tells nothing about any tenant."""
    return Policy(frozenset())


def caller(router: BaseRouter) -> Principal:
    """The caller the route's policy let in."""
    principal = router.context.get(_PRINCIPAL)
    if not isinstance(principal, Principal):
        raise RuntimeError("this route declares no allow(...) policy, so it has no caller")
    return principal

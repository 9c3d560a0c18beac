"""marketplace.access: the role sets and which suppliers a caller sees (403 for a role, 404 for
another supplier's id)."""

from __future__ import annotations

import pytest

from marketplace import access
from marketplace.errors import Forbidden, NotFound
from marketplace.principal import Principal


def who(*roles: str, supplier: str | None = None) -> Principal:
    return Principal("u1", "t1", frozenset(roles), supplier)


def test_a_role_the_action_does_not_allow_is_403_naming_the_roles_it_needs():
    with pytest.raises(Forbidden, match="needs one of the roles: admin, retailer"):
        access.require_role(who("supplier", supplier="s1"), {"retailer", "admin"})
    assert access.require_role(who("admin", "supplier", supplier="s1"), {"supplier"}) == {"supplier"}


def test_a_declaration_with_no_role_or_an_unknown_one_is_a_mistake_in_code():
    for roles in (set(), {"admin", "superuser"}):
        with pytest.raises(ValueError, match="roles must be some of"):
            access.require_known(roles)


@pytest.mark.parametrize(
    ("caller", "supplier_id", "roles", "sees"),
    [
        (who("retailer"), "s1", access.ROLES, True),
        (who("admin"), "s2", access.ROLES, True),
        (who("supplier", supplier="s1"), "s1", access.ROLES, True),
        (who("supplier", supplier="s1"), "s2", access.ROLES, False),
        (who("supplier", supplier="s1"), None, access.ROLES, False),
        # an admin who is also a supplier acts as the supplier where only suppliers may act
        (who("admin", "supplier", supplier="s1"), "s2", {"supplier"}, False),
        (who("admin", "supplier", supplier="s1"), "s2", access.ROLES, True),
    ],
)
def test_staff_see_every_supplier_of_their_tenant_a_supplier_only_itself(caller, supplier_id, roles, sees):
    assert access.sees_supplier(caller, supplier_id, roles) is sees


def test_authorize_checks_the_role_first_then_the_supplier():
    with pytest.raises(Forbidden):  # a retailer on a supplier-only route: 403 whatever the id
        access.authorize(who("retailer"), {"supplier"}, "s2")
    with pytest.raises(NotFound, match="no supplier s2"):  # another supplier's id: as if unknown
        access.authorize(who("supplier", supplier="s1"), {"supplier"}, "s2")
    access.authorize(who("supplier", supplier="s1"), {"supplier"}, "s1")
    access.authorize(who("retailer"), {"retailer"})


def test_a_supplier_lists_only_its_own_orders_and_staff_name_the_supplier():
    assert access.supplier_scope(who("supplier", supplier="s1"), None) == "s1"
    assert access.supplier_scope(who("supplier", supplier="s1"), "s1") == "s1"
    with pytest.raises(NotFound):
        access.supplier_scope(who("supplier", supplier="s1"), "s2")
    assert access.supplier_scope(who("retailer"), "s2") == "s2"
    assert access.supplier_scope(who("admin"), "") is None

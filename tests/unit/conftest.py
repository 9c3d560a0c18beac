"""Fixtures the unit modules share: a quiet table and a tenant's admin."""

from __future__ import annotations

import pytest

from marketplace.principal import Principal
from marketplace.repository import Table


@pytest.fixture
def table(quiet_table) -> Table:
    """The module's quiet table (``tests/conftest.py``): what a test writes starts no workflow."""
    return quiet_table


@pytest.fixture
def admin(tenant) -> Principal:
    return Principal(subject="ada", tenant_id=tenant, roles=frozenset({"admin"}))

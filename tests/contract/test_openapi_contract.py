"""Contract fuzzing: schemathesis drives every operation of the OpenAPI body that the local API
serves at /openapi.json (the one in template.yaml), with a valid token of the operation's role, and
checks that no answer is a 5xx and that every status, content type and body is the one the
document declares.

Path parameters are the generated values or, as often, ids of the seeded tenant's real records and
another tenant's, so the checks cover the found and the not-found answers. Generation is seeded and
derandomized: the same cases every run.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from tests.contract.conftest import World

MAX_EXAMPLES = 8
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# The role whose token each operation is called with; an operation not listed here is called as an
# admin under /admin/, as the path's supplier where the path has one, else as a retailer.
ROLES = {
    "rejectProduct": "admin",
    "retryProduct": "admin",
    "cancelSupplierOrder": "admin",
    "retrySupplierOrder": "admin",
    "listSupplierOrders": "supplier",
    "getSupplierOrder": "supplier",
    "acceptSupplierOrder": "supplier",
    "rejectSupplierOrder": "supplier",
    "addShipment": "supplier",
    "listShipments": "supplier",
    "markSupplierOrderDelivered": "supplier",
    "getSupplierOrderHistory": "supplier",
    "registerSupplier": "retailer",
    "listSuppliers": "retailer",
    "getSupplier": "retailer",
    "updateSupplier": "retailer",
    "getSupplierHistory": "retailer",
}


def role_for(path: str, operation_id: str | None) -> str:
    if operation_id in ROLES:
        return ROLES[operation_id]
    if path.startswith("/admin/"):
        return "admin"
    return "supplier" if "{supplierId}" in path else "retailer"


def existing_ids(world: World) -> dict[str, list[str]]:
    """Real ids per path parameter: the tenant's own records first, then another tenant's."""
    return {
        "supplierId": [world.supplier_id, world.flagged_supplier_id, world.other_supplier_id],
        "sku": [world.sku, world.flagged_sku],
        "orderId": [world.order_id],
        "supplierOrderId": [
            world.supplier_order_id,
            world.flagged_supplier_order_id,
            world.other_supplier_order_id,
        ],
        "recordId": [world.flagged_supplier_id, world.supplier_id, world.other_supplier_id],
        "entryId": [world.entry_id],
        "deliveryId": world.delivery_ids,
    }


@pytest.fixture(scope="session")
def contract_schema(world: World) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "seed": 20261123,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                # The token is the operation's role's (401s are the access matrix's business).
                "with-security-parameters": False,
            },
            "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{world.url}/openapi.json", config=config)
    ids = existing_ids(world)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
        """The generated ids; or the seeded tenant's own records (the first of each list, which
        belong together: the token's supplier, its listing, its order); or any mix of real ids."""
        if not path_parameters:
            return st.just(path_parameters)
        known = {name: ids.get(name) or [value] for name, value in path_parameters.items()}
        own = {name: values[0] for name, values in known.items()}
        mixed = st.fixed_dictionaries({name: st.sampled_from([path_parameters[name], *values])
                                       for name, values in known.items()})  # fmt: skip
        return st.one_of(st.just(path_parameters), st.just(own), mixed)

    return schema


schema = schemathesis.pytest.from_fixture("contract_schema")


@schema.parametrize()
def test_every_operation_answers_as_documented(case: Any, world: World) -> None:
    role = role_for(case.operation.path, case.operation.definition.raw.get("operationId"))
    response = case.call(headers=world.headers(role), timeout=30)
    ANSWERS.setdefault(f"{case.operation.method.upper()} {case.operation.path}", []).append(
        response.status_code
    )
    case.validate_response(response, checks=CHECKS)


ANSWERS: dict[str, list[int]] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_answers() -> Iterator[None]:
    """For the record (pytest -s): the status codes each operation answered."""
    yield
    total = sum(len(codes) for codes in ANSWERS.values())
    print(f"\n{len(ANSWERS)} operations, {total} calls", file=sys.stderr)
    for label, codes in sorted(ANSWERS.items()):
        print(f"  {label}: {dict(sorted(collections.Counter(codes).items()))}", file=sys.stderr)

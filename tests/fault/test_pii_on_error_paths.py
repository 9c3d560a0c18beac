"""No contact detail or tax id reaches the logs on the error paths either: a 5xx from the API (the
table throttles the write, the function logs the exception with its traceback), Lambda service
errors, crashes and duplicates in the onboarding workflow, a flagged record fixed and drained.
The happy paths are covered end to end in tests/e2e/test_local_stack.py."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from marketplace_local.faults import FaultConfig, FaultInjector
from tests.conftest import wait_until
from tests.fault.harness import Api

pytestmark = pytest.mark.fault

SUPPLIER = {
    "legalName": "Initech GmbH", "country": "DE", "website": "https://initech.de",
    "address": {"line1": "Hauptstr. 9", "city": "Berlin", "postalCode": "10115", "country": "DE"},
}  # fmt: skip


def _throttle_writes_mentioning(marker: str, times: int) -> Any:
    """A botocore hook on the API function's DynamoDB clients: the first ``times`` writes whose request
    mentions ``marker`` are refused as throttled (after botocore's own retries, the API's 5xx)."""
    left = {"n": times}

    def refuse(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in ("PutItem", "TransactWriteItems") and marker in str(params) and left["n"] > 0:
            left["n"] -= 1
            raise ClientError(
                {
                    "Error": {
                        "Code": "ProvisionedThroughputExceededException",
                        "Message": "injected: slow down",
                    }
                },
                model.name,
            )

    return refuse


def test_no_contact_detail_or_tax_id_reaches_the_logs_on_error_paths(stack, tenant, capfd, caplog):
    unique = uuid.uuid4().hex[:10]
    secrets = {"contactEmail": f"pii-{unique}@gmail.com", "phone": f"+49 30 {uuid.uuid4().int % 10**7:07d}",
               "taxId": f"DE{uuid.uuid4().int % 10**9:09d}"}  # fmt: skip
    fixed_email = f"pii-{unique}@initech.de"
    api = Api(stack, tenant)
    # The first writes are refused: the API answers 5xx (and logs the exception) until they pass.
    refuse, hooked = _throttle_writes_mentioning(secrets["taxId"], times=4), []

    def refusing(real_client: Any) -> Any:
        def client(service: str) -> Any:
            made = real_client(service)
            if service == "dynamodb" and made not in hooked:  # each API instance's own client
                made.meta.events.register("before-call.dynamodb", refuse)
                hooked.append(made)
            return made

        return client

    refusal = stack.runtime.patched("ApiFunction", "marketplace.adapters.aws", "client", refusing)
    refusal.__enter__()
    # The onboarding workflow's functions fail, not the correction queue's intake nor the admin's
    # drain: their failures are retried (or dead-lettered after a few, half of them failing) and add
    # nothing to the logs but time and a message an operator must redrive.
    workflow = tuple(stack.physical_id(f) for f in ("StreamRouterFunction", "ValidateSupplierFunction",
                                                    "AuditFunction"))  # fmt: skip
    injector = FaultInjector(
        FaultConfig(
            transient=0.5, duplicate=0.5, crash=0.5, only_matching=tenant, seed=11, functions=workflow
        )
    )
    injector.install(stack)
    try:
        first = requests.post(f"{api.url}/suppliers", json={**SUPPLIER, **secrets}, timeout=60,
                              headers={**api._headers("retailer", None), "Idempotency-Key": "pii-1"})  # fmt: skip
        assert first.status_code == 503, first.text  # the throttled write: a 5xx, logged with its traceback
        created = api.call("POST", "/suppliers", "retailer", {**SUPPLIER, **secrets}, idempotency_key="pii-1")
        assert created.status_code == 202, created.text
        supplier_id = created.json()["supplierId"]

        def status() -> dict[str, Any]:
            return api.call("GET", f"/suppliers/{supplier_id}", "retailer").json()

        flagged = wait_until(lambda: (s := status())["status"] == "FLAGGED" and s, timeout=60, what="flagged")
        fixed = api.call("PATCH", f"/suppliers/{supplier_id}", "admin", {"contactEmail": fixed_email},
                         headers={"If-Match": str(flagged["version"])})  # fmt: skip
        assert fixed.status_code == 200, fixed.text

        def drained() -> bool:
            try:
                return api.call("POST", "/admin/corrections/drain", "admin").ok
            except RuntimeError:  # the faults failed the drain function's every invocation: drain again
                return False

        wait_until(lambda: drained() and status()["status"] == "APPROVED", timeout=90, interval=1.0,
                   what="approved after the drain")  # fmt: skip
    finally:
        injector.uninstall()
        refusal.__exit__(None, None, None)
        for client in hooked:
            client.meta.events.unregister("before-call.dynamodb", refuse)
    # Every line written to the process's stdout and stderr, and every log record with all its
    # fields (a handler bound to another stream by an earlier test still passes records to root).
    captured = capfd.readouterr()
    records = "\n".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    logged = captured.out + captured.err + records
    assert supplier_id in logged and "request failed" in logged  # the logs, error path included, are read
    assert injector.report()["injected"]["transient"] > 0
    for value in (*secrets.values(), fixed_email, secrets["phone"].replace(" ", "")):
        assert value not in logged, f"{value} appears in the logs"

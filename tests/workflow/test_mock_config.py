"""statemachines/test/MockConfigFile.json: its shape, its agreement with the template and the ASL,
and what its mocked responses and the runs of its cases say about the domain.

Where each case goes (states entered, end) is ``statemachines/test/expected.json``, checked in the
local stack's engine by ``test_state_machine_cases.py`` and in Step Functions Local by
``tests/sfn_local`` (``tests/mock_config_cases.py`` reads both files). Here, without running a case:
the file's shape; that it names the template's state machines; that the reviewed kinds' machines
share one definition and differ only in their kind's substitutions; per state machine, that every
named state is a Task state of its ASL, every response exists (and, over the file, is used) and is
well formed, Lambda returns have Lambda's shape, Validate returns have the shape of the validation
step and the outcomes its ``Decide`` knows, a listing's verdicts are
``marketplace.products.evaluate``'s, a supplier order's Validate and Reserve returns are
``marketplace.orders.Orders``' (run over an in-memory table, ``order_steps``), the cases together
enter every state their kind can reach (and the machines of a shared definition every state of it),
and an EXPRESS machine uses nothing only STANDARD runs. From the runs in the local engine
(``mock_config_runs``, their histories): what each Task sent: Validate is asked about the
execution's record, status writes are conditional on the version the validation read and go to the
record's keys and its kind's status index entry (the execution input's ``keys``, built by the kind's
registry entry), Reserve is asked for that version, every correction-queue message parses as the
drain's ``Correction`` of the right kind and record. Changed ASLs (``MUTATIONS``) run in the same
engine must leave their case's row of the table.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.mock_config_cases import (
    ROOT,
    TEMPLATE_SUFFIX,
    asl_path,
    case_mocks,
    definition_text,
    execution_input,
    expected,
    invocation_range,
    load_asl,
    load_mock_config,
    load_raw_asl,
    machines,
    problems,
    response_for,
    substitutions,
    template_resource,
    template_state_machines,
    template_type,
)
from tests.workflow.test_product_listing import LISTING  # makes ACTIVE, as a supplier lists it


@dataclass(frozen=True)
class Machine:
    """What the checks know of a state machine beyond its ASL, the template and the table."""

    outcomes: frozenset[str]  # what its validation step returns
    correction_kind: str  # "kind" of its correction-queue messages: its kind in marketplace.registry
    record_id: str  # "recordId" of its correction-queue messages, for execution_input
    # MockedResponses whose name starts so carry this machine's payloads: no other machine uses them
    response_prefixes: tuple[str, ...]
    # the flagged-for-a-reason cases: a fragment of the reason their first validation must give
    reason_cases: dict[str, str] = field(default_factory=dict)
    # the only cases whose Validate may return an outcome not in outcomes (to reach DescribeUnknownOutcome)
    unknown_outcome_cases: frozenset[str] = frozenset({"UnknownOutcome"})
    # the outcome Decide flags a record for (MarkFlagged), and the outcomes whose validation carries flags
    flag_outcome: str = "FLAGGED"
    outcomes_with_flags: frozenset[str] = frozenset({"FLAGGED", "REJECTED"})
    # the fields of the execution input that name the record to the Validate Lambda (its identity)
    validate_identity: tuple[str, ...] = ("kind", "tenantId", "recordId")
    # what the Validate request carries besides the record's identity: a key -> its type or its value
    validate_request_extras: dict[str, Any] = field(default_factory=lambda: {"round": int})
    # the status writes of a verdict: conditional on the version the validation read, and bumping it
    verdict_writes: frozenset[str] = frozenset()
    # the Task states that queue a flagged record for a human (with its flags and flagged version),
    # and among them those that wait for the fix with a task token
    flag_queue_states: frozenset[str] = frozenset({"WaitForFix", "QueueForRestart"})
    callback_states: frozenset[str] = frozenset({"WaitForFix"})


# Product cases whose first validation is a verdict of the listing rules: (the supplier's status,
# what differs from LISTING). Their first Validate return must be what evaluate() says of it.
LISTING_VERDICTS: dict[str, tuple[str, dict[str, Any]]] = {
    "Active": ("APPROVED", {}),
    "RejectedSupplierNotApproved": ("REJECTED", {}),
    "RejectedProhibitedCategory": ("APPROVED", {"category": "weapons"}),
    "FlaggedPriceOutOfBounds": ("APPROVED", {"price": {"amount": 24999.0, "currency": "EUR"}}),
    "FlaggedMissingRequiredAttribute": ("APPROVED", {"attributes": {"brand": "Acme"}}),
    "FlaggedImageCount": ("APPROVED", {"images": ["https://cdn.example.com/tv/front.jpg"]}),
    "FlaggedImageUrlForm": (
        "APPROVED",
        {"images": ["http://cdn.example.com/tv/front.jpg", "https://cdn.example.com/tv/specs.pdf"]},
    ),
    "FlaggedUnknownCategory": ("APPROVED", {"category": "garden-tools"}),
    "FlaggedFixedBadly": ("APPROVED", {"price": {"amount": 24999.0, "currency": "EUR"}}),
    "CallbackTimeout": ("APPROVED", {"images": ["https://cdn.example.com/tv/front.jpg"]}),
}

# ------------------------------------------------------------------------------ supplier order

# The supplier order the SupplierOrder cases run on (supplierOrderId so-1 of supplier s-1): one line
# of LISTING at its listed price, as marketplace.orders.Orders.place writes it.
ORDER_LINE = {"sku": LISTING["sku"], "quantity": 2, "unitPrice": {"amount": 1299.99, "currency": "EUR"}}
ORDER = {"supplierId": "s-1", "lines": [ORDER_LINE], "status": "PENDING", "version": 1}

# Order cases whose Validate returns a verdict: (the supplier's status, what differs from ORDER). Each
# Validate return must be what marketplace.orders.Orders.validation_step says of that order, with
# LISTING ACTIVE in the table, flag for flag (and its version).
_PRICE_MISMATCH = {"lines": [{**ORDER_LINE, "unitPrice": {"amount": 1199.99, "currency": "EUR"}}]}
ORDER_VERDICTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ReservedAwaitingAcceptance": ("APPROVED", {}),
    "AlreadyReserved": ("APPROVED", {"status": "AWAITING_ACCEPTANCE", "version": 2, "reserved": True}),
    "ReservedByAnotherIntake": ("APPROVED", {"version": 2}),
    "OutOfStockRejected": ("APPROVED", {}),
    "OutOfStockButChangedMeanwhile": ("APPROVED", {}),
    "RejectionNotWritten": ("APPROVED", {}),
    "ReserveChangedMeanwhile": ("APPROVED", {}),
    "InvalidFlaggedForHuman": ("APPROVED", _PRICE_MISMATCH),
    "FlagWriteLost": ("APPROVED", _PRICE_MISMATCH),
    "InvalidFlagNotWritten": ("FLAGGED", {"lines": [{**ORDER_LINE, "quantity": 0}]}),
    "QueueForHumanFailed": ("APPROVED", _PRICE_MISMATCH),
    "TransientValidateRetriedThenReserved": ("APPROVED", {}),
    "ReserveTimedOutThenAlreadyReserved": ("APPROVED", {}),
    "ReserveFailedFlagged": ("APPROVED", {}),
    "ReserveUnknownOutcome": ("APPROVED", {}),
}
# The verdict writes of the reviewed-record definition, which both reviewed machines run: each status
# into the status index or out of it (which of the two a kind takes is its registry entry's).
REVIEWED_VERDICT_WRITES = frozenset(
    {"MarkApproved", "MarkApprovedOutOfIndex", "MarkFlagged", "MarkRejected", "MarkRejectedOutOfIndex"}
)


def reviewed_machine(kind: str, response_prefixes: tuple[str, ...], reason_cases: dict[str, str]) -> Machine:
    """A machine of the reviewed-record definition: its outcomes, correction kind and record come from
    the kind's registry entry and the table's input, not written again here."""
    from marketplace import registry

    return Machine(
        outcomes=frozenset({registry.KINDS[kind].approved, "FLAGGED", "REJECTED"}), correction_kind=kind,
        record_id=next(i["recordId"] for i in map(execution_input, machines()) if i["kind"] == kind),
        response_prefixes=response_prefixes, verdict_writes=REVIEWED_VERDICT_WRITES, reason_cases=reason_cases,
    )  # fmt: skip


MACHINES: dict[str, Machine] = {
    "SupplierOnboarding": reviewed_machine(
        "SUPPLIER",
        ("Validate", "FlagWritten"),
        {
            "FlaggedBadTaxIdFormat": "invalid format for",
            "FlaggedDuplicateTaxId": "duplicate tax id",
            "FlaggedDomainMismatch": "differs from the website",
        },
    ),
    "ProductListing": reviewed_machine(
        "PRODUCT",
        ("Listing",),
        {
            "FlaggedPriceOutOfBounds": "must be between",
            "FlaggedMissingRequiredAttribute": "is required for",
            "FlaggedImageCount": "images",
            "FlaggedImageUrlForm": "must be an https URL",
            "FlaggedUnknownCategory": "no rules for category",
        },
    ),
    "SupplierOrder": Machine(
        outcomes=frozenset({"VALID", "INVALID", "SETTLED"}),
        correction_kind="SUPPLIER_ORDER",
        record_id="so-1",
        response_prefixes=("Order",),
        reason_cases={"InvalidFlaggedForHuman": "is not the listed"},
        flag_outcome="INVALID",
        outcomes_with_flags=frozenset({"INVALID"}),
        validate_identity=("tenantId", "supplierOrderId"),
        validate_request_extras={"step": "validate"},
        verdict_writes=frozenset({"MarkFlagged", "MarkRejectedOutOfStock"}),
        flag_queue_states=frozenset({"QueueForHuman"}),
        callback_states=frozenset(),
    ),
}
# State machines of template.yaml that have no test cases in the MockConfigFile yet, and why. Each
# one is a gap: the test below fails for a state machine that is in neither MACHINES nor here.
WITHOUT_TEST_CASES: dict[str, str] = {
    "Settlement": "its one loop (a page, its Map of batches, the next page) runs in the local stack's "
    "engine with real steps in tests/workflow/test_settlement.py; no mocked-response cases yet (D45)",
}
# The ASL files of statemachines/ and the machines that run each: the reviewed kinds share one
# definition (docs/architecture.md), each filled with its own DefinitionSubstitutions.
DEFINITIONS: dict[str, tuple[str, ...]] = {
    "reviewed_record.asl.json": ("ProductListing", "SupplierOnboarding"),
    "supplier_order.asl.json": ("SupplierOrder",),
}
# What the machines of one definition may substitute differently: their kind's own settings. The
# rest (table, queue, topic, waits, rounds) is the same resource or parameter for each.
KIND_SUBSTITUTIONS = frozenset({"ValidateFunctionArn", "ApprovedStatus", "WorkflowActor"})


def task_states(asl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: state for name, state in asl["States"].items() if state["Type"] == "Task"}


def lambda_states(raw_asl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Task states that invoke a Lambda function of the template (a ``${...FunctionArn}`` placeholder)."""
    return {
        name: state for name, state in task_states(raw_asl).items()
        if state["Resource"] == "arn:aws:states:::lambda:invoke"
        and re.fullmatch(r"\$\{[A-Za-z]+FunctionArn\}", str(state["Parameters"].get("FunctionName")))
    }  # fmt: skip


def lambda_validate_states(raw_asl: dict[str, Any]) -> set[str]:
    """The Lambda Task states that validate: a function of its own, or a steps function asked for
    its ``"step": "validate"`` (the supplier order's function also reserves)."""
    return {
        name for name, state in lambda_states(raw_asl).items()
        if state["Parameters"].get("Payload", {}).get("step", "validate") == "validate"
    }  # fmt: skip


def verdict_writes(asl: dict[str, Any]) -> set[str]:
    """The states Decide sends a known outcome to."""
    return {rule["Next"] for rule in asl["States"]["Decide"]["Choices"]}


by_machine = pytest.mark.parametrize("machine", sorted(MACHINES))


def test_the_file_the_template_and_machines_name_the_same_state_machines():
    """One entry per AWS::Serverless::StateMachine of template.yaml (found by its logical id), unless
    it is listed in WITHOUT_TEST_CASES; the table of expected ends names the same machines."""
    logical_ids = template_state_machines()
    assert all(logical_id.endswith(TEMPLATE_SUFFIX) for logical_id in logical_ids.values()), logical_ids
    assert sorted(load_mock_config()["StateMachines"]) == sorted(MACHINES) == sorted(machines())
    assert set(MACHINES) <= set(logical_ids), "a MockConfigFile state machine that template.yaml lacks"
    assert not set(MACHINES) & set(WITHOUT_TEST_CASES)
    assert sorted(set(logical_ids) - set(MACHINES)) == sorted(WITHOUT_TEST_CASES), (
        "a state machine of template.yaml without test cases must be listed in WITHOUT_TEST_CASES"
    )


@by_machine
def test_each_state_machine_runs_the_asl_file_of_its_definition(machine):
    """Its DefinitionUri is an ASL file of statemachines/, and the machines that share a file are
    exactly the ones DEFINITIONS names (the reviewed kinds; the supplier order has its own)."""
    path = asl_path(machine)
    assert path.is_file() and path.parent == ROOT / "statemachines", path
    assert load_raw_asl(machine)["StartAt"] in load_asl(machine)["States"]
    sharing = tuple(sorted(other for other in MACHINES if asl_path(other) == path))
    assert DEFINITIONS.get(path.name) == sharing, (path.name, sharing)


def _declared_substitutions(machine: str) -> dict[str, Any]:
    return template_resource(machine)["Properties"].get("DefinitionSubstitutions", {})


def function_variables() -> dict[str, dict[str, Any]]:
    """logical id -> the environment variables template.yaml gives that function."""
    from tests.mock_config_cases import _sam

    return {
        logical_id: resource["Properties"].get("Environment", {}).get("Variables", {})
        for logical_id, resource in _sam()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


@pytest.mark.parametrize("definition", sorted(f for f, runs in DEFINITIONS.items() if len(runs) > 1))
def test_machines_of_one_definition_differ_only_in_their_kinds_substitutions(definition):
    """The machines that share an ASL file substitute the same placeholders, differ in exactly their
    kind's settings (KIND_SUBSTITUTIONS: its Validate function, approved status, actor), and each is
    its kind's: the ApprovedStatus of its registry entry, and the machine the stream router and the
    correction drain start for that kind (the environment variable the entry names)."""
    from marketplace import registry

    sharing = DEFINITIONS[definition]
    declared = {machine: _declared_substitutions(machine) for machine in sharing}
    assert len({tuple(sorted(subs)) for subs in declared.values()}) == 1, declared
    first, *others = sharing
    differing = {
        key for key, value in declared[first].items() if any(declared[o][key] != value for o in others)
    }
    assert differing == KIND_SUBSTITUTIONS, sorted(differing)
    for machine in sharing:
        kind = registry.KINDS[MACHINES[machine].correction_kind]
        assert substitutions(machine)["ApprovedStatus"] == kind.approved, machine
        assert execution_input(machine)["kind"] == kind.name, machine
        started_by = {
            logical_id: variables[kind.state_machine_env]
            for logical_id, variables in function_variables().items()
            if kind.state_machine_env in variables
        }  # fmt: skip
        assert started_by and all(
            value == {"Ref": template_state_machines()[machine]} for value in started_by.values()
        ), (machine, kind.state_machine_env, started_by)


def test_the_file_has_the_step_functions_local_shape():
    config = load_mock_config()
    assert set(config) == {"StateMachines", "MockedResponses"}
    for machine, entry in config["StateMachines"].items():
        assert set(entry) == {"TestCases"}, machine
        for case, mocks in case_mocks(machine, config).items():
            assert isinstance(mocks, dict) and mocks, (machine, case)
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in mocks.items()), (machine, case)


@by_machine
def test_every_state_a_case_mocks_is_a_task_state_of_the_asl(machine):
    states = load_asl(machine)["States"]
    wrong = {
        (case, state): states[state]["Type"] if state in states else "no such state"
        for case, mocks in case_mocks(machine).items()
        for state in mocks
        if states.get(state, {}).get("Type") != "Task"
    }
    assert not wrong


@by_machine
def test_every_mocked_response_a_case_names_exists(machine):
    config = load_mock_config()
    named = {
        (case, state, name)
        for case, mocks in case_mocks(machine, config).items()
        for state, name in mocks.items()
    }
    missing = {(case, state, name) for case, state, name in named if name not in config["MockedResponses"]}
    assert not missing


def test_every_mocked_response_is_used():
    """MockedResponses are shared by the state machines: each is used by a case of at least one."""
    config = load_mock_config()
    used = {
        name
        for machine in config["StateMachines"]
        for mocks in case_mocks(machine, config).values()
        for name in mocks.values()
    }
    assert sorted(set(config["MockedResponses"]) - used) == []


@by_machine
def test_a_response_named_for_one_machine_is_used_only_by_it(machine):
    """A response named with a machine's prefix carries its payloads: no other machine uses it."""
    config, prefixes = load_mock_config(), MACHINES[machine].response_prefixes
    others = {
        (other, case, name)
        for other in config["StateMachines"]
        if other != machine
        for case, mocks in case_mocks(other, config).items()
        for name in mocks.values()
        if name.startswith(prefixes)
    }
    assert not others


def response_problems(mocked_responses: dict[str, Any]) -> list[str]:
    """What is malformed in MockedResponses: keys, contiguity from 0, exactly one Return or Throw."""
    problems = []
    for name, mocked in mocked_responses.items():
        if not isinstance(mocked, dict) or not mocked:
            problems.append(f"{name}: must be an object of invocations")
            continue
        try:
            ranges = sorted(invocation_range(key) for key in mocked)
        except ValueError as error:
            problems.append(f"{name}: {error}")
            continue
        following = 0
        for start, end in ranges:
            if start != following:
                problems.append(
                    f"{name}: invocations must be contiguous from 0; {start} follows {following - 1}"
                )
            following = end + 1
        for key, response in mocked.items():
            if not (
                isinstance(response, dict) and len(response) == 1 and set(response) <= {"Return", "Throw"}
            ):
                problems.append(f"{name}[{key}]: must hold exactly one of Return or Throw")
            elif "Throw" in response:
                throw = response["Throw"]
                if not (isinstance(throw, dict) and set(throw) == {"Error", "Cause"}
                        and all(isinstance(v, str) and v for v in throw.values())):  # fmt: skip
                    problems.append(f"{name}[{key}]: Throw needs exactly the strings Error and Cause")
    return problems


def test_every_mocked_response_is_contiguous_invocations_each_with_one_return_or_throw():
    assert response_problems(load_mock_config()["MockedResponses"]) == []


@pytest.mark.parametrize(
    ("mocked", "fragment"),
    [
        ({"1": {"Return": {}}}, "contiguous from 0"),
        ({"0": {"Return": {}}, "2-3": {"Return": {}}}, "contiguous from 0"),
        ({"0-1": {"Return": {}}, "1": {"Return": {}}}, "contiguous from 0"),
        ({"1-0": {"Return": {}}}, "must end after it starts"),
        ({"00": {"Return": {}}}, "neither an invocation number"),
        ({"first": {"Return": {}}}, "neither an invocation number"),
        ({"0": {"Return": {}, "Throw": {"Error": "E", "Cause": "C"}}}, "exactly one of Return or Throw"),
        ({"0": {"Result": {}}}, "exactly one of Return or Throw"),
        ({"0": {"Throw": {"Error": "E"}}}, "Error and Cause"),
        ({}, "object of invocations"),
    ],
)
def test_malformed_mocked_responses_are_reported(mocked, fragment):
    problems = response_problems({"Sample": mocked})
    assert any(fragment in problem for problem in problems), problems


@by_machine
def test_every_return_carries_what_its_state_reads(machine):
    """Lambda returns are ``{"StatusCode": 200, "Payload": {...}}`` (whether each ResultSelector
    resolves on them is shown by the runs: a selector that fails ends its case with States.Runtime)."""
    asl, config = load_asl(machine), load_mock_config()
    states, responses = asl["States"], config["MockedResponses"]
    problems = []
    pairs = {(state, name) for mocks in case_mocks(machine, config).values() for state, name in mocks.items()}
    for state_name, response_name in sorted(pairs):
        state = states[state_name]
        for key, response in responses[response_name].items():
            if "Return" not in response:
                continue
            returned, where = response["Return"], f"{response_name}[{key}] for {state_name}"
            if state["Resource"] == "arn:aws:states:::lambda:invoke" and not (
                isinstance(returned, dict) and returned.get("StatusCode") == 200
                and isinstance(returned.get("Payload"), dict)
            ):  # fmt: skip
                problems.append(f"{where}: a Lambda invoke returns {{'StatusCode': 200, 'Payload': {{...}}}}")
    assert not problems, "\n".join(problems)


def _is_flag(flag: Any) -> bool:
    return (
        isinstance(flag, dict)
        and set(flag) == {"field", "reason"}
        and all(isinstance(v, str) for v in flag.values())
    )


@by_machine
def test_validate_returns_have_the_shape_of_the_validation_step(machine):
    from marketplace.repository import to_item

    config, spec = load_mock_config(), MACHINES[machine]
    validate_states = lambda_validate_states(load_raw_asl(machine))
    assert validate_states == {"Validate"}
    assert spec.outcomes == {
        rule["And"][1]["StringEquals"] for rule in load_asl(machine)["States"]["Decide"]["Choices"]
    }, "the outcomes a validation returns are the ones Decide knows"
    # Exactly what the Validate state's ResultSelector picks (a reviewed kind's also its rule pack's
    # version, D51).
    selected = {name.removesuffix(".$") for name in load_asl(machine)["States"]["Validate"]["ResultSelector"]}
    problems = []
    for case, mocks in case_mocks(machine, config).items():
        for state in validate_states & set(mocks):
            for key, response in config["MockedResponses"][mocks[state]].items():
                if "Return" not in response:
                    continue
                payload, where = response["Return"]["Payload"], f"{case}: {mocks[state]}[{key}]"
                if set(payload) != selected:
                    problems.append(f"{where}: fields {sorted(payload)}")
                    continue
                flags = payload["flags"]
                if payload["outcome"] not in spec.outcomes and case not in spec.unknown_outcome_cases:
                    problems.append(f"{where}: outcome {payload['outcome']!r}")
                if not (isinstance(flags, list) and all(_is_flag(flag) for flag in flags)):
                    problems.append(f"{where}: flags must be a list of {{field, reason}}")
                    continue
                if (payload["outcome"] in spec.outcomes_with_flags) != bool(flags):
                    problems.append(f"{where}: a {payload['outcome']} outcome with {len(flags)} flag(s)")
                if payload["flagsAttribute"] != to_item({"flags": flags})["flags"]:
                    problems.append(f"{where}: flagsAttribute is not the DynamoDB form of flags")
                version = payload["version"]
                if not (isinstance(version, int) and not isinstance(version, bool) and version >= 1):
                    problems.append(f"{where}: version {version!r}")
                pack = payload.get("rulePackVersion", 0)
                if not (isinstance(pack, int) and not isinstance(pack, bool) and pack >= 0):
                    problems.append(f"{where}: rulePackVersion {pack!r}")
                rounds = payload.get("maxRounds", 3)
                if not (isinstance(rounds, int) and not isinstance(rounds, bool) and 1 <= rounds <= 10):
                    problems.append(f"{where}: maxRounds {rounds!r}")
    assert not problems, "\n".join(problems)


def _first_validation(machine: str, case: str, config: dict[str, Any]) -> dict[str, Any]:
    mocked = config["MockedResponses"][case_mocks(machine, config)[case]["Validate"]]
    return response_for(mocked, 0)["Return"]["Payload"]


@by_machine
def test_each_reason_case_is_flagged_for_its_own_reason(machine):
    config, reason_cases = load_mock_config(), MACHINES[machine].reason_cases
    first_flags = {}
    for case, fragment in reason_cases.items():
        payload = _first_validation(machine, case, config)
        assert payload["outcome"] == MACHINES[machine].flag_outcome, case
        assert any(fragment in flag["reason"] for flag in payload["flags"]), (case, payload["flags"])
        first_flags[case] = json.dumps(payload["flags"], sort_keys=True)
    assert len(set(first_flags.values())) == len(reason_cases), "the reason cases must differ in their flags"


def test_listing_verdicts_are_what_the_listing_rules_say():
    """The product cases' first validations are marketplace.products.evaluate's, flag for flag."""
    from marketplace.products import evaluate

    config = load_mock_config()
    assert set(MACHINES["ProductListing"].reason_cases) <= set(LISTING_VERDICTS)
    problems = []
    for case, (supplier_status, changes) in LISTING_VERDICTS.items():
        outcome, flags = evaluate({**copy.deepcopy(LISTING), **changes}, supplier_status)
        payload = _first_validation("ProductListing", case, config)
        if (payload["outcome"], payload["flags"]) != (outcome, [flag.as_dict() for flag in flags]):
            problems.append(
                f"{case}: mocked {payload['outcome']} {payload['flags']}, the rules say {outcome} {flags}"
            )
    assert not problems, "\n".join(problems)


class _RecordsTable:
    """The few ``marketplace.repository.Table`` calls the supplier-order steps make, over records
    stored as DynamoDB returns them; the ``transact`` argument stands in for
    ``client.transact_write_items``, under the real ``Table.transact`` (which reads its errors)."""

    name = "MarketplaceTable"

    def __init__(self, records: dict[tuple[str, str], dict[str, Any]], transact: Any = None) -> None:
        from marketplace.repository import from_item, to_item

        self.records = {key: from_item(to_item(record)) for key, record in records.items()}
        self.client = type("Client", (), {"transact_write_items": staticmethod(transact or (lambda **_: {}))})

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.records.get((pk, sk)))

    def transact(self, items: list[dict[str, Any]]) -> None:
        from marketplace.repository import Table

        Table.transact(self, items)  # type: ignore[arg-type]

    def get_or_404(self, pk: str, sk: str, what: str, **wanted: Any) -> dict[str, Any]:
        from marketplace.repository import Table

        return Table.get_or_404(self, pk, sk, what, **wanted)  # type: ignore[arg-type]


def order_steps(supplier_status: str, changes: dict[str, Any], transact: Any = None) -> Any:
    """``marketplace.orders.Orders`` over the supplier order of the SupplierOrder cases (ORDER with
    ``changes``), its supplier in ``supplier_status`` and LISTING active."""
    from marketplace import keys
    from marketplace.keys import product_sk, supplier_order_pk
    from marketplace.orders import Orders

    spec = execution_input("SupplierOrder")
    tenant, order_id, supplier = spec["tenantId"], spec["supplierOrderId"], ORDER["supplierId"]
    order = {
        **copy.deepcopy(ORDER), **copy.deepcopy(changes), "entity": "SUPPLIER_ORDER", "tenantId": tenant,
        "supplierOrderId": order_id, "PK": supplier_order_pk(tenant, order_id), "SK": keys.RECORD_SK,
    }  # fmt: skip
    records = {
        (order["PK"], order["SK"]): order,
        (keys.supplier_pk(tenant, supplier), keys.RECORD_SK): {
            "entity": "SUPPLIER", "tenantId": tenant, "supplierId": supplier, "status": supplier_status,
        },
        (keys.supplier_pk(tenant, supplier), product_sk(LISTING["sku"])): {
            **copy.deepcopy(LISTING), "entity": "PRODUCT", "tenantId": tenant, "supplierId": supplier,
            "status": "ACTIVE",
        },
    }  # fmt: skip
    return Orders(_RecordsTable(records, transact))  # type: ignore[arg-type]


def _lambda_returns(machine: str, case: str, state: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    mocks = case_mocks(machine, config)[case]
    if state not in mocks:
        return []
    mocked = config["MockedResponses"][mocks[state]]
    return [
        response["Return"]["Payload"]
        for key in sorted(mocked, key=lambda key: invocation_range(key)[0])
        if "Return" in (response := mocked[key])
    ]


def test_order_verdicts_are_what_the_validation_step_says():
    """Every Validate return of the SupplierOrder cases (but the unknown outcome's) is what
    marketplace.orders.Orders.validation_step says of the order in ORDER_VERDICTS, field for field."""
    config, spec = load_mock_config(), MACHINES["SupplierOrder"]
    with_verdicts = {
        case for case in case_mocks("SupplierOrder", config)
        if case not in spec.unknown_outcome_cases and _lambda_returns("SupplierOrder", case, "Validate", config)
    }  # fmt: skip
    assert sorted(ORDER_VERDICTS) == sorted(with_verdicts)
    problems = []
    for case, (supplier_status, changes) in ORDER_VERDICTS.items():
        verdict = order_steps(supplier_status, changes).validation_step("t-1", "so-1")
        for payload in _lambda_returns("SupplierOrder", case, "Validate", config):
            if payload != verdict:
                problems.append(f"{case}: mocked {payload}, the validation step says {verdict}")
    assert not problems, "\n".join(problems)


def _cancelled(*codes: str | None) -> Any:
    """A transact_write_items that fails as DynamoDB does when the given items' conditions fail."""
    from botocore.exceptions import ClientError

    def transact(**_: Any) -> None:
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
                "CancellationReasons": [{"Code": code or "None"} for code in codes],
            },
            "TransactWriteItems",
        )

    return transact


def reserve_shapes() -> dict[str, set[str]]:
    """outcome -> the fields marketplace.orders.Orders.reserve returns with it, each outcome produced
    by the real method over ORDER (v1)."""
    from datetime import UTC, datetime

    now, awaiting = datetime(2025, 1, 1, tzinfo=UTC), {"status": "AWAITING_ACCEPTANCE", "version": 2}
    runs = {
        "RESERVED": order_steps("APPROVED", {}),
        "ALREADY_RESERVED": order_steps("APPROVED", awaiting),
        "OUT_OF_STOCK": order_steps("APPROVED", {}, _cancelled("ConditionalCheckFailed", None)),
        "CHANGED": order_steps("APPROVED", {}, _cancelled(None, "ConditionalCheckFailed")),
    }
    shapes = {}
    for outcome, orders in runs.items():
        returned = orders.reserve("t-1", "so-1", 1, now)
        assert returned["outcome"] == outcome, (outcome, returned)
        shapes[outcome] = set(returned)
    return shapes


def _reserved_outcomes(asl: dict[str, Any]) -> set[str]:
    """The reservation outcomes the ``Reserved`` Choice knows."""

    def strings(rule: dict[str, Any]) -> set[str]:
        found = {rule["StringEquals"]} if "StringEquals" in rule else set()
        for branch in rule.get("And", []) + rule.get("Or", []):
            found |= strings(branch)
        return found

    return set().union(*(strings(rule) for rule in asl["States"]["Reserved"]["Choices"]))


def test_order_reserve_returns_have_the_shape_of_the_reserve_step(mock_config_runs):
    """Reserve's mocked returns are what marketplace.orders.Orders.reserve returns, outcome by
    outcome; their versions follow the version the reservation was asked for; the Reserved Choice
    knows every outcome the step returns."""
    from marketplace.clock import parse_iso

    asl, config = load_asl("SupplierOrder"), load_mock_config()
    shapes = reserve_shapes()
    assert _reserved_outcomes(asl) == set(shapes)
    problems, checked = [], 0
    for case in case_mocks("SupplierOrder", config):
        for call in mock_config_runs.run("SupplierOrder", case).calls:
            if call.state != "Reserve" or call.returned is None:
                continue
            payload, asked = call.returned["Payload"], call.request["Payload"]["version"]
            checked += 1
            outcome = payload.get("outcome")
            if outcome not in shapes:
                if case != "ReserveUnknownOutcome":
                    problems.append(f"{case}: Reserve returns the unknown outcome {outcome!r}")
                continue
            if set(payload) != shapes[outcome]:
                problems.append(
                    f"{case}: {outcome} has {sorted(payload)}, reserve gives {sorted(shapes[outcome])}"
                )
                continue
            version = payload["version"]
            if outcome == "RESERVED":
                parse_iso(payload["deadline"])
                if version != asked + 1:
                    problems.append(f"{case}: RESERVED at v{version}, asked for v{asked}")
            elif outcome == "OUT_OF_STOCK":
                if version != asked or not payload["skus"]:
                    problems.append(f"{case}: OUT_OF_STOCK {payload}, asked for v{asked}")
                if not set(payload["skus"]) <= {line["sku"] for line in ORDER["lines"]}:
                    problems.append(f"{case}: OUT_OF_STOCK names skus the order lacks: {payload['skus']}")
            elif version < asked:
                problems.append(f"{case}: {outcome} at v{version}, older than the v{asked} asked for")
    assert not problems, "\n".join(problems)
    assert checked >= 8


def test_order_reserve_is_asked_for_the_version_the_validation_read(mock_config_runs):
    """Reserve's request is the order's identity, its step, and the version Validate returned."""
    identity = {"tenantId": "t-1", "supplierOrderId": "so-1"}
    checked = 0
    for case in case_mocks("SupplierOrder"):
        read = None
        for call in mock_config_runs.run("SupplierOrder", case).calls:
            if call.state == "Validate" and call.returned is not None:
                read = call.returned["Payload"]["version"]
            if call.state == "Reserve":
                assert call.request["Payload"] == {**identity, "step": "reserve", "version": read}, case
                checked += 1
    assert checked >= 10


def test_express_machines_use_only_what_express_runs():
    """The harness creates every machine as STANDARD (tests/sfn_local): an EXPRESS machine's ASL must
    not use what only STANDARD runs (the callback and .sync integration patterns)."""
    express = [machine for machine in MACHINES if template_type(machine) == "EXPRESS"]
    assert express == ["SupplierOrder"]
    for machine in express:
        patterns = {
            name: state["Resource"] for name, state in task_states(load_asl(machine)).items()
            if state["Resource"].endswith((".waitForTaskToken", ".sync", ".sync:2"))
        }  # fmt: skip
        assert not patterns, (machine, patterns)
        assert "$$.Task.Token" not in definition_text(machine), machine


@by_machine
def test_expected_names_every_test_case(machine):
    assert sorted(expected(machine)) == sorted(case_mocks(machine))


@by_machine
def test_validate_is_asked_about_the_record_of_the_execution(machine, mock_config_runs):
    """The Validate Lambda gets the record's identity from the execution input in every round (a
    reviewed record's kind, tenant and record id, a listing's being ``supplierId/sku``; a supplier
    order's tenant and id), nothing of its keys, and what else the machine sends it (the round; the
    supplier order's step)."""
    config, spec = load_mock_config(), MACHINES[machine]
    started = execution_input(machine)
    identity = {k: started[k] for k in spec.validate_identity}
    assert started["recordId"] == spec.record_id and spec.record_id in identity.values(), identity
    checked = 0
    for case in case_mocks(machine, config):
        for call in mock_config_runs.run(machine, case).calls:
            if call.state == "Validate":
                payload = dict(call.request["Payload"])
                for key, wanted in spec.validate_request_extras.items():
                    value = payload.pop(key, None)
                    fits = isinstance(value, wanted) if isinstance(wanted, type) else value == wanted
                    assert fits, (case, key, call.request)
                assert payload == identity, (case, call.request)
                checked += 1
    assert checked >= len(case_mocks(machine, config))


@by_machine
def test_correction_messages_carry_the_record_the_flags_and_the_flagged_version(machine, mock_config_runs):
    """What reaches the correction queue names the record, the version the workflow flagged, and why;
    and the correction drain reads it as the same record (``marketplace.corrections.Correction``)."""
    from marketplace.corrections import Correction

    asl, config, spec = load_asl(machine), load_mock_config(), MACHINES[machine]
    assert spec.callback_states <= spec.flag_queue_states
    queue_states = spec.flag_queue_states | {"QueueSystemError"}
    assert queue_states <= set(task_states(asl)), sorted(queue_states - set(task_states(asl)))
    checked, flag_messages = 0, 0
    for case in case_mocks(machine, config):
        flagged_version = None
        for call in mock_config_runs.run(machine, case).calls:
            if call.state in ("MarkFlagged", "MarkSystemFlagged") and call.returned is not None:
                flagged_version = int(call.returned["Attributes"]["version"]["N"])
            if call.state not in queue_states:
                continue
            body = call.request["MessageBody"]
            body = json.loads(body) if isinstance(body, str) else body
            assert (body["kind"], body["tenantId"]) == (spec.correction_kind, "t-1"), (case, body)
            assert body["recordId"] == spec.record_id, (case, call.state, body)
            read = Correction.parse(json.dumps(body))
            assert (read.kind, read.tenant_id, read.record_id) == (body["kind"], "t-1", body["recordId"])
            assert read.flagged_version == body["flaggedVersion"], (case, call.state, body)
            checked += 1
            if call.state in spec.flag_queue_states:
                assert body["flaggedVersion"] == flagged_version, (case, call.state, body)
                assert body["flags"] and all(_is_flag(flag) for flag in body["flags"]), (case, body)
                waits = call.state in spec.callback_states
                assert ("taskToken" in body) is waits and (read.task_token is not None) is waits, (case, body)
                flag_messages += 1
            else:
                assert read.system_error and read.system_error.get("Error"), (case, call.state, body)
    assert flag_messages >= 5 and checked > flag_messages


@by_machine
def test_status_writes_are_conditional_on_the_version_the_validation_read(machine, mock_config_runs):
    asl, config = load_asl(machine), load_mock_config()
    writes = MACHINES[machine].verdict_writes
    updates = {
        name for name, state in task_states(asl).items() if state["Resource"].endswith(":dynamodb:updateItem")
    }
    assert writes <= updates, sorted(writes - updates)
    assert verdict_writes(asl) & updates <= writes, "a status write Decide sends to is not checked"
    checked = 0
    for case in case_mocks(machine, config):
        read = None
        for call in mock_config_runs.run(machine, case).calls:
            if call.state == "Validate" and call.returned is not None:
                read = call.returned["Payload"]["version"]
            if call.state in writes:
                values = call.request["ExpressionAttributeValues"]
                assert call.request["ConditionExpression"] == "#version = :expected", (case, call.state)
                assert values[":expected"] == {"N": str(read)}, (case, call.state)
                assert values[":next"] == {"N": str(read + 1)}, (case, call.state)
                checked += 1
    entering = [case for case, wanted in expected(machine).items() if writes & set(wanted.path)]
    assert len(entering) >= 3 and checked >= len(entering), (checked, entering)


def _status_write(parameters: dict[str, Any]) -> tuple[str, bool]:
    """(the status an updateItem writes, whether it puts the record in the status index): it SETs
    GSI1PK and GSI1SK, or REMOVEs both; a write that does neither, or both, is an AssertionError."""
    sets, _, removes = parameters["UpdateExpression"].partition(" REMOVE ")
    into = "GSI1PK = :gsi1pk" in sets and "GSI1SK = :now" in sets
    out_of = {"GSI1PK", "GSI1SK"} <= {name.strip() for name in removes.split(",")}
    assert into != out_of, parameters["UpdateExpression"]
    return parameters["ExpressionAttributeValues"][":status"]["S"], into


def _updates(asl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: state for name, state in task_states(asl).items()
        if state["Resource"].endswith(":dynamodb:updateItem")
    }  # fmt: skip


def out_of_reach(machine: str) -> set[str]:
    """The states of the machine's definition its kind never enters: the status writes whose way
    with the status index is not its kind's (a shared definition holds both ways)."""
    from marketplace import registry

    kind, asl = registry.KINDS[MACHINES[machine].correction_kind], load_asl(machine)
    unreached = set()
    for name, state in _updates(asl).items():
        status, into = _status_write(state["Parameters"])
        if into is not (status in kind.indexed):
            unreached.add(name)
    return unreached


@by_machine
def test_status_writes_go_to_the_record_and_its_kinds_status_index_entry(machine, mock_config_runs):
    """The machines compose no key: every status write goes to the key the kind's registry entry
    gives the record Validate was asked about, and puts the record in the status index under the
    status (``marketplace.keys.status_gsi_pk``) exactly when the kind keeps that status there, else
    takes it out (as ``Kind.index_changes`` does)."""
    from marketplace import keys, registry

    kind, started = registry.KINDS[MACHINES[machine].correction_kind], execution_input(machine)
    tenant = started["tenantId"]
    pk, sk = kind.key(tenant, started["recordId"])
    updates = _updates(load_asl(machine))
    written: set[tuple[str, bool]] = set()
    for case in case_mocks(machine):
        for call in mock_config_runs.run(machine, case).calls:
            if call.state not in updates:
                continue
            assert call.request["Key"] == {"PK": {"S": pk}, "SK": {"S": sk}}, (case, call.state)
            status, into = _status_write(call.request)
            assert into is (status in kind.indexed), (case, call.state, status, sorted(kind.indexed))
            if into:
                gsi1pk = call.request["ExpressionAttributeValues"][":gsi1pk"]
                assert gsi1pk == {"S": keys.status_gsi_pk(tenant, kind.name, status)}, (case, call.state)
            written.add((status, into))
    reached = {
        _status_write(state["Parameters"])
        for name, state in updates.items()
        if name not in out_of_reach(machine)
    }
    assert written == reached, (sorted(written), sorted(reached))


@by_machine
def test_the_cases_together_enter_every_state_their_kind_reaches(machine):
    """The table's paths (which the runs must follow) together enter every state of the ASL but the
    ones the machine's kind never reaches, and none of those."""
    asl = load_asl(machine)
    entered = {state for wanted in expected(machine).values() for state in wanted.path}
    assert sorted(set(asl["States"]) - entered) == sorted(out_of_reach(machine))


@pytest.mark.parametrize("definition", sorted(DEFINITIONS))
def test_the_machines_of_a_definition_together_enter_every_state_of_it(definition):
    """What one kind never reaches, another kind of the same definition does: no state of a shared
    definition is left without a case."""
    machines_of = DEFINITIONS[definition]
    entered = {state for m in machines_of for wanted in expected(m).values() for state in wanted.path}
    assert sorted(set(load_raw_asl(machines_of[0])["States"]) - entered) == []


@by_machine
def test_every_state_is_reachable_from_start_at(machine):
    asl = load_asl(machine)
    states = asl["States"]
    seen, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        todo += [t for t in (state.get("Next"), state.get("Default")) if t]
        todo += [rule["Next"] for rule in state.get("Choices", [])]
        todo += [catcher["Next"] for catcher in state.get("Catch", [])]
    assert sorted(set(states) - seen) == []


def _mutated(runs: Any, machine: str, change) -> dict[str, Any]:
    """The stack's definition of ``machine``, changed."""
    asl = json.loads(runs.sfn.describe_state_machine(stateMachineArn=runs.arns[machine])["definition"])
    change(asl["States"])
    return asl


def _decide_expects(status: str, instead: str) -> Any:
    """A change of Decide: every rule that looks for ``status`` looks for ``instead``."""

    def change(states: dict[str, Any]) -> None:
        branches = [branch for rule in states["Decide"]["Choices"] for branch in rule["And"]]
        found = [branch for branch in branches if branch.get("StringEquals") == status]
        assert found, f"Decide has no rule for {status}"
        for branch in found:
            branch["StringEquals"] = instead

    return change


def one_round_more(states: dict[str, Any]) -> None:
    """RoundsLeft lets one more round through (``<=`` where the definition says ``<``)."""
    rule = states["RoundsLeft"]["Choices"][0]
    rule["NumericLessThanEqualsPath"] = rule.pop("NumericLessThanPath")


# mutation -> (state machine, change to its States, a case whose path the change breaks)
MUTATIONS = {
    "no retry of Validate": (
        "SupplierOnboarding",
        lambda s: s["Validate"].pop("Retry"),
        "TransientRetriedThenApproved",
    ),
    "one round more": (
        "SupplierOnboarding",
        one_round_more,
        "FlaggedFixedBadlyFlaggedAgain",
    ),
    "approval goes to MarkRejected": (
        "SupplierOnboarding",
        lambda s: s["Decide"]["Choices"][0].update({"Next": "MarkRejected"}),
        "Approved",
    ),
    "flag version read from a missing attribute": (
        "SupplierOnboarding",
        lambda s: s["MarkFlagged"]["ResultSelector"].update(
            {"version.$": "States.StringToJson($.Attributes.v.N)"}
        ),
        "CallbackTimeout",
    ),
    "no catch of RecordRejected": (
        "SupplierOnboarding",
        lambda s: s["WaitForFix"]["Catch"].pop(1),
        "RejectedByAdmin",
    ),
    "a conflict is not revalidated": (
        "SupplierOnboarding",
        lambda s: s["MarkApproved"]["Catch"][0].update({"Next": "DescribeSystemError"}),
        "ConditionalWriteLost",
    ),
    "a timed-out fix is not queued": (
        "SupplierOnboarding",
        lambda s: s["WaitForFix"]["Catch"][0].update({"ErrorEquals": ["States.HeartbeatTimeout"]}),
        "CallbackTimeout",
    ),
    "listing: Decide still expects the supplier's APPROVED": (
        "ProductListing",
        _decide_expects("ACTIVE", "APPROVED"),
        "Active",
    ),
    "listing: the next round forgets the record's keys": (
        "ProductListing",
        lambda s: s["NextRound"]["Parameters"].pop("keys.$"),
        "FlaggedPriceOutOfBounds",
    ),
    "listing: the reload after a conflict forgets the record id": (
        "ProductListing",
        lambda s: s["ReloadAfterConflict"]["Parameters"].pop("recordId.$"),
        "ConditionalWriteLost",
    ),
    "listing: the approval is written into the status index that does not keep it": (
        "ProductListing",
        lambda s: s["Decide"]["Choices"][0]["And"].pop(2),
        "Active",
    ),
    "listing: a system error is not flagged": (
        "ProductListing",
        lambda s: s["Validate"]["Catch"][1].update({"Next": "QueueSystemError"}),
        "PermanentErrorToCorrectionQueue",
    ),
    "order: a repeated intake is not awaited": (
        "SupplierOrder",
        lambda s: s["Reserved"]["Choices"][0]["Or"].pop(1),
        "ReservedByAnotherIntake",
    ),
    "order: a lost rejection write is queued as a system error": (
        "SupplierOrder",
        lambda s: s["MarkRejectedOutOfStock"]["Catch"][0].update({"Next": "QueueSystemError"}),
        "OutOfStockButChangedMeanwhile",
    ),
    "order: the flag version read from a missing attribute": (
        "SupplierOrder",
        lambda s: s["MarkFlagged"]["ResultSelector"].update({"version.$": "States.StringToJson($.A.v.N)"}),
        "InvalidFlaggedForHuman",
    ),
    "order: a gone order is flagged": (
        "SupplierOrder",
        lambda s: s["Validate"]["Catch"].pop(0),
        "OrderGone",
    ),
    "listing: one round more": (
        "ProductListing",
        one_round_more,
        "FlaggedFixedBadly",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_the_table_notices_when_a_path_changes(mutation, mock_config_runs):
    """The table has teeth: change the ASL so that a case's path changes, run the case in the same
    engine, and it leaves its row."""
    machine, change, case = MUTATIONS[mutation]
    wanted = expected(machine)[case]
    assert problems(mock_config_runs.run(machine, case), wanted) == []
    changed = mock_config_runs.run_changed(machine, case, _mutated(mock_config_runs, machine, change))
    assert problems(changed, wanted) != [], changed.describe()

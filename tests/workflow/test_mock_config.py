"""statemachines/test/MockConfigFile.json against the ASL of each state machine, without Docker.

The mock configuration is what Step Functions Local runs (``tests/sfn_local``); these checks run
everywhere and keep it honest, for every state machine the file names: every state a test case
names is a Task state of that machine's ASL, every mocked response it names exists, every response
is used and well formed, the returns carry what the ASL's ResultSelectors read, the cases together
enter every state, and each test case, walked through the ASL with its mocked responses, ends where
its name promises (``EXPECTED``).

Which ASL a MockConfigFile state machine runs is read from template.yaml, the one source of truth:
the name ``X`` in the MockConfigFile is the ``AWS::Serverless::StateMachine`` resource ``XStateMachine``
(its name in Step Functions Local too), whose ``DefinitionUri`` is the ASL file and whose
``DefinitionSubstitutions`` fill its placeholders. The file, the template and ``MACHINES`` (what the
checks know beyond the ASL: the execution input, the expected ends) must name the same machines.

The walker (``walk``) is a small interpreter for the part of the Amazon States Language these state
machines use. What it simulates:

* the data flow: execution input, ``InputPath``/``Parameters``/``Result`` (Pass), ``Parameters`` ->
  mocked result -> ``ResultSelector`` -> ``ResultPath`` -> ``OutputPath`` (Task), ``ResultPath`` of
  a ``Catch`` with ``{"Error", "Cause"}``; payload templates (``"key.$"``, nested objects and
  arrays); simple JSONPaths (``$``, ``$.a.b``, ``$$.A.B`` on a fixed context object); the
  intrinsics ``States.Format``, ``States.StringToJson``, ``States.JsonToString``,
  ``States.MathAdd`` and ``States.Array`` (nested calls included);
* Choice rules: ``And``/``Or``/``Not``, ``IsPresent``, ``IsNull``, ``IsString``, ``IsNumeric``,
  ``IsBoolean``, ``StringEquals``, ``BooleanEquals``, ``Numeric{Equals,LessThan,LessThanEquals,
  GreaterThan,GreaterThanEquals}`` and their ``...Path`` forms; ``Default``; no match ->
  ``States.NoChoiceMatched``;
* mocked responses as Step Functions Local consumes them: one counter per state per execution,
  advanced by every invocation, retries included; an invocation with no response defined is a
  broken case (Step Functions Local fails the execution); a Task state the case does not mock is a
  broken case (Step Functions Local would call the real service);
* Retry: the first retrier whose ``ErrorEquals`` matches (``States.ALL``; ``States.TaskFailed``
  matches all but ``States.Timeout``), per-retrier attempt counters reset on each entry to the
  state, ``MaxAttempts`` (default 3); the waits are not slept but added up as an upper bound
  (``retry_wait_seconds``: interval x backoff, capped by ``MaxDelaySeconds``; a jitter only
  shortens them); then the first matching ``Catch``; no catcher -> the execution fails;
* ``TimeoutSecondsPath``/``HeartbeatSecondsPath`` must resolve to a positive integer.

Its limits, on purpose:

* a missing path, a failed intrinsic or a ResultSelector that does not match is modelled as
  ``States.Runtime``, which fails the execution and is never caught (as on AWS);
* ``And``/``Or`` stop at the first deciding branch (AWS may evaluate every branch of an ``And``:
  a rule that reads a missing path behind an ``IsPresent`` guard is not proven safe here);
* time does not pass: ``TimeoutSeconds``/``HeartbeatSeconds`` expire only when a mocked response
  throws ``States.Timeout``/``States.HeartbeatTimeout``;
* the request each Task sends is evaluated (so that a missing path fails) but not checked against
  the service's API model, and the DynamoDB condition is not evaluated: the mocks decide;
* Map, Parallel and Wait states, JSONata, bracket/filter/wildcard JSONPaths, ``ResultPath`` into
  arrays, and intrinsics other than those above raise ``Unsupported``: the test fails loudly rather
  than guessing;
* the Lambda code is not run by the walker: the Validate returns are checked against the shape of
  the validation steps (``marketplace.suppliers.Suppliers.validation_step``,
  ``marketplace.products.Products.validation_step``: flags <-> ``flagsAttribute`` through the same
  ``to_item`` serializer), a listing's verdicts against ``marketplace.products.evaluate``, and a
  supplier order's Validate and Reserve returns against ``marketplace.orders.Orders.validation_step``
  and ``Orders.reserve``, run over an in-memory table (``order_steps``);
* Express semantics (at-least-once starts, the five-minute limit) are not simulated: an EXPRESS
  machine runs like a STANDARD one, which holds while it uses no callback or ``.sync`` pattern
  (``test_express_machines_use_only_what_express_runs``).

``tests/sfn_local`` imports this module (by path) and runs every case in Step Functions Local,
comparing the states the engine enters with the ones this walker predicts.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
MOCK_CONFIG_PATH = ROOT / "statemachines" / "test" / "MockConfigFile.json"
# A state machine's name in the MockConfigFile (and in Step Functions Local) is its template
# logical id without this suffix: SupplierOnboarding <-> SupplierOnboardingStateMachine.
TEMPLATE_SUFFIX = "StateMachine"
REGION, ACCOUNT = "us-east-1", "123456789012"

# DefinitionSubstitutions that name resources get these stand-ins; those that are template
# parameters get the parameter's default (the settings the ASL computes with, e.g. the rounds).
DUMMY_RESOURCES = {
    "ValidateSupplierFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ValidateSupplierFunction",
    "ValidateProductFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ValidateProductFunction",
    "SupplierOrderStepsFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:SupplierOrderStepsFunction",
    "TableName": "MarketplaceTable",
    "CorrectionQueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/CorrectionQueue",
    "SupplierNotificationsTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:SupplierNotifications",
}


@dataclass(frozen=True)
class Expected:
    status: str  # the execution's final status: SUCCEEDED or FAILED
    end: str  # the last state entered
    path: str = ""  # "A > B > C": states entered on the way, in this order (others may come between)
    error: str | None = None  # the execution's error, for FAILED

    @property
    def via(self) -> tuple[str, ...]:
        return tuple(state.strip() for state in self.path.split(">") if state.strip())


@dataclass(frozen=True)
class Machine:
    """What the checks know of a state machine beyond its ASL and the template."""

    execution_input: dict[str, Any]  # what every test case is started with
    expected: dict[str, Expected]  # test case -> where it must end (MaxValidationRounds at its default, 3)
    outcomes: frozenset[str]  # what its validation step returns
    correction_kind: str  # "kind" of its correction-queue messages
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
    # what the Validate request carries besides the record's identity: a key -> its type or its value
    validate_request_extras: dict[str, Any] = field(default_factory=lambda: {"round": int})
    # the status writes of a verdict: conditional on the version the validation read, and bumping it
    verdict_writes: frozenset[str] = frozenset()
    # the Task states that queue a flagged record for a human (with its flags and flagged version),
    # and among them those that wait for the fix with a task token
    flag_queue_states: frozenset[str] = frozenset({"WaitForFix", "QueueForRestart"})
    callback_states: frozenset[str] = frozenset({"WaitForFix"})


# ------------------------------------------------------------------------- supplier onboarding
# The onboarding and listing machines, when the correction queue refuses their message.
_QUEUE_REFUSED: dict[str, Expected] = {
    # The correction queue refuses the message after every retry: the record stays FLAGGED in the table,
    # where admins list it, and the execution fails with a named error (alarmed).
    "CorrectionNotQueued": Expected(
        "FAILED",
        "CorrectionNotQueued",
        "MarkFlagged > WaitForFix > QueueForRestart > CorrectionNotQueued",
        "CorrectionNotQueued",
    ),
    # Neither the flag nor the message can be written: a named failure, never a silent one.
    "SystemErrorNotQueued": Expected(
        "FAILED",
        "SystemErrorNotQueued",
        "DescribeSystemError > MarkSystemFlagged > QueueSystemError > SystemErrorNotQueued",
        "SystemErrorNotQueued",
    ),
}

_SUPPLIER_FIXED = (
    "Validate > MarkFlagged > RoundsLeft > WaitForFix > NextRound > Validate > MarkApproved > NotifyWelcome"
)

EXPECTED_SUPPLIER_ONBOARDING: dict[str, Expected] = {
    "Approved": Expected(
        "SUCCEEDED", "Approved", "Prepare > Validate > Decide > MarkApproved > NotifyWelcome"
    ),
    "FlaggedBadTaxIdFormat": Expected("SUCCEEDED", "Approved", _SUPPLIER_FIXED),
    "FlaggedDuplicateTaxId": Expected("SUCCEEDED", "Approved", _SUPPLIER_FIXED),
    "FlaggedDomainMismatch": Expected("SUCCEEDED", "Approved", _SUPPLIER_FIXED),
    "FlaggedFixedApproved": Expected("SUCCEEDED", "Approved", _SUPPLIER_FIXED),
    # Every round is flagged: with 3 rounds, two fixes are waited for, then the rounds are used up.
    "FlaggedFixedBadlyFlaggedAgain": Expected(
        "SUCCEEDED",
        "AwaitingManualRestart",
        "MarkFlagged > WaitForFix > NextRound > MarkFlagged > WaitForFix > NextRound"
        " > MarkFlagged > RoundsLeft > QueueForRestart",
    ),
    "Rejected": Expected("SUCCEEDED", "Rejected", "Validate > Decide > MarkRejected"),
    "TransientRetriedThenApproved": Expected(
        "SUCCEEDED", "Approved", "Validate > MarkApproved > NotifyWelcome"
    ),
    "PermanentErrorToCorrectionQueue": Expected(
        "SUCCEEDED",
        "Approved",
        "Validate > DescribeSystemError > MarkSystemFlagged > RoundsLeft > WaitForFix > NextRound > Validate"
        " > MarkApproved",
    ),
    "CallbackTimeout": Expected(
        "SUCCEEDED", "AwaitingManualRestart", "MarkFlagged > WaitForFix > QueueForRestart"
    ),
    "CallbackHeartbeatTimeout": Expected(
        "SUCCEEDED", "AwaitingManualRestart", "MarkFlagged > WaitForFix > QueueForRestart"
    ),
    "RejectedByAdmin": Expected("SUCCEEDED", "RejectedByAdmin", "MarkFlagged > WaitForFix"),
    "WaitForFixFailed": Expected(
        "SUCCEEDED", "SystemErrorQueued", "MarkFlagged > WaitForFix > DescribeWaitError > QueueSystemError"
    ),
    "ConditionalWriteLost": Expected(
        "SUCCEEDED",
        "Approved",
        "MarkApproved > RecordChangedMeanwhile > ReloadAfterConflict > Validate > MarkApproved"
        " > NotifyWelcome",
    ),
    "RecordKeepsChanging": Expected(
        "SUCCEEDED",
        "SystemErrorQueued",
        "MarkApproved > ReloadAfterConflict > MarkApproved > ReloadAfterConflict > MarkApproved"
        " > RecordChangedMeanwhile > DescribeRecordKeepsChanging > QueueSystemError",
    ),
    "RecordGone": Expected("SUCCEEDED", "RecordGone", "Validate"),
    "UnknownOutcome": Expected(
        "SUCCEEDED",
        "RejectedByAdmin",
        "Decide > DescribeUnknownOutcome > DescribeSystemError > MarkSystemFlagged > WaitForFix",
    ),
    "SystemFlagNotWritten": Expected(
        "SUCCEEDED", "SystemErrorQueued", "DescribeSystemError > MarkSystemFlagged > QueueSystemError"
    ),
    "WelcomeNotSent": Expected(
        "FAILED", "NotifyWelcome", "MarkApproved > NotifyWelcome", "SNS.KMSDisabledException"
    ),
    **_QUEUE_REFUSED,
}

# ----------------------------------------------------------------------------- product listing
_PRODUCT_FIXED = (
    "Validate > MarkFlagged > RoundsLeft > WaitForFix > NextRound > Validate > MarkActive > Active"
)

EXPECTED_PRODUCT_LISTING: dict[str, Expected] = {
    "Active": Expected("SUCCEEDED", "Active", "Prepare > Validate > Decide > MarkActive"),
    "RejectedSupplierNotApproved": Expected("SUCCEEDED", "Rejected", "Validate > Decide > MarkRejected"),
    "RejectedProhibitedCategory": Expected("SUCCEEDED", "Rejected", "Validate > Decide > MarkRejected"),
    "FlaggedPriceOutOfBounds": Expected("SUCCEEDED", "Active", _PRODUCT_FIXED),
    "FlaggedMissingRequiredAttribute": Expected("SUCCEEDED", "Active", _PRODUCT_FIXED),
    "FlaggedImageCount": Expected("SUCCEEDED", "Active", _PRODUCT_FIXED),
    "FlaggedImageUrlForm": Expected("SUCCEEDED", "Active", _PRODUCT_FIXED),
    "FlaggedUnknownCategory": Expected("SUCCEEDED", "Active", _PRODUCT_FIXED),
    # Every round is flagged: with 3 rounds, two fixes are waited for, then the rounds are used up.
    "FlaggedFixedBadly": Expected(
        "SUCCEEDED",
        "AwaitingManualRestart",
        "MarkFlagged > WaitForFix > NextRound > MarkFlagged > WaitForFix > NextRound"
        " > MarkFlagged > RoundsLeft > QueueForRestart",
    ),
    "TransientRetriedThenActive": Expected("SUCCEEDED", "Active", "Validate > Decide > MarkActive"),
    "PermanentErrorToCorrectionQueue": Expected(
        "SUCCEEDED",
        "Active",
        "Validate > DescribeSystemError > MarkSystemFlagged > RoundsLeft > WaitForFix > NextRound > Validate"
        " > MarkActive",
    ),
    "CallbackTimeout": Expected(
        "SUCCEEDED", "AwaitingManualRestart", "MarkFlagged > WaitForFix > QueueForRestart"
    ),
    "CallbackHeartbeatTimeout": Expected(
        "SUCCEEDED", "AwaitingManualRestart", "MarkFlagged > WaitForFix > QueueForRestart"
    ),
    "RejectedByAdmin": Expected("SUCCEEDED", "RejectedByAdmin", "MarkFlagged > WaitForFix"),
    "WaitForFixFailed": Expected(
        "SUCCEEDED", "SystemErrorQueued", "MarkFlagged > WaitForFix > DescribeWaitError > QueueSystemError"
    ),
    "ConditionalWriteLost": Expected(
        "SUCCEEDED",
        "Active",
        "MarkActive > RecordChangedMeanwhile > ReloadAfterConflict > Validate > MarkActive",
    ),
    "RecordKeepsChanging": Expected(
        "SUCCEEDED",
        "SystemErrorQueued",
        "MarkActive > ReloadAfterConflict > MarkActive > ReloadAfterConflict > MarkActive"
        " > RecordChangedMeanwhile > DescribeRecordKeepsChanging > QueueSystemError",
    ),
    "RecordGone": Expected("SUCCEEDED", "RecordGone", "Validate"),
    "UnknownOutcome": Expected(
        "SUCCEEDED",
        "RejectedByAdmin",
        "Decide > DescribeUnknownOutcome > DescribeSystemError > MarkSystemFlagged > WaitForFix",
    ),
    "SystemFlagNotWritten": Expected(
        "SUCCEEDED", "SystemErrorQueued", "DescribeSystemError > MarkSystemFlagged > QueueSystemError"
    ),
    **_QUEUE_REFUSED,
}

# A listing that marketplace.products.evaluate makes ACTIVE, as a supplier lists it.
LISTING = {
    "sku": "TV-55-OLED", "title": "55 inch OLED TV", "category": "electronics",
    "price": {"amount": 1299.99, "currency": "EUR"}, "quantity": 10,
    "images": ["https://cdn.example.com/tv/front.jpg", "https://cdn.example.com/tv/side.png"],
    "attributes": {"brand": "Acme", "model": "O55"},
}  # fmt: skip

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
# An Express intake: validate, then reserve the stock in one transaction (RESERVED: the order awaits
# the supplier's decision, which the API and the expiry sweeper take), or flag the order for a human
# and queue it; no state waits. The reservation is idempotent, the execution name is not (Express).
EXPECTED_SUPPLIER_ORDER: dict[str, Expected] = {
    "ReservedAwaitingAcceptance": Expected(
        "SUCCEEDED", "AwaitingAcceptance", "Validate > Decide > Reserve > Reserved"
    ),
    # A repeated intake (Express names are not idempotent): the order already holds its stock.
    "AlreadyReserved": Expected("SUCCEEDED", "ChangedMeanwhile", "Validate > Decide"),
    "ReservedByAnotherIntake": Expected(
        "SUCCEEDED", "AwaitingAcceptance", "Validate > Decide > Reserve > Reserved"
    ),
    "OutOfStockRejected": Expected(
        "SUCCEEDED", "RejectedOutOfStock", "Validate > Decide > Reserve > Reserved > MarkRejectedOutOfStock"
    ),
    # The rejection write loses its condition: someone else acted on the order meanwhile.
    "OutOfStockButChangedMeanwhile": Expected(
        "SUCCEEDED", "ChangedMeanwhile", "Reserve > Reserved > MarkRejectedOutOfStock"
    ),
    # The rejection cannot be written (throttled, retried, then refused): the error is queued.
    "RejectionNotWritten": Expected(
        "SUCCEEDED", "SystemErrorQueued", "Reserved > MarkRejectedOutOfStock > QueueSystemError"
    ),
    "ReserveChangedMeanwhile": Expected("SUCCEEDED", "ChangedMeanwhile", "Validate > Reserve > Reserved"),
    "InvalidFlaggedForHuman": Expected(
        "SUCCEEDED", "AwaitingHuman", "Validate > Decide > MarkFlagged > QueueForHuman"
    ),
    "FlagWriteLost": Expected("SUCCEEDED", "ChangedMeanwhile", "Validate > Decide > MarkFlagged"),
    "InvalidFlagNotWritten": Expected(
        "SUCCEEDED", "SystemErrorQueued", "Decide > MarkFlagged > QueueSystemError"
    ),
    # The correction queue refuses the message after every retry: the order stays FLAGGED in the table,
    # where admins list it and can cancel it, and the execution fails with a named error (alarmed).
    "QueueForHumanFailed": Expected(
        "FAILED",
        "CorrectionNotQueued",
        "MarkFlagged > QueueForHuman > CorrectionNotQueued",
        "CorrectionNotQueued",
    ),
    "TransientValidateRetriedThenReserved": Expected(
        "SUCCEEDED", "AwaitingAcceptance", "Validate > Decide > Reserve > Reserved"
    ),
    # The reservation times out after it committed: the retry finds the order reserved.
    "ReserveTimedOutThenAlreadyReserved": Expected(
        "SUCCEEDED", "AwaitingAcceptance", "Validate > Reserve > Reserved"
    ),
    "PermanentErrorFlagged": Expected(
        "SUCCEEDED", "AwaitingHuman", "Validate > DescribeSystemError > MarkSystemFlagged > QueueForHuman"
    ),
    "ReserveFailedFlagged": Expected(
        "SUCCEEDED", "AwaitingHuman", "Reserve > DescribeSystemError > MarkSystemFlagged > QueueForHuman"
    ),
    "SystemFlagNotWritten": Expected(
        "SUCCEEDED", "SystemErrorQueued", "DescribeSystemError > MarkSystemFlagged > QueueSystemError"
    ),
    # Neither the flag nor the message can be written: a named failure, never a silent one.
    "SystemErrorNotQueued": Expected(
        "FAILED",
        "SystemErrorNotQueued",
        "DescribeSystemError > MarkSystemFlagged > QueueSystemError > SystemErrorNotQueued",
        "SystemErrorNotQueued",
    ),
    "OrderGone": Expected("SUCCEEDED", "OrderGone", "Validate"),
    "UnknownOutcome": Expected(
        "SUCCEEDED",
        "AwaitingHuman",
        "Decide > DescribeUnknownOutcome > DescribeSystemError > MarkSystemFlagged > QueueForHuman",
    ),
    "ReserveUnknownOutcome": Expected(
        "SUCCEEDED",
        "AwaitingHuman",
        "Reserve > Reserved > DescribeUnknownOutcome > DescribeSystemError > MarkSystemFlagged > QueueForHuman",
    ),
}

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

MACHINES: dict[str, Machine] = {
    "SupplierOnboarding": Machine(
        execution_input={"tenantId": "t-1", "supplierId": "s-1", "version": 1},
        expected=EXPECTED_SUPPLIER_ONBOARDING,
        outcomes=frozenset({"APPROVED", "FLAGGED", "REJECTED"}),
        correction_kind="SUPPLIER",
        record_id="s-1",
        response_prefixes=("Validate", "FlagWritten"),
        verdict_writes=frozenset({"MarkApproved", "MarkFlagged", "MarkRejected"}),
        reason_cases={
            "FlaggedBadTaxIdFormat": "invalid format for",
            "FlaggedDuplicateTaxId": "duplicate tax id",
            "FlaggedDomainMismatch": "differs from the website",
        },
    ),
    "ProductListing": Machine(
        execution_input={"tenantId": "t-1", "supplierId": "s-1", "sku": "TV-55-OLED", "version": 1},
        expected=EXPECTED_PRODUCT_LISTING,
        outcomes=frozenset({"ACTIVE", "FLAGGED", "REJECTED"}),
        correction_kind="PRODUCT",
        record_id="s-1/TV-55-OLED",
        response_prefixes=("Listing",),
        verdict_writes=frozenset({"MarkActive", "MarkFlagged", "MarkRejected"}),
        reason_cases={
            "FlaggedPriceOutOfBounds": "must be between",
            "FlaggedMissingRequiredAttribute": "is required for",
            "FlaggedImageCount": "images",
            "FlaggedImageUrlForm": "must be an https URL",
            "FlaggedUnknownCategory": "no rules for category",
        },
    ),
    "SupplierOrder": Machine(
        execution_input={"tenantId": "t-1", "supplierOrderId": "so-1", "version": 1},
        expected=EXPECTED_SUPPLIER_ORDER,
        outcomes=frozenset({"VALID", "INVALID", "SETTLED"}),
        correction_kind="SUPPLIER_ORDER",
        record_id="so-1",
        response_prefixes=("Order",),
        reason_cases={"InvalidFlaggedForHuman": "is not the listed"},
        flag_outcome="INVALID",
        outcomes_with_flags=frozenset({"INVALID"}),
        validate_request_extras={"step": "validate"},
        verdict_writes=frozenset({"MarkFlagged", "MarkRejectedOutOfStock"}),
        flag_queue_states=frozenset({"QueueForHuman"}),
        callback_states=frozenset(),
    ),
}
# State machines of template.yaml that have no test cases in the MockConfigFile yet, and why. Each
# one is a gap: the test below fails for a state machine that is in neither MACHINES nor here.
WITHOUT_TEST_CASES: dict[str, str] = {}
# Where each test case of each state machine must end.
EXPECTED: dict[str, dict[str, Expected]] = {name: machine.expected for name, machine in MACHINES.items()}


# ----------------------------------------------------------------------------------------- files
@cache
def _sam() -> dict[str, Any]:
    from marketplace_local.template import load_sam

    return load_sam(TEMPLATE_PATH)


@cache
def template_state_machines() -> dict[str, str]:
    """MockConfigFile name -> logical id, for every AWS::Serverless::StateMachine of template.yaml."""
    return {
        logical_id.removesuffix(TEMPLATE_SUFFIX): logical_id
        for logical_id, resource in _sam()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::StateMachine"
    }


def template_resource(machine: str) -> dict[str, Any]:
    logical_ids = template_state_machines()
    if machine not in logical_ids:
        raise KeyError(
            f"template.yaml has no AWS::Serverless::StateMachine {machine}{TEMPLATE_SUFFIX} "
            f"(its state machines: {sorted(logical_ids.values())})"
        )
    return _sam()["Resources"][logical_ids[machine]]


def asl_path(machine: str) -> Path:
    """The machine's ASL file: its DefinitionUri in template.yaml."""
    uri = template_resource(machine)["Properties"]["DefinitionUri"]
    if not isinstance(uri, str) or uri.startswith("s3://"):
        raise AssertionError(f"{machine}: DefinitionUri {uri!r} is not a local file")
    return (TEMPLATE_PATH.parent / uri).resolve()


def substitutions(machine: str) -> dict[str, str]:
    """The machine's DefinitionSubstitutions from template.yaml, with values for a test run."""
    from marketplace_local.template import parameter_values

    parameters = parameter_values(_sam())
    declared = template_resource(machine)["Properties"].get("DefinitionSubstitutions", {})
    values = {}
    for key, value in declared.items():
        if isinstance(value, dict) and list(value) == ["Ref"] and value["Ref"] in parameters:
            values[key] = str(parameters[value["Ref"]])
        else:
            values[key] = DUMMY_RESOURCES.get(key, f"dummy-{key}")
    return values


@cache
def definition_text(machine: str) -> str:
    """The machine's ASL as deployed: every ``${...}`` placeholder filled, still valid JSON."""
    text = asl_path(machine).read_text()
    for key, value in substitutions(machine).items():
        text = text.replace("${" + key + "}", value)
    left = sorted(set(re.findall(r"\$\{[A-Za-z0-9_]+\}", text)))
    assert not left, f"{machine}: placeholders without a DefinitionSubstitution in template.yaml: {left}"
    json.loads(text)
    return text


def load_asl(machine: str) -> dict[str, Any]:
    return json.loads(definition_text(machine))


def load_raw_asl(machine: str) -> dict[str, Any]:
    return json.loads(asl_path(machine).read_text())


def load_mock_config() -> dict[str, Any]:
    return json.loads(MOCK_CONFIG_PATH.read_text())


def case_mocks(machine: str, config: dict[str, Any] | None = None) -> dict[str, dict[str, str]]:
    """A state machine's test cases in the MockConfigFile: case -> {Task state -> mocked response name}."""
    config = config or load_mock_config()
    return config["StateMachines"][machine]["TestCases"]


def all_cases() -> list[tuple[str, str]]:
    """(state machine, test case) for every case of every state machine in MACHINES."""
    return [(machine, case) for machine in MACHINES for case in sorted(MACHINES[machine].expected)]


# ------------------------------------------------------------------------------- response keys
_KEY = re.compile(r"(0|[1-9]\d*)(?:-(0|[1-9]\d*))?")


def invocation_range(key: str) -> tuple[int, int]:
    """``"3"`` -> (3, 3); ``"1-2"`` -> (1, 2). Raises ValueError for anything else."""
    match = _KEY.fullmatch(key)
    if not match:
        raise ValueError(f"{key!r} is neither an invocation number nor a range like '1-2'")
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) is not None else start
    if match.group(2) is not None and end <= start:
        raise ValueError(f"{key!r}: a range must end after it starts")
    return start, end


def invocation_count(mocked_response: dict[str, Any]) -> int:
    """How many invocations a mocked response defines (its keys are contiguous from 0)."""
    return max(invocation_range(key)[1] for key in mocked_response) + 1


def response_for(mocked_response: dict[str, Any], invocation: int) -> dict[str, Any] | None:
    for key, response in mocked_response.items():
        start, end = invocation_range(key)
        if start <= invocation <= end:
            return response
    return None


# ------------------------------------------------------------------------------------ the walker
class Unsupported(NotImplementedError):
    """The ASL uses something the walker does not simulate: extend it, do not guess."""


class CaseBroken(AssertionError):
    """The test case cannot run as written (an unmocked Task, a missing response, a loop)."""


class ExecutionFailed(Exception):
    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


class _DataError(Exception):
    """A missing path or a failed intrinsic: States.Runtime on AWS."""


_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
MAX_STATES_ENTERED = 200


def read_path(path: str, data: Any, context: dict[str, Any]) -> Any:
    if path == "$":
        return data
    if path == "$$":
        return context
    if path.startswith("$$."):
        node, rest = context, path[3:]
    elif path.startswith("$."):
        node, rest = data, path[2:]
    else:
        raise Unsupported(f"JSONPath {path!r}")
    for segment in rest.split("."):
        if not _SEGMENT.fullmatch(segment):
            raise Unsupported(f"JSONPath {path!r}: only dotted names are simulated")
        if not isinstance(node, dict) or segment not in node:
            found = sorted(node) if isinstance(node, dict) else type(node).__name__
            raise _DataError(f"the path {path} is missing: no {segment!r} in {found}")
        node = node[segment]
    return node


def path_exists(path: str, data: Any, context: dict[str, Any]) -> bool:
    try:
        read_path(path, data, context)
    except _DataError:
        return False
    return True


def _split_arguments(text: str) -> list[str]:
    arguments, current, depth, quoted, i = [], [], 0, False, 0
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "\\":
                current.append(text[i : i + 2])
                i += 2
                continue
            if char == "'":
                quoted = False
        elif char == "'":
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            arguments.append("".join(current).strip())
            current = []
            i += 1
            continue
        current.append(char)
        i += 1
    if "".join(current).strip():
        arguments.append("".join(current).strip())
    return arguments


def _argument(text: str, data: Any, context: dict[str, Any]) -> Any:
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if text.startswith("$"):
        return read_path(text, data, context)
    if text.startswith("States."):
        return call_intrinsic(text, data, context)
    if text in ("true", "false", "null") or _NUMBER.fullmatch(text):
        return json.loads(text)
    raise Unsupported(f"intrinsic argument {text!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _format(template: Any, *args: Any) -> str:
    if not isinstance(template, str) or template.count("{}") != len(args):
        raise _DataError(f"States.Format: {template!r} does not take {len(args)} argument(s)")
    pieces = template.split("{}")
    out = pieces[0]
    for arg, piece in zip(args, pieces[1:], strict=True):
        if isinstance(arg, dict | list):
            raise _DataError(f"States.Format cannot format {arg!r}")
        out += (arg if isinstance(arg, str) else json.dumps(arg)) + piece
    return out


def _string_to_json(value: Any) -> Any:
    if not isinstance(value, str):
        raise _DataError(f"States.StringToJson needs a string, got {value!r}")
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise _DataError(f"States.StringToJson: {value!r} is not JSON") from error


def _math_add(a: Any, b: Any) -> int:
    if not (_is_number(a) and _is_number(b) and float(a).is_integer() and float(b).is_integer()):
        raise _DataError(f"States.MathAdd needs integers, got {a!r} and {b!r}")
    return int(a) + int(b)


INTRINSICS = {
    "States.Format": _format,
    "States.StringToJson": _string_to_json,
    "States.JsonToString": lambda value: json.dumps(value, separators=(",", ":")),
    "States.MathAdd": _math_add,
    "States.Array": lambda *values: list(values),
}


def call_intrinsic(text: str, data: Any, context: dict[str, Any]) -> Any:
    match = re.fullmatch(r"(States\.[A-Za-z]+)\((.*)\)", text.strip(), re.DOTALL)
    if not match or match.group(1) not in INTRINSICS:
        raise Unsupported(f"intrinsic {text!r}")
    arguments = [_argument(arg, data, context) for arg in _split_arguments(match.group(2))]
    return INTRINSICS[match.group(1)](*arguments)


def evaluate(expression: str, data: Any, context: dict[str, Any]) -> Any:
    expression = expression.strip()
    if expression.startswith("States."):
        return call_intrinsic(expression, data, context)
    return read_path(expression, data, context)


def apply_template(template: Any, data: Any, context: dict[str, Any]) -> Any:
    """A payload template (Parameters, ResultSelector): ``"key.$"`` fields are evaluated."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                if not isinstance(value, str):
                    raise Unsupported(f"{key}: a '.$' field must be a path or an intrinsic")
                out[key[:-2]] = evaluate(value, data, context)
            else:
                out[key] = apply_template(value, data, context)
        return out
    if isinstance(template, list):
        return [apply_template(item, data, context) for item in template]
    return copy.deepcopy(template)


def apply_result_path(result_path: str | None, state_input: Any, result: Any) -> Any:
    if result_path is None:  # "ResultPath": null keeps the input as it is
        return copy.deepcopy(state_input)
    if result_path == "$":
        return copy.deepcopy(result)
    if not result_path.startswith("$."):
        raise Unsupported(f"ResultPath {result_path!r}")
    out = copy.deepcopy(state_input)
    if not isinstance(out, dict):
        raise _DataError(f"ResultPath {result_path} needs an object input")
    node = out
    *parents, last = result_path[2:].split(".")
    for segment in [*parents, last]:
        if not _SEGMENT.fullmatch(segment):
            raise Unsupported(f"ResultPath {result_path!r}")
    for segment in parents:
        child = node.setdefault(segment, {})
        if not isinstance(child, dict):
            raise _DataError(f"ResultPath {result_path}: {segment} is not an object")
        node = child
    node[last] = copy.deepcopy(result)
    return out


def _filter(path_field: str, state: dict[str, Any], data: Any, context: dict[str, Any]) -> Any:
    """InputPath / OutputPath: absent is ``$``; null is ``{}``."""
    path = state.get(path_field, "$")
    return {} if path is None else read_path(path, data, context)


def error_matches(error_equals: list[str], error: str) -> bool:
    if error in error_equals:
        return True
    if error in ("States.Runtime", "States.DataLimitExceeded"):
        return False
    if "States.ALL" in error_equals:
        return True
    return "States.TaskFailed" in error_equals and error != "States.Timeout"


def retry_delay(retrier: dict[str, Any], attempt: int) -> float:
    """The longest wait before retry number ``attempt`` (1-based); a jitter only shortens it."""
    delay = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** (attempt - 1)
    return min(delay, retrier.get("MaxDelaySeconds", delay))


_COMPARISONS = {
    "StringEquals": lambda a, b: isinstance(a, str) and a == b,
    "BooleanEquals": lambda a, b: isinstance(a, bool) and a is b,
    "NumericEquals": lambda a, b: _is_number(a) and _is_number(b) and a == b,
    "NumericLessThan": lambda a, b: _is_number(a) and _is_number(b) and a < b,
    "NumericLessThanEquals": lambda a, b: _is_number(a) and _is_number(b) and a <= b,
    "NumericGreaterThan": lambda a, b: _is_number(a) and _is_number(b) and a > b,
    "NumericGreaterThanEquals": lambda a, b: _is_number(a) and _is_number(b) and a >= b,
}
_TYPE_TESTS = {
    "IsNull": lambda value: value is None,
    "IsString": lambda value: isinstance(value, str),
    "IsNumeric": _is_number,
    "IsBoolean": lambda value: isinstance(value, bool),
}


def choice_rule_holds(rule: dict[str, Any], data: Any, context: dict[str, Any]) -> bool:
    if "And" in rule:
        return all(choice_rule_holds(branch, data, context) for branch in rule["And"])
    if "Or" in rule:
        return any(choice_rule_holds(branch, data, context) for branch in rule["Or"])
    if "Not" in rule:
        return not choice_rule_holds(rule["Not"], data, context)
    operators = [key for key in rule if key not in ("Variable", "Next", "Comment")]
    if "Variable" not in rule or len(operators) != 1:
        raise Unsupported(f"Choice rule {rule}")
    variable, operator = rule["Variable"], operators[0]
    operand = rule[operator]
    if operator == "IsPresent":
        return path_exists(variable, data, context) is operand
    value = read_path(variable, data, context)
    if operator in _TYPE_TESTS:
        return _TYPE_TESTS[operator](value) is operand
    if operator.endswith("Path"):
        operator, operand = operator.removesuffix("Path"), read_path(operand, data, context)
    if operator not in _COMPARISONS:
        raise Unsupported(f"Choice operator {operator}")
    return _COMPARISONS[operator](value, operand)


@dataclass(frozen=True)
class Call:
    state: str
    invocation: int  # the state's invocation counter, from 0: the key of its mocked response
    request: Any  # what the Task sent (its Parameters, evaluated)
    response: dict[str, Any]  # the mocked {"Return": ...} or {"Throw": ...}


@dataclass
class Walk:
    """Where a test case's execution goes, as far as the walker can tell."""

    machine: str
    case: str
    status: str = "RUNNING"
    entered: list[str] = field(default_factory=list)  # every state entered, in order
    invocations: Counter = field(default_factory=Counter)  # Task state -> invocations, retries included
    calls: list[Call] = field(default_factory=list)  # every Task invocation, retries included
    error: str | None = None
    cause: str | None = None
    retry_wait_seconds: float = 0.0  # the longest the retries of this path may wait in real time
    output: Any = None

    @property
    def end(self) -> str:
        return self.entered[-1]

    @property
    def label(self) -> str:
        return f"{self.machine}/{self.case}"


def _context(machine: str, case: str, state_name: str) -> dict[str, Any]:
    return {
        "Execution": {
            "Id": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{case}",
            "Name": case,
            "Input": copy.deepcopy(MACHINES[machine].execution_input),
            "StartTime": "2025-01-01T00:00:00.000Z",
        },
        "StateMachine": {"Id": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine}"},
        "State": {"Name": state_name, "EnteredTime": "2025-01-01T00:00:01.000Z", "RetryCount": 0},
    }


def _uses_task_token(template: Any) -> bool:
    return "$$.Task.Token" in json.dumps(template)


def _run_task(
    name: str, state: dict[str, Any], data: Any, context: dict[str, Any], trace: Walk,
    mocks: dict[str, str], responses: dict[str, Any],
) -> tuple[Any, str | None]:  # fmt: skip
    resource = state["Resource"]
    if resource.endswith(".waitForTaskToken"):
        context["Task"] = {"Token": "MOCKED-TASK-TOKEN"}
    elif _uses_task_token(state.get("Parameters")):
        raise CaseBroken(f"{name} reads $$.Task.Token without .waitForTaskToken")
    effective_input = _filter("InputPath", state, data, context)
    request = effective_input
    if "Parameters" in state:
        request = apply_template(state["Parameters"], effective_input, context)
    for path_field in ("TimeoutSecondsPath", "HeartbeatSecondsPath"):
        if path_field in state:
            seconds = read_path(state[path_field], effective_input, context)
            if not (isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0):
                raise _DataError(f"{path_field} of {name} is {seconds!r}, not a positive integer")
    if name not in mocks:
        raise CaseBroken(
            f"case {trace.label} reaches Task {name} but mocks no response for it "
            "(Step Functions Local would call the real service)"
        )
    attempts: Counter = Counter()
    while True:
        invocation = trace.invocations[name]
        trace.invocations[name] += 1
        response = response_for(responses[mocks[name]], invocation)
        if response is None:
            raise CaseBroken(
                f"case {trace.label}: {name} is invoked a {invocation + 1}. time but its mocked response "
                f"{mocks[name]!r} defines {invocation_count(responses[mocks[name]])} invocation(s)"
            )
        trace.calls.append(Call(name, invocation, request, response))
        if "Return" in response:
            result = response["Return"]
            if "ResultSelector" in state:
                result = apply_template(state["ResultSelector"], result, context)
            combined = apply_result_path(state.get("ResultPath", "$"), data, result)
            return _filter("OutputPath", state, combined, context), state.get("Next")
        error, cause = response["Throw"]["Error"], response["Throw"]["Cause"]
        retriers = state.get("Retry", [])
        index = next((i for i, r in enumerate(retriers) if error_matches(r["ErrorEquals"], error)), None)
        if index is not None and attempts[index] < retriers[index].get("MaxAttempts", 3):
            attempts[index] += 1
            trace.retry_wait_seconds += retry_delay(retriers[index], attempts[index])
            context["State"]["RetryCount"] += 1
            continue
        # no retrier matches, or the first that matches is used up: on to the catchers
        for catcher in state.get("Catch", []):
            if error_matches(catcher["ErrorEquals"], error):
                error_output = {"Error": error, "Cause": cause}
                return apply_result_path(catcher.get("ResultPath", "$"), data, error_output), catcher["Next"]
        raise ExecutionFailed(error, cause)


def walk(
    machine: str, case: str, asl: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
    execution_input: dict[str, Any] | None = None,
) -> Walk:  # fmt: skip
    """Run a test case of a state machine of the MockConfigFile through its ASL, as far as the walker can."""
    asl = asl if asl is not None else load_asl(machine)
    config = config if config is not None else load_mock_config()
    mocks, responses = case_mocks(machine, config)[case], config["MockedResponses"]
    states = asl["States"]
    result = Walk(machine, case)
    data: Any = copy.deepcopy(
        MACHINES[machine].execution_input if execution_input is None else execution_input
    )
    name: str | None = asl["StartAt"]
    while True:
        if len(result.entered) >= MAX_STATES_ENTERED:
            raise CaseBroken(f"case {result.label} entered {MAX_STATES_ENTERED} states: a loop")
        if name not in states:
            raise CaseBroken(f"case {result.label} goes to {name!r}, which is not a state of the ASL")
        state = states[name]
        result.entered.append(name)
        context = _context(machine, case, name)
        try:
            kind = state["Type"]
            if kind == "Pass":
                effective_input = _filter("InputPath", state, data, context)
                if "Parameters" in state:
                    output = apply_template(state["Parameters"], effective_input, context)
                else:
                    output = copy.deepcopy(state.get("Result", effective_input))
                combined = apply_result_path(state.get("ResultPath", "$"), data, output)
                data = _filter("OutputPath", state, combined, context)
                following = state.get("Next")
            elif kind == "Choice":
                effective_input = _filter("InputPath", state, data, context)
                matching = (
                    r["Next"] for r in state["Choices"] if choice_rule_holds(r, effective_input, context)
                )
                following = next(matching, state.get("Default"))
                if following is None:
                    raise ExecutionFailed("States.NoChoiceMatched", f"no Choice rule of {name} matched")
                data = _filter("OutputPath", state, effective_input, context)
            elif kind == "Task":
                data, following = _run_task(name, state, data, context, result, mocks, responses)
            elif kind == "Succeed":
                result.status, result.output = "SUCCEEDED", data
                return result
            elif kind == "Fail":
                result.status, result.error, result.cause = "FAILED", state.get("Error"), state.get("Cause")
                return result
            else:
                raise Unsupported(f"state type {kind} ({name})")
        except _DataError as error:
            result.status, result.error, result.cause = "FAILED", "States.Runtime", f"in {name}: {error}"
            return result
        except ExecutionFailed as failure:
            result.status, result.error, result.cause = "FAILED", failure.error, failure.cause
            return result
        if following is None:  # "End": true
            result.status, result.output = "SUCCEEDED", data
            return result
        name = following


def is_subsequence(wanted: tuple[str, ...], entered: list[str]) -> bool:
    remaining = iter(entered)
    return all(any(state == want for state in remaining) for want in wanted)


def problems_of(
    machine: str, case: str, asl: dict[str, Any] | None = None, config: dict[str, Any] | None = None
) -> list[str]:
    """What is wrong with a test case's walk, compared with EXPECTED; empty when it is right."""
    config = config if config is not None else load_mock_config()
    expected, label = EXPECTED[machine][case], f"{machine}/{case}"
    try:
        result = walk(machine, case, asl, config)
    except CaseBroken as broken:
        return [str(broken)]
    problems = []
    summary = f"entered {' -> '.join(result.entered)}"
    if (result.status, result.end) != (expected.status, expected.end):
        problems.append(
            f"{label}: expected {expected.status} at {expected.end}, walked to {result.status} at "
            f"{result.end} (error {result.error}: {result.cause}); {summary}"
        )
    if not is_subsequence(expected.via, result.entered):
        problems.append(f"{label}: expected to pass {' -> '.join(expected.via)}; {summary}")
    if expected.error is not None and result.error != expected.error:
        problems.append(f"{label}: expected the error {expected.error}, got {result.error}")
    responses = config["MockedResponses"]
    for state, response_name in case_mocks(machine, config)[case].items():
        defined = invocation_count(responses[response_name])
        if result.invocations[state] != defined:
            problems.append(
                f"{label}: {state} is invoked {result.invocations[state]} time(s), "
                f"its mocked response {response_name!r} defines {defined}"
            )
    return problems


# ------------------------------------------------------------------------------------- the tests
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


def template_type(machine: str) -> str:
    """The machine's Type in template.yaml: STANDARD (the default) or EXPRESS."""
    return str(template_resource(machine)["Properties"].get("Type", "STANDARD"))


by_machine = pytest.mark.parametrize("machine", sorted(MACHINES))


def test_the_file_the_template_and_machines_name_the_same_state_machines():
    """One entry per AWS::Serverless::StateMachine of template.yaml (found by its logical id), unless
    it is listed in WITHOUT_TEST_CASES."""
    logical_ids = template_state_machines()
    assert all(logical_id.endswith(TEMPLATE_SUFFIX) for logical_id in logical_ids.values()), logical_ids
    assert sorted(load_mock_config()["StateMachines"]) == sorted(MACHINES)
    assert set(MACHINES) <= set(logical_ids), "a MockConfigFile state machine that template.yaml lacks"
    assert not set(MACHINES) & set(WITHOUT_TEST_CASES)
    assert sorted(set(logical_ids) - set(MACHINES)) == sorted(WITHOUT_TEST_CASES), (
        "a state machine of template.yaml without test cases must be listed in WITHOUT_TEST_CASES"
    )


@by_machine
def test_each_state_machine_runs_its_own_asl_file(machine):
    path = asl_path(machine)
    assert path.is_file() and path.parent == ROOT / "statemachines", path
    assert load_raw_asl(machine)["StartAt"] in load_asl(machine)["States"]
    others = {asl_path(other) for other in MACHINES if other != machine}
    assert path not in others, f"{machine} shares its ASL file with another state machine"


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
    """Lambda returns are ``{"StatusCode": 200, "Payload": {...}}``; each ResultSelector resolves."""
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
                continue
            if "ResultSelector" in state:
                try:
                    apply_template(state["ResultSelector"], returned, _context(machine, "-", state_name))
                except _DataError as error:
                    problems.append(f"{where}: the ResultSelector fails: {error}")
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
    problems = []
    for case, mocks in case_mocks(machine, config).items():
        for state in validate_states & set(mocks):
            for key, response in config["MockedResponses"][mocks[state]].items():
                if "Return" not in response:
                    continue
                payload, where = response["Return"]["Payload"], f"{case}: {mocks[state]}[{key}]"
                if set(payload) != {"outcome", "flags", "flagsAttribute", "version"}:
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
    stored as DynamoDB returns them; ``transact`` stands in for ``client.transact_write_items``."""

    name = "MarketplaceTable"

    def __init__(self, records: dict[tuple[str, str], dict[str, Any]], transact: Any = None) -> None:
        from marketplace.repository import from_item, to_item

        self.records = {key: from_item(to_item(record)) for key, record in records.items()}
        self.client = type("Client", (), {"transact_write_items": staticmethod(transact or (lambda **_: {}))})

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.records.get((pk, sk)))


def order_steps(supplier_status: str, changes: dict[str, Any], transact: Any = None) -> Any:
    """``marketplace.orders.Orders`` over the supplier order of the SupplierOrder cases (ORDER with
    ``changes``), its supplier in ``supplier_status`` and LISTING active."""
    from marketplace import keys
    from marketplace.orders import Orders, supplier_order_pk
    from marketplace.products import product_sk

    spec = MACHINES["SupplierOrder"].execution_input
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
        returned = orders.reserve("t-1", "so-1", 1, 3600, now)
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


def test_order_reserve_returns_have_the_shape_of_the_reserve_step():
    """Reserve's mocked returns are what marketplace.orders.Orders.reserve returns, outcome by
    outcome; their versions follow the version the reservation was asked for; the Reserved Choice
    knows every outcome the step returns."""
    from marketplace.orders import parse_iso

    asl, config = load_asl("SupplierOrder"), load_mock_config()
    shapes = reserve_shapes()
    assert _reserved_outcomes(asl) == set(shapes)
    problems, checked = [], 0
    for case in case_mocks("SupplierOrder", config):
        for call in walk("SupplierOrder", case, asl, config).calls:
            if call.state != "Reserve" or "Return" not in call.response:
                continue
            payload, asked = call.response["Return"]["Payload"], call.request["Payload"]["version"]
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


def test_order_reserve_is_asked_for_the_version_the_validation_read():
    """Reserve's request is the order's identity, its step, and the version Validate returned."""
    asl, config = load_asl("SupplierOrder"), load_mock_config()
    identity = {"tenantId": "t-1", "supplierOrderId": "so-1"}
    checked = 0
    for case in case_mocks("SupplierOrder", config):
        read = None
        for call in walk("SupplierOrder", case, asl, config).calls:
            if call.state == "Validate" and "Return" in call.response:
                read = call.response["Return"]["Payload"]["version"]
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
    assert sorted(EXPECTED[machine]) == sorted(case_mocks(machine))


@pytest.mark.parametrize(("machine", "case"), all_cases())
def test_case_walks_to_the_end_its_name_promises(machine, case):
    assert problems_of(machine, case) == []


@by_machine
def test_validate_is_asked_about_the_record_of_the_execution(machine):
    """The Validate Lambda gets the record's identity (for a listing, its sku too) in every round,
    and what else the machine sends it (the round; the supplier order's step)."""
    asl, config, spec = load_asl(machine), load_mock_config(), MACHINES[machine]
    identity = {k: v for k, v in spec.execution_input.items() if k != "version"}
    checked = 0
    for case in case_mocks(machine, config):
        for call in walk(machine, case, asl, config).calls:
            if call.state == "Validate":
                payload = dict(call.request["Payload"])
                for key, wanted in spec.validate_request_extras.items():
                    value = payload.pop(key, None)
                    fits = isinstance(value, wanted) if isinstance(wanted, type) else value == wanted
                    assert fits, (case, key, call.request)
                assert payload == identity, (case, call.invocation, call.request)
                checked += 1
    assert checked >= len(case_mocks(machine, config))


@by_machine
def test_correction_messages_carry_the_record_the_flags_and_the_flagged_version(machine):
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
        for call in walk(machine, case, asl, config).calls:
            if call.state in ("MarkFlagged", "MarkSystemFlagged") and "Return" in call.response:
                flagged_version = int(call.response["Return"]["Attributes"]["version"]["N"])
            if call.state not in queue_states:
                continue
            body = call.request["MessageBody"]
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
def test_status_writes_are_conditional_on_the_version_the_validation_read(machine):
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
        for call in walk(machine, case, asl, config).calls:
            if call.state == "Validate" and "Return" in call.response:
                read = call.response["Return"]["Payload"]["version"]
            if call.state in writes:
                values = call.request["ExpressionAttributeValues"]
                assert call.request["ConditionExpression"] == "#version = :expected", (case, call.state)
                assert values[":expected"] == {"N": str(read)}, (case, call.state)
                assert values[":next"] == {"N": str(read + 1)}, (case, call.state)
                checked += 1
    entering = [case for case, expected in EXPECTED[machine].items() if writes & set(expected.via)]
    assert len(entering) >= 3 and checked >= len(entering), (checked, entering)


@by_machine
def test_the_cases_together_enter_every_state(machine):
    asl, config = load_asl(machine), load_mock_config()
    entered = {
        state for case in case_mocks(machine, config) for state in walk(machine, case, asl, config).entered
    }
    assert sorted(set(asl["States"]) - entered) == []


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


def _mutated(machine: str, change) -> dict[str, Any]:
    asl = load_asl(machine)
    change(asl["States"])
    return asl


# mutation -> (state machine, change to its States, a case whose path the change breaks)
MUTATIONS = {
    "no retry of Validate": (
        "SupplierOnboarding",
        lambda s: s["Validate"].pop("Retry"),
        "TransientRetriedThenApproved",
    ),
    "one round more": (
        "SupplierOnboarding",
        lambda s: s["RoundsLeft"]["Choices"][0].update(
            {"NumericLessThanEqualsPath": s["RoundsLeft"]["Choices"][0].pop("NumericLessThanPath")}
        ),
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
        lambda s: s["Decide"]["Choices"][0]["And"][1].update({"StringEquals": "APPROVED"}),
        "Active",
    ),
    "listing: the next round forgets the sku": (
        "ProductListing",
        lambda s: s["NextRound"]["Parameters"].pop("sku.$"),
        "FlaggedPriceOutOfBounds",
    ),
    "listing: the reload after a conflict forgets the sku": (
        "ProductListing",
        lambda s: s["ReloadAfterConflict"]["Parameters"].pop("sku.$"),
        "ConditionalWriteLost",
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
        lambda s: s["RoundsLeft"]["Choices"][0].update(
            {"NumericLessThanEqualsPath": s["RoundsLeft"]["Choices"][0].pop("NumericLessThanPath")}
        ),
        "FlaggedFixedBadly",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_the_walker_notices_when_a_path_changes(mutation):
    """The walker has teeth: change the ASL so that a case's path changes, and the case fails."""
    machine, change, case = MUTATIONS[mutation]
    assert problems_of(machine, case) == []
    assert problems_of(machine, case, _mutated(machine, change)) != []

"""The reviewed-record registry: every kind is an entry, found by name, with its keys, its
workflow's input and its correction id; and the state machines compose no key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marketplace import keys, registry
from marketplace.errors import NotFound

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "record_id", "pk", "sk"),
    [("SUPPLIER", "s-1", keys.supplier_pk("t", "s-1"), keys.RECORD_SK),
     ("PRODUCT", "s-1/SKU.9", keys.supplier_pk("t", "s-1"), keys.product_sk("SKU.9")),
     ("SUPPLIER_ORDER", "so-1", keys.supplier_order_pk("t", "so-1"), keys.RECORD_SK)],
)  # fmt: skip
def test_each_kind_gives_its_workflow_the_keys_it_writes(name, record_id, pk, sk):
    kind = registry.KINDS[name]
    started = kind.start_input("t", record_id, 3)
    assert started["keys"]["record"] == {"PK": {"S": pk}, "SK": {"S": sk}}
    assert started["keys"]["statusIndex"]["FLAGGED"] == keys.status_gsi_pk("t", name, "FLAGGED")
    assert set(started["keys"]["statusIndex"]) == set(kind.indexed)
    assert (started["kind"], started["tenantId"], started["recordId"], started["version"]) == (
        name, "t", record_id, 3,
    )  # fmt: skip


def test_a_listing_is_in_the_status_index_only_while_flagged():
    listing = registry.KINDS["PRODUCT"]
    assert listing.index_changes("t", "ACTIVE", "now") == {"GSI1PK": None, "GSI1SK": None}
    assert listing.index_changes("t", "FLAGGED", "now")["GSI1PK"] == keys.status_gsi_pk(
        "t", "PRODUCT", "FLAGGED"
    )
    supplier = registry.KINDS["SUPPLIER"]
    assert supplier.index_changes("t", "APPROVED", "now")["GSI1PK"] == keys.status_gsi_pk(
        "t", "SUPPLIER", "APPROVED"
    )


@pytest.mark.parametrize(
    ("name", "record_id", "correction_id"),
    [("SUPPLIER", "9b2e-1", "9b2e-1"), ("PRODUCT", "s-1/SKU-1", "PRODUCT:s-1:SKU-1"),
     ("SUPPLIER_ORDER", "so-1", "SUPPLIER_ORDER:so-1"), ("RETURN", "r-1", "RETURN:r-1"),
     ("SUPPLIER_PROPOSAL", "9b2e-1", "SUPPLIER_PROPOSAL:9b2e-1"),
     ("PRODUCT_PROPOSAL", "s-1/SKU-1", "PRODUCT_PROPOSAL:s-1:SKU-1")],
)  # fmt: skip
def test_a_correction_id_names_one_record_of_one_kind_in_one_path_segment(name, record_id, correction_id):
    kind = registry.QUEUED[name]
    assert kind.correction_id(record_id) == correction_id and "/" not in correction_id
    assert registry.resolve(correction_id) == (kind, record_id)
    # As the console sends it (encodeURIComponent) and the gateway passes it on.
    assert registry.resolve(correction_id.replace(":", "%3A")) == (kind, record_id)


@pytest.mark.parametrize("bad", ["PRODUCT:", "SUPPLIER_ORDER:", "OTHER:x", ""])
def test_an_unknown_correction_id_is_not_found(bad):
    with pytest.raises(NotFound):
        registry.resolve(bad)


def test_no_state_machine_composes_a_key_and_one_definition_serves_every_reviewed_kind():
    from marketplace_local.template import load_sam

    for path in (ROOT / "statemachines").glob("*.asl.json"):
        assert "TENANT#" not in path.read_text(), path.name
    resources = load_sam(ROOT / "template.yaml")["Resources"]
    uris = {name: r["Properties"]["DefinitionUri"] for name, r in resources.items()
            if r["Type"] == "AWS::Serverless::StateMachine"}  # fmt: skip
    assert uris["SupplierOnboardingStateMachine"] == uris["ProductListingStateMachine"]
    # Each record kind has its machine; a proposal (D41) runs in its record's machine, with its rules.
    envs = {kind.state_machine_env for kind in registry.KINDS.values() if kind.on_approval is None}
    assert len(envs) == len([k for k in registry.KINDS.values() if k.on_approval is None])
    for proposal in (k for k in registry.KINDS.values() if k.on_approval is not None):
        live = registry.KINDS[proposal.name.removesuffix("_PROPOSAL")]
        assert (proposal.state_machine_env, proposal.rules, proposal.approved) == (
            live.state_machine_env,
            live.rules,
            live.approved,
        )
    definition = json.loads((ROOT / uris["ProductListingStateMachine"]).read_text())
    messages = [s["Parameters"]["MessageBody"] for s in definition["States"].values()
                if "MessageBody" in s.get("Parameters", {})]  # fmt: skip
    assert messages and all(m["kind.$"] == "$.kind" and m["recordId.$"] == "$.recordId" for m in messages)


def test_the_stream_router_filter_names_every_registered_kind():
    """The filter is an optimisation that must not drop a kind: it names exactly the registry's."""
    from marketplace_local.template import load_sam

    mapping = load_sam(ROOT / "template.yaml")["Resources"]["StreamRouterFunction"]["Properties"]["Events"]
    patterns = [json.loads(f["Pattern"]) for event in mapping.values()
                for f in event["Properties"].get("FilterCriteria", {}).get("Filters", [])]  # fmt: skip
    names = {n for p in patterns for n in p["dynamodb"]["NewImage"]["entity"]["S"]}
    assert names == set(registry.KINDS)


def test_an_incident_is_queued_while_refused_or_disputed_and_starts_no_workflow():
    """A refused or disputed return is listed by the correction queue from one partition of the
    status index, only while an incident; no workflow reviews it, so the stream router starts
    nothing for one (D35, D44)."""
    from marketplace import routing

    incident = registry.QUEUED["RETURN"]
    assert "RETURN" not in registry.KINDS and incident.queued == "INCIDENT"
    for status in ("REFUSED", "DISPUTED"):
        assert incident.index_changes("t", status, "now")["GSI1PK"] == keys.status_gsi_pk(
            "t", "RETURN", "INCIDENT"
        )
    for status in ("REQUESTED", "ACCEPTED", "REFUNDED", "CLOSED"):
        assert incident.index_changes("t", status, "now") == {"GSI1PK": None, "GSI1SK": None}
    image = {"entity": "RETURN", "tenantId": "t", "returnId": "r-1", "version": 1}
    assert routing.workflow_for("INSERT", image) is None


def test_a_proposal_starts_its_review_when_new_and_is_applied_when_approved(monkeypatch):
    """D41: the router starts a proposal's review on its INSERT, and on a new proposal written over a
    finished one (a MODIFY to PENDING from REJECTED or approved), never on a fix; what follows its
    approval runs once per approval, for proposals only."""
    import dataclasses

    from marketplace import routing

    monkeypatch.setenv("PRODUCT_LISTING_STATE_MACHINE_ARN", "arn:listing")
    image = {"entity": "PRODUCT_PROPOSAL", "tenantId": "t", "supplierId": "s", "sku": "K", "version": 3}
    pending = {**image, "status": "PENDING"}
    arn, name, execution_input = routing.workflow_for("INSERT", pending)
    assert (arn, name.startswith("product-proposal-"), name.endswith("-v3")) == ("arn:listing", True, True)
    assert execution_input["keys"]["record"]["SK"] == {"S": "PROPOSAL#PRODUCT#K"}
    assert routing.workflow_for("MODIFY", pending, {**image, "status": "REJECTED"}) is not None
    assert routing.workflow_for("MODIFY", pending, {**image, "status": "ACTIVE"}) is not None
    assert routing.workflow_for("MODIFY", pending, {**image, "status": "PENDING"}) is None  # amended
    assert (
        routing.workflow_for("MODIFY", {**image, "status": "FLAGGED"}, {**image, "status": "FLAGGED"}) is None
    )
    listing = {"entity": "PRODUCT", "tenantId": "t", "supplierId": "s", "sku": "K", "version": 3}
    assert (
        routing.workflow_for("MODIFY", {**listing, "status": "PENDING"}, {**listing, "status": "REJECTED"})
        is None
    )
    applied: list[dict] = []
    recording = dataclasses.replace(registry.KINDS["PRODUCT_PROPOSAL"],
                                    on_approval=lambda table, approved: applied.append(approved) or "applied")  # fmt: skip
    monkeypatch.setitem(registry.KINDS, "PRODUCT_PROPOSAL", recording)
    assert (
        routing.follow_approval("MODIFY", {**image, "status": "ACTIVE"}, pending, table=object()) == "applied"
    )
    assert (
        routing.follow_approval("MODIFY", {**image, "status": "ACTIVE"}, {**image, "status": "ACTIVE"})
        is None
    )
    assert (
        routing.follow_approval("MODIFY", {**listing, "status": "ACTIVE"}, {**listing, "status": "PENDING"})
        is None
    )
    assert len(applied) == 1

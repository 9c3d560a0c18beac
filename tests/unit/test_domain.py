"""Domain building blocks: principals, schemas, page tokens, correction messages, audit entries, order
events."""

from __future__ import annotations

import base64
import json

import pytest

from marketplace import audit, schemas
from marketplace.corrections import Correction, PoisonMessage
from marketplace.errors import Forbidden, InvalidInput, Unauthorized
from marketplace.events import event_for
from marketplace.principal import Principal, parse_groups
from marketplace.repository import decode_token, encode_token


@pytest.mark.parametrize(
    ("raw", "groups"),
    [("admin", ["admin"]), ("admin,retailer", ["admin", "retailer"]), ("[admin retailer]", ["admin", "retailer"]),
     (["supplier"], ["supplier"]), (None, []), ("", [])],
)  # fmt: skip
def test_groups_are_read_in_every_shape_api_gateway_uses(raw, groups):
    assert parse_groups(raw) == groups


def test_a_principal_needs_a_tenant_and_a_subject():
    with pytest.raises(Unauthorized):
        Principal.from_claims({"sub": "u1", "cognito:groups": "admin"})
    with pytest.raises(Unauthorized):
        Principal.from_claims(None)


def test_a_supplier_principal_needs_its_supplier_id():
    with pytest.raises(Unauthorized):
        Principal.from_claims({"sub": "u", "custom:tenant_id": "t", "cognito:groups": "supplier"})
    p = Principal.from_claims({"sub": "u", "custom:tenant_id": "t", "cognito:groups": "supplier",
                               "custom:supplier_id": "s1"})  # fmt: skip
    assert p.supplier_id == "s1" and p.roles == {"supplier"}


def _token(**claims: object) -> str:
    """A token as the gateway's authorizer has verified it (its signature is not read here)."""
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"Bearer eyJhbGciOiJSUzI1NiJ9.{payload}.c2lnbmF0dXJl"


def test_a_group_whose_name_holds_a_comma_grants_no_role():
    """The REST authorizer joins the token's list with commas: ["x,admin"] reaches the function as
    "x,admin", as ["x", "admin"] would. The token is read instead; "[x,admin]" is one group too."""
    flattened = {"sub": "u", "custom:tenant_id": "t", "cognito:groups": "x,admin"}
    with pytest.raises(Unauthorized):
        Principal.from_claims(flattened, _token(sub="u", **{"cognito:groups": ["x,admin"]}))
    both = Principal.from_claims(flattened, _token(sub="u", **{"cognito:groups": ["x", "admin"]}))
    assert both.roles == {"admin"}
    assert parse_groups("[x,admin retailer]") == ["x,admin", "retailer"]  # an HTTP API's form
    with pytest.raises(Unauthorized):  # not the token those claims came from
        Principal.from_claims(flattened, _token(sub="someone-else", **{"cognito:groups": ["admin"]}))
    with pytest.raises(Unauthorized):
        Principal.from_claims(flattened, "Bearer not-a-jwt")


def test_unknown_groups_grant_nothing():
    with pytest.raises(Unauthorized):
        Principal.from_claims({"sub": "u", "custom:tenant_id": "t", "cognito:groups": "root,superuser"})
    p = Principal.from_claims({"sub": "u", "custom:tenant_id": "t", "cognito:groups": "root,retailer"})
    assert p.roles == {"retailer"}
    with pytest.raises(Forbidden):
        p.require("admin")


def test_schema_errors_name_each_field_and_reason():
    errors = schemas.field_errors("supplier", {"legalName": "A", "extra": 1, "country": "usa"})
    by_field = {e.field: e.reason for e in errors}
    assert by_field["extra"] == "is not allowed"
    assert by_field["taxId"] == "is required"
    assert "legalName" in by_field and "country" in by_field
    with pytest.raises(InvalidInput):
        schemas.validate("supplier", [])


def test_page_tokens_are_bound_to_their_partition():
    token = encode_token({"PK": {"S": "TENANT#a#X"}, "SK": {"S": "1"}})
    assert decode_token(token, "PK", "TENANT#a#X")["SK"] == {"S": "1"}
    for bad in ("garbage!", encode_token({"PK": {"S": "TENANT#b#X"}})):
        with pytest.raises(InvalidInput) as info:
            decode_token(bad, "PK", "TENANT#a#X")
        assert info.value.fields[0].field == "nextToken"


def test_a_correction_message_is_parsed_or_declared_poison():
    ok = Correction.parse(json.dumps({"kind": "SUPPLIER", "tenantId": "t", "recordId": "r", "flaggedVersion": 2,
                                      "taskToken": "tok", "flags": []}))  # fmt: skip
    assert (ok.tenant_id, ok.record_id, ok.flagged_version, ok.task_token) == ("t", "r", 2, "tok")
    for body in ("not json", "[]", json.dumps({"kind": "PLANET"}),
                 json.dumps({"kind": "SUPPLIER", "tenantId": "t", "recordId": "r", "flaggedVersion": "2"}),
                 json.dumps({"kind": "SUPPLIER", "tenantId": "", "recordId": "r", "flaggedVersion": 2})):  # fmt: skip
        with pytest.raises(PoisonMessage):
            Correction.parse(body)


def test_an_audit_entry_says_who_when_what_changed_before_and_after():
    old = {"PK": "TENANT#t#SUPPLIER#s", "SK": "RECORD", "entity": "SUPPLIER", "tenantId": "t",
           "taxId": "1", "version": 1, "updatedBy": "retailer:u1", "updatedAt": "T1"}  # fmt: skip
    new = {**old, "taxId": "2", "version": 2, "updatedBy": "admin:u2", "updatedAt": "T2"}
    entry = audit.audit_entry("ev1", "MODIFY", "T0", old, new)
    assert entry["SK"] == "AUDIT#RECORD##000000000002" and entry["PK"] == old["PK"]
    assert (entry["by"], entry["at"], entry["action"]) == ("admin:u2", "T2", "changed")
    assert entry["changed"] == ["taxId", "updatedAt", "updatedBy", "version"]
    assert entry["before"]["taxId"] == "1" and entry["after"]["taxId"] == "2"
    assert "PK" not in entry["after"]


def test_records_that_are_not_audited_give_no_entry():
    assert audit.audit_entry("e", "INSERT", "T", None, {"entity": "AUDIT", "PK": "x"}) is None


def test_loopback_webhooks_are_accepted_only_where_the_local_stack_allows_them(monkeypatch):
    from marketplace.webhooks import url_errors

    monkeypatch.delenv("WEBHOOKS_LOOPBACK_PORTS", raising=False)
    assert (
        url_errors("http://127.0.0.1:9001/2018-06-01/runtime/invocation/next")[0].reason
        == "must not point at this machine"
    )
    assert url_errors("https://hooks.example.com/marketplace") == []
    monkeypatch.setenv("WEBHOOKS_LOOPBACK_PORTS", "8080")  # the local stack allows a test receiver's port
    assert url_errors("http://127.0.0.1:8080/hook") == []
    assert url_errors("http://127.0.0.1:9001/2018-06-01/runtime/invocation/next")[0].reason == (
        "must not point at this machine"
    )  # and no other


def _supplier_order(status: str, version: int) -> dict:
    return {"entity": "SUPPLIER_ORDER", "tenantId": "t1", "supplierId": "s1", "supplierOrderId": "so1",
            "orderId": "o1", "status": status, "version": version, "lines": []}  # fmt: skip


def test_a_supplier_order_event_is_each_status_change_after_its_creation():
    pending, awaiting = _supplier_order("PENDING", 1), _supplier_order("AWAITING_ACCEPTANCE", 2)
    # Its creation is followed within the intake by the status the supplier acts on: no event of its own.
    assert event_for(None, pending) is None
    event = event_for(pending, awaiting)
    assert event["type"] == "supplier_order.awaiting_acceptance"
    assert event["id"] == "so1-v2"  # the order and its version: a repeated stream record repeats the id
    assert event["attributes"] == {"event_type": "supplier_order.awaiting_acceptance", "event_id": "so1-v2",
                                   "tenant_id": "t1", "supplier_id": "s1"}  # fmt: skip
    assert event_for(awaiting, _supplier_order("AWAITING_ACCEPTANCE", 3)) is None  # same status
    assert (
        event_for({"entity": "IMPORT", "status": "RUNNING"}, {"entity": "IMPORT", "status": "DONE"}) is None
    )
    assert event_for(awaiting, None) is None  # a deletion


def test_a_supplier_or_listing_event_is_each_status_change_after_its_creation_named_by_its_kind():
    def listing(status: str, version: int, **more: object) -> dict:
        return {"entity": "PRODUCT", "tenantId": "t1", "supplierId": "s1", "sku": "LAMP-1", "status": status,
                "version": version, "updatedAt": f"2026-12-07T10:00:0{version}Z", "price": {"amount": 1},
                **more}  # fmt: skip

    pending = listing("PENDING", 1)
    assert event_for(None, pending) is None  # its creation: the supplier has the API's answer
    flag = {"field": "price", "reason": "above the category's bound", "value": "999999"}
    flagged = event_for(pending, listing("FLAGGED", 2, flags=[flag]))
    assert flagged["type"] == "listing.flagged" and flagged["id"] == "s1:LAMP-1-v2"
    # What to fix, never the value; no other field of the record.
    assert flagged["body"] == {"event": "listing.flagged", "eventId": "s1:LAMP-1-v2", "tenantId": "t1",
                               "supplierId": "s1", "sku": "LAMP-1", "status": "FLAGGED", "version": 2,
                               "flags": [{"field": "price", "reason": "above the category's bound"}],
                               "reason": None, "at": "2026-12-07T10:00:02Z"}  # fmt: skip
    assert flagged["attributes"] == {"event_type": "listing.flagged", "event_id": "s1:LAMP-1-v2",
                                     "tenant_id": "t1", "supplier_id": "s1"}  # fmt: skip
    assert event_for(listing("FLAGGED", 2), listing("FLAGGED", 3)) is None  # a fix that keeps the status
    assert (
        event_for(listing("FLAGGED", 3), listing("PENDING", 4))["type"] == "listing.pending"
    )  # back to review
    supplier = {"entity": "SUPPLIER", "tenantId": "t1", "supplierId": "s1", "version": 1, "status": "PENDING",
                "legalName": "Acme", "contactEmail": "ops@acme.example"}  # fmt: skip
    rejected = event_for(
        supplier, {**supplier, "version": 2, "status": "REJECTED", "statusReason": "blocklisted"}
    )
    assert (rejected["type"], rejected["id"], rejected["body"]["reason"]) == (
        "supplier.rejected",
        "s1-v2",
        "blocklisted",
    )
    assert "contactEmail" not in rejected["body"] and "legalName" not in rejected["body"]


def test_a_page_token_of_the_right_partition_with_a_key_dynamodb_refuses_is_a_400():
    """Each of these decodes to the caller's partition, but DynamoDB would refuse it as an
    ExclusiveStartKey (a service error, a 5xx): each is a 400 naming the token's field instead."""
    pk = {"S": "TENANT#a#X"}
    index = {"PK": pk, "SK": {"S": "RECORD"}, "GSI1PK": pk, "GSI1SK": {"S": "2026"}}
    assert decode_token(encode_token(index), "GSI1PK", "TENANT#a#X", "GSI1SK") == index
    for bad in (
        {"PK": pk, "SK": {"N": "1"}},  # a number where the key is a string
        {"PK": pk, "SK": "1"},  # no type at all
        {"PK": pk},  # no sort key
        {"PK": pk, "SK": {"S": "1"}, "extra": {"S": "x"}},  # an attribute that is no key
        {"PK": pk, "SK": {"S": ""}},  # an empty key
        {"PK": pk, "SK": {"S": "x" * 1025}},  # longer than a sort key may be
        {"PK": pk, "SK": {"S": "\ud800"}},  # a lone surrogate
        {"PK": pk, "SK": {"S": "1", "N": "1"}},  # two types
    ):
        with pytest.raises(InvalidInput) as info:
            decode_token(encode_token(bad), "PK", "TENANT#a#X")
        assert info.value.fields[0].field == "nextToken", bad
    with pytest.raises(InvalidInput):  # the index's own keys missing
        decode_token(encode_token({"PK": pk, "SK": {"S": "RECORD"}}), "GSI1PK", "TENANT#a#X", "GSI1SK")
    with pytest.raises(InvalidInput) as info:  # outside the queried sort key prefix, named as asked
        decode_token(encode_token({"PK": pk, "SK": {"S": "AUDIT#1"}}), "PK", "TENANT#a#X", sk_prefix="PRODUCT#",
                     field="listingsToken")  # fmt: skip
    assert info.value.fields[0].field == "listingsToken"


def test_a_proposal_is_announced_as_the_records_proposal_and_its_approval_by_the_record_it_changed():
    """D41: a proposal's flag and rejection are ``<kind>.proposal_<status>`` with ids of their own;
    its creation and its approved status are no events; the record's write that applied it is
    ``<kind>.proposal_approved`` with the record's new version."""

    def proposal(status: str, version: int) -> dict:
        return {"entity": "PRODUCT_PROPOSAL", "tenantId": "t1", "supplierId": "s1", "sku": "LAMP-1",
                "status": status, "version": version, "category": "weapons"}  # fmt: skip

    assert event_for(None, proposal("PENDING", 1)) is None
    flagged = event_for(proposal("PENDING", 1), proposal("FLAGGED", 2))
    assert (flagged["type"], flagged["id"]) == ("listing.proposal_flagged", "s1:LAMP-1-proposal-v2")
    rejected = event_for(proposal("PENDING", 1), proposal("REJECTED", 2))
    assert (rejected["type"], rejected["body"]["sku"]) == ("listing.proposal_rejected", "LAMP-1")
    assert event_for(proposal("PENDING", 1), proposal("ACTIVE", 2)) is None  # announced once applied
    assert event_for(proposal("REJECTED", 2), proposal("PENDING", 3)) is None  # a new proposal
    live = {"entity": "SUPPLIER", "tenantId": "t1", "supplierId": "s1", "status": "APPROVED", "version": 4}
    applied = {**live, "version": 5, "appliedProposal": {"proposal": 2, "version": 5, "fields": ["taxId"]}}
    approved = event_for(live, applied)
    assert (approved["type"], approved["id"], approved["body"]["version"]) == (
        "supplier.proposal_approved",
        "s1-v5",
        5,
    )
    # A later change of the record (an order's reservation) carries the marker but is no second event.
    assert event_for(applied, {**applied, "version": 6}) is None

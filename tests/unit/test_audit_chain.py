"""The hash-chained audit trail (D48): each entry links to the one before it, personal values are
committed so that an erasure keeps every hash, the digests name what the table lost, and ``verify``
names the first entry that does not match. Entries are written as the audit function writes them
(``audit.audit_entry`` then ``audit.record``) into a table shaped as the stack's, without its stream."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from marketplace import audit, clock, keys
from marketplace.repository import Table


@pytest.fixture
def table(quiet_table) -> Table:
    # The digests start here (a first run reads two days of hourly partitions: slow on moto).
    state = keys.audit_digest_state()
    if quiet_table.get(*state) is None:
        quiet_table.put(
            {"PK": state[0], "SK": state[1], "through": clock.iso(clock.now() - timedelta(minutes=5))}
        )
    return quiet_table


def digest_now(table: Table, store: audit.DigestStore, tenant: str) -> list[str]:
    """The digests job run now, reaching the entries written until now (it waits a minute for them
    on a schedule); the keys of the tenant's digests it wrote."""
    written = audit.write_digests(table, store, clock.now() + audit.DIGEST_LAG)
    return [key for key in written if key.startswith(keys.audit_digest_prefix(tenant))]


@pytest.fixture
def store(stack) -> audit.DigestStore:
    s3 = stack.client("s3")
    name = f"digests-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return audit.DigestStore(name, s3)


def supplier(tenant: str, supplier_id: str, version: int, **fields: Any) -> dict[str, Any]:
    return {
        "PK": keys.supplier_pk(tenant, supplier_id), "SK": keys.RECORD_SK, "entity": "SUPPLIER",
        "tenantId": tenant, "supplierId": supplier_id, "version": version, "createdAt": "2026-12-01T10:00:00.000Z",
        "updatedAt": f"2026-12-01T10:00:0{version}.000Z", "updatedBy": "admin:a1", "legalName": "Globex GmbH",
        "contactEmail": "einkauf@globex.de", "phone": "+49 30 1234567", "status": "APPROVED", **fields,
    }  # fmt: skip


def write_trail(table: Table, tenant: str, supplier_id: str, versions: int = 3) -> list[dict[str, Any]]:
    """A supplier created and changed ``versions - 1`` times, audited as its stream delivers it."""
    old = None
    for version in range(1, versions + 1):
        new = supplier(tenant, supplier_id, version, legalName=f"Globex {version}")
        entry = audit.audit_entry(f"ev-{version}", "MODIFY" if old else "INSERT", "", old, new)
        assert entry is not None and audit.record(table, entry)
        old = new
    return trail(table, tenant, supplier_id)


def trail(table: Table, tenant: str, supplier_id: str) -> list[dict[str, Any]]:
    return list(table.partition(keys.supplier_pk(tenant, supplier_id), keys.audit_prefix(keys.RECORD_SK)))


def findings(table: Table, store: audit.DigestStore, tenant: str) -> list[str]:
    return [str(f) for f in audit.verify_tenant(table, store, tenant)[1]]


def test_the_canonical_form_is_sorted_compact_utf8_with_numbers_as_plain_decimal_strings():
    value = {
        "b": Decimal("2.50"),
        "a": [1, True, None, "Müller"],
        "c": Decimal("100"),
        "d": {"z": 0, "y": "x"},
    }
    assert (
        audit.canonical(value) == '{"a":["1",true,null,"Müller"],"b":"2.5","c":"100","d":{"y":"x","z":"0"}}'
    )
    assert audit.sha256("abc") == hashlib.sha256(b"abc").hexdigest()


def test_each_entry_links_to_the_one_before_and_a_repeated_stream_record_changes_nothing(
    table, store, tenant
):
    entries = write_trail(table, tenant, "s1")
    assert [e["version"] for e in entries] == [1, 2, 3]
    assert entries[0]["prev"] == audit.GENESIS
    assert [e["prev"] for e in entries[1:]] == [e["hash"] for e in entries[:-1]]
    assert all(audit.entry_hash(e) == e["hash"] for e in entries)
    # Version 2's stream record again, after version 3 was written: the same entry, not a fork.
    again = audit.audit_entry("ev-2", "MODIFY", "", supplier(tenant, "s1", 1), supplier(tenant, "s1", 2))
    assert audit.record(table, again) is False
    assert trail(table, tenant, "s1") == entries
    assert findings(table, store, tenant) == []


def test_verify_names_the_entry_edited_behind_the_api(table, store, tenant):
    entries = write_trail(table, tenant, "s1")
    write_trail(table, tenant, "s2")
    edited = {**entries[1], "by": "admin:someone-else"}
    table.put(edited)
    assert findings(table, store, tenant) == [
        "SUPPLIER#s1 RECORD version 2: its content does not match its hash: it was changed"
    ]


def test_verify_names_a_personal_value_edited_behind_the_api(table, store, tenant):
    entries = write_trail(table, tenant, "s1")
    table.put({**entries[0], "after": {**entries[0]["after"], "contactEmail": "other@globex.de"}})
    assert findings(table, store, tenant) == [
        "SUPPLIER#s1 RECORD version 1: after.contactEmail does not match its commitment: it was changed"
    ]


def test_verify_names_the_gap_a_deleted_entry_leaves(table, store, tenant):
    entries = write_trail(table, tenant, "s1", versions=4)
    table.delete(entries[1]["PK"], entries[1]["SK"])
    assert findings(table, store, tenant) == [
        "SUPPLIER#s1 RECORD version 3: version 2 of the trail is missing before it (deleted)"
    ]


def test_the_digest_names_a_deleted_last_entry_and_a_trail_rewritten_with_fresh_hashes(table, store, tenant):
    entries = write_trail(table, tenant, "s1")
    [key] = digest_now(table, store, tenant)
    digest = json.loads(store.read(key))
    assert digest["heads"] == [{"pk": entries[-1]["PK"], "record": "RECORD", "sk": entries[-1]["SK"], "version": "3",
                                "hash": entries[-1]["hash"]}]  # fmt: skip
    assert digest["previous"] == audit.GENESIS and findings(table, store, tenant) == []
    # The last entry deleted: nothing after it to break a link, but the digest has it.
    table.delete(entries[-1]["PK"], entries[-1]["SK"])
    name = key.rsplit("/", 1)[-1]
    assert findings(table, store, tenant) == [
        f"SUPPLIER#s1 RECORD version 3: is in digest {name} and missing from the trail (deleted)"
    ]
    # Put back rewritten, its hash computed afresh: the chain holds, the digest does not.
    forged = {**entries[-1], "by": "admin:forger"}
    forged["hash"] = audit.entry_hash(forged)
    table.put(forged)
    assert findings(table, store, tenant) == [
        f"SUPPLIER#s1 RECORD version 3: differs from digest {name}: it was changed"
    ]


def test_each_digest_names_the_one_before_it(table, store, tenant):
    write_trail(table, tenant, "s1", versions=1)
    [first] = digest_now(table, store, tenant)
    write_trail(table, tenant, "s2", versions=1)
    [second] = digest_now(table, store, tenant)
    assert json.loads(store.read(second))["previous"] == hashlib.sha256(store.read(first)).hexdigest()
    assert digest_now(table, store, tenant) == []  # nothing new: no digest
    assert findings(table, store, tenant) == []


def test_an_erasure_masks_the_trail_and_every_hash_still_holds(table, store, tenant):
    entries = write_trail(table, tenant, "s1")
    erased = {k: v for k, v in supplier(tenant, "s1", 4).items() if k not in ("contactEmail", "phone")}
    erased.update(erasedAt="2026-12-01T11:00:00.000Z", erasedBy="admin:a1", legalName="Globex 3")
    entry = audit.audit_entry("ev-4", "MODIFY", "", supplier(tenant, "s1", 3, legalName="Globex 3"), erased)
    assert entry["action"] == "erased" and audit.record(table, entry)
    after = trail(table, tenant, "s1")
    text = json.dumps(after, default=str)
    assert "einkauf@globex.de" not in text and "+49 30 1234567" not in text
    assert [e["hash"] for e in after[:3]] == [e["hash"] for e in entries]
    assert after[3]["before"]["contactEmail"] == audit.ERASED and not after[3]["salts"]
    assert findings(table, store, tenant) == []
    # A commitment changed after the erasure (its value gone) still breaks the entry's hash.
    table.put({**after[0], "commitments": {**after[0]["commitments"], "after.phone": audit.sha256("x")}})
    assert findings(table, store, tenant) == [
        "SUPPLIER#s1 RECORD version 1: its content does not match its hash: it was changed"
    ]


def test_a_value_masked_without_an_erasure_is_named(table, store, tenant):
    entries = write_trail(table, tenant, "s1", versions=2)
    audit.mask_trail(table, entries[0]["PK"], entries[0]["record"])
    assert findings(table, store, tenant) == [
        "SUPPLIER#s1 RECORD version 1: after.contactEmail is masked but the trail records no erasure"
    ]


def test_a_webhook_secret_never_reaches_the_trail_and_a_deleted_record_is_the_version_after_its_last():
    hook = {"PK": "TENANT#t#SUPPLIER#s", "SK": "WEBHOOK", "entity": "WEBHOOK", "tenantId": "t", "version": 2,
            "url": "https://example.com/h", "secret": "s3cr3t-value", "createdAt": "C"}  # fmt: skip
    changed = audit.audit_entry("e", "MODIFY", "T", {**hook, "version": 1, "secret": "old-s3cr3t"}, hook)
    assert changed is not None and "s3cr3t" not in json.dumps(changed) and "secret" in changed["changed"]
    entry = {"PK": "TENANT#t#BLOCKLIST", "SK": "DOMAIN#x.example", "entity": "BLOCKLIST", "tenantId": "t",
             "createdAt": "C1"}  # fmt: skip
    removed = audit.audit_entry("e", "REMOVE", "T", entry, None)
    assert removed is not None and (removed["action"], removed["version"]) == ("deleted", 2)
    assert removed["SK"] == keys.audit_sk("DOMAIN#x.example", "C1", 2)


def test_the_blocked_lists_entries_sort_after_its_audit_trail():
    """The blocked list is listed from ``keys.after_audit()`` on: a kind whose key sorted below the
    audit's would vanish from ``GET /admin/blocklist``."""
    from marketplace import blocklist

    for kind in blocklist.KINDS:
        sort_key = blocklist.entry_sort_key(kind, "a", "DE")
        assert sort_key > keys.after_audit() > keys.audit_sk(sort_key, "2026-12-01T10:00:00.000Z", 1), kind


def test_a_page_token_below_the_blocked_lists_range_is_refused():
    """A token naming an audit entry of the blocked list's partition (below its listed range) is a
    400 naming the token, not a service error."""
    from marketplace.errors import InvalidInput
    from marketplace.repository import decode_token, encode_token

    pk = keys.blocklist_pk("t")
    inside = {"PK": {"S": pk}, "SK": {"S": "DOMAIN#x.example"}}
    below = {"PK": {"S": pk}, "SK": {"S": keys.audit_sk("DOMAIN#x.example", "C", 1)}}
    assert decode_token(encode_token(inside), "PK", pk, sk_above=keys.after_audit()) == inside
    with pytest.raises(InvalidInput):
        decode_token(encode_token(below), "PK", pk, sk_above=keys.after_audit())

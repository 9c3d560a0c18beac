"""The append-only, hash-chained audit trail, written from the table's stream (D9, D48).

Each change of an audited record becomes one entry beside the record, keyed by the record's version
(``keys.audit_sk``): a stream record delivered twice is the same entry, and the conditional put leaves
the first one untouched. Each entry carries ``prev``, the ``hash`` of the entry before it in the
record's trail (``GENESIS`` for the first), and its own ``hash``: SHA-256 of its canonical form
(:func:`canonical`, :func:`entry_hash`; docs/audit.md spells it out for an auditor).

Personal fields (:data:`AUDITED`) are committed, not hashed raw: the hash covers ``SHA-256(salt ||
canonical(value))``, kept in the entry's ``commitments``, so an erasure (:func:`mask_trail`) removes the
value and its salt and every hash still holds. A scheduled job writes a digest of each tenant's
changed chains to a write-once bucket (:func:`write_digests`); :func:`verify` checks the chains and
the digests and names the first entry that does not match.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from marketplace import clock, config, keys
from marketplace.adapters import aws
from marketplace.errors import Conflict
from marketplace.repository import Table

GENESIS = "0" * 64
ERASED = "[erased]"
ERASED_AT = "erasedAt"  # set on a record by an erasure (suppliers.Suppliers.erase)
# Entries written up to this long before a digest run are in its digest: GSI4 is eventually
# consistent, and an entry it shows late would otherwise fall between two digests.
DIGEST_LAG = timedelta(seconds=60)
# Without a previous run, the first digest reaches this far back (the stream keeps records 24 h).
FIRST_DIGEST_SINCE = timedelta(days=2)


@dataclass(frozen=True)
class Audited:
    """How one kind of record is audited: ``personal`` fields are committed (erasable, D48),
    ``secret`` ones never copied (the trail names them in ``changed`` only)."""

    personal: tuple[str, ...] = ()
    secret: tuple[str, ...] = ()


# One line per audited kind (the audit function's stream filter in template.yaml names the same
# entities: tests/template/test_template.py checks that the two agree).
AUDITED: dict[str, Audited] = {
    "SUPPLIER": Audited(personal=("contactEmail", "phone")),
    "PRODUCT": Audited(),
    "SUPPLIER_ORDER": Audited(),
    "ORDER": Audited(personal=("shipTo",)),
    "COMMISSION_RULES": Audited(),
    "BLOCKLIST": Audited(),
    "WEBHOOK": Audited(secret=("secret",)),
    "TENANT": Audited(personal=("admins",)),
    "STATEMENT": Audited(),
    "RULE_PACK": Audited(),
}
AUDITED_ENTITIES = frozenset(AUDITED)
_NOT_AUDITED_FIELDS = {
    "PK",
    "SK",
    "GSI1PK",
    "GSI1SK",
    "GSI2PK",
    "GSI2SK",
    "GSI3PK",
    "GSI3SK",
    "entity",
    "tenantId",
}
# What the hash covers, beside ``before`` and ``after`` (sealed: personal values as commitments).
_HASHED = ("tenantId", "PK", "SK", "record", "version", "action", "at", "by", "changed", "written", "prev")


# ------------------------------------------------------------------------------- canonical form
def _plain(value: Any) -> Any:
    """JSON types for hashing: numbers as strings of their plain decimal digits without trailing
    zeros (DynamoDB keeps 2.50 as 2.5), sets as sorted lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        text = format(Decimal(str(value)).normalize(), "f")
        return "0" if text in ("-0", "") else text
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=canonical)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    raise TypeError(f"cannot hash a {type(value).__name__}")


def canonical(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is: ``json.dumps(..., sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` of :func:`_plain`."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def commitment(salt: str, value: Any) -> str:
    """What the hash covers for a personal value: SHA-256 of the salt (hex) then the value's canonical form."""
    return sha256(salt + canonical(value))


def _sealed(image: Mapping[str, Any] | None, side: str, commitments: Mapping[str, str]) -> Any:
    if image is None:
        return None
    return {k: commitments.get(f"{side}.{k}", v) for k, v in image.items()}


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 of the entry's canonical form: the ``_HASHED`` fields, and ``before``/``after`` with
    each personal value replaced by its commitment."""
    commitments = entry.get("commitments") or {}
    body = {name: entry.get(name) for name in _HASHED}
    body["before"] = _sealed(entry.get("before"), "before", commitments)
    body["after"] = _sealed(entry.get("after"), "after", commitments)
    return sha256(canonical(body))


# ------------------------------------------------------------------------------- writing entries
def _public(image: dict[str, Any] | None, kind: Audited) -> dict[str, Any] | None:
    if image is None:
        return None
    return {k: v for k, v in image.items() if k not in _NOT_AUDITED_FIELDS and k not in kind.secret}


def _position(event_name: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> tuple[str, int]:
    """(the record's creation, its version) that this change makes: a record without a version
    (a customer order, a blocked-list entry) is version 1 when written; a deletion is the version
    after the last one."""
    if event_name == "REMOVE" or new is None:
        image = old or {}
        return str(image.get("createdAt", "")), int(image.get("version", 1)) + 1
    return str(new.get("createdAt", "")), int(new.get("version", 1))


def audit_entry(
    event_id: str, event_name: str, created_at: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The audit entry for one stream record (without its link: :func:`record` adds it), or None
    when the record is not audited."""
    image = new or old
    if not image or image.get("entity") not in AUDITED:
        return None
    kind = AUDITED[image["entity"]]
    before, after = _public(old, kind), _public(new, kind)
    changed = sorted(
        k
        for k in set(_public(old, Audited()) or {}) | set(_public(new, Audited()) or {})
        if (old or {}).get(k) != (new or {}).get(k)
    )
    erasure = bool(new and new.get(ERASED_AT) and new.get(ERASED_AT) != (old or {}).get(ERASED_AT))
    commitments: dict[str, str] = {}
    salts: dict[str, str] = {}
    for side, shown in (("before", before), ("after", after)):
        for name in kind.personal:
            if shown is None or shown.get(name) in (None, ERASED):
                continue
            salt = secrets.token_hex(16)
            commitments[f"{side}.{name}"] = commitment(salt, shown[name])
            if erasure:  # the erasure's own entry commits to what it erased and keeps none of it
                shown[name] = ERASED
            else:
                salts[f"{side}.{name}"] = salt
    incarnation, version = _position(event_name, old, new)
    when = (new or {}).get("updatedAt") or created_at
    who = next(
        (str(i[k]) for i in (new or {}, old or {}) for k in ("updatedBy", "createdBy") if i.get(k)), "unknown"
    )
    action = (
        "erased"
        if erasure
        else {"INSERT": "created", "MODIFY": "changed", "REMOVE": "deleted"}.get(event_name, event_name)
    )
    return {
        "PK": image["PK"], "SK": keys.audit_sk(image["SK"], incarnation, version), "entity": "AUDIT",
        "tenantId": image.get("tenantId"), "record": image["SK"], "version": version, "action": action,
        "at": when, "by": who, "changed": changed, "before": before, "after": after,
        "commitments": commitments, "salts": salts, "eventId": event_id,
    }  # fmt: skip


def record(table: Table, entry: dict[str, Any]) -> bool:
    """Link the entry to the one before it in its record's trail and write it once; False if this
    version was already recorded (a repeated stream record). An erasure then masks the trail's
    earlier entries (they were all written: the stream is ordered per record)."""
    found = table.last_up_to(entry["PK"], keys.audit_prefix(entry["record"]), entry["SK"])
    if found is not None and found["SK"] == entry["SK"]:
        return False
    written = clock.now()
    linked = {
        **entry, "prev": (found or {}).get("hash", GENESIS), "written": clock.iso(written),
        "GSI4PK": keys.audit_log_partition(written, keys.audit_log_shard(entry["PK"])), "GSI4SK": clock.iso(written),
    }  # fmt: skip
    linked["hash"] = entry_hash(linked)
    try:
        table.put_new(linked)
    except Conflict:
        return False
    if entry["action"] == "erased":
        mask_trail(table, entry["PK"], entry["record"])
    return True


def mask_trail(table: Table, pk: str, record_sk: str) -> int:
    """Replace every personal value in the record's trail by ``ERASED`` and drop its salt, keeping
    its commitment (so every hash still holds); the number of entries changed."""
    masked = 0
    for item in table.partition(pk, keys.audit_prefix(record_sk)):
        salts = dict(item.get("salts") or {})
        changed = False
        for path in item.get("commitments") or {}:
            side, name = path.split(".", 1)
            image = item.get(side)
            if image is not None and image.get(name) not in (None, ERASED):
                image[name] = ERASED
                changed = True
            changed = salts.pop(path, None) is not None or changed
        if changed:
            table.replace({**item, "salts": salts})
            masked += 1
    return masked


def view(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry.get(k) for k in ("at", "by", "action", "changed", "before", "after")}


# ------------------------------------------------------------------------------- digests
class DigestStore:
    """The digests' bucket (Object Lock on AWS: an object cannot be changed or deleted while retained)."""

    def __init__(self, bucket: str | None = None, client: Any = None) -> None:
        self.bucket = bucket or config.require("AUDIT_DIGEST_BUCKET_NAME")
        self._client = client

    @property
    def s3(self) -> Any:
        return self._client or aws.client("s3")

    def keys(self, tenant_id: str) -> list[str]:
        found: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=keys.audit_digest_prefix(tenant_id)):
            found += [o["Key"] for o in page.get("Contents", [])]
        return sorted(found)

    def read(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def write(self, key: str, body: bytes) -> None:
        # Object Lock needs a checksum with every write.
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256",
                           ContentType="application/json")  # fmt: skip


def _head(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"pk": item["PK"], "record": item["record"], "sk": item["SK"], "version": int(item["version"]),
            "hash": item["hash"]}  # fmt: skip


def write_digests(table: Table, store: DigestStore, now: datetime | None = None) -> list[str]:
    """One digest per tenant whose trails changed since the last run: the head (last entry) of each
    chain that changed, the hash of the tenant's previous digest, and a root over the heads. The
    keys of the digests written."""
    now = now or clock.now()
    state_pk, state_sk = keys.audit_digest_state()
    state = table.get(state_pk, state_sk)
    until_moment = now - DIGEST_LAG
    since = str(state["through"]) if state else clock.iso(until_moment - FIRST_DIGEST_SINCE)
    until = clock.iso(until_moment)
    if until <= since:
        return []
    heads: dict[str, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
    hour = clock.parse_iso(since).replace(minute=0, second=0, microsecond=0)
    while hour <= until_moment:
        for shard in range(keys.AUDIT_LOG_SHARDS):
            for item in table.index_range("GSI4", keys.audit_log_partition(hour, shard), since, until):
                if item["GSI4SK"] == since:  # in the previous run's digest
                    continue
                chain = (item["PK"], item["record"])
                known = heads[item["tenantId"]].get(chain)
                if known is None or item["SK"] > known["sk"]:
                    heads[item["tenantId"]][chain] = _head(item)
        hour += timedelta(hours=1)
    written = []
    for tenant_id, chains in sorted(heads.items()):
        existing = store.keys(tenant_id)
        previous = hashlib.sha256(store.read(existing[-1])).hexdigest() if existing else GENESIS
        listed = sorted(chains.values(), key=lambda h: (h["pk"], h["record"]))
        document = {"tenantId": tenant_id, "from": since, "until": until, "previous": previous,
                    "heads": listed, "root": sha256(canonical(listed))}  # fmt: skip
        key = keys.audit_digest_key(tenant_id, until)
        store.write(key, canonical(document).encode())
        written.append(key)
    table.put({"PK": state_pk, "SK": state_sk, "entity": "AUDIT_DIGEST_STATE", "through": until})
    return written


# ------------------------------------------------------------------------------- verification
@dataclass(frozen=True)
class Finding:
    """An entry (or a digest) that does not match: which record, which version, and why."""

    pk: str
    record: str
    version: int | None
    reason: str

    def __str__(self) -> str:
        where = self.pk.split("#", 2)[-1] if self.pk.startswith("TENANT#") else self.pk
        version = f" version {self.version}" if self.version is not None else ""
        return f"{where} {self.record}{version}: {self.reason}"


def _chain_findings(entries: list[dict[str, Any]]) -> Finding | None:
    """The first entry of one record's trail (in key order) that does not match, if any."""
    erased = any(e.get("action") == "erased" for e in entries)
    previous: dict[str, Any] | None = None
    for entry in entries:
        problem = _problem(entry, previous, erased)
        if problem:
            return Finding(entry["PK"], str(entry.get("record", "?")), int(entry.get("version", 0)), problem)
        previous = entry
    return None


def _problem(entry: dict[str, Any], previous: dict[str, Any] | None, erased: bool) -> str | None:
    """Why ``entry`` does not match (its content, its personal values, its place after ``previous``)."""
    if "hash" not in entry:
        return "has no hash (not chained)"
    salts = entry.get("salts") or {}
    for path, committed in sorted((entry.get("commitments") or {}).items()):
        side, name = path.split(".", 1)
        value = (entry.get(side) or {}).get(name)
        if value == ERASED:
            if not erased:
                return f"{path} is masked but the trail records no erasure"
        elif path not in salts or commitment(salts[path], value) != committed:
            return f"{path} does not match its commitment: it was changed"
    if entry_hash(entry) != entry["hash"]:
        return "its content does not match its hash: it was changed"
    version = int(entry.get("version", 0))
    same_run = previous is not None and previous["SK"].rsplit("#", 1)[0] == entry["SK"].rsplit("#", 1)[0]
    expected = int(previous["version"]) + 1 if previous is not None and same_run else 1
    if version < expected:
        return f"comes after version {int(previous['version']) if previous else 0}: out of order (inserted)"
    if version != expected:
        gap = f"version {expected}" if version == expected + 1 else f"versions {expected} to {version - 1}"
        return f"{gap} of the trail is missing before it (deleted)"
    if entry.get("prev") != (previous["hash"] if previous else GENESIS):
        return "does not link to the entry before it: an entry between them was deleted or inserted"
    return None


def verify(entries: Iterable[dict[str, Any]], digests: Iterable[tuple[str, bytes]]) -> list[Finding]:
    """Every chain's first mismatch, then every digest's (records that a digest names and the table
    no longer has, or has otherwise); empty when the trail is intact."""
    chains: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        chains[(entry["PK"], str(entry.get("record", "")))].append(entry)
        by_key[(entry["PK"], entry["SK"])] = entry
    findings = []
    for chain in sorted(chains):
        found = _chain_findings(sorted(chains[chain], key=lambda e: e["SK"]))
        if found:
            findings.append(found)
    previous = GENESIS
    for key, body in digests:
        name = key.rsplit("/", 1)[-1]
        try:
            document = json.loads(body)
        except ValueError:
            findings.append(Finding(key, "digest", None, "is not JSON"))
            continue
        if document.get("previous") != previous:
            findings.append(
                Finding(
                    key, "digest", None, "does not follow the digest before it (one was removed or changed)"
                )
            )
        if sha256(canonical(document.get("heads", []))) != document.get("root"):
            findings.append(Finding(key, "digest", None, "its root does not match its heads"))
        for head in document.get("heads", []):
            entry = by_key.get((head["pk"], head["sk"]))
            if entry is None:
                findings.append(
                    Finding(
                        head["pk"],
                        head["record"],
                        int(head["version"]),
                        f"is in digest {name} and missing from the trail (deleted)",
                    )
                )
            elif entry.get("hash") != head["hash"] or entry_hash(entry) != head["hash"]:
                findings.append(
                    Finding(
                        head["pk"],
                        head["record"],
                        int(head["version"]),
                        f"differs from digest {name}: it was changed",
                    )
                )
        previous = hashlib.sha256(body).hexdigest()
    return findings


def tenant_entries(table: Table, tenant_id: str) -> Iterable[dict[str, Any]]:
    """Every audit entry of the tenant (a whole-table Scan: verification is an offline check)."""
    return table.scan_where({"entity": "AUDIT", "tenantId": tenant_id})


def verify_tenant(table: Table, store: DigestStore, tenant_id: str) -> tuple[int, list[Finding]]:
    """(entries checked, findings) for one tenant's trails and digests."""
    entries = list(tenant_entries(table, tenant_id))
    digests = [(key, store.read(key)) for key in store.keys(tenant_id)]
    return len(entries), verify(entries, digests)

"""Every key shape of the single table, and of the S3 objects, in one place.

Tenant first, so that every key is scoped to one retailer. Nothing else in the project composes a
key: the domain modules call these functions, and the state machines receive the keys they write in
their execution input (:func:`marketplace.reviewed.Kind.start_input`), so no key string is in the ASL.
``docs/architecture.md``'s data-layout table is generated from :data:`LAYOUT` (``make docs``).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

RECORD_SK = "RECORD"
WEBHOOK_SK = "WEBHOOK"
PRODUCT_SK_PREFIX = "PRODUCT#"
AUDIT_SK_PREFIX = "AUDIT#"
SHIPMENT_SK_PREFIX = "SHIPMENT#"
COMMISSION_RULES_SK = "COMMISSION_RULES"
LEDGER_SK_PREFIX = "ENTRY#"
PERFORMANCE_DAY_SK_PREFIX = "DAY#"
COUNTED_SK_PREFIX = "COUNTED#"
STATEMENT_SK_PREFIX = "STATEMENT#"
SETTLEMENT_SK = "SETTLEMENT"
RULE_PACK_SK = "RULE_PACK"
PROPOSAL_SK_PREFIX = "PROPOSAL#"
EXPIRY_SHARDS = 10
CORRECTION_SHARDS = 10
AUDIT_LOG_SHARDS = 10


def tenant_prefix(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


# ------------------------------------------------------------------------------- suppliers, listings
def supplier_pk(tenant_id: str, supplier_id: str) -> str:
    """A supplier's partition: its record, listings, webhook, deliveries and imports."""
    return f"TENANT#{tenant_id}#SUPPLIER#{supplier_id}"


def product_sk(sku: str) -> str:
    """A listing, beside its supplier's record."""
    return f"{PRODUCT_SK_PREFIX}{sku}"


def proposal_sk(record_sk: str) -> str:
    """A record's proposed version (a high-risk change waiting for review), beside the record: one
    per record (``PROPOSAL#RECORD`` for a supplier, ``PROPOSAL#PRODUCT#<sku>`` for a listing)."""
    return f"{PROPOSAL_SK_PREFIX}{record_sk}"


def entity_pk(tenant_id: str, entity: str) -> str:
    """GSI2: every record of one type in a tenant, newest first (``GET /suppliers``)."""
    return f"TENANT#{tenant_id}#{entity}"


def created_sk(created_at: str, record_id: str) -> str:
    """GSI2's sort key: creation time, then the id so that two records of one millisecond differ."""
    return f"{created_at}#{record_id}"


def status_gsi_pk(tenant_id: str, entity: str, status: str) -> str:
    """GSI1: a tenant's records of one type in one status, newest first by GSI1SK."""
    return f"TENANT#{tenant_id}#{entity}#STATUS#{status}"


def tax_claim_pk(tenant_id: str, country: str, normalized_tax_id: str) -> str:
    """Who claims a tax id in the tenant (the duplicate rule reads it)."""
    return f"TENANT#{tenant_id}#TAXID#{country}#{normalized_tax_id}"


def tax_claim_sk(supplier_id: str) -> str:
    return f"SUPPLIER#{supplier_id}"


# ------------------------------------------------------------------------------- blocked list
def blocklist_pk(tenant_id: str) -> str:
    """The tenant's blocked list, one item per entry."""
    return f"TENANT#{tenant_id}#BLOCKLIST"


def blocked_tax_id_sk(country: str, normalized_tax_id: str) -> str:
    return f"TAXID#{country}#{normalized_tax_id}"


def blocked_domain_sk(domain: str) -> str:
    """A blocked domain, matched against a supplier's website and mail domain."""
    return f"DOMAIN#{domain}"


def blocked_name_sk(normalized_name: str) -> str:
    return f"NAME#{normalized_name}"


# ------------------------------------------------------------------------------- audit trail
def audit_prefix(record_sk: str) -> str:
    """Sort-key prefix of one record's trail: the records of a partition keep separate trails."""
    return f"{AUDIT_SK_PREFIX}{record_sk}#"


def audit_sk(record_sk: str, created_at: str, version: int) -> str:
    """One audit entry, one per version of the record (D48): a repeated stream record is the same
    entry, and the trail sorts in the record's own order. ``created_at`` is the record's creation
    (a record deleted and made again, such as a blocked-list entry, starts a new run of versions
    after the old one)."""
    return f"{audit_prefix(record_sk)}{created_at}#{version:012d}"


def after_audit() -> str:
    """Every audit entry's sort key sorts below this one ("$" follows "#"): a partition listed whole
    (the blocked list, whose kinds DOMAIN, NAME and TAXID sort above it) starts its query here."""
    return f"{AUDIT_SK_PREFIX[:-1]}$"


def audit_log_partition(written: datetime, shard: int) -> str:
    """GSI4 (sparse, keys and hashes only): the audit entries written in one hour, sharded; the
    digest job reads them to write each tenant's digest."""
    return _audit_log_key(written.strftime("%Y-%m-%dT%H"), str(shard))


def _audit_log_key(hour: str, shard: str) -> str:
    return f"AUDITLOG#{hour}#{shard}"


def audit_log_shard(record_pk: str) -> int:
    return _shard(record_pk, AUDIT_LOG_SHARDS)


def audit_digest_state() -> tuple[str, str]:
    """Where the digest job keeps the moment its last digests reach (one item for every tenant)."""
    return "AUDIT_DIGEST", "STATE"


def audit_digest_prefix(tenant_id: str) -> str:
    """S3 (the Object Lock bucket): one tenant's digests, oldest first."""
    return f"audit-digests/{tenant_id}/"


def audit_digest_key(tenant_id: str, until: str) -> str:
    return f"{audit_digest_prefix(tenant_id)}{until}.json"


def audit_digest_tenant(key: str) -> str:
    """The tenant of a digest's key (:func:`audit_digest_key`)."""
    return key.removeprefix(audit_digest_prefix("")).split("/", 1)[0]


# ------------------------------------------------------------------------------- orders
def order_pk(tenant_id: str, order_id: str) -> str:
    """A customer order, with the ids of its supplier orders."""
    return f"TENANT#{tenant_id}#ORDER#{order_id}"


def customer_order_pk(tenant_id: str, customer_order_id: str) -> str:
    """Makes a retailer's own order id unique in the tenant."""
    return f"TENANT#{tenant_id}#CUSTOMER_ORDER#{customer_order_id}"


def supplier_order_pk(tenant_id: str, supplier_order_id: str) -> str:
    """One supplier's part of a customer order."""
    return f"TENANT#{tenant_id}#SORDER#{supplier_order_id}"


def return_pk(tenant_id: str, return_id: str) -> str:
    """A return request of a supplier order (its own partition: the return routes name only its id)."""
    return f"TENANT#{tenant_id}#RETURN#{return_id}"


def shipment_sk(created_at: str, shipment_id: str) -> str:
    """A shipment of a supplier order, beside the order; oldest first."""
    return f"{SHIPMENT_SK_PREFIX}{created_at}#{shipment_id}"


def supplier_orders_gsi(tenant_id: str, supplier_id: str) -> str:
    """GSI2: one supplier's orders, newest first."""
    return f"TENANT#{tenant_id}#SUPPLIER#{supplier_id}#SORDER"


def expiry_day_partition(day: datetime, shard: int) -> str:
    """GSI3: one shard of the orders' next deadlines due on one day (UTC). A day, not an hour: every
    sweep reads each partition its look-back covers, 3 days x the shards instead of 49 hours x the
    shards, and the write heat is the same (the deadlines set at one moment share a day as they
    share an hour). D45."""
    return _expiry_key(day.strftime("%Y-%m-%d"), str(shard))


def _expiry_key(day: str, shard: str) -> str:
    return f"EXPIRY#{day}#{shard}"


def deadline_sk(deadline: str, tenant_id: str, supplier_order_id: str) -> str:
    """GSI3 sort key of an order's next deadline: due first, then the order."""
    return f"{deadline}#{tenant_id}#{supplier_order_id}"


def deadline_due_below(now: str) -> str:
    """GSI3 sort keys below this one are deadlines at or before ``now`` ("$" follows "#")."""
    return f"{now}$"


def expiry_partition(deadline: datetime, supplier_order_id: str) -> str:
    """GSI3 partition of an order's next deadline: its day, sharded so no day is hot."""
    return expiry_day_partition(deadline, _shard(supplier_order_id, EXPIRY_SHARDS))


# ------------------------------------------------------------------------------- the platform's tenants
PLATFORM_TENANTS_PK = "PLATFORM#TENANTS"
TENANT_SK_PREFIX = "TENANT#"


def tenant_sk(tenant_id: str) -> str:
    """A tenant's record in the platform partition (outside every tenant's keys: the operator's)."""
    return f"{TENANT_SK_PREFIX}{tenant_id}"


def request_window_pk(tenant_id: str, second: int | str) -> str:
    """A tenant's API requests granted in one second (``second``: Unix time), the fair share's count
    (D52): a key per second, so no one key takes more than that second's leases. The platform's
    accounting, not the tenant's data (no route of the tenant reads it; it expires in a minute), so
    outside the tenant's ``TENANT#<t>#`` keys, as the sweeper's and the digests' index keys are."""
    return f"REQUESTS#{tenant_id}#{second}"


REQUEST_WINDOW_SK = "WINDOW"


# ------------------------------------------------------------------------------- tenant settings, money
def tenant_settings_pk(tenant_id: str) -> str:
    """The tenant's own settings, one item each (its commission rules: ``COMMISSION_RULES_SK``; its
    rule pack, active and draft: ``RULE_PACK_SK``)."""
    return f"TENANT#{tenant_id}#SETTINGS"


def ledger_pk(tenant_id: str, supplier_id: str) -> str:
    """A supplier's ledger: its own partition, apart from the supplier's records and deliveries."""
    return f"TENANT#{tenant_id}#LEDGER#{supplier_id}"


def ledger_sk(at: str, event_id: str, position: int, entry_type: str) -> str:
    """One ledger entry: oldest first, an event's entries in the order it makes them (a sale before
    its commission); the order event's id and the entry's type make a repeated event the same entry."""
    return f"{LEDGER_SK_PREFIX}{at}#{event_id}#{position}#{entry_type}"


# ------------------------------------------------------------------------------- supplier performance
def performance_pk(tenant_id: str, supplier_id: str) -> str:
    """A supplier's performance counters: one item per day, apart from its records and its ledger."""
    return f"TENANT#{tenant_id}#PERFORMANCE#{supplier_id}"


def performance_day_sk(day: str) -> str:
    """The counters of the orders placed on ``day`` (``YYYY-MM-DD``, UTC): the days sort in time order,
    so a window of days is one sort-key range."""
    return f"{PERFORMANCE_DAY_SK_PREFIX}{day}"


def counted_sk(event_id: str) -> str:
    """Beside a supplier order: its event ``event_id`` was counted in its supplier's performance
    (written in the counters' transaction, so a repeated event counts once)."""
    return f"{COUNTED_SK_PREFIX}{event_id}"


def ledger_entries_from(at: str) -> str:
    """The sort key below every entry written at or after ``at`` (and above every earlier one):
    the entries of a period are those between ``ledger_entries_from(start)`` and ``..._from(end)``."""
    return f"{LEDGER_SK_PREFIX}{at}"


def statement_sk(period_start: str, period_id: str) -> str:
    """A supplier's settlement statement of one period, in its ledger's partition: oldest first by
    the period's start (a weekly and a monthly period id do not sort together; their starts do)."""
    return f"{STATEMENT_SK_PREFIX}{period_start}#{period_id}"


def statement_id(period_id: str, supplier_id: str) -> str:
    """A statement's id: its period and its supplier (so a rerun of the period names the same one)."""
    return f"{period_id}.{supplier_id}"


def statement_id_parts(statement_id: str) -> tuple[str, str]:
    """(period id, supplier id) of a statement id (a period id has no dot); ValueError if none."""
    period_id, dot, supplier_id = statement_id.partition(".")
    if not dot or not period_id or not supplier_id:
        raise ValueError(f"{statement_id!r} is not a statement id")
    return period_id, supplier_id


def statement_csv_key(tenant_id: str, supplier_id: str, period_id: str) -> str:
    """S3: a statement's CSV (never expires: the supplier's accounting document)."""
    return f"statements/{tenant_id}/{supplier_id}/{period_id}.csv"


def settlement_tenants() -> str:
    """GSI3: every tenant whose suppliers have ledger entries (its ``SETTLEMENT_SK`` settings item):
    the scheduled start of the settlements reads them. One partition: tenants are retailers, few."""
    return "SETTLEMENT"


# ------------------------------------------------------------------------------- webhooks
def delivery_sk(created_at: str, delivery_id: str) -> str:
    """A webhook delivery, beside its supplier; newest last."""
    return f"DELIVERY#{created_at}#{delivery_id}"


def delivery_status_pk(tenant_id: str, supplier_id: str, status: str) -> str:
    """GSI1: one supplier's deliveries in one status, newest first by GSI1SK."""
    return f"{supplier_pk(tenant_id, supplier_id)}#DELIVERY#STATUS#{status}"


def dedupe_sk(dedupe_key: str) -> str:
    return f"DELIVERYKEY#{dedupe_key}"


# ------------------------------------------------------------------------------- bulk imports
def import_sk(import_id: str) -> str:
    """A bulk import's progress record, beside its supplier."""
    return f"IMPORT#{import_id}"


def upload_key(tenant_id: str, supplier_id: str, import_id: str) -> str:
    """S3: the uploaded CSV file."""
    return f"uploads/{tenant_id}/{supplier_id}/{import_id}.csv"


def report_prefix(tenant_id: str, supplier_id: str, import_id: str) -> str:
    """S3: an import's error reports."""
    return f"reports/{tenant_id}/{supplier_id}/{import_id}/"


# ------------------------------------------------------------------------------- parked corrections
def correction_pk(tenant_id: str) -> str:
    """The tenant's parked corrections (marketplace.corrections): its drain reads this partition only."""
    return f"TENANT#{tenant_id}#CORRECTION"


def correction_sk(kind: str, record_id: str, flagged_version: int) -> str:
    """One correction per record version flagged: a message delivered twice parks the same item."""
    return f"{kind}#{record_id}#v{flagged_version}"


def correction_shard(shard: int) -> str:
    """GSI3: one shard of every tenant's parked corrections (the scheduled drain heartbeats them all)."""
    return f"CORRECTION#{shard}"


def correction_shard_of(tenant_id: str, record_id: str) -> str:
    return correction_shard(_shard(f"{tenant_id}/{record_id}", CORRECTION_SHARDS))


def _shard(text: str, shards: int) -> int:
    """A stable shard of ``shards`` for ``text`` (the same in every process, unlike ``hash``)."""
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % shards


# ------------------------------------------------------------------------------- executions
_NAME_SAFE = re.compile(r"[A-Za-z0-9_-]+")


def execution_name(entity: str, record_id: str, version: int) -> str:
    """Deterministic Step Functions execution name: a record version starts at most one workflow.

    Names allow 80 characters from a restricted set; an id that does not fit (a listing's
    ``supplierId/sku``) is replaced by a digest of itself, which is just as deterministic."""
    prefix, suffix = f"{entity.lower().replace('_', '-')}-", f"-v{version}"
    if _NAME_SAFE.fullmatch(record_id) and len(prefix) + len(record_id) + len(suffix) <= 80:
        return f"{prefix}{record_id}{suffix}"
    return f"{prefix}{hashlib.sha256(record_id.encode()).hexdigest()[:40]}{suffix}"


# ------------------------------------------------------------------------------- the layout, for the docs
# (item, PK, SK, notes): built by calling the functions above with placeholders, so the table
# cannot drift from the code (tests/tools/test_docs.py fails while docs/architecture.md is stale).
_T, _S = "<t>", "<id>"
LAYOUT: tuple[tuple[str, str, str, str], ...] = (
    ("supplier", supplier_pk(_T, _S), RECORD_SK,
     "`version`, `status`, `flags`, `createdAt/By`, `updatedAt/By`; `GSI1` by status, `GSI2` by tenant"),
    ("audit entry", "the audited record's PK", f"`{audit_prefix('<record SK>')}<record createdAt>#<version, 12 digits>`",
     "append-only, hash-chained, written from the table's stream (D48); `GSI4` by the hour written"),
    ("audit digest state", audit_digest_state()[0], audit_digest_state()[1],
     f"`through`: what the digests reach; the digests at S3 `{audit_digest_key(_T, '<until>')}`"),
    ("tax id claim", tax_claim_pk(_T, "<country>", "<tax id>"), tax_claim_sk(_S), "the duplicate rule reads it"),
    ("blocked-list entry", blocklist_pk(_T),
     f"`{blocked_tax_id_sk('<country>', '<tax id>')}`, `{blocked_domain_sk('<domain>')}`, "
     f"`{blocked_name_sk('<name>')}`", ""),
    ("product listing", supplier_pk(_T, "<supplier id>"), product_sk("<sku>"),
     "`quantity` available to sell; `GSI1` only while FLAGGED"),
    ("proposed version", "the record's PK", f"`{proposal_sk(RECORD_SK)}`, `{proposal_sk(product_sk('<sku>'))}`",
     "a high-risk change under review while the record stays live; `GSI1` only while FLAGGED"),
    ("customer order", order_pk(_T, _S), RECORD_SK,
     f"and `{customer_order_pk(_T, '<customer order id>')}` / `{RECORD_SK}` for uniqueness"),
    ("supplier order", supplier_order_pk(_T, _S), RECORD_SK,
     "`status`, `version`, `reserved`, `deadline`; `GSI2` by supplier, `GSI3` while awaiting, "
     "`GSI1` only while FLAGGED"),
    ("shipment", supplier_order_pk(_T, "<supplier order id>"), shipment_sk("<created>", _S),
     "carrier, tracking, the units of each line it carries"),
    ("tenant", PLATFORM_TENANTS_PK, tenant_sk(_T),
     "`version`, `status` (PROVISIONING, LIVE, FAILED, SUSPENDED), `tier`, `admins`, the smoke test's "
     "outcome (D47); written by the operator's routes only"),
    ("request window", request_window_pk(_T, "<unix second>"), REQUEST_WINDOW_SK,
     "`granted`: the tenant's API requests let in during that second, leased by API instances (fair "
     "share, D52); expires a minute later"),
    ("commission rules", tenant_settings_pk(_T), COMMISSION_RULES_SK,
     "`version`, the rates and minimums (D42); audited from the stream"),
    ("rule pack", tenant_settings_pk(_T), RULE_PACK_SK,
     "`version` (moved by each write: `If-Match`), `activeVersion` and `active` (the pack in force), `draft` "
     "(D51); audited from the stream"),
    ("ledger entry", ledger_pk(_T, "<supplier id>"), ledger_sk("<at>", "<order event id>", 0, "<TYPE>"),
     "append-only, written from the order events (sale, commission, refund, commission reversal); "
     "the number is the entry's place in its event"),
    ("performance day", performance_pk(_T, "<supplier id>"), performance_day_sk("<YYYY-MM-DD>"),
     "the counters of the supplier's orders placed that day (UTC), each moved by `ADD` (D46); expires 120 days "
     "after the day"),
    ("counted event", supplier_order_pk(_T, "<supplier order id>"), counted_sk("<order event id>"),
     "the order event was counted in its supplier's performance; written in the same transaction as the "
     "counters, expires after 7 days"),
    ("settlement settings", tenant_settings_pk(_T), SETTLEMENT_SK,
     "the tenant's settlement period (`weekly` by default); written with its suppliers' first ledger "
     "entry, `GSI3` for the scheduled settlements (D45)"),
    ("settlement statement", ledger_pk(_T, "<supplier id>"), statement_sk("<period start>", "<period>"),
     "opening and closing balance, totals, payable, `status` READY or PAID; its CSV at S3 "
     f"`{statement_csv_key(_T, '<supplier id>', '<period>')}` (D45)"),
    ("webhook", supplier_pk(_T, "<supplier id>"), WEBHOOK_SK, "the supplier's URL and signing secret"),
    ("webhook delivery", supplier_pk(_T, "<supplier id>"), delivery_sk("<created>", _S),
     f"and `{dedupe_sk('<event id>')}` claims each event once"),
    ("bulk import", supplier_pk(_T, "<supplier id>"), import_sk(_S),
     f"the file at S3 `{upload_key(_T, '<supplier id>', _S)}`, reports under "
     f"`{report_prefix(_T, '<supplier id>', _S)}`"),
    ("parked correction", correction_pk(_T), correction_sk("<KIND>", _S, "<flagged version>"),
     "the correction-queue message as sent (`body`, with its task token), `hiddenUntil`; `GSI3` by shard"),
)  # fmt: skip
INDEXES: tuple[tuple[str, str, str], ...] = (
    ("`GSI1`", f"{status_gsi_pk(_T, '<type>', '<status>')} / status time",
     "`GET /suppliers?status=`, `GET /admin/corrections` (listings and supplier orders only while FLAGGED)"),
    ("`GSI1` (sparse)", f"{delivery_status_pk(_T, '<supplier id>', 'FAILED')} / created time",
     "`GET /suppliers/{id}/deliveries?status=FAILED`: deliveries only while failed"),
    ("`GSI2`", f"{entity_pk(_T, 'SUPPLIER')} / {created_sk('<created>', _S)}", "`GET /suppliers`"),
    ("`GSI2`", f"{supplier_orders_gsi(_T, '<supplier id>')} / {created_sk('<created>', _S)}",
     "`GET /supplier-orders`"),
    ("`GSI3` (sparse)", f"{_expiry_key('<deadline day>', '<shard>')} / deadline",
     "the expiry sweeper"),
    ("`GSI3` (sparse)", f"{correction_shard('<shard>')} / parked time",
     "the scheduled drain: every tenant's parked corrections"),
    ("`GSI4` (sparse, keys and `hash`)", f"{_audit_log_key('<hour written>', '<shard>')} / written time",
     "the audit digest job: every tenant's audit entries written since its last run"),
    ("`GSI3` (sparse)", f"{settlement_tenants()} / <tenant id>",
     "the scheduled settlements: every tenant with ledger entries"),
)  # fmt: skip

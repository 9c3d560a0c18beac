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
STATEMENT_SK_PREFIX = "STATEMENT#"
SETTLEMENT_SK = "SETTLEMENT"
PROPOSAL_SK_PREFIX = "PROPOSAL#"
EXPIRY_SHARDS = 10
CORRECTION_SHARDS = 10


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


def audit_sk(record_sk: str, when: str, event_id: str) -> str:
    """One audit entry: the trail sorts by time; the stream event id makes a replay the same entry."""
    return f"{audit_prefix(record_sk)}{when}#{event_id}"


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


def expiry_hour_partition(hour: datetime, shard: int) -> str:
    """GSI3: one shard of the orders awaiting a decision due in one hour."""
    return _expiry_key(hour.strftime("%Y-%m-%dT%H"), str(shard))


def _expiry_key(hour: str, shard: str) -> str:
    return f"EXPIRY#{hour}#{shard}"


def deadline_sk(deadline: str, tenant_id: str, supplier_order_id: str) -> str:
    """GSI3 sort key of an order's next deadline: due first, then the order."""
    return f"{deadline}#{tenant_id}#{supplier_order_id}"


def deadline_due_below(now: str) -> str:
    """GSI3 sort keys below this one are deadlines at or before ``now`` ("$" follows "#")."""
    return f"{now}$"


def expiry_partition(deadline: datetime, supplier_order_id: str) -> str:
    """GSI3 partition of an awaiting order: its deadline's hour, sharded so no hour is hot."""
    return expiry_hour_partition(deadline, _shard(supplier_order_id, EXPIRY_SHARDS))


# ------------------------------------------------------------------------------- tenant settings, money
def tenant_settings_pk(tenant_id: str) -> str:
    """The tenant's own settings, one item each (its commission rules: ``COMMISSION_RULES_SK``)."""
    return f"TENANT#{tenant_id}#SETTINGS"


def ledger_pk(tenant_id: str, supplier_id: str) -> str:
    """A supplier's ledger: its own partition, apart from the supplier's records and deliveries."""
    return f"TENANT#{tenant_id}#LEDGER#{supplier_id}"


def ledger_sk(at: str, event_id: str, position: int, entry_type: str) -> str:
    """One ledger entry: oldest first, an event's entries in the order it makes them (a sale before
    its commission); the order event's id and the entry's type make a repeated event the same entry."""
    return f"{LEDGER_SK_PREFIX}{at}#{event_id}#{position}#{entry_type}"


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
    ("audit entry", "the audited record's PK", audit_sk("<record SK>", "<when>", "<stream event id>"),
     "append-only, written from the table's stream"),
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
    ("commission rules", tenant_settings_pk(_T), COMMISSION_RULES_SK,
     "`version`, the rates and minimums (D42); audited from the stream"),
    ("ledger entry", ledger_pk(_T, "<supplier id>"), ledger_sk("<at>", "<order event id>", 0, "<TYPE>"),
     "append-only, written from the order events (sale, commission, refund, commission reversal); "
     "the number is the entry's place in its event"),
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
    ("`GSI3` (sparse)", f"{_expiry_key('<deadline hour>', '<shard>')} / deadline",
     "the expiry sweeper"),
    ("`GSI3` (sparse)", f"{correction_shard('<shard>')} / parked time",
     "the scheduled drain: every tenant's parked corrections"),
    ("`GSI3` (sparse)", f"{settlement_tenants()} / <tenant id>",
     "the scheduled settlements: every tenant with ledger entries"),
)  # fmt: skip

"""What a status change tells the outside world: one event per change, for every kind of record.

Suppliers and listings (the reviewed kinds of :mod:`marketplace.registry`): each status change after
the record's creation is one event named by the kind's label and the new status
(``supplier.approved``, ``supplier.flagged``, ``listing.active``, ``listing.rejected``, ...), so the
supplier hears of each verdict, each flag it must fix, and each record going back to review after
its fix. Its creation is not an event: the supplier made the request and has the answer. A
proposed version of an approved record (marketplace.proposals) is announced the same way
(``supplier.proposal_flagged``, ``listing.proposal_rejected``), but its approval is announced by its
record once the proposal is applied to it (``supplier.proposal_approved``, with the record's new
version).

A supplier order is written as PENDING and, within the intake's few hundred milliseconds, moves to the
status the supplier acts on (AWAITING_ACCEPTANCE) or to its end (REJECTED out of stock, FLAGGED,
CANCELLED). Its creation is therefore not an event of its own: the supplier could do nothing with it
(an order is accepted or rejected only once it awaits acceptance), and each notification costs a
publish, a queued webhook delivery with its record and two Lambda invocations (docs/decisions.md D20,
measured in docs/capacity.md). Every later status change is one event, and so is every transition of the lifecycle after
acceptance (each shipment, a cancelled line), named by the transition itself.

A settlement statement (marketplace.statements) is announced when it is written
(``statement.ready``: its creation is the news) and when an admin marks it paid (``statement.paid``).

An event's id is the record's id and the version the change wrote: a repeated stream delivery
carries the same id, and subscribers drop what they have seen.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from marketplace import orders, registry, statements


def event_for(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    """The event for one change of a record, or None when it is its creation, its status did not
    change, the record is test data, or it is of no kind that has events."""
    if new and new.get("entity") == statements.ENTITY:
        return _statement_event(old, new)
    if not new or not old or new.get("testData"):
        # Test data (a tenant's smoke test, marketplace.tenants) is never announced: no message, no
        # webhook, no ledger entry, no event metric.
        return None
    kind = registry.find(new.get("entity"))
    if kind is None:
        return None
    if kind.name == orders.ENTITY:
        return _order_event(old, new)
    status = str(new["status"])
    applied = new.get("appliedProposal")
    if isinstance(applied, dict) and applied.get("version") == new.get("version") != old.get("version"):
        # An approved proposal became the live version (marketplace.proposals): announced here, by
        # the record it changed, once it has changed.
        event_type = f"{kind.label}.proposal_approved"
    elif old.get("status") == status or status in kind.quiet:
        return None
    else:
        event_type = kind.event_type(status)
    event_id = f"{kind.record_id(new).replace('/', ':')}{kind.event_id_tag}-v{new['version']}"
    body = {
        "event": event_type,
        "eventId": event_id,
        "tenantId": new["tenantId"],
        **kind.correction_fields(new),
        "status": status,
        "version": new["version"],
        # What to fix (the field and the reason, never the value: the event may leave the tenant's
        # systems), or why the record was rejected.
        "flags": [{"field": f.get("field"), "reason": f.get("reason")} for f in new.get("flags") or []],
        "reason": new.get("statusReason"),
        "at": new.get("updatedAt"),
    }
    return _event(event_type, event_id, body)


def _order_event(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    status = str(new["status"])
    # A transition of the lifecycle (marketplace.order_lifecycle) names its event on the version it
    # wrote: a second shipment is an event though the status stays PARTIALLY_SHIPPED. The intake's
    # writes (the workflow, the expiry sweeper) name none: their event is the status they set.
    marked = new.get("lastEvent")
    detail: dict[str, Any] = {}
    if isinstance(marked, dict) and marked.get("version") == new.get("version") != old.get("version"):
        event_type = str(marked["type"])
        detail = {k: v for k, v in marked.items() if k not in ("type", "version")}
    elif old.get("status") != status:
        event_type = f"supplier_order.{status.lower()}"
    else:
        return None
    event_id = f"{new['supplierOrderId']}-v{new['version']}"
    body = {
        "event": event_type,
        "eventId": event_id,
        "tenantId": new["tenantId"],
        "supplierId": new["supplierId"],
        "supplierOrderId": new["supplierOrderId"],
        "orderId": new["orderId"],
        "customerOrderId": new.get("customerOrderId"),
        "status": status,
        "version": new["version"],
        "lines": new.get("lines", []),
        "deadline": new.get("deadline"),
        "reason": detail.pop("reason", None) or new.get("statusReason"),
        "at": new.get("updatedAt"),
        **detail,
    }
    return _event(event_type, event_id, body)


def _statement_event(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any] | None:
    status = str(new["status"])
    if old is not None and old.get("status") == status:
        return None
    event_type = "statement.ready" if old is None else f"statement.{status.lower()}"
    body = {
        "event": event_type,
        "eventId": f"statement-{new['statementId']}-v{new['version']}",
        "tenantId": new["tenantId"],
        "supplierId": new["supplierId"],
        **{k: new.get(k) for k in ("statementId", "period", "periodStart", "periodEnd", "status")},
        **{k: new.get(k) for k in ("openingBalance", "closingBalance", "payable", "reference")},
        "at": new.get("paidAt") or new.get("createdAt"),
    }
    return _event(event_type, body["eventId"], body)


def _event(event_type: str, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
    # Subscribers filter on these (an SNS filter policy per supplier, per event type).
    attributes = {
        "event_type": event_type,
        "event_id": event_id,
        "tenant_id": str(body["tenantId"]),
        "supplier_id": str(body["supplierId"]),
    }
    return {"type": event_type, "id": event_id, "body": body, "attributes": attributes}


# SNS takes at most 10 messages per PublishBatch request (and 256 KB in all; an event is ~1 KB).
PUBLISH_BATCH_SIZE = 10


def publish_all(sns: Any, topic_arn: str, events: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Publish ``events`` (by a caller's id: the stream record's sequence number) with PublishBatch,
    10 to a request: a stream batch of a busy tenant carries up to 100 events, and SNS bills and
    throttles per request, not per message (docs/decisions.md D22). Returns the ids that SNS refused,
    with its reason; a request that fails as a whole refuses all of its events. The caller retries
    those (their ``event_id`` stays the same, so subscribers drop the ones that got through twice)."""
    refused: dict[str, str] = {}
    ids = list(events)
    for start in range(0, len(ids), PUBLISH_BATCH_SIZE):
        chunk = ids[start : start + PUBLISH_BATCH_SIZE]
        # PublishBatch entry ids: up to 80 alphanumerics, '-' or '_'; sequence numbers are digits.
        entries = [
            {
                "Id": f"e{n}",
                "Message": json.dumps(events[key]["body"], default=str),
                "MessageAttributes": {
                    k: {"DataType": "String", "StringValue": v} for k, v in events[key]["attributes"].items()
                },
            }
            for n, key in enumerate(chunk)
        ]
        try:
            answer = sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
        except (ClientError, BotoCoreError) as error:
            refused.update({key: f"{type(error).__name__}: {error}" for key in chunk})
            continue
        for failed in answer.get("Failed", []):
            key = chunk[int(failed["Id"][1:])]
            refused[key] = f"{failed.get('Code')}: {failed.get('Message', '')}"
    return refused

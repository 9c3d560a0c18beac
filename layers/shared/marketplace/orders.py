"""Customer orders, split into supplier orders; stock reservation and its release.

* the customer order (lines, shipTo, its supplier orders) and a claim on the retailer's own order id
  that makes it unique (keys: :mod:`marketplace.keys`);
* each supplier order: one supplier's part, with ``status`` and ``version``; ``GSI2`` lists a supplier's orders, ``GSI3`` (sparse) holds the ones awaiting a
  decision by their deadline, for the expiry sweeper.

Stock: a listing's ``quantity`` is what is available. Reserving lowers every line's listing and
moves the supplier order from PENDING (or FLAGGED, after a fix) to AWAITING_ACCEPTANCE in one
DynamoDB transaction whose conditions say ``quantity >= wanted`` and ``status`` is still the one
read: two orders racing for the last unit cannot both win, and a retried reservation cannot
reserve twice. Releasing (reject, expiry, cancel) restores the quantities and sets the final
status in one transaction conditional on the order still holding its reservation.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from marketplace import access, keys, schemas
from marketplace.clock import iso, now_iso, parse_iso
from marketplace.errors import Conflict, FieldError, InvalidInput, NotFound
from marketplace.principal import Principal
from marketplace.repository import Page, Table, TransactionConflict, to_item
from marketplace.reviewed import Kind, Records, record_view
from marketplace.suppliers import Suppliers

ENTITY = "SUPPLIER_ORDER"
STATUSES = ("PENDING", "AWAITING_ACCEPTANCE", "ACCEPTED", "REJECTED", "EXPIRED", "FLAGGED", "CANCELLED")
HOLDS_STOCK = ("AWAITING_ACCEPTANCE", "ACCEPTED")
keys.EXPIRY_SHARDS = 10


def view(record: dict[str, Any]) -> dict[str, Any]:
    return record_view(record, flags_while=("FLAGGED",))


def _record_key(tenant_id: str, supplier_order_id: str) -> tuple[str, str]:
    return keys.supplier_order_pk(tenant_id, supplier_order_id), keys.RECORD_SK


KIND = Kind(
    name=ENTITY, label="supplier order", approved="ACCEPTED", statuses=STATUSES,
    indexed=frozenset({"FLAGGED"}), state_machine_env="SUPPLIER_ORDER_STATE_MACHINE_ARN", key=_record_key,
    record_id=lambda record: str(record["supplierOrderId"]), view=view,
    correction_fields=lambda record: {"supplierId": record["supplierId"]},
    # Its own workflow validates it; rejecting it from the correction queue cancels it, which
    # releases its stock (Orders.cancel).
    reject_with=lambda table, principal, record_id, reason: Orders(table).cancel(principal, record_id, reason),
    input_ids=lambda record_id: {"supplierOrderId": record_id}, correction_prefix="SUPPLIER_ORDER:",
)  # fmt: skip


class Orders:
    def __init__(self, table: Table | None = None) -> None:
        self.table = table or Table()

    # ---------------------------------------------------------------- placing an order
    def place(self, principal: Principal, body: Any) -> dict[str, Any]:
        """Split a customer order per supplier and write it all in one transaction."""
        if not isinstance(body, dict):
            raise InvalidInput([FieldError("(body)", "must be a JSON object")])
        schemas.validate("order", body)
        tenant_id, now = principal.tenant_id, now_iso()
        by_supplier: dict[str, list[dict[str, Any]]] = {}
        for line in body["lines"]:
            by_supplier.setdefault(line["supplierId"], []).append(
                {"sku": line["sku"], "quantity": line["quantity"], "unitPrice": line["unitPrice"]}
            )
        for supplier_id, lines in by_supplier.items():
            skus = [line["sku"] for line in lines]
            if len(set(skus)) != len(skus):
                raise InvalidInput(
                    [FieldError("lines", f"supplier {supplier_id} has the same sku on two lines")]
                )
        order_id = str(uuid.uuid4())
        supplier_orders = []
        for supplier_id, lines in by_supplier.items():
            supplier_order_id = str(uuid.uuid4())
            supplier_orders.append({
                "PK": keys.supplier_order_pk(tenant_id, supplier_order_id), "SK": keys.RECORD_SK, "entity": ENTITY,
                "tenantId": tenant_id, "supplierOrderId": supplier_order_id, "orderId": order_id,
                "customerOrderId": body["customerOrderId"], "supplierId": supplier_id, "lines": lines,
                "status": "PENDING", "version": 1, "createdAt": now, "updatedAt": now,
                "createdBy": principal.actor, "updatedBy": principal.actor,
                # No GSI1 (status index) entry: a supplier order is in it only while FLAGGED
                # (the admin queue, its one reader). Every order writing a tenant-wide status key
                # capped a tenant at ~500 orders/s and cost 5 WRU per order (docs/capacity.md).
                "GSI2PK": keys.supplier_orders_gsi(tenant_id, supplier_id), "GSI2SK": keys.created_sk(now, supplier_order_id),
            })  # fmt: skip
        order = {
            "PK": keys.order_pk(tenant_id, order_id), "SK": keys.RECORD_SK, "entity": "ORDER", "tenantId": tenant_id,
            "orderId": order_id, "customerOrderId": body["customerOrderId"], "shipTo": body["shipTo"],
            "supplierOrderIds": [s["supplierOrderId"] for s in supplier_orders], "createdAt": now,
            "createdBy": principal.actor,
        }  # fmt: skip
        unique = {
            "PK": keys.customer_order_pk(tenant_id, body["customerOrderId"]), "SK": keys.RECORD_SK,
            "entity": "CUSTOMER_ORDER_ID", "tenantId": tenant_id, "orderId": order_id,
        }  # fmt: skip
        items = [
            {"Put": {"TableName": self.table.name, "Item": to_item(unique), "ConditionExpression": "attribute_not_exists(PK)"}},
            {"Put": {"TableName": self.table.name, "Item": to_item(order)}},
            *({"Put": {"TableName": self.table.name, "Item": to_item(s)}} for s in supplier_orders),
        ]  # fmt: skip
        try:
            self.table.transact(items)
        except Conflict:
            raise Conflict(f"customer order {body['customerOrderId']} was already placed") from None
        return {**order, "supplierOrders": supplier_orders}

    # ---------------------------------------------------------------- reads
    def get_order(self, principal: Principal, order_id: str) -> dict[str, Any]:
        order = self.table.get(keys.order_pk(principal.tenant_id, order_id), keys.RECORD_SK)
        if order is None or order.get("tenantId") != principal.tenant_id:
            raise NotFound(f"no order {order_id}")
        parts = [self.get(principal.tenant_id, i) for i in order.get("supplierOrderIds", [])]
        return {**order, "supplierOrders": parts}

    def get(self, tenant_id: str, supplier_order_id: str) -> dict[str, Any]:
        return Records(KIND, self.table).get(tenant_id, supplier_order_id)

    def get_for(
        self, principal: Principal, supplier_order_id: str, roles: frozenset[str] = access.ROLES
    ) -> dict[str, Any]:
        """A supplier sees only its own orders; another's is 404 like a missing one. ``roles``: the
        roles the caller acts in (a decision is a supplier's, even for a caller that is also staff)."""
        record = self.get(principal.tenant_id, supplier_order_id)
        if not access.sees_supplier(principal, record["supplierId"], roles):
            raise NotFound(f"no supplier order {supplier_order_id}")
        return record

    def with_ship_to(self, principal: Principal, record: dict[str, Any]) -> dict[str, Any]:
        """The supplier order with its customer order's ``shipTo`` once it is ACCEPTED: the
        supplier needs the address to ship, not to decide, so a supplier that has not accepted (or
        has rejected) never sees it. ``record`` is one ``get_for`` has already shown the caller
        (its own order for a supplier): the address is that order's only."""
        if record.get("status") != "ACCEPTED":
            return record
        order = self.table.get(keys.order_pk(principal.tenant_id, str(record["orderId"])), keys.RECORD_SK)
        if order is None or order.get("tenantId") != principal.tenant_id or "shipTo" not in order:
            return record
        return {**record, "shipTo": order["shipTo"]}

    def list_for_supplier(
        self,
        principal: Principal,
        supplier_id: str | None,
        status: str | None,
        limit: int,
        next_token: str | None,
    ) -> Page:
        supplier_id = access.supplier_scope(principal, supplier_id)
        if not supplier_id:
            raise InvalidInput([FieldError("supplierId", "is required for retailers and admins")])
        if principal.roles & access.STAFF:
            # An unknown or another tenant's supplier is 404, as everywhere, not an empty page.
            Suppliers(self.table).get(principal.tenant_id, supplier_id)
        if status is not None and status not in STATUSES:
            raise InvalidInput([FieldError("status", f"must be one of {', '.join(STATUSES)}")])
        page = self.table.query(
            keys.supplier_orders_gsi(principal.tenant_id, str(supplier_id)), index="GSI2", pk_name="GSI2PK",
            sk_name="GSI2SK", limit=limit, next_token=next_token, newest_first=True,
        )  # fmt: skip
        if status is not None:
            page.items = [i for i in page.items if i.get("status") == status]
        return page

    # ---------------------------------------------------------------- the intake workflow's steps
    def validation_step(self, tenant_id: str, supplier_order_id: str) -> dict[str, Any]:
        """Supplier approved; every SKU an ACTIVE listing of this supplier; the price is the listing's."""
        order = self.get(tenant_id, supplier_order_id)
        if order["status"] not in ("PENDING", "FLAGGED"):
            # A repeated intake (Express starts are not deduplicated) of an order that is already
            # reserved or decided: nothing to validate, and nothing may flag it now.
            return {
                "outcome": "SETTLED",
                "flags": [],
                "flagsAttribute": {"L": []},
                "version": int(order["version"]),
            }
        flags: list[FieldError] = []
        try:
            supplier = Suppliers(self.table).get(tenant_id, order["supplierId"])
            if supplier["status"] != "APPROVED":
                flags.append(FieldError("supplierId", f"the supplier is {supplier['status']}, not APPROVED"))
        except NotFound:
            flags.append(FieldError("supplierId", "no such supplier in this tenant"))
        for i, line in enumerate(order["lines"]):
            listing = self.table.get(
                keys.supplier_pk(tenant_id, order["supplierId"]), keys.product_sk(line["sku"])
            )
            if listing is None or listing.get("entity") != "PRODUCT":
                flags.append(FieldError(f"lines.{i}.sku", f"{line['sku']} is not a listing of this supplier"))
                continue
            if listing["status"] != "ACTIVE":
                flags.append(
                    FieldError(f"lines.{i}.sku", f"{line['sku']} is {listing['status']}, not ACTIVE")
                )
            if int(line["quantity"]) <= 0:
                flags.append(FieldError(f"lines.{i}.quantity", "must be more than 0"))
            wanted, listed = line["unitPrice"], listing["price"]
            same = Decimal(str(wanted["amount"])) == Decimal(str(listed["amount"])) and (
                wanted["currency"] == listed["currency"]
            )
            if not same:
                flags.append(
                    FieldError(
                        f"lines.{i}.unitPrice",
                        f"{wanted['amount']} {wanted['currency']} is not the listed "
                        f"{listed['amount']} {listed['currency']}",
                    )
                )
        flag_dicts = [f.as_dict() for f in flags]
        return {
            "outcome": "INVALID" if flags else "VALID",
            "flags": flag_dicts,
            "flagsAttribute": to_item({"flags": flag_dicts})["flags"],
            "version": int(order["version"]),
        }

    def reserve(
        self, tenant_id: str, supplier_order_id: str, version: int, sla_seconds: int, now: datetime
    ) -> dict[str, Any]:
        """Reserve every line's stock and await the supplier's decision, atomically.

        Returns ``{"outcome": "RESERVED" | "ALREADY_RESERVED" | "OUT_OF_STOCK" | "CHANGED"}``."""
        order = self.get(tenant_id, supplier_order_id)
        if order["status"] in HOLDS_STOCK or order.get("reserved"):
            return {"outcome": "ALREADY_RESERVED", "version": int(order["version"])}
        if int(order["version"]) != version or order["status"] not in ("PENDING", "FLAGGED"):
            return {"outcome": "CHANGED", "version": int(order["version"])}
        deadline = now + timedelta(seconds=sla_seconds)
        items: list[dict[str, Any]] = []
        items.extend(self._stock_change(tenant_id, order, line, reserve=True) for line in order["lines"])
        stamp = iso(now)
        items.append(self._versioned_update(
            order,
            "SET #status = :awaiting, #version = :next, reserved = :true, deadline = :deadline, "
            "updatedAt = :now, updatedBy = :by, GSI3PK = :gsi3, GSI3SK = :gsi3sk REMOVE flags, GSI1PK, GSI1SK",
            {":awaiting": "AWAITING_ACCEPTANCE", ":next": version + 1, ":true": True, ":deadline": iso(deadline),
             ":now": stamp, ":by": "workflow:supplier-order",
             ":gsi3": keys.expiry_partition(deadline, supplier_order_id),
             ":gsi3sk": f"{iso(deadline)}#{tenant_id}#{supplier_order_id}"},
        ))  # fmt: skip
        try:
            self.table.transact(items)
        except TransactionConflict as conflict:
            reasons = [r.get("Code") for r in conflict.reasons]
            if reasons[-1] == "ConditionalCheckFailed":  # the order changed: someone else acted
                return {"outcome": "CHANGED", "version": version}
            short = [
                order["lines"][i]["sku"] for i, r in enumerate(reasons[:-1]) if r == "ConditionalCheckFailed"
            ]
            return {"outcome": "OUT_OF_STOCK", "skus": short, "version": version}
        return {"outcome": "RESERVED", "version": version + 1, "deadline": iso(deadline)}

    # ---------------------------------------------------------------- decisions
    def accept(self, principal: Principal, supplier_order_id: str) -> dict[str, Any]:
        order = self.get_for(principal, supplier_order_id, roles=frozenset({access.SUPPLIER}))
        if order["status"] == "ACCEPTED":
            return order
        if order["status"] != "AWAITING_ACCEPTANCE":
            raise Conflict(f"the order is {order['status']}, not AWAITING_ACCEPTANCE")
        now = now_iso()
        return self.table.update(
            order["PK"], order["SK"], int(order["version"]),
            {"status": "ACCEPTED", "updatedAt": now, "updatedBy": principal.actor, "acceptedAt": now},
            remove=("GSI3PK", "GSI3SK", "GSI1PK", "GSI1SK"),
        )  # fmt: skip

    def reject(self, principal: Principal, supplier_order_id: str, reason: str) -> dict[str, Any]:
        order = self.get_for(principal, supplier_order_id, roles=frozenset({access.SUPPLIER}))
        if order["status"] == "REJECTED":
            return order
        if order["status"] != "AWAITING_ACCEPTANCE":
            raise Conflict(f"the order is {order['status']}, not AWAITING_ACCEPTANCE")
        return self.release(principal.tenant_id, order, "REJECTED", reason, principal.actor)

    def cancel(self, principal: Principal, supplier_order_id: str, reason: str) -> dict[str, Any]:
        """An admin ends a flagged (or still awaiting) supplier order; held stock is released."""
        order = self.get(principal.tenant_id, supplier_order_id)
        if order["status"] in ("CANCELLED", "REJECTED", "EXPIRED"):
            return order
        if order["status"] == "ACCEPTED":
            raise Conflict("an accepted supplier order cannot be cancelled here")
        return self.release(principal.tenant_id, order, "CANCELLED", reason, principal.actor)

    def release(
        self, tenant_id: str, order: dict[str, Any], status: str, reason: str, by: str
    ) -> dict[str, Any]:
        """Set a final status and give back the reserved stock, in one transaction (the
        compensation of the reservation). Conflict if the order changed since it was read."""
        now = now_iso()
        items: list[dict[str, Any]] = []
        if order.get("reserved"):
            items.extend(self._stock_change(tenant_id, order, line, reserve=False) for line in order["lines"])
        items.append(self._versioned_update(
            order,
            "SET #status = :status, #version = #version + :one, reserved = :false, statusReason = :reason, "
            "updatedAt = :now, updatedBy = :by REMOVE GSI3PK, GSI3SK, GSI1PK, GSI1SK",
            {":status": status, ":one": 1, ":false": False, ":reason": reason, ":now": now, ":by": by},
        ))  # fmt: skip
        self.table.transact(items)
        return self.get(tenant_id, order["supplierOrderId"])

    def expire_due(self, now: datetime, lookback_hours: int = 48) -> list[str]:
        """Expire every awaiting supplier order whose deadline has passed (the sweeper's work)."""
        expired = []
        for hours_back in range(lookback_hours, -1, -1):
            hour = now - timedelta(hours=hours_back)
            for shard in range(keys.EXPIRY_SHARDS):
                partition = keys.expiry_hour_partition(hour, shard)
                token = None
                while True:
                    page = self.table.query(partition, index="GSI3", pk_name="GSI3PK", sk_name="GSI3SK",
                                            limit=100, next_token=token)  # fmt: skip
                    for item in page.items:
                        if parse_iso(item["deadline"]) > now or item.get("status") != "AWAITING_ACCEPTANCE":
                            continue
                        try:
                            self.release(item["tenantId"], item, "EXPIRED", "no decision within the SLA",
                                         "system:expiry-sweeper")  # fmt: skip
                        except Conflict:
                            continue  # decided meanwhile
                        expired.append(item["supplierOrderId"])
                    token = page.next_token
                    if not token:
                        break
        return expired

    def request_retry(self, principal: Principal, supplier_order_id: str) -> dict[str, Any]:
        """After the cause of a flag is fixed (a listing's price, the supplier's approval), an admin
        asks for the order to be validated again: the drain restarts its intake."""
        return Records(KIND, self.table).request_retry(principal, supplier_order_id)

    def _versioned_update(
        self, order: dict[str, Any], expression: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        """The transaction item that updates ``order`` only while it is still at the version read."""
        return {"Update": {
            "TableName": self.table.name, "Key": to_item({"PK": order["PK"], "SK": order["SK"]}),
            "UpdateExpression": expression, "ConditionExpression": "#version = :expected",
            "ExpressionAttributeNames": {"#status": "status", "#version": "version"},
            "ExpressionAttributeValues": to_item({**values, ":expected": int(order["version"])}),
        }}  # fmt: skip

    def _stock_change(
        self, tenant_id: str, order: dict[str, Any], line: dict[str, Any], reserve: bool
    ) -> dict[str, Any]:
        """The transaction item that takes one line's units from its listing (only if the listing is
        ACTIVE and has them) or gives them back."""
        key = to_item(
            {"PK": keys.supplier_pk(tenant_id, order["supplierId"]), "SK": keys.product_sk(line["sku"])}
        )
        update: dict[str, Any] = {"TableName": self.table.name, "Key": key}
        if reserve:
            update.update({
                "UpdateExpression": "SET quantity = quantity - :q",
                "ConditionExpression": "#status = :active AND quantity >= :q",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": to_item({":q": int(line["quantity"]), ":active": "ACTIVE"}),
            })  # fmt: skip
        else:
            update.update({
                "UpdateExpression": "SET quantity = quantity + :q",
                "ExpressionAttributeValues": to_item({":q": int(line["quantity"])}),
            })  # fmt: skip
        return {"Update": update}

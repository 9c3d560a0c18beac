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
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from marketplace import access, commission, keys, products, schemas
from marketplace import order_lifecycle as lifecycle
from marketplace.clock import iso, now, now_iso, parse_iso
from marketplace.errors import Conflict, FieldError, InvalidInput, NotFound
from marketplace.money import refund
from marketplace.principal import Principal
from marketplace.repository import Page, Table, TransactionCancelled, TransactionConflict, to_item
from marketplace.reviewed import Kind, Records, data_marker, record_view
from marketplace.suppliers import SUSPENDED, Suppliers
from marketplace.suppliers import record_key as supplier_key
from marketplace.tenant_settings import order_settings

ENTITY = "SUPPLIER_ORDER"
STATUSES = lifecycle.STATUSES
HOLDS_STOCK = lifecycle.HOLDS_STOCK
# Statuses in which the supplier reads where to ship (the customer order's shipTo).
SHIPS_TO = (lifecycle.ACCEPTED, lifecycle.PARTIALLY_SHIPPED, lifecycle.SHIPPED, lifecycle.DELIVERED)
# A transition that loses a race re-reads the order and decides again, this many times at most.
ATTEMPTS = 3
# Due orders one sweeper run fires at once. Each firing is a read and a conditional transaction,
# time spent waiting on DynamoDB: one after the other, a run fired about 20-30 orders a second on
# AWS (decisions.md D37, D43); this many at once, as many times more, in the same invocation.
SWEEP_CONCURRENCY = 16
keys.EXPIRY_SHARDS = 10


def view(record: dict[str, Any]) -> dict[str, Any]:
    shown = record_view(record, flags_while=("FLAGGED",))
    shown.pop("lastEvent", None)  # the stream's marker of a transition's event (marketplace.events)
    return shown


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
        # One consistent batch read of the suppliers and listings the lines name, for both checks,
        # and of what prices the order: the tenant's commission rules and its rule pack.
        read = self.table.batch_get(
            [*_placed_keys(tenant_id, body["lines"]), *commission.rules_keys(tenant_id)]
        )
        self._refuse_withdrawn(tenant_id, body["lines"], read)
        # One currency, priced by the tenant's commission rules and rule pack as they are now (D42, D51).
        priced = commission.price_order(tenant_id, body["lines"], read)
        order_id = str(uuid.uuid4())
        supplier_orders = []
        for supplier_id, lines in by_supplier.items():
            supplier_order_id = str(uuid.uuid4())
            supplier_orders.append({
                "PK": keys.supplier_order_pk(tenant_id, supplier_order_id), "SK": keys.RECORD_SK, "entity": ENTITY,
                "tenantId": tenant_id, "supplierOrderId": supplier_order_id, "orderId": order_id,
                "customerOrderId": body["customerOrderId"], "supplierId": supplier_id, "lines": lines,
                "status": "PENDING", "version": 1, "createdAt": now, "updatedAt": now,
                "createdBy": principal.actor, "updatedBy": principal.actor, **principal.marker(),
                # No GSI1 (status index) entry: a supplier order is in it only while FLAGGED
                # (the admin queue, its one reader). Every order writing a tenant-wide status key
                # capped a tenant at ~500 orders/s and cost 5 WRU per order (docs/capacity.md).
                "GSI2PK": keys.supplier_orders_gsi(tenant_id, supplier_id), "GSI2SK": keys.created_sk(now, supplier_order_id),
                **priced[supplier_id],  # its lines with their commission, subtotal, commission, supplierNet
            })  # fmt: skip
        order = {
            "PK": keys.order_pk(tenant_id, order_id), "SK": keys.RECORD_SK, "entity": "ORDER", "tenantId": tenant_id,
            "orderId": order_id, "customerOrderId": body["customerOrderId"], "shipTo": body["shipTo"],
            "supplierOrderIds": [s["supplierOrderId"] for s in supplier_orders], "createdAt": now,
            "createdBy": principal.actor, **principal.marker(),
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

    def _refuse_withdrawn(
        self, tenant_id: str, lines: list[dict[str, Any]], read: list[dict[str, Any]]
    ) -> None:
        """409 naming each line (``lines.<n>.sku``) of a suspended supplier or a delisted listing:
        what an admin or the supplier took off sale is not ordered at all, rather than placed and
        flagged by the intake (docs/decisions.md D40). ``read``: the suppliers and listings named
        (:func:`_placed_keys`); any other status is the intake's to judge, as before."""
        found = {(i["PK"], i["SK"]): i for i in read}
        errors = []
        for n, line in enumerate(lines):
            supplier = found.get(supplier_key(tenant_id, line["supplierId"])) or {}
            listing = found.get(_listing_key(tenant_id, line)) or {}
            if supplier.get("status") == SUSPENDED:
                why = f"its supplier {line['supplierId']} is SUSPENDED: its listings cannot be ordered"
                errors.append(FieldError(f"lines.{n}.sku", why))
            elif listing.get("status") == products.DELISTED:
                errors.append(
                    FieldError(f"lines.{n}.sku", f"{line['sku']} is DELISTED: it cannot be ordered")
                )
        if errors:
            raise Conflict("some lines cannot be ordered", errors)

    def _refuse_suspended(self, order: dict[str, Any]) -> None:
        """A suspended supplier accepts nothing: an order that reached it after its suspension
        cancelled what was awaiting (reserved in the instant between the two) expires after the SLA,
        its stock back, instead (docs/decisions.md D40)."""
        supplier = Suppliers(self.table).get(str(order["tenantId"]), str(order["supplierId"]))
        if supplier["status"] == SUSPENDED:
            raise Conflict(
                "the supplier is SUSPENDED: it cannot accept orders",
                [FieldError("supplierId", "is SUSPENDED")],
            )

    def cancel_awaiting(self, principal: Principal, supplier_id: str, reason: str) -> list[str]:
        """Cancel every order of ``supplier_id`` still awaiting its acceptance, each with its stock
        released in the transaction that cancels it (:meth:`cancel`), as ``principal``; an order
        decided meanwhile is left as it is. Returns the ids cancelled. Orders already accepted go
        on. Reads the supplier's orders (its index, GSI2) page by page, keeping the awaiting ones."""
        cancelled, token = [], None
        while True:
            page = self.table.query(
                keys.supplier_orders_gsi(principal.tenant_id, supplier_id), index="GSI2", pk_name="GSI2PK",
                sk_name="GSI2SK", limit=100, next_token=token, where={"status": lifecycle.AWAITING},
                project=("supplierOrderId",),
            )  # fmt: skip
            for item in page.items:
                try:
                    order = self.cancel(
                        principal, str(item["supplierOrderId"]), reason, only_from=(lifecycle.AWAITING,)
                    )
                except Conflict:
                    continue  # it keeps changing: decided meanwhile, it goes on
                if order["status"] == lifecycle.CANCELLED:
                    cancelled.append(str(item["supplierOrderId"]))
            token = page.next_token
            if not token:
                return cancelled

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
        if record.get("status") not in SHIPS_TO:
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
            **data_marker(order),
        }

    def reserve(self, tenant_id: str, supplier_order_id: str, version: int, now: datetime) -> dict[str, Any]:
        """Reserve every line's stock and await the supplier's decision, atomically, until the
        acceptance SLA of the tenant's rule pack in force (``orders.acceptanceSlaHours``).

        Returns ``{"outcome": "RESERVED" | "ALREADY_RESERVED" | "OUT_OF_STOCK" | "CHANGED"}``."""
        order = self.get(tenant_id, supplier_order_id)
        if order["status"] in HOLDS_STOCK or order.get("reserved"):
            return {"outcome": "ALREADY_RESERVED", "version": int(order["version"])}
        if int(order["version"]) != version or order["status"] not in ("PENDING", "FLAGGED"):
            return {"outcome": "CHANGED", "version": int(order["version"])}
        deadline = now + timedelta(hours=order_settings(tenant_id, self.table).acceptance_sla_hours)
        stamp = iso(now)
        # The listing's change is the order's: its audit entry names the order, at the reservation's time.
        items = [self._stock_change(tenant_id, order, line, True, f"order:{supplier_order_id}", stamp, "reserve")
                 for line in order["lines"]]  # fmt: skip
        items.append(self._versioned_update(
            order,
            "SET #status = :awaiting, #version = :next, reserved = :true, deadline = :deadline, due = :expire, "
            "updatedAt = :now, updatedBy = :by, GSI3PK = :gsi3, GSI3SK = :gsi3sk REMOVE flags, GSI1PK, GSI1SK",
            {":awaiting": "AWAITING_ACCEPTANCE", ":expire": "expire", ":next": version + 1, ":true": True, ":deadline": iso(deadline),
             ":now": stamp, ":by": "workflow:supplier-order",
             ":gsi3": keys.expiry_partition(deadline, supplier_order_id),
             ":gsi3sk": keys.deadline_sk(iso(deadline), tenant_id, supplier_order_id)},
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
        return {
            "outcome": "RESERVED",
            "version": version + 1,
            "deadline": iso(deadline),
            **data_marker(order),
        }

    # ---------------------------------------------------------------- transitions (order_lifecycle)
    def accept(
        self, principal: Principal, supplier_order_id: str, decisions: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """The supplier accepts its order: every line, or those ``decisions`` (``{sku, accept,
        reason}``) do not refuse. Refused lines give their stock back in the same transaction; an order
        with every line refused is REJECTED."""
        acting = frozenset({access.SUPPLIER})

        def plan(order: dict[str, Any]) -> _Write | None:
            refused = self._refusals(order, decisions)
            if order["status"] == lifecycle.ACCEPTED and all(
                (line["sku"] in refused) == (line.get("status") == lifecycle.LINE_REFUSED)
                for line in order["lines"]
            ):
                return None  # a repeat of the decision already taken
            lifecycle.transition("accept").check(order["status"], acting)
            self._refuse_suspended(order)
            lines = [
                {**line, "status": lifecycle.LINE_REFUSED, "refusedReason": refused[line["sku"]]}
                if line["sku"] in refused
                else {**line, "status": lifecycle.LINE_ACCEPTED}
                for line in order["lines"]
            ]
            gone = [(line, lifecycle.held(line)) for line in order["lines"] if line["sku"] in refused]
            if len(refused) == len(lines):
                why = "; ".join(f"{sku}: {reason}" for sku, reason in refused.items())
                return _Write("reject", lifecycle.REJECTED, gone, _final({"lines": lines}, why), _UNINDEXED)
            accepted_at = now()
            ship_by = accepted_at + timedelta(
                hours=order_settings(order["tenantId"], self.table).ship_by_hours
            )
            return _Write("accept", lifecycle.ACCEPTED, gone, {
                "lines": lines, "acceptedAt": iso(accepted_at), "shipBy": iso(ship_by),
            }, _UNINDEXED)  # fmt: skip

        return self._fire(principal, supplier_order_id, acting, plan)

    def reject(self, principal: Principal, supplier_order_id: str, reason: str) -> dict[str, Any]:
        acting = frozenset({access.SUPPLIER})

        def plan(order: dict[str, Any]) -> _Write | None:
            if order["status"] == lifecycle.REJECTED:
                return None
            lifecycle.transition("reject").check(order["status"], acting)
            return _Write("reject", lifecycle.REJECTED, _holding(order), _final({}, reason), _UNINDEXED)

        return self._fire(principal, supplier_order_id, acting, plan)

    def cancel(
        self,
        principal: Principal,
        supplier_order_id: str,
        reason: str,
        lines: list[dict[str, Any]] | None = None,
        only_from: tuple[str, ...] | None = None,
    ) -> dict[str, Any]:
        """The whole order, or the units of the ``lines`` named (``{sku, quantity?}``; without a
        quantity, every unit the line still has to ship), cancelled with ``reason``; the stock they
        hold goes back in the same transaction. Who may cancel from which status: the lifecycle's
        ``cancel`` and ``cancel_lines`` (the retailer or an admin before shipment, the supplier once it
        has accepted), and ``cancel_unshipped`` for the rest of a partly shipped order. With
        ``only_from``, an order in another status (decided meanwhile) is answered as it is."""

        def plan(order: dict[str, Any]) -> _Write | None:
            if only_from is not None and order["status"] not in only_from:
                return None
            if lines is None and order["status"] in (lifecycle.CANCELLED, lifecycle.REJECTED, "EXPIRED"):
                return None
            partly_shipped = order["status"] == lifecycle.PARTIALLY_SHIPPED
            name = "cancel" if lines is None else "cancel_unshipped" if partly_shipped else "cancel_lines"
            lifecycle.transition(name).check(
                order["status"], principal.roles & frozenset(lifecycle.roles(name))
            )
            if lines is None:
                return _Write("cancel", lifecycle.CANCELLED, _holding(order), _final({}, reason), _UNINDEXED)
            going = self._cancellable(order, lines)
            after = [_cancelled(line, going.get(line["sku"], 0), reason) for line in order["lines"]]
            gone = [(line, going[line["sku"]]) for line in order["lines"] if line["sku"] in going]
            if not any(lifecycle.live(line) for line in after):
                return _Write(
                    "cancel", lifecycle.CANCELLED, gone, _final({"lines": after}, reason), _UNINDEXED
                )
            status = lifecycle.after_shipment(after) if partly_shipped else order["status"]
            changes = {"lines": after, **({"shippedAt": now_iso()} if status == lifecycle.SHIPPED else {})}
            return _Write(name, status, gone, changes, detail={"reason": reason})

        acting = principal.roles & frozenset(lifecycle.roles("cancel", "cancel_lines", "cancel_unshipped"))
        return self._fire(principal, supplier_order_id, acting, plan)

    def ship(self, principal: Principal, supplier_order_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """The supplier sends some of its order's units (``{carrier, trackingNumber, trackingUrl?,
        lines: [{sku, quantity}]}``): a shipment, and the order PARTIALLY_SHIPPED, then SHIPPED once
        every line has shipped in full. Returns the shipment."""
        schemas.validate("shipment", body)
        acting = frozenset({access.SUPPLIER})
        shipment_id = str(uuid.uuid4())
        made: dict[str, Any] = {}

        def plan(order: dict[str, Any]) -> _Write | None:
            lifecycle.transition("ship").check(order["status"], acting)
            sending = self._shippable(order, body["lines"])
            lines = [
                {**line, "shipped": int(line.get("shipped", 0)) + sending[line["sku"]]} if line["sku"] in sending
                else line
                for line in order["lines"]
            ]  # fmt: skip
            at = now_iso()
            shipment = {
                "PK": order["PK"], "SK": keys.shipment_sk(at, shipment_id), "entity": "SHIPMENT",
                "tenantId": order["tenantId"], "supplierOrderId": order["supplierOrderId"],
                "supplierId": order["supplierId"], "shipmentId": shipment_id, "carrier": body["carrier"],
                "trackingNumber": body["trackingNumber"], "trackingUrl": body.get("trackingUrl"),
                "lines": [{"sku": sku, "quantity": n} for sku, n in sending.items()], "createdAt": at,
                "createdBy": principal.actor,
            }  # fmt: skip
            made["shipment"] = shipment
            status = lifecycle.after_shipment(lines)
            changes = {"lines": lines, **({"shippedAt": at} if status == lifecycle.SHIPPED else {})}
            return _Write("ship", status, [], changes, detail={"shipmentId": shipment_id}, new_item=shipment)

        self._fire(principal, supplier_order_id, acting, plan)
        return shipment_view(made["shipment"])

    def deliver(self, principal: Principal, supplier_order_id: str) -> dict[str, Any]:
        """The supplier or the retailer says the order arrived: DELIVERED (again: no change)."""
        acting = principal.roles & frozenset(lifecycle.roles("deliver"))

        def plan(order: dict[str, Any]) -> _Write | None:
            if order["status"] == lifecycle.DELIVERED:
                return None
            lifecycle.transition("deliver").check(order["status"], acting)
            return _Write("deliver", lifecycle.DELIVERED, [], {"deliveredAt": now_iso()})

        return self._fire(principal, supplier_order_id, acting, plan)

    # ---------------------------------------------------------------- returns
    def request_return(self, principal: Principal, supplier_order_id: str, body: Any) -> dict[str, Any]:
        """The retailer asks to return units of a delivered order (``{lines: [{sku, quantity}],
        reason}``) within the tenant's return window: a return REQUESTED, written with the order's
        claim on those units in one transaction conditional on the order's version, so two returns
        of the same units cannot both be taken (the second is 400: none left to return)."""
        if not isinstance(body, dict):
            raise InvalidInput([FieldError("(body)", "must be a JSON object")])
        schemas.validate("return_request", body)
        acting = frozenset({access.RETAILER})
        return_id = str(uuid.uuid4())
        made: dict[str, Any] = {}

        def plan(order: dict[str, Any]) -> _Write | None:
            lifecycle.transition("request_return").check(order["status"], acting)
            window = timedelta(days=order_settings(order["tenantId"], self.table).return_window_days)
            closes = parse_iso(str(order["deliveredAt"])) + window
            if now() > closes:
                raise Conflict(f"the return window of this order closed at {iso(closes)}")
            claimed = self._returnable(order, body["lines"])
            lines = [
                {**line, "returned": int(line.get("returned", 0)) + claimed[line["sku"]]}
                if line["sku"] in claimed else line
                for line in order["lines"]
            ]  # fmt: skip
            at = now_iso()
            record = {
                "PK": keys.return_pk(order["tenantId"], return_id), "SK": keys.RECORD_SK, "entity": "RETURN",
                "tenantId": order["tenantId"], "returnId": return_id, "supplierOrderId": order["supplierOrderId"],
                "supplierId": order["supplierId"], "orderId": order["orderId"], "status": "REQUESTED",
                "lines": [{"sku": sku, "quantity": n} for sku, n in claimed.items()],
                "reason": body["reason"].strip(), "version": 1, "createdAt": at, "createdBy": principal.actor,
                "updatedAt": at, "updatedBy": principal.actor,
            }  # fmt: skip
            made["return"] = record
            returns = {**dict(order.get("returns") or {}), return_id: "REQUESTED"}
            return _Write("request_return", order["status"], [], {"lines": lines, "returns": returns},
                          detail={"returnId": return_id, "reason": record["reason"]}, new_item=record)  # fmt: skip

        self._fire(principal, supplier_order_id, acting, plan)
        return self._read_return(made["return"])

    def get_return(self, principal: Principal, return_id: str) -> dict[str, Any]:
        """A return the caller sees: its order's supplier, the tenant's staff; else 404."""
        record = self.table.get(keys.return_pk(principal.tenant_id, return_id), keys.RECORD_SK)
        if record is None or record.get("tenantId") != principal.tenant_id:
            raise NotFound(f"no return {return_id}")
        if not access.sees_supplier(principal, record["supplierId"]):
            raise NotFound(f"no return {return_id}")
        return return_view(record)

    def answer_return(
        self, principal: Principal, return_id: str, name: str, reason: str | None = None
    ) -> dict[str, Any]:
        """The supplier accepts (``accept_return``), refuses with ``reason`` (``refuse_return``) or
        receives (``receive_return``) a return: the return's new status, written with the order's in
        one transaction on the order's version. Receiving records the refund (each line's units at the
        order's unit price, exact decimals) and, if the tenant restocks returns, puts the units back on
        sale in the same transaction. Refusing opens an incident: the return, with the retailer's and
        the supplier's reasons, is listed in the admin's correction queue until the admin decides it
        (:meth:`decide_return`). The same answer again changes nothing."""
        sources, target = lifecycle.RETURN_STEPS[name]
        return self._step_return(principal, return_id, name, sources, target, reason)

    def decide_return(
        self,
        principal: Principal,
        return_id: str,
        refund_it: bool,
        reason: str,
        lines: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The admin decides an incident (a REFUSED or DISPUTED return) with ``reason``: a refund,
        recorded as a received return records it (and restocked as the tenant says), leaves it
        REFUNDED; no refund leaves it CLOSED. ``lines`` (``[{sku, quantity}]``, within the return's)
        refunds only those units. Either way it leaves the correction queue and the order may close.
        The same decision again changes nothing; the other one is 409 naming the status."""
        target = lifecycle.RETURN_DECIDED[refund_it]
        return self._step_return(
            principal, return_id, "decide_return", lifecycle.INCIDENTS, target, reason, refund_it, lines
        )

    def _step_return(
        self,
        principal: Principal,
        return_id: str,
        name: str,
        sources: tuple[str, ...],
        target: str,
        reason: str | None,
        refund_it: bool | None = None,
        refund_lines: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        acting = principal.roles & frozenset(lifecycle.roles(name))
        record = self.table.get(keys.return_pk(principal.tenant_id, return_id), keys.RECORD_SK)
        if record is None or record.get("tenantId") != principal.tenant_id:
            raise NotFound(f"no return {return_id}")
        made: dict[str, Any] = {}

        def plan(order: dict[str, Any]) -> _Write | None:
            current = self.table.get(record["PK"], record["SK"]) or record
            made["return"] = current
            if current["status"] == target:
                return None
            lifecycle.transition(name).check(order["status"], acting)
            if current["status"] not in sources:
                raise Conflict(
                    f"the return is {current['status']}; {name.replace('_', ' ')} needs it {' or '.join(sources)}"
                )
            at = now_iso()
            changed = {
                **current, "status": target, "version": int(current.get("version", 1)) + 1,
                "updatedAt": at, "updatedBy": principal.actor,
            }  # fmt: skip
            changed.pop("flags", None)
            restock: list[tuple[dict[str, Any], int]] = []
            detail: dict[str, Any] = {"returnId": return_id, **({"reason": reason} if reason else {})}
            if refund_it is not None:  # the admin's decision of an incident
                changed["decision"] = {"refund": refund_it, "reason": reason, "decidedAt": at,
                                       "decidedBy": principal.actor}  # fmt: skip
                detail["refund"] = refund_it
            elif reason is not None:
                changed["statusReason"] = reason
            if target == lifecycle.RETURN_INCIDENT:
                # Both sides' reasons, as the correction queue shows a record's flags.
                changed["flags"] = [
                    {"field": "reason", "reason": f"the retailer asked: {current['reason']}"},
                    {"field": "statusReason", "reason": f"the supplier refused: {reason}"},
                ]
            elif target == lifecycle.RETURN_DISPUTED:
                side = "retailer" if access.RETAILER in acting else "supplier"
                changed["disputedBy"] = side
                changed["flags"] = [
                    {"field": "reason", "reason": f"the retailer asked: {current['reason']}"},
                    {"field": "statusReason", "reason": f"the {side} disputes: {reason}"},
                ]
            # In the status index (the admin's queue) only while an incident is open.
            changed.update(RETURN_KIND.index_changes(order["tenantId"], target, at))
            changed = {k: v for k, v in changed.items() if v is not None}
            if name == "receive_return" or refund_it:
                refunded = current["lines"]
                if refund_lines is not None:  # the admin refunds some of the return's units
                    returned = {item["sku"]: item for item in current["lines"]}
                    some = _units_of(returned, refund_lines, lambda item: int(item["quantity"]),
                                     "is not a line of this return", "refund")  # fmt: skip
                    refunded = [{"sku": sku, "quantity": n} for sku, n in some.items()]
                changed["refund"] = refund(order, refunded)
                if order_settings(order["tenantId"], self.table).restock_on_return:
                    by_sku = {line["sku"]: line for line in order["lines"]}
                    restock = [(by_sku[item["sku"]], int(item["quantity"])) for item in refunded]
                    changed["restocked"] = True
            made["return"] = changed
            returns = {**dict(order.get("returns") or {}), return_id: target}
            return _Write(name, order["status"], [], {"returns": returns}, detail=detail,
                          new_item=changed, item_is_new=False, restock=restock)  # fmt: skip

        self._fire(principal, str(record["supplierOrderId"]), acting, plan)
        return self._read_return(made["return"])

    def _read_return(self, record: dict[str, Any]) -> dict[str, Any]:
        """A return as stored (as every read shows it), after the write that made or changed it."""
        return return_view(self.table.get(record["PK"], record["SK"]) or record)

    @staticmethod
    def _returnable(order: dict[str, Any], wanted: list[dict[str, Any]]) -> dict[str, int]:
        """sku -> units of a return: 400 naming a line not of the order, named twice, or more units
        than were delivered and not yet claimed by another return."""
        lines = {line["sku"]: line for line in order["lines"]}
        return _units_of(lines, wanted, lifecycle.returnable, "is not a line of this order", "return")

    # ---------------------------------------------------------------- what happened to an order
    def shipments(self, principal: Principal, supplier_order_id: str) -> list[dict[str, Any]]:
        """Every shipment of an order the caller sees (oldest first; at most one per line unit)."""
        order = self.get_for(principal, supplier_order_id)
        found: list[dict[str, Any]] = []
        token = None
        while True:
            page = self.table.query(
                order["PK"], sk_prefix=keys.SHIPMENT_SK_PREFIX, limit=100, next_token=token
            )
            found += page.items
            token = page.next_token
            if not token:
                return [shipment_view(s) for s in found]

    def history(self, principal: Principal, supplier_order_id: str, limit: int, token: str | None) -> Page:
        """The order's audit trail (every change, who made it and when), oldest first."""
        return Records(KIND, self.table).trail(self.get_for(principal, supplier_order_id), limit, token)

    # ---------------------------------------------------------------- how a transition is written
    def _fire(
        self,
        principal: Principal,
        supplier_order_id: str,
        acting: frozenset[str],
        plan: Callable[[dict[str, Any]], _Write | None],
    ) -> dict[str, Any]:
        """Read the order (404 for a supplier that is not its supplier), ``plan`` the write from what
        it is now (None: already done, answer it as it is), and write it conditional on the version
        read. A write that loses a race reads the order again and plans again, so two calls at once
        end in one outcome and the loser's 409 names the status the winner left."""
        return self._retrying(
            lambda: self.get_for(principal, supplier_order_id, roles=acting or access.ROLES),
            plan, principal.actor, supplier_order_id,
        )  # fmt: skip

    def _retrying(
        self,
        read: Callable[[], dict[str, Any]],
        plan: Callable[[dict[str, Any]], _Write | None],
        by: str,
        supplier_order_id: str,
    ) -> dict[str, Any]:
        for _ in range(ATTEMPTS):
            order = read()
            write = plan(order)
            if write is None:
                return order
            try:
                return self._commit(order, write, by)
            except (Conflict, TransactionCancelled):  # changed meanwhile, or a transaction at once
                continue
        raise Conflict(f"the supplier order {supplier_order_id} keeps changing; read it and try again")

    def _commit(self, order: dict[str, Any], write: _Write, by: str) -> dict[str, Any]:
        lifecycle.transition(write.transition).require_target(order["status"], write.status)
        version = int(order["version"]) + 1
        changes = {
            **write.changes, "status": write.status, "updatedAt": now_iso(), "updatedBy": by,
            "lastEvent": lifecycle.marker(write.transition, version, **write.detail),
        }  # fmt: skip
        changes, remove = _next_deadline(self.table, {**order, **changes}, changes, write.remove)
        stock = [(line, units) for line, units in write.release if units > 0] if order.get("reserved") else []
        stock += [(line, units) for line, units in write.restock if units > 0]
        if not stock and write.new_item is None:
            return self.table.update(order["PK"], order["SK"], version - 1, changes, remove=remove)
        at = str(changes["updatedAt"])
        items = [
            self._stock_change(order["tenantId"], order, line, False, by, at, write.transition, n)
            for line, n in stock
        ]
        if write.new_item is not None:
            # A new item (a shipment, a return) is written once; a return's later changes overwrite it
            # (the order's version, in the same transaction, orders them).
            put: dict[str, Any] = {"TableName": self.table.name, "Item": to_item(write.new_item)}
            if write.item_is_new:
                put["ConditionExpression"] = "attribute_not_exists(PK)"
            items.append({"Put": put})
        sets = ", ".join(f"#c{i} = :c{i}" for i in range(len(changes)))
        removes = f" REMOVE {', '.join(remove)}" if remove else ""
        update = self._versioned_update(
            order, f"SET {sets}, #version = :next{removes}",
            {**{f":c{i}": v for i, v in enumerate(changes.values())}, ":next": version},
        )  # fmt: skip
        update["Update"]["ExpressionAttributeNames"].update({f"#c{i}": k for i, k in enumerate(changes)})
        update["Update"]["ExpressionAttributeNames"].pop("#status")
        self.table.transact([*items, update])
        return self.get(order["tenantId"], order["supplierOrderId"])

    @staticmethod
    def _refusals(order: dict[str, Any], decisions: list[dict[str, Any]] | None) -> dict[str, str]:
        """sku -> reason of each line ``decisions`` refuses; 400 naming a sku that is not a line of
        the order, a line decided twice, or a refusal without its reason."""
        if decisions is None:
            return {}
        skus = {line["sku"] for line in order["lines"]}
        errors, seen, refused = [], set(), {}
        for i, decision in enumerate(decisions):
            sku = decision["sku"]
            if sku not in skus:
                errors.append(FieldError(f"lines.{i}.sku", f"{sku} is not a line of this order"))
            elif sku in seen:
                errors.append(FieldError(f"lines.{i}.sku", f"{sku} is decided twice"))
            elif not decision["accept"]:
                if not str(decision.get("reason", "")).strip():
                    errors.append(FieldError(f"lines.{i}.reason", "is required to refuse a line"))
                refused[sku] = str(decision.get("reason", "")).strip()
            seen.add(sku)
        if errors:
            raise InvalidInput(errors)
        return refused

    @staticmethod
    def _cancellable(order: dict[str, Any], wanted: list[dict[str, Any]]) -> dict[str, int]:
        """sku -> units to cancel (a line without a quantity: all it has left to ship); 400 naming a
        line that is not one still to ship, named twice, or more units than it has left."""
        lines = {line["sku"]: line for line in order["lines"] if lifecycle.held(line) > 0}
        asked = [{"sku": w["sku"], "quantity": w.get("quantity", lifecycle.held(lines.get(w["sku"], {"quantity": 0})))}
                 for w in wanted]  # fmt: skip
        return _units_of(lines, asked, lifecycle.held, "is not a line of this order still to ship", "cancel")

    @staticmethod
    def _shippable(order: dict[str, Any], wanted: list[dict[str, Any]]) -> dict[str, int]:
        """sku -> units of a shipment: 400 naming a line that is not the order's to ship, named
        twice, or more units than it has left to ship."""
        lines = {line["sku"]: line for line in order["lines"] if lifecycle.live(line)}
        return _units_of(lines, wanted, lifecycle.held, "is not a line of this order to ship", "ship")

    def release(
        self, tenant_id: str, order: dict[str, Any], status: str, reason: str, by: str
    ) -> dict[str, Any]:
        """Set a final status and give back the reserved stock, in one transaction (the
        compensation of the reservation). Conflict if the order changed since it was read."""
        now_at = now_iso()
        items: list[dict[str, Any]] = []
        if order.get("reserved"):
            items.extend(
                self._stock_change(tenant_id, order, line, False, by, now_at, status.lower(), units)
                for line, units in _holding(order)
                if units > 0
            )
        items.append(self._versioned_update(
            order,
            "SET #status = :status, #version = #version + :one, reserved = :false, statusReason = :reason, "
            "updatedAt = :now, updatedBy = :by REMOVE GSI3PK, GSI3SK, GSI1PK, GSI1SK",
            {":status": status, ":one": 1, ":false": False, ":reason": reason, ":now": now_at, ":by": by},
        ))  # fmt: skip
        self.table.transact(items)
        return self.get(tenant_id, order["supplierOrderId"])

    def sweep_due(
        self,
        now: datetime,
        lookback_hours: int = 48,
        concurrency: int | None = None,
        on_fired: Callable[[str, str], None] | None = None,
    ) -> dict[str, list[str]]:
        """Fire every timed transition due by ``now`` (the sweeper's work): an awaiting order past its
        deadline expires (its stock back), any other fires its due transition through the lifecycle
        (:meth:`fire_due`), which sets the next. The due orders of a page are fired ``concurrency``
        at once (:data:`SWEEP_CONCURRENCY`): each is its own conditional write, so the order they fire
        in changes nothing. Returns the orders each transition fired on, and tells ``on_fired`` each
        transition's name and its order's tenant (the sweeper's metrics)."""
        fired: dict[str, list[str]] = {}
        with ThreadPoolExecutor(concurrency or SWEEP_CONCURRENCY, thread_name_prefix="sweep") as pool:
            for due in self._due_pages(now, lookback_hours):
                for item, names in zip(
                    due, pool.map(lambda i: self._fire_due_item(i, now), due), strict=True
                ):
                    for name in names:
                        fired.setdefault(name, []).append(item["supplierOrderId"])
                        if on_fired is not None:
                            on_fired(name, item["tenantId"])
        return fired

    def _due_pages(self, now: datetime, lookback_hours: int) -> Iterator[list[dict[str, Any]]]:
        """Pages of the orders whose deadline is due by ``now``: the deadline index (GSI3) holds each
        order's one next deadline, by day (the days ``lookback_hours`` back reach) and shard."""
        first = (now - timedelta(hours=lookback_hours)).date()
        for days_back in range((now.date() - first).days, -1, -1):
            day = now - timedelta(days=days_back)
            for shard in range(keys.EXPIRY_SHARDS):
                partition, token = keys.expiry_day_partition(day, shard), None
                while True:
                    # Only the deadlines already due: the rest of the day is not read every minute.
                    page = self.table.query(partition, index="GSI3", pk_name="GSI3PK", sk_name="GSI3SK",
                                            limit=100, next_token=token,
                                            sk_below=keys.deadline_due_below(iso(now)))  # fmt: skip
                    due = [item for item in page.items if parse_iso(item["deadline"]) <= now]
                    if due:
                        yield due
                    token = page.next_token
                    if not token:
                        break

    def _fire_due_item(self, item: dict[str, Any], now: datetime) -> list[str]:
        if item.get("status") == lifecycle.AWAITING:
            try:
                self.release(item["tenantId"], item, "EXPIRED", "no decision within the SLA",
                             "system:expiry-sweeper")  # fmt: skip
            except Conflict:
                return []  # decided meanwhile
            return ["expire"]
        return self.fire_due(item["tenantId"], item["supplierOrderId"], now)

    def fire_due(self, tenant_id: str, supplier_order_id: str, now: datetime) -> list[str]:
        """Fire, as the system, each timed transition of the order due by ``now``, one after the other
        (late, then auto-cancel, if the sweeper comes after both): each one write conditional on the
        version, so a second sweep (or two at once) fires nothing more. Returns the transitions fired."""
        fired: list[str] = []
        upcoming: dict[str, str] = {}

        def plan(order: dict[str, Any]) -> _Write | None:
            upcoming.clear()
            due = lifecycle.next_deadline(order, order_settings(tenant_id, self.table))
            if due is None or due[1] > now:
                return None
            upcoming["name"] = due[0]
            return _timed_write(self.table, due[0], order, now)

        for _ in lifecycle.TIMERS:
            self._retrying(lambda: self.get(tenant_id, supplier_order_id), plan, SWEEPER, supplier_order_id)
            if not upcoming:
                return fired
            fired.append(upcoming["name"])
        return fired

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
        self,
        tenant_id: str,
        order: dict[str, Any],
        line: dict[str, Any],
        reserve: bool,
        by: str,
        at: str,
        reason: str,
        units: int | None = None,
    ) -> dict[str, Any]:
        """The transaction item that takes one line's units from its listing (only if the listing is
        ACTIVE and has them) or gives them back. Either moves the listing's version (an If-Match read
        before it no longer matches) and records who (``by``), when (``at``), why and for which order,
        which is what the listing's audit entry shows (products.stock_change)."""
        key = to_item(
            {"PK": keys.supplier_pk(tenant_id, order["supplierId"]), "SK": keys.product_sk(line["sku"])}
        )
        n = int(line["quantity"]) if units is None else units
        stamp = "#version = #version + :one, updatedAt = :at, updatedBy = :by, stockChange = :change"
        values = {":q": n, ":one": 1, ":at": at, ":by": by,
                  ":change": products.stock_change(-n if reserve else n, reason, str(order["supplierOrderId"]))}  # fmt: skip
        update: dict[str, Any] = {"TableName": self.table.name, "Key": key}
        if reserve:
            update.update({
                "UpdateExpression": f"SET quantity = quantity - :q, {stamp}",
                "ConditionExpression": "#status = :active AND quantity >= :q",
                "ExpressionAttributeNames": {"#status": "status", "#version": "version"},
                "ExpressionAttributeValues": to_item({**values, ":active": "ACTIVE"}),
            })  # fmt: skip
        else:
            update.update({
                "UpdateExpression": f"SET quantity = quantity + :q, {stamp}",
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": to_item(values),
            })  # fmt: skip
        return {"Update": update}


def _listing_key(tenant_id: str, line: Mapping[str, Any]) -> tuple[str, str]:
    return keys.supplier_pk(tenant_id, line["supplierId"]), keys.product_sk(line["sku"])


def _placed_keys(tenant_id: str, lines: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The records an order's placement reads: each supplier named once and each line's listing."""
    suppliers = dict.fromkeys(supplier_key(tenant_id, line["supplierId"]) for line in lines)
    return [*suppliers, *(_listing_key(tenant_id, line) for line in lines)]


@dataclass
class _Write:
    """One transition's write: the lifecycle transition it is, the status it leaves, the (line,
    units) whose stock goes back, the fields it sets and removes, the event's detail, and a new item
    written in the same transaction (a shipment)."""

    transition: str
    status: str
    release: list[tuple[dict[str, Any], int]]
    changes: dict[str, Any]
    remove: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    new_item: dict[str, Any] | None = None
    item_is_new: bool = True
    restock: list[tuple[dict[str, Any], int]] = field(default_factory=list)  # units back on sale


def _next_deadline(
    table: Table, after: dict[str, Any], changes: dict[str, Any], remove: tuple[str, ...]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The order's one next deadline, set by every transition: the timed transition due next for
    the order as the write leaves it (``order_lifecycle.next_deadline``) in the sweeper's sparse index
    (GSI3), with ``deadline`` and ``due``; none, and the order leaves the index."""
    remove = tuple(r for r in remove if r not in ("GSI3PK", "GSI3SK"))
    if after.get("status") == lifecycle.AWAITING and after.get("due") == "expire":
        # Still awaiting the supplier (some lines cancelled): its expiry stays where the intake put it.
        return changes, remove
    upcoming = lifecycle.next_deadline(after, order_settings(str(after["tenantId"]), table))
    if upcoming is None:
        return changes, (*remove, "GSI3PK", "GSI3SK", "due")
    name, at = upcoming
    # One already past (a return settled after the window) is due now: the sweeper reads back only
    # so far (``sweep_due``), so the index never holds a deadline behind it.
    at = max(at, now())
    return {
        **changes, "due": name, "deadline": iso(at), "GSI3PK": keys.expiry_partition(at, after["supplierOrderId"]),
        "GSI3SK": keys.deadline_sk(iso(at), str(after["tenantId"]), str(after["supplierOrderId"])),
    }, remove  # fmt: skip


SWEEPER = f"{lifecycle.SYSTEM}:deadline-sweeper"


def _timed_write(table: Table, name: str, order: dict[str, Any], now: datetime) -> _Write:
    """The write of the timed transition ``name`` due on ``order`` at ``now``."""
    if name == "late":
        return _Write(
            "late", order["status"], [], {"lateAt": iso(now)}, detail={"shipBy": order.get("shipBy")}
        )
    if name == "auto_cancel":
        days = order_settings(str(order["tenantId"]), table).auto_cancel_unshipped_days
        why = f"not shipped within {days} days of acceptance"
        return _Write("auto_cancel", lifecycle.CANCELLED, _holding(order), _final({}, why), ("GSI1PK", "GSI1SK"),
                      detail={"reason": why})  # fmt: skip
    if name == "auto_deliver":
        return _Write("auto_deliver", lifecycle.DELIVERED, [], {"deliveredAt": iso(now)},
                      detail={"automatic": True})  # fmt: skip
    if name == "close":
        return _Write("close", lifecycle.CLOSED, [], {"closedAt": iso(now)})
    raise RuntimeError(f"{name} is not a timed transition")


# A decided order leaves the expiry index (GSI3) and the correction queue's (GSI1).
_UNINDEXED = ("GSI3PK", "GSI3SK", "GSI1PK", "GSI1SK")


def _final(changes: dict[str, Any], reason: str) -> dict[str, Any]:
    """The fields of a final status that gives the stock back: no reservation left, the reason."""
    return {**changes, "reserved": False, "statusReason": reason}


def _holding(order: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
    """Every line with the units it still holds."""
    return [(line, lifecycle.held(line)) for line in order["lines"]]


def return_view(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("PK", "SK", "GSI1PK", "GSI1SK", "entity")}


def _return_key(tenant_id: str, return_id: str) -> tuple[str, str]:
    return keys.return_pk(tenant_id, return_id), keys.RECORD_SK


# A refused or disputed return is an incident in the admin's correction queue (registry.QUEUED):
# listed from the status index (one partition, INCIDENT, for both) while open, decided by the admin
# (rejecting it from the queue is deciding it without a refund). No workflow reviews it (D35, D44).
INCIDENT = "INCIDENT"
RETURN_KIND = Kind(
    name="RETURN", label="return", approved="RECEIVED", statuses=lifecycle.RETURN_STATUSES,
    indexed=frozenset({INCIDENT}), queued=INCIDENT,
    index_as=tuple((status, INCIDENT) for status in lifecycle.INCIDENTS),
    state_machine_env=None, key=_return_key, record_id=lambda record: str(record["returnId"]),
    view=return_view,
    correction_fields=lambda record: {"supplierId": record["supplierId"],
                                      "supplierOrderId": record["supplierOrderId"]},
    reject_with=lambda table, principal, record_id, reason: Orders(table).decide_return(
        principal, record_id, False, reason),
    correction_prefix="RETURN:",
)  # fmt: skip


def shipment_view(item: dict[str, Any]) -> dict[str, Any]:
    return {
        k: item[k]
        for k in (
            "shipmentId",
            "supplierOrderId",
            "carrier",
            "trackingNumber",
            "trackingUrl",
            "lines",
            "createdAt",
            "createdBy",
        )
        if item.get(k) is not None
    }


def _cancelled(line: dict[str, Any], units: int, reason: str) -> dict[str, Any]:
    """The line with ``units`` more cancelled; CANCELLED as a whole once none of it shipped or is left."""
    if not units:
        return line
    changed = {**line, "cancelled": int(line.get("cancelled", 0)) + units, "cancelledReason": reason}
    if not int(line.get("shipped", 0)) and lifecycle.held(changed) == 0:
        changed["status"] = lifecycle.LINE_CANCELLED
    return changed


def _units_of(
    lines: dict[str, dict[str, Any]],
    wanted: list[dict[str, Any]],
    left: Callable[[dict[str, Any]], int],
    not_a_line: str,
    to: str,
) -> dict[str, int]:
    """sku -> units asked for in ``wanted`` (a shipment's or a return's lines), each within what
    ``left`` says its line has left; else InvalidInput naming every line that is not one of
    ``lines``, is named twice, or asks for more."""
    errors, asked = [], {}
    for i, item in enumerate(wanted):
        sku, units = item["sku"], int(item["quantity"])
        line = lines.get(sku)
        if line is None:
            errors.append(FieldError(f"lines.{i}.sku", f"{sku} {not_a_line}"))
        elif sku in asked:
            errors.append(FieldError(f"lines.{i}.sku", f"{sku} is named twice"))
        elif units > left(line):
            errors.append(
                FieldError(f"lines.{i}.quantity", f"is more than the {left(line)} units left to {to}")
            )
        else:
            asked[sku] = units
    if errors:
        raise InvalidInput(errors)
    return asked

"""A supplier order's lifecycle after its intake, as one definition: its statuses, its transitions,
who may fire each from which status, and the event each emits.

The intake (``statemachines/supplier_order.asl.json``) takes an order from PENDING to
AWAITING_ACCEPTANCE (or FLAGGED, or REJECTED out of stock); from there every change is one of the
transitions below, written by ``marketplace.orders.Orders`` as one DynamoDB write (or transaction, when
stock moves) conditional on the order's version, and announced by the stream as the transition's
event (``marketplace.events``). The API's routes take their ``allow(...)`` roles from here, so
who may fire a transition is said once (docs/decisions.md D33).

The diagram in docs/orders.md is drawn from :data:`TRANSITIONS` (:func:`diagram`, ``make docs``).

A line of an order carries its own ``status`` (ACCEPTED, REFUSED by the supplier, CANCELLED) and how
many of its units have ``shipped``; :func:`held` is what it still holds of the listing's stock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from marketplace import access
from marketplace.clock import parse_iso
from marketplace.errors import Conflict
from marketplace.tenant_settings import OrderSettings

# Who fires a transition: a role of the caller, or the system (a sweeper, the correction queue).
SYSTEM = "system"

AWAITING = "AWAITING_ACCEPTANCE"
ACCEPTED = "ACCEPTED"
PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
SHIPPED = "SHIPPED"
DELIVERED = "DELIVERED"
CLOSED = "CLOSED"
REJECTED = "REJECTED"
CANCELLED = "CANCELLED"
# Before acceptance, the intake's own statuses (an admin may cancel a flagged order from the queue).
INTAKE = ("PENDING", "FLAGGED")
STATUSES = (
    *INTAKE,
    AWAITING,
    ACCEPTED,
    PARTIALLY_SHIPPED,
    SHIPPED,
    DELIVERED,
    CLOSED,
    REJECTED,
    "EXPIRED",
    CANCELLED,
)
# Statuses whose order still holds (some of) its lines' stock.
HOLDS_STOCK = (AWAITING, ACCEPTED, PARTIALLY_SHIPPED)

# A line's own status.
LINE_ACCEPTED, LINE_REFUSED, LINE_CANCELLED = "ACCEPTED", "REFUSED", "CANCELLED"


@dataclass(frozen=True)
class Transition:
    name: str
    event: str  # the event type it emits (supplier_order.<...>)
    by: Mapping[str, tuple[str, ...]]  # who -> the statuses it may fire it from
    targets: tuple[str, ...]  # the statuses it may lead to; () for one that keeps the status

    @property
    def roles(self) -> tuple[str, ...]:
        """The callers' roles that may fire it (the API route's ``allow(...)``), in a stable order."""
        return tuple(r for r in sorted(access.ROLES) if r in self.by)

    def sources(self, acting: frozenset[str] | set[str] | tuple[str, ...]) -> tuple[str, ...]:
        """The statuses from which any of ``acting`` (roles, or SYSTEM) may fire it."""
        return tuple(dict.fromkeys(s for who in acting for s in self.by.get(who, ())))

    def leads(self, source: str) -> tuple[str, ...]:
        """Where it may take an order in ``source``: its targets, or ``source`` itself if it keeps it."""
        return self.targets or (source,)

    def require_target(self, source: str, target: str) -> None:
        """A write that would take the order elsewhere than the definition says is a bug: refused."""
        if target not in self.leads(source):
            raise RuntimeError(f"{self.name} cannot take an order from {source} to {target}")

    def check(self, status: str, acting: frozenset[str] | set[str] | tuple[str, ...]) -> None:
        """409 naming the current status unless one of ``acting`` may fire it from ``status``."""
        allowed = self.sources(acting)
        if status not in allowed:
            raise Conflict(
                f"the order is {status}; {self.name.replace('_', ' ')} needs it "
                f"{' or '.join(allowed) if allowed else 'in a status it never reaches for this caller'}"
            )


_STAFF_BEFORE_SHIPMENT = (*INTAKE, AWAITING, ACCEPTED)

TRANSITIONS: dict[str, Transition] = {t.name: t for t in (
    # Every line refused is the supplier's rejection (its event is supplier_order.rejected).
    Transition("accept", "supplier_order.accepted", {access.SUPPLIER: (AWAITING,)}, (ACCEPTED,)),
    Transition("reject", "supplier_order.rejected", {access.SUPPLIER: (AWAITING,)}, (REJECTED,)),
    Transition("expire", "supplier_order.expired", {SYSTEM: (AWAITING,)}, ("EXPIRED",)),
    Transition("ship", "supplier_order.shipped", {access.SUPPLIER: (ACCEPTED, PARTIALLY_SHIPPED)},
               (PARTIALLY_SHIPPED, SHIPPED)),
    Transition("deliver", "supplier_order.delivered",
               {access.SUPPLIER: (SHIPPED,), access.RETAILER: (SHIPPED,)}, (DELIVERED,)),
    # The retailer (for its customer) and an admin before anything shipped; the supplier once it
    # accepted and finds it cannot fulfil; the system from the correction queue (a flagged order).
    Transition("cancel", "supplier_order.cancelled",
               {access.RETAILER: _STAFF_BEFORE_SHIPMENT, access.ADMIN: _STAFF_BEFORE_SHIPMENT,
                access.SUPPLIER: (ACCEPTED,), SYSTEM: _STAFF_BEFORE_SHIPMENT}, (CANCELLED,)),
    Transition("cancel_lines", "supplier_order.lines_cancelled",
               {access.RETAILER: (AWAITING, ACCEPTED), access.ADMIN: (AWAITING, ACCEPTED),
                access.SUPPLIER: (ACCEPTED,)}, ()),
    # Once part of it has shipped, the supplier that cannot send the rest (or an admin) cancels the
    # units still to ship: the order is SHIPPED when nothing is left to send.
    Transition("cancel_unshipped", "supplier_order.lines_cancelled",
               {access.ADMIN: (PARTIALLY_SHIPPED,), access.SUPPLIER: (PARTIALLY_SHIPPED,)},
               (PARTIALLY_SHIPPED, SHIPPED)),
    # The timed transitions (TIMERS below), fired by the deadline sweeper.
    Transition("late", "supplier_order.late", {SYSTEM: (ACCEPTED, PARTIALLY_SHIPPED)}, ()),
    Transition("auto_cancel", "supplier_order.cancelled", {SYSTEM: (ACCEPTED,)}, (CANCELLED,)),
    Transition("auto_deliver", "supplier_order.delivered", {SYSTEM: (SHIPPED,)}, (DELIVERED,)),
    Transition("close", "supplier_order.closed", {SYSTEM: (DELIVERED,)}, (CLOSED,)),
    # Returns, while DELIVERED (an order with an open return does not close): the retailer asks, the
    # supplier accepts or refuses, then says the units came back (the refund is recorded).
    Transition("request_return", "supplier_order.return_requested", {access.RETAILER: (DELIVERED,)}, ()),
    Transition("accept_return", "supplier_order.return_accepted", {access.SUPPLIER: (DELIVERED,)}, ()),
    Transition("refuse_return", "supplier_order.return_refused", {access.SUPPLIER: (DELIVERED,)}, ()),
    Transition("receive_return", "supplier_order.return_received", {access.SUPPLIER: (DELIVERED,)}, ()),
    # An accepted return that either side contests (the retailer: sent back, never said received;
    # the supplier: the units came back not as described) is an incident too (D44).
    Transition("dispute_return", "supplier_order.return_disputed",
               {access.RETAILER: (DELIVERED,), access.SUPPLIER: (DELIVERED,)}, ()),
    # An incident (a refused or disputed return): the admin decides it, refund or not, with a reason
    # (D35), the refund of all its units or some (D44).
    Transition("decide_return", "supplier_order.incident_resolved", {access.ADMIN: (DELIVERED,)}, ()),
)}  # fmt: skip


# ---------------------------------------------------------------------------- timed transitions
@dataclass(frozen=True)
class Timer:
    """A transition the system fires once an order has stayed in one of ``statuses`` for ``after``
    (the tenant's setting) since the moment named by its field ``since``."""

    transition: str
    statuses: tuple[str, ...]
    since: str  # the order's field the wait starts from
    after: Any  # OrderSettings -> timedelta
    once_flag: str | None = None  # a field the transition sets: fired already (late keeps the status)


TIMERS: tuple[Timer, ...] = (
    Timer("late", (ACCEPTED, PARTIALLY_SHIPPED), "acceptedAt",
          lambda s: timedelta(hours=s.ship_by_hours), once_flag="lateAt"),
    Timer("auto_cancel", (ACCEPTED,), "acceptedAt", lambda s: timedelta(days=s.auto_cancel_unshipped_days)),
    Timer("auto_deliver", (SHIPPED,), "shippedAt", lambda s: timedelta(days=s.auto_deliver_days)),
    Timer("close", (DELIVERED,), "deliveredAt", lambda s: timedelta(days=s.return_window_days)),
)  # fmt: skip
# A return's own statuses; while open, its order does not close. Each return transition takes a
# return from these statuses to that one (the order's own status stays DELIVERED). A REFUSED or
# DISPUTED return is an incident in the admin's correction queue, open until the admin decides it:
# REFUNDED (the refund recorded as a received return records it) or CLOSED (no refund), with a reason.
RETURN_INCIDENT = "REFUSED"
RETURN_DISPUTED = "DISPUTED"
INCIDENTS = (RETURN_INCIDENT, RETURN_DISPUTED)
RETURN_OPEN = ("REQUESTED", "ACCEPTED", *INCIDENTS)
RETURN_STATUSES = ("REQUESTED", "ACCEPTED", *INCIDENTS, "RECEIVED", "REFUNDED", "CLOSED")
RETURN_STEPS: dict[str, tuple[tuple[str, ...], str]] = {
    "request_return": ((), "REQUESTED"),
    "accept_return": (("REQUESTED",), "ACCEPTED"),
    "refuse_return": (("REQUESTED",), RETURN_INCIDENT),
    "receive_return": (("ACCEPTED",), "RECEIVED"),
    "dispute_return": (("ACCEPTED",), RETURN_DISPUTED),
}
# The admin's decision on an incident: refund -> its status.
RETURN_DECIDED = {True: "REFUNDED", False: "CLOSED"}


def returnable(line: Mapping[str, Any]) -> int:
    """The units of a line that a new return may still claim: shipped, less those other returns
    claimed (a refused return keeps its claim: its dispute is not settled by asking again)."""
    return int(line.get("shipped", 0)) - int(line.get("returned", 0))


def next_deadline(order: Mapping[str, Any], settings: OrderSettings) -> tuple[str, datetime] | None:
    """The next timed transition due for ``order`` as it is (the earliest of those that apply to
    its status and have not fired), and when: the one deadline the order carries in the sweeper's
    index. None when none is due (a final status, or a DELIVERED order with an open return)."""
    if order.get("status") == DELIVERED and any(
        r in RETURN_OPEN for r in dict(order.get("returns") or {}).values()
    ):
        return None
    due = [
        (parse_iso(str(order[t.since])) + t.after(settings), t.transition)
        for t in TIMERS
        if order.get("status") in t.statuses and order.get(t.since)
        and not (t.once_flag and order.get(t.once_flag))
    ]  # fmt: skip
    if not due:
        return None
    at, name = min(due)
    return name, at


def diagram() -> str:
    """The lifecycle as a Mermaid state diagram (docs/orders.md, generated by ``make docs``): one arrow
    per transition, source and target, labelled with who fires it and the event it emits."""
    lines = ["stateDiagram-v2", f"    [*] --> {AWAITING} : the intake reserved the stock"]
    for t in TRANSITIONS.values():
        sources = dict.fromkeys(s for statuses in t.by.values() for s in statuses)
        for source in sources:
            who = ", ".join(w for w, statuses in t.by.items() if source in statuses)
            for target in t.leads(source):
                lines.append(f"    {source} --> {target} : {t.name} by {who}, emits {t.event}")
    return "\n".join(lines) + "\n"


def transition(name: str) -> Transition:
    return TRANSITIONS[name]


def roles(*names: str) -> tuple[str, ...]:
    """The roles that may fire any of ``names``: what their route allows."""
    return tuple(r for r in sorted(access.ROLES) if any(r in TRANSITIONS[n].by for n in names))


def held(line: Mapping[str, Any]) -> int:
    """The units of a line still taken from its listing: none once refused or cancelled, else those
    neither shipped (they left the stock for good) nor cancelled (they went back)."""
    if line.get("status") in (LINE_REFUSED, LINE_CANCELLED):
        return 0
    return int(line["quantity"]) - int(line.get("shipped", 0)) - int(line.get("cancelled", 0))


def live(line: Mapping[str, Any]) -> bool:
    """A line the order still has to ship (not refused, not cancelled)."""
    return line.get("status") not in (LINE_REFUSED, LINE_CANCELLED)


def after_shipment(lines: list[dict[str, Any]]) -> str:
    """SHIPPED once every live line has shipped in full, else PARTIALLY_SHIPPED."""
    done = all(held(line) == 0 for line in lines if live(line))
    return SHIPPED if done else PARTIALLY_SHIPPED


def marker(name: str, version: int, **detail: Any) -> dict[str, Any]:
    """What a transition writes on the order (``lastEvent``): the event it emits and the version it
    wrote, so that the stream announces exactly that event for exactly that write."""
    return {"type": TRANSITIONS[name].event, "version": version, **detail}

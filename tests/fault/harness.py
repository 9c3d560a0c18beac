"""A fault run: drives supplier onboardings and supplier orders through a local stack with faults
switched on, waits until everything has settled, and checks that nothing was lost, duplicated or
oversold (``make faults``; a small run is a test in tests/fault)::

    python -m tests.fault.harness --onboardings 1000 --orders 1000 --transient 0.2 --duplicates 0.05

The work goes through the stack's HTTP API with tokens from the stack's own issuer, as users would
drive it: retailers onboard suppliers (valid ones, ones that get flagged, ones on the blocked list),
suppliers list products with limited stock and register webhooks pointing at a real HTTP receiver
on loopback (:class:`marketplace_local.faults.WebhookReceiver`, down for a while), retailers place
orders that compete for that stock, suppliers accept or reject them, admins fix half the flagged
suppliers, drain the correction queue and cancel half the flagged orders; the rest of the awaiting
orders expire when the expiry schedule runs at a time past their deadline (the run moves that
time instead of waiting a day). The accepted orders then go on down the paths of
:data:`AFTER_ACCEPTANCE`: shipped whole or in two shipments, delivered by hand or by the deadline
sweeper, cancelled by the retailer, by the supplier or unshipped by the sweeper (their stock back),
returned and refunded or with their return left open, closed after the return window, with the
webhook receiver down again for a while as they begin; the sweeper runs at the times the orders'
own deadlines say. Step Functions retry intervals run on the engine's manual clock.

What is checked, from the table, the executions and the queues (not from the API's answers):

* lost: a record neither in a final status nor waiting for a correction (FLAGGED with its correction
  parked in the tenant's partition, where the drain reads it, or its message still on the queue on
  the way there, visible, in flight or delayed: :func:`held_corrections`) nor accounted for by a
  message in a dead-letter queue;
* duplicated: a record version with more than one execution, an event with more than one webhook
  delivery, or a listing whose stock counter moved by more than its orders' reservations;
* oversold: per listing, units held by orders (not shipped yet) and units shipped beyond its stock;
  the listing's counter must equal its stock less those, so stock released twice or never is a drift;
* after acceptance: each order ends in the status its path says, every change from its acceptance on
  (each version) has its event delivered, and a received return has its exact refund.

The exit status is 1 when any of them is not 0 (or the run did not settle before its deadline).
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import hashlib
import json
import math
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import ChainMap, Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from marketplace import keys
from marketplace.clock import parse_iso
from marketplace.corrections import Parked
from marketplace.order_lifecycle import held
from marketplace.orders import HOLDS_STOCK
from marketplace.repository import Table, from_item, to_item
from marketplace_local.faults import KINDS, FaultConfig, FaultInjector, WebhookReceiver
from marketplace_local.moto_patches import engine
from marketplace_local.samples import SHIP_TO
from marketplace_local.stack import LocalStack, StackConfig, free_port

SUPPLIER_FINAL = ("APPROVED", "REJECTED")
# Where the run leaves a supplier order: what it drove it to and where no timer takes it further.
ORDER_FINAL = (
    "ACCEPTED",
    "REJECTED",
    "EXPIRED",
    "CANCELLED",
    "PARTIALLY_SHIPPED",
    "SHIPPED",
    "DELIVERED",
    "CLOSED",
)
# What happens to an accepted order after its acceptance (the accepted orders take them in turn, in
# this order, so that a small run has the first few), and the status the API leaves it in.
AFTER_ACCEPTANCE = {
    "shipped in two, delivered automatically": "SHIPPED",  # one shipment when it has one unit
    "cancelled by the retailer": "CANCELLED",  # its stock back
    "returned and refunded": "DELIVERED",  # delivered by hand; the return received, it may close
    "shipped, delivered by hand": "DELIVERED",
    "left unshipped": "ACCEPTED",  # late, then cancelled by the sweeper (its stock back)
    "partially shipped": "PARTIALLY_SHIPPED",  # late; one unit ships whole (SHIPPED)
    "cancelled by the supplier": "CANCELLED",  # its stock back
    "return left open": "DELIVERED",  # an open return keeps it from closing
}
TIMERS = ("late", "auto_cancel", "auto_deliver", "close")


def expected_status(path: str, units: int, timers: tuple[str, ...]) -> str:
    """Where an order on ``path`` ends once the sweeper has run past each deadline of ``timers``."""
    status = AFTER_ACCEPTANCE[path]
    if status == "PARTIALLY_SHIPPED" and units == 1:
        status = "SHIPPED"
    if status == "ACCEPTED" and {"late", "auto_cancel"} <= set(timers):  # auto-cancel waits for late
        status = "CANCELLED"
    if status == "SHIPPED" and "auto_deliver" in timers:
        status = "DELIVERED"
    if status == "DELIVERED" and "close" in timers and path != "return left open":
        status = "CLOSED"
    return status


BLOCKED_DOMAIN = "blocked-trader.com"
LISTING_PRICE = {"amount": 49.9, "currency": "EUR"}
EXECUTION_ENDS = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


@dataclass
class RunSettings:
    onboardings: int = 1000
    orders: int = 1000
    shops: int = 0  # suppliers with a listing; 0: one per 50 onboardings, 4 to 20
    workers: int = 4
    deadline: float = 1800.0  # seconds, for the whole run
    # The timed transitions the run drives the sweeper through (each costs a sweep of ~500 queries).
    timers: tuple[str, ...] = TIMERS
    state_dir: Path | None = None


def supplier_body(n: int, kind: str) -> dict[str, Any]:
    domain = BLOCKED_DOMAIN if kind == "blocked" else f"supplier{n}.example.com"
    return {
        "legalName": f"Fault Run Supplier {n} GmbH",
        "taxId": "DE12345" if kind == "flagged" else f"DE{100000000 + n:09d}",
        "country": "DE", "contactEmail": f"sales@{domain}", "website": f"https://{domain}",
        "phone": "+49 30 1234567",
        "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postalCode": "10115", "country": "DE"},
    }  # fmt: skip


def bucket(identifier: str, buckets: int = 100) -> int:
    """A stable pseudo-random bucket of an id: what the supplier does with an order."""
    return int(hashlib.sha256(identifier.encode()).hexdigest(), 16) % buckets


class Api:
    """The stack's HTTP API with a token per role; retries what a careful client retries."""

    def __init__(self, stack: LocalStack, tenant: str) -> None:
        self.url = stack.api_url
        self.issuer = stack.issuer
        self.tenant = tenant
        self._tokens: dict[tuple[str, str | None], str] = {}
        self._local = threading.local()
        self.retried = 0

    def _headers(self, role: str, supplier_id: str | None) -> dict[str, str]:
        key = (role, supplier_id)
        if key not in self._tokens:
            self._tokens[key] = self.issuer.mint(
                self.tenant, role, supplier_id=supplier_id, ttl_seconds=6 * 3600
            )
        return {"Authorization": f"Bearer {self._tokens[key]}"}

    def call(self, method: str, path: str, role: str, body: Any = None, supplier_id: str | None = None,
             idempotency_key: str | None = None, params: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> requests.Response:  # fmt: skip
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        headers = {**self._headers(role, supplier_id), **(headers or {})}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        for attempt in range(8):
            try:
                response = session.request(method, f"{self.url}{path}", json=body, headers=headers,
                                           params=params, timeout=60)  # fmt: skip
            except requests.RequestException:  # refused, reset, or no answer in time: retry
                response = None
            if response is not None and response.status_code < 500 and response.status_code != 429:
                return response
            self.retried += 1
            time.sleep(min(0.1 * 2**attempt, 2.0))
        raise RuntimeError(f"{method} {path}: no answer after retries ({response and response.status_code})")


@dataclass
class Shop:
    supplier_id: str
    sku: str
    stock: int
    secret: str


@dataclass
class Proposed:
    """A high-risk change PATCHed to a live shop record (D41), and what it should end as: the record
    changed (``applied``) or its proposal held for a human (``flagged``)."""

    path: str  # the record's API path
    supplier_id: str
    field: str
    value: Any
    expected: str  # applied | flagged

    def outcome(self, shown: dict[str, Any]) -> str:
        """applied, flagged, pending, or what it wrongly is (another status, the change missing)."""
        proposal = shown.get("proposal")
        if proposal is None:
            return "applied" if shown.get(self.field) == self.value else "dropped"
        return str(proposal.get("status", "?")).lower()


@dataclass
class Observed:
    suppliers: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    listings: dict[str, dict[str, Any]] = field(default_factory=dict)  # supplier id -> listing
    deliveries: list[dict[str, Any]] = field(default_factory=list)


class FaultRun:
    def __init__(self, settings: RunSettings, faults: FaultConfig) -> None:
        self.settings = settings
        self.faults = faults
        self.tenant = f"faults-{uuid.uuid4().hex[:8]}"
        self.random = random.Random(faults.seed)
        self.started = time.monotonic()
        self.deadline = self.started + settings.deadline
        self.supplier_kinds: dict[str, str] = {}  # supplier id -> valid | flagged | blocked
        self.order_kinds: dict[str, str] = {}  # supplier order id -> valid | mispriced
        self.shops: list[Shop] = []
        self.retried: dict[str, Any] = {}  # shop supplier -> the listing version an admin retried
        self.fixed: set[str] = set()
        self.cancelled: set[str] = set()
        self.decided: dict[str, str] = {}
        self.paths: dict[str, str] = {}  # accepted supplier order id -> what happens after (AFTER_ACCEPTANCE)
        self.returns: dict[str, str] = {}  # return id -> supplier order id
        self.sweeps: list[str] = []
        self.proposals: list[Proposed] = []  # high-risk changes to the shops, reviewed under the faults
        self.kinds = ChainMap(self.supplier_kinds, self.order_kinds)
        self.notes: list[str] = []

    # ------------------------------------------------------------------ the run
    def run(self, stack: LocalStack | None = None) -> dict[str, Any]:
        """Run on a stack of its own, or on ``stack`` (already started, on a manual clock: the tests'
        shared stack), with the faults scoped to this run's tenant."""
        own = stack is None
        if own:
            clock = engine.ManualClock()
            previous = engine.use_clock(clock)
            state_dir = self.settings.state_dir or Path(tempfile.mkdtemp(prefix="fault-run-"))
            config = StackConfig(api_port=free_port(), moto_port=free_port(), state_dir=state_dir,
                                 run_schedules=False, faults=self.faults)  # fmt: skip
            self.stack = LocalStack(config).start()
            self.injector = self.stack.faults
        else:
            clock = engine.current_clock()
            self.stack = stack
            scoped = dataclasses.replace(self.faults, only_matching=self.tenant)
            self.injector = FaultInjector(scoped).install(stack)
        assert self.injector is not None
        # The receiver listens before the suppliers register it; its down window counts from the main phase.
        self.receiver = WebhookReceiver(self.faults.webhook_down, injector=self.injector).start(window=False)
        self.stack.allow_webhook_port(self.receiver.port)
        try:
            self.api = Api(self.stack, self.tenant)
            self.table = Table(self.stack.physical_id("MarketplaceTable"), self.stack.client("dynamodb"))
            self._setup()
            self._main_phase()
            self._corrections()
            self._finish_orders()
            self._after_acceptance()
            self._timed_transitions()
            settled = self._wait_settled()
            result = self._verify(settled)
            result["retrySleepsRecorded"] = len(getattr(clock, "sleeps", []))
            return result
        finally:
            self.receiver.stop()
            if own:
                self.stack.stop()
                engine.use_clock(previous)
            else:
                self.injector.uninstall()

    def _left(self) -> float:
        return self.deadline - time.monotonic()

    def _setup(self) -> None:
        """The blocked list, and the shops: approved suppliers with one listing of limited stock each,
        and a webhook on the receiver."""
        created = self.api.call("POST", "/admin/blocklist", "admin",
                                {"kind": "domain", "value": BLOCKED_DOMAIN, "reason": "fault run: a fraud ring"})  # fmt: skip
        assert created.status_code == 201, created.text
        count = self.settings.shops or max(4, min(20, self.settings.onboardings // 50))
        stock = max(3, math.ceil(self.settings.orders / count))  # about half of the demand: contention
        ids = [self._onboard(n, "valid") for n in range(count)]
        self._wait(
            lambda: all(self._supplier(s)["status"] == "APPROVED" for s in ids), "shop suppliers approved"
        )
        for supplier_id in ids:
            secret = f"secret-{uuid.uuid4().hex}"
            self.receiver.secrets[supplier_id] = secret
            hooked = self.api.call("PUT", f"/suppliers/{supplier_id}/webhook", "supplier",
                                   {"url": self.receiver.url, "secret": secret}, supplier_id=supplier_id)  # fmt: skip
            assert hooked.status_code == 200, hooked.text
            listing = {"sku": "LAMP-1", "title": "Desk lamp", "category": "home", "price": LISTING_PRICE,
                       "quantity": stock, "images": ["https://cdn.example.com/lamp.webp"],
                       "attributes": {"material": "steel"}}  # fmt: skip
            made = self.api.call("POST", f"/suppliers/{supplier_id}/products", "supplier", listing,
                                 supplier_id=supplier_id, idempotency_key=f"listing-{supplier_id}")  # fmt: skip
            assert made.status_code in (201, 202), made.text
            self.shops.append(Shop(supplier_id, "LAMP-1", stock, secret))
        self._wait(self._shop_listings_active, "listings active")
        self._propose()

    def _propose(self) -> None:
        """High-risk changes to the live shops (D41), reviewed while their orders go on under the
        faults: every other shop renames itself (approved, then applied), the rest give an invalid
        tax id (flagged, held for a human); every third listing moves its images to a new host."""
        for n, shop in enumerate(self.shops):
            supplier = f"/suppliers/{shop.supplier_id}"
            changes = [Proposed(supplier, shop.supplier_id, "legalName", f"Fault Run Shop {n} AG", "applied")
                       if n % 2 == 0 else Proposed(supplier, shop.supplier_id, "taxId", "DE21111", "flagged")]  # fmt: skip
            if n % 3 == 0:
                images = [f"https://images.shop{n}.example.net/lamp.webp"]
                changes.append(
                    Proposed(f"{supplier}/products/{shop.sku}", shop.supplier_id, "images", images, "applied")
                )
            for change in changes:
                role = "retailer" if change.path == supplier else "supplier"
                answer = self.api.call("PATCH", change.path, role, {change.field: change.value},
                                       supplier_id=shop.supplier_id)  # fmt: skip
                assert answer.status_code == 202, answer.text  # held for review, the record untouched
                self.proposals.append(change)

    def _retry_proposals(self) -> list[Proposed]:
        """A proposal that should apply but was flagged (its review failed every retry: a system
        error) is validated again at an admin's request, as the runbook says; the drain then resumes
        it. The ones asked for."""
        asked = []
        for change in self.proposals:
            shown = self.api.call("GET", change.path, "retailer").json()
            if change.expected != "applied" or (shown.get("proposal") or {}).get("status") != "FLAGGED":
                continue
            listing = "/products/" in change.path
            record = (
                f"{change.supplier_id}:{change.path.rsplit('/', 1)[-1]}" if listing else change.supplier_id
            )
            kind = "PRODUCT_PROPOSAL" if listing else "SUPPLIER_PROPOSAL"
            if self.api.call("POST", f"/admin/corrections/{kind}:{record}/retry", "admin").status_code == 200:
                asked.append(change)
        return asked

    def _proposal_outcomes(self) -> Counter[str]:
        """How the proposals stand, by ``<expected> -> <outcome>``, read through the API."""
        found: Counter[str] = Counter()
        for change in self.proposals:
            shown = self.api.call("GET", change.path, "retailer").json()
            found[f"{change.expected} -> {change.outcome(shown)}"] += 1
        return found

    def _shop_listings_active(self) -> bool:
        """The shops' listings are set up under the faults too: one whose validation failed every
        retry is flagged with a system error, and an admin asks for it to be validated again (as the
        runbook says) and drains, instead of the run waiting for it until its deadline."""
        active = True
        for shop in self.shops:
            listing = (
                self.table.get(keys.supplier_pk(self.tenant, shop.supplier_id), keys.product_sk(shop.sku))
                or {}
            )
            if listing.get("status") == "ACTIVE":
                continue
            active = False
            if listing.get("status") == "FLAGGED" and listing.get("version") != self.retried.get(
                shop.supplier_id
            ):
                answer = self.api.call(
                    "POST", f"/admin/corrections/PRODUCT:{shop.supplier_id}:{shop.sku}/retry", "admin"
                )
                if answer.status_code == 200:
                    self.retried[shop.supplier_id] = answer.json().get("version")
        if not active and self.retried:
            self.api.call(
                "POST", "/admin/corrections/drain", "admin"
            )  # a failed call is tried again next turn
        return active

    def _onboard(self, n: int, kind: str) -> str:
        response = self.api.call("POST", "/suppliers", "retailer", supplier_body(n, kind),
                                 idempotency_key=f"{self.tenant}-supplier-{n}")  # fmt: skip
        assert response.status_code in (201, 202), response.text
        supplier_id = response.json()["supplierId"]
        self.supplier_kinds[supplier_id] = kind
        return supplier_id

    def _order(self, n: int) -> None:
        shop = self.shops[self.random.randrange(len(self.shops))]
        mispriced = n % 25 == 7  # 4 %: a price that is not the listing's: flagged for a human
        price = {"amount": 39.9, "currency": "EUR"} if mispriced else LISTING_PRICE
        body = {"customerOrderId": f"{self.tenant}-c{n}", "shipTo": SHIP_TO,
                "lines": [{"supplierId": shop.supplier_id, "sku": shop.sku, "quantity": 1 + n % 3, "unitPrice": price}]}  # fmt: skip
        response = self.api.call("POST", "/orders", "retailer", body, idempotency_key=body["customerOrderId"])
        assert response.status_code in (201, 202), response.text
        for part in response.json()["supplierOrders"]:
            self.order_kinds[part["supplierOrderId"]] = "mispriced" if mispriced else "valid"

    def _main_phase(self) -> None:
        first = len(self.supplier_kinds)
        kinds = ["valid"] * 14 + ["flagged"] * 3 + ["blocked"] * 3
        work = [("supplier", n) for n in range(first, self.settings.onboardings)]
        work += [("order", n) for n in range(self.settings.orders)]
        self.random.shuffle(work)
        self.receiver.start_window()
        stop = threading.Event()
        decider = threading.Thread(target=self._decide_loop, args=(stop,), daemon=True)
        decider.start()

        # Work not submitted by 60 % of the deadline is left out (and said so): the rest of the time
        # is for the workflows to finish and for the checks.
        submit_by = self.started + 0.6 * self.settings.deadline
        skipped: list[tuple[str, int]] = []

        def do(item: tuple[str, int]) -> None:
            what, n = item
            if time.monotonic() > submit_by:
                skipped.append(item)
                return
            if what == "supplier":
                self._onboard(n, kinds[n % len(kinds)])
            else:
                self._order(n)

        with ThreadPoolExecutor(self.settings.workers) as pool:
            list(pool.map(do, work))
        self.notes.append(f"work submitted in {time.monotonic() - self.started:.0f}s")
        if skipped:
            self.notes.append(
                f"NOT submitted before 60 % of the deadline: {len(skipped)} of {len(work)} items"
            )
        try:
            self._wait(
                lambda: not self._pending(),
                "every intake and onboarding past PENDING",
                interval=2.0,
                within=180,
            )
        except TimeoutError as exc:
            self.notes.append(str(exc))  # what stays PENDING is reported as lost below
        stop.set()
        decider.join()

    def _pending(self) -> list[str]:
        observed = self._observe(deliveries=False)
        return [i for i, r in {**observed.suppliers, **observed.orders}.items() if r["status"] == "PENDING"]

    def _decide_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._decide_once()
            stop.wait(2.0)

    def _decide_once(self) -> int:
        """Suppliers accept 45 % of their awaiting orders, reject 30 %, and let 25 % expire. Which
        orders await is read from the table (an observer's shortcut); the decisions go through the API."""
        done = 0
        observed = self._observe(deliveries=False)
        for order_id, order in observed.orders.items():
            choice = bucket(order_id)
            if order["status"] != "AWAITING_ACCEPTANCE" or choice >= 75 or order_id in self.decided:
                continue
            action = "accept" if choice < 45 else "reject"
            body = None if action == "accept" else {"reason": "fault run: the supplier says no"}
            answer = self.api.call("POST", f"/supplier-orders/{order_id}/{action}", "supplier", body,
                                   supplier_id=order["supplierId"])  # fmt: skip
            self.decided[order_id] = f"{action}:{answer.status_code}"
            done += 1
        return done

    def _corrections(self) -> None:
        """Admins fix half of the flagged suppliers (then drain) and cancel half of the flagged orders."""
        observed = self._observe(deliveries=False)
        flagged = sorted(s for s, r in observed.suppliers.items() if r["status"] == "FLAGGED")
        for n, supplier_id in enumerate(flagged[::2]):
            version = str(observed.suppliers[supplier_id]["version"])
            fixed = self.api.call("PATCH", f"/suppliers/{supplier_id}", "admin", {"taxId": f"DE{900000000 + n:09d}"},
                                  headers={"If-Match": version})  # fmt: skip
            if fixed.status_code == 200:
                self.fixed.add(supplier_id)
        flagged_orders = sorted(o for o, r in observed.orders.items() if r["status"] == "FLAGGED")
        for order_id in flagged_orders[::2]:
            answer = self.api.call("POST", f"/supplier-orders/{order_id}/cancel", "admin",
                                   {"reason": "fault run: wrong price"})  # fmt: skip
            if answer.status_code == 200:
                self.cancelled.add(order_id)

        retried = self._retry_proposals()
        if retried:
            self.notes.append(f"{len(retried)} proposal(s) flagged by a system error retried by an admin")

        def drained() -> bool:
            # As the API asks: called again while it answers more (the queue held more than one
            # call's time), so the last call has read the whole queue.
            answer = self.api.call("POST", "/admin/corrections/drain", "admin")
            more = answer.status_code != 200 or bool(answer.json().get("more"))
            states = self._observe(deliveries=False).suppliers
            resumed = all(
                change.outcome(self.api.call("GET", change.path, "retailer").json()) != "flagged"
                for change in retried
            )
            return not more and resumed and all(states[s]["status"] in SUPPLIER_FINAL for s in self.fixed)

        try:
            self._wait(drained, "fixed suppliers drained and decided", interval=1.0, within=120)
        except TimeoutError as exc:
            self.notes.append(str(exc))

    def _finish_orders(self) -> None:
        """The suppliers' last decisions, then the expiry schedule at a time past every deadline."""
        self._decide_once()
        observed = self._observe(deliveries=False)
        deadlines = [parse_iso(r["deadline"]) for r in observed.orders.values()
                     if r["status"] == "AWAITING_ACCEPTANCE" and r.get("deadline")]  # fmt: skip
        if not deadlines:
            return
        as_of = max(deadlines) + timedelta(seconds=60)
        sweeper = self.stack.physical_id("ExpireSupplierOrdersFunction")
        # The schedule's event carries its time: the run moves it past the SLA instead of waiting.
        event = {"source": "aws.events", "detail-type": "Scheduled Event", "time": as_of.isoformat()}
        for _ in range(20):
            if not self.stack.runtime.invoke(sweeper, event).errored:
                break
        self.notes.append(f"expiry schedule run as of {as_of.isoformat(timespec='seconds')}")

    def _after_acceptance(self) -> None:
        """Each accepted order down one path of :data:`AFTER_ACCEPTANCE` through the API, as its
        supplier and retailer would (a create carries an Idempotency-Key, as a careful client's retry
        does; a transition retried after it went through answers 200 again or 409)."""
        observed = self._observe(deliveries=False)
        accepted = sorted(o for o, r in observed.orders.items() if r["status"] == "ACCEPTED")
        names = list(AFTER_ACCEPTANCE)
        for n, order_id in enumerate(accepted):
            self.paths[order_id] = names[n % len(names)]
        started = time.monotonic()

        def drive(order_id: str) -> None:
            order = observed.orders[order_id]
            path, supplier_id = self.paths[order_id], order["supplierId"]
            (line,) = order["lines"]
            sku, units = line["sku"], int(line["quantity"])

            def call(method: str, action: str, role: str, body: Any = None, key: str | None = None,
                     ok: tuple[int, ...] = (200,), under: str = "supplier-orders", of: str = order_id) -> Any:  # fmt: skip
                answer = self.api.call(method, f"/{under}/{of}/{action}", role, body, supplier_id=supplier_id,
                                       idempotency_key=key and f"{self.tenant}-{of}-{key}")  # fmt: skip
                if answer.status_code not in ok:
                    self.notes.append(
                        f"{path}: {action} of {of} answered {answer.status_code} {answer.text[:200]}"
                    )
                return answer.json() if answer.content else None

            def ship(quantity: int, n: int) -> None:
                body = {
                    "carrier": "DHL",
                    "trackingNumber": f"JD{n}{order_id[:8]}",
                    "lines": [{"sku": sku, "quantity": quantity}],
                }
                call("POST", "shipments", "supplier", body, key=f"shipment-{n}", ok=(201,))

            if path == "left unshipped":
                return
            if path.startswith("cancelled"):
                role = "retailer" if path.endswith("retailer") else "supplier"
                call("POST", "cancel", role, {"reason": f"fault run: {role} cancels"}, ok=(200, 409))
                return
            if path in ("shipped in two, delivered automatically", "partially shipped") and units > 1:
                ship(1, 1)
                if path == "partially shipped":
                    return
                ship(units - 1, 2)
            else:
                ship(units, 1)
            if path in ("shipped in two, delivered automatically", "partially shipped"):
                return  # the sweeper delivers it
            call("POST", "delivered", "retailer" if bucket(order_id, 2) else "supplier")
            made = call("POST", "returns", "retailer", {"lines": [{"sku": sku, "quantity": units}],
                        "reason": "fault run: the customer sends it back"}, key="return", ok=(201,)) if "return" in path else None  # fmt: skip
            if made and path == "returned and refunded":
                self.returns[made["returnId"]] = order_id
                for step in ("accept", "received"):
                    call("POST", step, "supplier", key=f"return-{step}", under="returns", of=made["returnId"])
            elif made:
                self.returns[made["returnId"]] = order_id

        # The receiver is down again for as long as in the main phase, as the transitions begin.
        back_up = None
        if self.faults.webhook_down:
            self.receiver.go_down()
            back_up = threading.Timer(self.faults.webhook_down[1], self.receiver.come_up)
            back_up.start()
        with ThreadPoolExecutor(self.settings.workers) as pool:
            list(pool.map(drive, accepted))
        if back_up is not None:
            back_up.join()
        self.notes.append(
            f"after acceptance: {len(accepted)} orders driven in {time.monotonic() - started:.0f}s"
        )

    def _timed_transitions(self) -> None:
        """The deadline sweeper, run at the times the orders' own deadlines say (the schedule's event
        carries its time, as in :meth:`_finish_orders`), until none of the run's orders carries one
        of the run's ``timers``: late, cancelled unshipped, delivered automatically, closed. Each run looks back 48 hours, so
        one run covers the deadlines that fall within a day of each other; the runs for deadlines
        days apart touch different orders and go at once (a run is ~500 queries, slow on moto), and
        the deadlines their transitions set are swept in the next round."""
        sweeper = self.stack.physical_id("ExpireSupplierOrdersFunction")
        started = time.monotonic()

        def sweep(as_of: Any) -> None:
            event = {"source": "aws.events", "detail-type": "Scheduled Event", "time": as_of.isoformat()}
            for _ in range(20):  # a failed run (an injected fault) is run again: it fires nothing twice
                result = self.stack.runtime.invoke(sweeper, event)
                if not result.errored:
                    return
                if result.json().get("errorType") == "Sandbox.Timedout":
                    # It ran past the function's timeout (a big run on a slow machine): said, not run
                    # again at once; the next round sweeps whatever it left due.
                    self.notes.append(f"the sweep as of {as_of:%Y-%m-%dT%H:%M} ran past its timeout")
                    return

        for _ in range(len(AFTER_ACCEPTANCE)):
            orders = self._observe(deliveries=False).orders
            due = sorted(parse_iso(r["deadline"]) for o, r in orders.items()
                         if o in self.paths and r.get("due") in self.settings.timers)  # fmt: skip
            if not due:
                count = sum(len(r.split(" + ")) for r in self.sweeps)
                self.notes.append(
                    f"{count} deadline sweeps in {len(self.sweeps)} rounds, {time.monotonic() - started:.0f}s"
                )
                return
            runs: list[list[Any]] = []
            for deadline in due:
                if runs and deadline - runs[-1][0] < timedelta(hours=24):
                    runs[-1].append(deadline)
                else:
                    runs.append([deadline])
            times = [run[-1] + timedelta(seconds=60) for run in runs]
            with ThreadPoolExecutor(len(times)) as pool:
                list(pool.map(sweep, times))
            self.sweeps.append(" + ".join(t.isoformat(timespec="minutes") for t in times))
        self.notes.append("deadlines still due after the sweeps")

    # ------------------------------------------------------------------ observing
    def _supplier(self, supplier_id: str) -> dict[str, Any]:
        return self.table.get(keys.supplier_pk(self.tenant, supplier_id), keys.RECORD_SK) or {
            "status": "MISSING"
        }

    def _query_all(self, pk: str, **kwargs: Any) -> list[dict[str, Any]]:
        items, token = [], None
        while True:
            page = self.table.query(pk, limit=1000, next_token=token, **kwargs)
            items += page.items
            token = page.next_token
            if not token:
                return items

    def _get_many(self, pks: list[str]) -> list[dict[str, Any]]:
        """The ``RECORD`` items of ``pks``, by BatchGetItem (what is missing is simply absent)."""
        found: list[dict[str, Any]] = []
        client = self.table.client
        for start_at in range(0, len(pks), 100):
            request = {self.table.name: {"Keys": [to_item({"PK": pk, "SK": keys.RECORD_SK})
                                                  for pk in pks[start_at : start_at + 100]]}}  # fmt: skip
            for _ in range(20):
                response = client.batch_get_item(RequestItems=request)
                found += [from_item(i) for i in response.get("Responses", {}).get(self.table.name, [])]
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

    def _observe(self, deliveries: bool = True, by_index: bool = False) -> Observed:
        """The run's records. While the run goes on they are read by key (the ids the run was given):
        moto answers an index query by scanning the whole table under its lock, and the observer's
        polls every 2 s were then most of the stack's load. The verdict (``by_index``) reads the
        tenant's indexes instead, so that a record the run never heard of (a duplicate) is seen."""
        observed = Observed()
        if by_index:
            suppliers = self._query_all(
                keys.entity_pk(self.tenant, "SUPPLIER"), index="GSI2", pk_name="GSI2PK", sk_name="GSI2SK"
            )
            orders = [item for shop in self.shops
                      for item in self._query_all(keys.supplier_orders_gsi(self.tenant, shop.supplier_id), index="GSI2",
                                                  pk_name="GSI2PK", sk_name="GSI2SK")]  # fmt: skip
        else:
            suppliers = self._get_many([keys.supplier_pk(self.tenant, s) for s in self.supplier_kinds])
            orders = self._get_many([keys.supplier_order_pk(self.tenant, o) for o in self.order_kinds])
        for item in suppliers:
            observed.suppliers[item["supplierId"]] = item
        for item in orders:
            observed.orders[item["supplierOrderId"]] = item
        for shop in self.shops:
            pk = keys.supplier_pk(self.tenant, shop.supplier_id)
            observed.listings[shop.supplier_id] = self.table.get(pk, keys.product_sk(shop.sku)) or {}
            if deliveries:
                observed.deliveries += self._query_all(pk, sk_prefix="DELIVERY#")
        return observed

    def _wait(self, predicate: Any, what: str, interval: float = 0.5, within: float | None = None) -> None:
        until = min(self.deadline, time.monotonic() + within) if within else self.deadline
        while time.monotonic() < until:
            if predicate():
                return
            time.sleep(interval)
        raise TimeoutError(f"still waiting after {time.monotonic() - self.started:.0f}s for: {what}")

    def _wait_settled(self) -> bool:
        """Until every record is final or FLAGGED and no webhook delivery is still retrying."""

        def settled() -> bool:
            messages = self._webhook_messages()  # before the read, as in _verify
            observed = self._observe()
            records = [*observed.suppliers.values(), *observed.orders.values()]
            busy = [r for r in records if r["status"] not in (*SUPPLIER_FINAL, *ORDER_FINAL, "FLAGGED")]
            # A delivery still PENDING is being retried by SQS (a delay after a failed attempt, or a
            # visibility timeout after a failed invocation): settled once every one has a message.
            retrying = [d for d in observed.deliveries if d["status"] == "PENDING"]
            if busy or len(retrying) > messages:
                return False
            return not any(k.endswith("-> pending") for k in self._proposal_outcomes())

        started = time.monotonic()
        try:
            while True:  # settled, and still so once the stream consumers have caught up
                self._wait(settled, "every record settled and every webhook delivered", interval=2.0)
                try:
                    self.stack.wait_for_streams(timeout=max(1.0, min(30.0, self._left())))
                except TimeoutError:
                    # The consumers are still busy (retried deliveries keep writing): look again,
                    # until the run's own deadline. Judging now would race with them.
                    if self._left() <= 0:
                        raise
                    continue
                if settled():
                    self.notes.append(f"settled in {time.monotonic() - started:.0f}s")
                    return True
        except TimeoutError as exc:
            self.notes.append(str(exc))
            return False

    def _webhook_messages(self) -> int:
        """Messages on the webhook delivery queue: visible, in flight, or delayed."""
        attributes = self.stack.client("sqs").get_queue_attributes(
            QueueUrl=self.stack.physical_id("WebhookQueue"), AttributeNames=["All"]
        )["Attributes"]
        names = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed")  # fmt: skip
        return sum(int(attributes.get(name, 0)) for name in names)

    def _queue_messages(self, logical_id: str) -> list[dict[str, Any]]:
        return queued_messages(self.stack, self.stack.physical_id(logical_id))

    def _stream_batch_keys(self, body: str) -> list[str]:
        """The keys of the stream records an on-failure message describes (Lambda's record format
        names the shard and the sequence numbers, not the records)."""
        try:
            info = json.loads(body).get("DDBStreamBatchInfo")
        except (ValueError, AttributeError):
            return []
        if not isinstance(info, dict):
            return []
        streams = self.stack.client("dynamodbstreams")
        iterator = streams.get_shard_iterator(StreamArn=info["streamArn"], ShardId=info["shardId"],
                                              ShardIteratorType="AT_SEQUENCE_NUMBER",
                                              SequenceNumber=info["startSequenceNumber"])["ShardIterator"]  # fmt: skip
        end, found = int(info["endSequenceNumber"]), []
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                if int(record["dynamodb"]["SequenceNumber"]) > end:
                    return found
                found.append(json.dumps(record["dynamodb"].get("Keys", {})))
            if not page["Records"]:
                return found
            iterator = page.get("NextShardIterator")
        return found

    def _dead_letter_queues(self) -> list[str]:
        """The template's dead-letter queues: redrive targets and mappings' on-failure destinations."""
        assert self.stack.template is not None
        queues = self.stack.template.resources_of_type("AWS::SQS::Queue")
        by_arn = {self.stack.attribute(q, "Arn"): q for q in queues}
        found = set()
        for props in (q.get("Properties", {}) for q in queues.values()):
            target = props.get("RedrivePolicy", {}).get("deadLetterTargetArn")
            if isinstance(target, dict) and "Fn::GetAtt" in target:
                attribute = target["Fn::GetAtt"]
                found.add(attribute[0] if isinstance(attribute, list) else attribute.split(".")[0])
        assert self.stack.provisioned is not None
        for mapping in self.stack.provisioned.stream_mappings:
            if mapping.on_failure_arn in by_arn:
                found.add(by_arn[mapping.on_failure_arn])
        return sorted(found)

    def _executions(self) -> dict[str, list[dict[str, Any]]]:
        sfn = self.stack.client("stepfunctions")
        assert self.stack.template is not None
        found: dict[str, list[dict[str, Any]]] = {}
        for logical_id in self.stack.template.resources_of_type("AWS::StepFunctions::StateMachine"):
            arn = self.stack.physical_id(logical_id)
            executions, token = [], None
            while True:
                page = sfn.list_executions(
                    stateMachineArn=arn, maxResults=1000, **({"nextToken": token} if token else {})
                )
                executions += page["executions"]
                token = page.get("nextToken")
                if not token:
                    break
            found[logical_id] = executions
        return found

    # ------------------------------------------------------------------ verdict

    def _ledger_errors(self, observed: Observed) -> list[str]:
        """Each shop's ledger against its orders (D42), with amounts worked out here from the orders
        and returns, not by the ledger's code: one sale of the shipped units at their unit price and
        one commission per delivered order (the order's own commission, priced at placement, when it
        shipped whole), one refund of the return's refund and one commission reversal (between nothing
        and the order's commission) per refunded return, nothing else; and the balance, to the cent,
        the delivered orders' sales less their commissions less the refunds plus the reversals."""
        wrong: list[str] = []
        found: Counter[str] = Counter()
        refunds: dict[str, dict[str, Any]] = {}  # supplier order id -> its refunded return
        for return_id, order_id in self.returns.items():
            made = self.table.get(keys.return_pk(self.tenant, return_id), keys.RECORD_SK) or {}
            if made.get("refund"):
                refunds[order_id] = made
        for shop in self.shops:
            entries: list[dict[str, Any]] = []
            token = None
            while True:
                page = self.table.query(keys.ledger_pk(self.tenant, shop.supplier_id),
                                        sk_prefix=keys.LEDGER_SK_PREFIX, limit=1000, next_token=token)  # fmt: skip
                entries += page.items
                token = page.next_token
                if not token:
                    break
            made: dict[tuple[str, str], list[Decimal]] = defaultdict(list)
            for entry in entries:
                found[entry["type"]] += 1
                made[(entry["type"], entry["supplierOrderId"])].append(
                    Decimal(str(entry["amount"]["amount"]))
                )
            expected: dict[tuple[str, str], Decimal | None] = {}
            balance = Decimal(0)
            for order_id, order in observed.orders.items():
                if order["supplierId"] != shop.supplier_id or not order.get("deliveredAt"):
                    continue
                lines = order.get("lines", [])
                sold = sum(
                    Decimal(str(line["unitPrice"]["amount"])) * int(line.get("shipped", 0)) for line in lines
                )
                whole = all(int(line.get("shipped", 0)) == int(line["quantity"]) for line in lines)
                commission = Decimal(str(order["commission"]["amount"]))
                expected[("SALE", order_id)] = sold
                expected[("COMMISSION", order_id)] = -commission if whole else None
                balance += sold - commission if whole else sold + sum(made[("COMMISSION", order_id)])
                if order_id in refunds:
                    refund = Decimal(str(refunds[order_id]["refund"]["amount"]))
                    expected[("REFUND", order_id)] = -refund
                    expected[("COMMISSION_REVERSAL", order_id)] = None
                    reversal = made[("COMMISSION_REVERSAL", order_id)]
                    if len(reversal) == 1 and not Decimal(0) <= reversal[0] <= commission:
                        wrong.append(f"{order_id}: commission reversal {reversal[0]} outside 0..{commission}")
                    balance += -refund + sum(reversal)
            for key in sorted(set(made) | set(expected)):
                amounts, amount = made.get(key, []), expected.get(key)
                if key not in expected:
                    wrong.append(f"{key[1]}: a {key[0]} entry the order's events do not make: {amounts}")
                elif len(amounts) != 1:
                    wrong.append(f"{key[1]}: {len(amounts)} {key[0]} entries, expected one")
                elif amount is not None and amounts[0] != amount:
                    wrong.append(f"{key[1]}: {key[0]} {amounts[0]}, expected {amount}")
            total = sum((Decimal(str(e["amount"]["amount"])) for e in entries), Decimal(0))
            if total != balance:
                wrong.append(f"shop {shop.supplier_id}: ledger balance {total}, its orders say {balance}")
        self.ledger_entries = dict(found)
        return wrong

    def _verify(self, settled: bool) -> dict[str, Any]:
        # Counted before the deliveries are read: a delivery still PENDING when read had its message
        # then (one handled in between is DELIVERED, or PENDING with its next attempt queued), so
        # the comparison below cannot race the delivery function as a count taken after could.
        messages_before = self._webhook_messages()
        observed = self._observe(by_index=True)
        correction = held_corrections(self.stack, self.table, self.tenant)
        queued = Counter()
        for message in correction:
            body = json.loads(message["Body"])
            queued[body.get("recordId")] += 1
        dead_letters = {q: self._queue_messages(q) for q in self._dead_letter_queues()}
        in_dlq: set[str] = set()
        for messages in dead_letters.values():
            for message in messages:
                text = message["Body"] + " ".join(self._stream_batch_keys(message["Body"]))
                in_dlq.update(r for r in [*observed.suppliers, *observed.orders] if r in text)

        status_of: dict[str, Counter[str]] = {"suppliers": Counter(), "supplier orders": Counter()}
        lost: list[str] = []
        waiting = 0
        for label, records in (("suppliers", observed.suppliers), ("supplier orders", observed.orders)):
            for record_id, record in records.items():
                status = record["status"]
                if status in SUPPLIER_FINAL + ORDER_FINAL:
                    status_of[label][status] += 1
                elif status == "FLAGGED" and queued[record_id]:
                    waiting += 1
                    status_of[label]["FLAGGED (correction held)"] += 1
                elif record_id in in_dlq:
                    status_of[label][f"{status} (in a DLQ)"] += 1
                else:
                    status_of[label][f"{status} (lost)"] += 1
                    lost.append(
                        f"{label[:-1]} {record_id} {status} v{record.get('version')} ({self.kinds.get(record_id)})"
                    )
        # Proposals: each applied, or flagged and held for a human, as its change says; none pending
        # or dropped (the live record untouched throughout is what the orders above show).
        proposals = self._proposal_outcomes()
        for outcome, count in proposals.items():
            expected, _, got = outcome.partition(" -> ")
            if got != expected:
                lost += [f"proposal expected {expected}, {got}"] * count
        missing = set(self.supplier_kinds) - set(observed.suppliers)
        missing |= set(self.order_kinds) - set(observed.orders)
        lost += [f"record {m} never written" for m in sorted(missing)]

        # Executions: one per record version; every one ended, or is waiting for a human.
        executions = self._executions()
        per_version: Counter[tuple[str, str, int]] = Counter()
        execution_status: Counter[str] = Counter()
        sfn = self.stack.client("stepfunctions")
        failed_executions = []
        mine = {keys.execution_name("SUPPLIER", s, 0) for s in observed.suppliers}
        mine |= {keys.execution_name("SUPPLIER_ORDER", o, 0) for o in observed.orders}
        mine |= {keys.execution_name("PRODUCT", f"{s.supplier_id}/{s.sku}", 0) for s in self.shops}
        mine = {name.rsplit("-v", 1)[0] for name in mine}
        for machine, listed in executions.items():
            for execution in listed:
                if execution["name"].rsplit("-v", 1)[0] not in mine:
                    continue  # another tenant's (a shared stack)
                execution_status[f"{machine}:{execution['status']}"] += 1
                detail = sfn.describe_execution(executionArn=execution["executionArn"])
                data = json.loads(detail.get("input") or "{}")
                if data.get("tenantId") != self.tenant:
                    continue
                per_version[(machine, str(data.get("recordId")), int(data.get("version", 0)))] += 1
                if execution["status"] in ("FAILED", "TIMED_OUT", "ABORTED"):
                    failed_executions.append(f"{machine} {execution['name']} {execution['status']}")
        duplicated_executions = sum(n - 1 for n in per_version.values() if n > 1)
        # What each lost record left behind: its executions, and its audit entries (written by
        # another consumer of the same stream, so they tell a stream that lost the record from a
        # consumer that dropped it).
        for index, line in enumerate(lost):
            parts = line.split()
            if len(parts) > 2 and parts[0] in ("supplier", "supplier order"[:8]):
                record_id = parts[2] if parts[1] == "order" else parts[1]
                runs = sum(n for (_, rid, _), n in per_version.items() if rid == record_id)
                pk = (keys.supplier_pk(self.tenant, record_id) if parts[0] == "supplier" and parts[1] != "order"
                      else keys.supplier_order_pk(self.tenant, record_id))  # fmt: skip
                audit = len(self._query_all(pk, sk_prefix=keys.AUDIT_SK_PREFIX))
                lost[index] = f"{line}: {runs} execution(s), {audit} audit entries"

        # Webhooks: one delivery per event; every delivery delivered (received and signed) or dead-lettered.
        per_event: dict[str, set[str]] = defaultdict(set)
        delivery_status: Counter[str] = Counter()
        for delivery in observed.deliveries:
            delivery_status["met a failure"] += (
                bool(delivery.get("lastError")) or int(delivery.get("attempts", 0)) > 1
            )
            payload = json.loads(delivery["payload"])
            per_event[payload["data"]["eventId"]].add(delivery["deliveryId"])
            delivery_status[delivery["status"]] += 1
        duplicated_notifications = sum(len(ids) - 1 for ids in per_event.values() if len(ids) > 1)
        received = self.receiver.received()
        received_ids = {r["delivery"] for r in received}
        unsigned = sum(1 for r in received if not r["signed"])
        undelivered = [d["deliveryId"] for d in observed.deliveries
                       if d["status"] == "DELIVERED" and d["deliveryId"] not in received_ids]  # fmt: skip
        # Each final order's last event must have a delivery.
        missing_events = [f"{o}-v{r['version']}" for o, r in observed.orders.items()
                          if r["status"] in ORDER_FINAL and f"{o}-v{r['version']}" not in per_event]  # fmt: skip
        lost += [f"webhook delivery {d} DELIVERED but never received" for d in undelivered]
        lost += [f"webhook event {e} never queued for delivery" for e in missing_events]
        pending = delivery_status.get("PENDING", 0)
        queued_deliveries = max(messages_before, self._webhook_messages())
        for _ in range(3):  # a message being handed over (received, then replaced) is not missing
            if pending <= queued_deliveries:
                break
            time.sleep(1.0)
            queued_deliveries = max(queued_deliveries, self._webhook_messages())
        if pending > queued_deliveries:
            lost.append(
                f"{pending - queued_deliveries} webhook deliveries PENDING with no message left to retry them"
            )

        # After acceptance: each driven order ends where its path says, and every change from its
        # acceptance on (a version) is one event with one delivery (unique per event id, above).
        events_of: dict[str, dict[int, str]] = defaultdict(dict)
        for delivery in observed.deliveries:
            data = json.loads(delivery["payload"])["data"]
            if "supplierOrderId" in data:  # a supplier's or a listing's own events (D39) have none
                events_of[data["supplierOrderId"]][int(data["version"])] = data["event"]
        after: Counter[str] = Counter()
        wrong_status: list[str] = []
        for order_id, path in self.paths.items():
            record = observed.orders.get(order_id) or {"status": "MISSING", "version": 0, "lines": [{}]}
            units = int(record["lines"][0].get("quantity", 0))
            expected = expected_status(path, units, self.settings.timers)
            ok = record["status"] == expected
            after[f"{path}: {record['status']}" + ("" if ok else f" (expected {expected})")] += 1
            if not ok:
                wrong_status.append(f"{order_id} ({path}) {record['status']}, expected {expected}")
            versions = events_of[order_id]
            first = min((v for v, e in versions.items() if e == "supplier_order.accepted"), default=None)
            if first is None:
                lost.append(f"webhook event supplier_order.accepted of {order_id} never delivered")
                continue
            lost += [f"webhook event {order_id}-v{v} ({path}) never delivered"
                     for v in range(first, int(record["version"]) + 1) if v not in versions]  # fmt: skip
        # Returns: a received one has its exact refund (the order's unit price times its units).
        return_status: Counter[str] = Counter()
        wrong_refunds: list[str] = []
        for return_id, order_id in self.returns.items():
            made = self.table.get(keys.return_pk(self.tenant, return_id), keys.RECORD_SK) or {
                "status": "MISSING"
            }
            return_status[made["status"]] += 1
            if self.paths[order_id] != "returned and refunded":
                continue
            units = sum(int(line["quantity"]) for line in made.get("lines", []))
            refund = made.get("refund") or {}
            exact = (Decimal(str(LISTING_PRICE["amount"])) * units, LISTING_PRICE["currency"])
            if (
                made["status"] != "RECEIVED"
                or (Decimal(str(refund.get("amount", "NaN"))), refund.get("currency")) != exact
            ):
                wrong_refunds.append(f"{return_id} of {order_id}: {made['status']} refund {refund}")

        wrong_ledgers = self._ledger_errors(observed)

        # Stock: computed from the orders, and the counter checked against them: units held by an
        # order not shipped yet, and units shipped (gone for good); a cancelled or refused line holds
        # none, so stock released twice (or never) shows as a drift.
        oversold = drift = released = 0
        held_by: Counter[str] = Counter()
        for record in observed.orders.values():
            for line in record.get("lines", []):
                shipped = int(line.get("shipped", 0))
                held_by[record["supplierId"]] += shipped + (
                    held(line) if record["status"] in HOLDS_STOCK else 0
                )
                if record["supplierOrderId"] in self.paths and record["status"] == "CANCELLED":
                    released += int(line["quantity"]) - shipped
        for shop in self.shops:
            taken = held_by[shop.supplier_id]
            oversold += max(0, taken - shop.stock)
            counter = int(observed.listings[shop.supplier_id].get("quantity", shop.stock))
            drift += abs(shop.stock - counter - taken)
        out_of_stock = sum(1 for r in observed.orders.values() if r.get("statusReason") == "out of stock")

        injected = self.injector.report()
        poller_stats = {f"{p.kind}:{p.function_name}": vars(p.stats).copy() for p in self.stack.pollers}
        return {
            "settled": settled,
            "started": {"suppliers": len(self.supplier_kinds), "supplier orders": len(self.order_kinds)},
            "finished": {k: dict(v) for k, v in status_of.items()},
            "waitingInCorrectionQueue": waiting,
            "correctionQueueMessages": len(correction),
            # parked: in the tenant's partition (the drain's); the others are messages on the queue
            # not parked yet (in flight: being parked by the intake).
            "correctionQueueStates": dict(Counter(m["State"] for m in correction)),
            "deadLetters": {q: len(m) for q, m in dead_letters.items()},
            "inDeadLetterQueue": len(in_dlq),
            "lost": len(lost),
            "lostRecords": lost[:50],
            "duplicatedExecutions": duplicated_executions,
            "duplicatedNotifications": duplicated_notifications,
            "stockCounterDrift": drift,
            "afterAcceptance": dict(sorted(after.items())),
            "wrongFinalStatus": wrong_status[:50],
            "returns": dict(return_status),
            "proposals": dict(proposals),
            "wrongRefunds": wrong_refunds[:50],
            "wrongLedgers": wrong_ledgers[:50],
            "ledgerEntries": self.ledger_entries,
            "releasedUnitsAfterAcceptance": released,
            "sweeps": self.sweeps,
            "oversoldUnits": oversold,
            "outOfStockRejections": out_of_stock,
            "failedExecutions": failed_executions[:50],
            "executions": dict(execution_status),
            "webhooks": {
                **dict(delivery_status),
                "received": len(received),
                "unsigned": unsigned,
                "downtimeSeconds": round(sum(b - a for a, b in self.receiver.downtime), 1),
            },
            "faultsInjected": injected["injected"],
            "faultsByFunction": injected["byFunction"],
            "pollers": poller_stats,
            "apiRetries": self.api.retried,
            "decisions": dict(Counter(v.split(":")[0] for v in self.decided.values())),
            "fixedSuppliers": len(self.fixed),
            "cancelledOrders": len(self.cancelled),
            "notes": self.notes,
            "wallSeconds": round(time.monotonic() - self.started, 1),
        }


def held_corrections(stack: LocalStack, table: Table, tenant: str) -> list[dict[str, Any]]:
    """Every correction of ``tenant`` held anywhere, each with its ``Body`` and ``State``: parked in
    the tenant's partition (``parked``: what the tenant's drain reads), or a message still on the
    correction queue on its way there (:func:`queued_messages`: another tenant's are left out).
    The queue is read before the table: a message parked in between is counted twice, never missed."""
    on_queue = [
        m
        for m in queued_messages(stack, stack.physical_id("CorrectionQueue"))
        if _tenant_of(m["Body"]) == tenant
    ]
    parked = [
        {"MessageId": item["SK"], "Body": item["body"], "State": "parked"}
        for page in Parked(table).pages(tenant)
        for item in page
    ]
    return parked + on_queue


def _tenant_of(body: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get("tenantId") if isinstance(data, dict) else None


def queued_messages(stack: LocalStack, url: str) -> list[dict[str, Any]]:
    """Every message the queue at ``url`` holds, each with its ``MessageId``, ``Body`` and ``State``:
    ``visible``, ``in flight`` (received and neither deleted nor visible again yet: a batch the
    correction intake is parking, or one whose invocation failed and waits out its visibility
    timeout) or ``delayed``.

    Written by hand because no SQS call does it: a receive returns only the visible messages, and the
    ``ApproximateNumberOfMessages*`` attributes are counts (approximate on AWS), which cannot say
    which records the messages hold. The verdict must know, per record, whether a message waits for
    it; a look by receive counted the records whose messages a drain had just hidden as lost. So the
    messages are read where the local stack keeps them, in the store of the moto server running in
    this process, without receiving them (no receive count, no visibility change). The test beside
    the small fault run checks this against SQS's own answers, so a moto upgrade that moves the
    store is noticed."""
    from moto.sqs.models import sqs_backends

    account, name = url.rstrip("/").split("/")[-2:]
    queue = sqs_backends[account][stack.config.region].get_queue(name)
    # Sends append under moto's own lock; a delete replaces the list whole: a copy is a consistent look.
    with queue._messages_lock:
        held = list(queue._messages)
    return [
        {
            "MessageId": message.id,
            "Body": message.body,
            "State": "delayed" if message.delayed else "visible" if message.visible else "in flight",
        }
        for message in held
    ]


def failed(result: dict[str, Any]) -> bool:
    return bool(
        not result["settled"] or result["lost"] or result["duplicatedExecutions"]
        or result["duplicatedNotifications"] or result["stockCounterDrift"] or result["oversoldUnits"]
        or result["wrongFinalStatus"] or result["wrongRefunds"] or result["wrongLedgers"]
    )  # fmt: skip


def table(result: dict[str, Any]) -> str:
    rows: list[tuple[str, Any]] = []
    for label, count in result["started"].items():
        rows.append((f"started: {label}", count))
    for label, statuses in result["finished"].items():
        for status, count in sorted(statuses.items()):
            rows.append((f"  {label}: {status}", count))
    rows += [
        ("waiting for a correction (held)", result["waitingInCorrectionQueue"]),
        *((f"  corrections: {state}", n) for state, n in sorted(result["correctionQueueStates"].items())),
        ("in a DLQ (records)", result["inDeadLetterQueue"]),
        *((f"  DLQ {q}: messages", n) for q, n in result["deadLetters"].items()),
        ("lost (must be 0)", result["lost"]),
        ("duplicated executions (must be 0)", result["duplicatedExecutions"]),
        ("duplicated webhook notifications (must be 0)", result["duplicatedNotifications"]),
        ("stock counter drift, units (must be 0)", result["stockCounterDrift"]),
        ("oversold units (must be 0)", result["oversoldUnits"]),
        ("orders rejected out of stock", result["outOfStockRejections"]),
        *((f"  after acceptance: {path}", n) for path, n in result["afterAcceptance"].items()),
        ("final status not the path's (must be 0)", len(result["wrongFinalStatus"])),
        ("returns", ", ".join(f"{k} {v}" for k, v in sorted(result["returns"].items()))),
        (
            "proposals (expected -> found)",
            ", ".join(f"{k} {v}" for k, v in sorted(result["proposals"].items())),
        ),
        ("refunds wrong (must be 0)", len(result["wrongRefunds"])),
        ("ledger entries", ", ".join(f"{k} {v}" for k, v in sorted(result["ledgerEntries"].items()))),
        ("ledger entries or balances wrong (must be 0)", len(result["wrongLedgers"])),
        ("units released by cancellations after acceptance", result["releasedUnitsAfterAcceptance"]),
        ("deadline sweeps run as of (by round)", "; ".join(result["sweeps"])),
        ("supplier decisions", ", ".join(f"{k} {v}" for k, v in sorted(result["decisions"].items()))),
        ("webhook deliveries", ", ".join(f"{k} {v}" for k, v in sorted(result["webhooks"].items()))),
        *((f"faults injected: {kind}", result["faultsInjected"].get(kind, 0)) for kind in KINDS),
        ("failed executions", len(result["failedExecutions"])),
        ("API calls retried by the client", result["apiRetries"]),
        ("settled before the deadline", "yes" if result["settled"] else "NO"),
        ("wall time", f"{result['wallSeconds']} s"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    for extra in ("lostRecords", "failedExecutions", "wrongFinalStatus", "wrongRefunds", "wrongLedgers"):
        lines += [f"  {extra}: {item}" for item in result[extra]]
    lines += [f"note: {note}" for note in result.get("notes", [])]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fault.harness", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--onboardings", type=int, default=1000)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--transient", type=float, default=0.2, help="fraction of Lambda invocations failing")
    parser.add_argument(
        "--throttle", type=float, default=0.05, help="fraction of Lambda invocations throttled"
    )
    parser.add_argument(
        "--duplicates", type=float, default=0.05, help="fraction of stream/queue batches delivered twice"
    )
    parser.add_argument(
        "--crash", type=float, default=0.05, help="fraction of stream batches crashed mid-batch"
    )
    parser.add_argument(
        "--webhook-down",
        type=float,
        nargs=2,
        default=(5.0, 20.0),
        metavar=("START", "SECONDS"),
        help="the webhook receiver is down from START for SECONDS",
    )
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--workers", type=int, default=4, help="concurrent API clients")
    parser.add_argument(
        "--log",
        type=Path,
        default=Path(".local/fault-run.log"),
        help="where the functions' logs go (they would drown the table)",
    )
    parser.add_argument("--deadline", type=float, default=1800.0, help="seconds the whole run may take")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (after the table)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` shows where a slow run stands
    faults = FaultConfig(transient=args.transient, throttle=args.throttle, duplicate=args.duplicates, crash=args.crash,
                         webhook_down=tuple(args.webhook_down), seed=args.seed)  # fmt: skip
    settings = RunSettings(onboardings=args.onboardings, orders=args.orders, workers=args.workers,
                           deadline=args.deadline)  # fmt: skip
    # Powertools logs to the standard output: send the functions' logs to a file, keep the table.
    out = sys.stdout
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with args.log.open("w") as log:
        sys.stdout = log
        try:
            result = FaultRun(settings, faults).run()
        finally:
            sys.stdout = out
    print(table(result), flush=True)
    print(f"(the functions' logs: {args.log})", flush=True)
    if args.json:
        print(json.dumps(result, default=str), flush=True)
    return 1 if failed(result) else 0


if __name__ == "__main__":
    sys.exit(main())

// The supplier portal: registration status and flags, its performance over 30 and 90 days, listings, orders awaiting acceptance (accept,
// reject with a reason, or decide line by line), orders to ship (shipments with tracking, cancel with
// a reason, delivered), returns to answer (accept, refuse with a reason, received) and webhook
// deliveries. Every POST that takes an Idempotency-Key sends one (actionKey). Plain ES module, no
// build step.
import { ApiError, actionKey, createClient, enc, loadApiBase } from "../shared/api.js";
import { Session, checkToken, signInWith } from "../shared/session.js";
import {
  $,
  announce,
  clearError,
  el,
  flagsList,
  formatTime,
  guardedBy,
  markFields,
  performanceTable,
  requiredText,
  showView,
} from "../shared/ui.js";

const session = new Session("marketplace.portal.token");
let api;

const supplierId = () => session.claims["custom:supplier_id"];

// ------------------------------------------------------------------------------------ sign-in
function signOut(message) {
  session.token = "";
  $("#whoami").hidden = true;
  $("#sign-out").hidden = true;
  showView("sign-in-view");
  if (message) announce(message);
  $("#token").focus();
}

const guarded = guardedBy(signOut);

async function onSignIn(event) {
  event.preventDefault();
  clearError();
  const named = (claims) => (claims["custom:supplier_id"] ? null : "This token names no supplier.");
  if (!signInWith(session, $("#token"), "supplier", named)) return;
  if (await openHome()) announce("Signed in.");
}

// ------------------------------------------------------------------------------------ home
async function openHome() {
  const loaded = await guarded($("#refresh"), "Loading your account", async () => {
    const registration = await loadRegistration();
    await Promise.all([loadPerformance(), loadListings(), loadOrders(), loadRecent(), loadDeliveries()]);
    return registration;
  });
  if (!loaded) return false;
  $("#whoami").textContent = loaded.legalName ? `Signed in as ${loaded.legalName} (supplier ${supplierId()})` : `Signed in as supplier ${supplierId()}`;
  $("#whoami").hidden = false;
  $("#sign-out").hidden = false;
  showView("home-view");
  $("#home-heading").focus();
  return true;
}

async function loadRegistration() {
  const record = await api.get(`/suppliers/${enc(supplierId())}`);
  const rows = [
    ["Name", record.legalName || ""],
    ["Status", el("span", { id: "registration-status", class: `status-badge status-${record.status}` }, record.status)],
    ["Supplier id", record.supplierId],
  ];
  if (record.statusReason) rows.push(["Reason", record.statusReason]);
  if (record.status === "SUSPENDED") {
    rows.push(["While suspended", el("span", { id: "suspended-note" }, "your listings cannot be ordered; orders you had accepted go on")]);
  }
  if (record.updatedAt) rows.push(["Last change", formatTime(record.updatedAt)]);
  $("#registration").replaceChildren(...rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  $("#registration-flags").replaceChildren(flagsList(record.flags));
  return record;
}

async function loadPerformance() {
  const figures = await api.get(`/suppliers/${enc(supplierId())}/performance`);
  $("#performance").replaceChildren(performanceTable(figures, "performance-table"));
}

async function all(path, query) {
  const items = [];
  let nextToken = null;
  do {
    const page = await api.get(path, { ...query, limit: 100, nextToken });
    items.push(...page.items);
    nextToken = page.nextToken;
  } while (nextToken && items.length < 500);
  return items;
}

async function loadListings() {
  const items = await all(`/suppliers/${enc(supplierId())}/products`);
  $("#listings-table tbody").replaceChildren(
    ...items.map((p) =>
      el(
        "tr",
        {},
        el("td", {}, p.sku),
        el("td", {}, p.title || ""),
        el("td", {}, badge(p.status), p.status === "DELISTED" && p.statusReason ? el("p", { class: "hint" }, p.statusReason) : ""),
        // A rejected or delisted listing sells nothing, whatever quantity it was given.
        el("td", {}, p.status === "REJECTED" ? "none (rejected)" : p.status === "DELISTED" ? `none (delisted; ${p.quantity ?? 0} in stock)` : (p.quantity ?? "")),
        el("td", {}, p.price ? `${p.price.amount} ${p.price.currency}` : ""),
        el("td", {}, p.flags && p.flags.length ? flagsList(p.flags) : "", p.status === "FLAGGED" ? fixHint(p) : ""),
        el("td", {}, ...saleActions(p)),
      ),
    ),
  );
  $("#listings-none").hidden = items.length > 0;
  $("#listings-table").hidden = items.length === 0;
}

// A supplier takes its own active listing off sale and puts it back, with a reason; one the
// marketplace's admins delisted is theirs to relist (docs/decisions.md D40).
function saleActions(listing) {
  const action = { ACTIVE: "delist", DELISTED: "relist" }[listing.status];
  if (!action) return [];
  if (action === "relist" && listing.withdrawnAs === "admin") {
    return [el("p", { class: "hint" }, "Delisted by the marketplace: ask its admins to relist it.")];
  }
  const send = actionKey();
  const verb = action === "delist" ? "Delist" : "Relist";
  const form = reasonForm(`${action}-${listing.sku}`, `Reason to ${action} ${listing.sku}`, `Confirm: ${action} ${listing.sku}`, (f, reason) =>
    act(f.querySelector("button[type=submit]"), f, `${verb}ing ${listing.sku}`, async () => {
      const path = `/suppliers/${enc(supplierId())}/products/${enc(listing.sku)}/${action}`;
      const result = await send((headers) => api.post(path, { reason }, headers));
      announce(`Listing ${listing.sku} is ${result.status}.`);
    }),
  );
  if (action === "relist") form.querySelector("button[type=submit]").className = "";
  return [toggleFor(form, `${verb} ${listing.sku}…`), form];
}

// What a supplier does about a flagged listing: change the flagged fields; the marketplace then
// validates it again (its admins run the correction drain).
function fixHint(listing) {
  return el(
    "p",
    { class: "hint listing-hint" },
    `To fix it, change the flagged fields: PATCH /suppliers/${supplierId()}/products/${listing.sku} with your token. ` +
      "The marketplace validates it again at its next correction drain.",
  );
}

const shipToText = (to) => [to.name, to.line1, to.line2, `${to.postalCode} ${to.city}`, to.region, to.country].filter(Boolean).join(", ");
const money = (m) => (m ? `${m.amount} ${m.currency}` : "");
const badge = (status) => el("span", { class: `status-badge status-${status}` }, status);
const orderLabel = (o) => o.customerOrderId || o.supplierOrderId;
const unitsOf = (line) => `${line.quantity} \u00d7 ${line.sku}`;

// What became of a line: its units, how many shipped, and a refusal or cancellation with its reason.
function lineText(line) {
  const parts = [unitsOf(line)];
  if (line.shipped) parts.push(`${line.shipped} shipped`);
  if (line.status === "REFUSED") parts.push(`refused: ${line.refusedReason || ""}`);
  if (line.status === "CANCELLED") parts.push(`cancelled: ${line.cancelledReason || ""}`);
  if (line.returned) parts.push(`${line.returned} returned`);
  return parts.join(", ");
}

async function reloadAll() {
  await Promise.all([loadOrders(), loadRecent(), loadListings(), loadDeliveries(), loadPerformance()]);
}

// Runs one action of a form or button: busy and guarded as every call, the API's field errors marked
// on the form's controls, then everything reloaded (the row acted on is drawn again from the API).
async function act(button, form, context, action) {
  return guarded(button, context, async () => {
    try {
      const result = await action();
      await reloadAll();
      return result;
    } catch (error) {
      if (form && error instanceof ApiError) markFields(form, error);
      throw error;
    }
  });
}

// A button that shows and hides the form it controls (aria-expanded), focusing its first field.
function toggleFor(form, text) {
  const toggle = el("button", { type: "button", class: "secondary", "aria-expanded": "false", "aria-controls": form.id }, text);
  toggle.addEventListener("click", () => {
    const open = form.hidden;
    form.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) form.querySelector("input, textarea").focus();
  });
  return toggle;
}

// A form asking only a reason (cancel an order, refuse a return).
function reasonForm(id, label, confirm, onReason) {
  const reasonId = `${id}-reason`;
  const form = el(
    "form",
    { id, class: "reject-form", hidden: true, novalidate: true },
    el("label", { for: reasonId }, label),
    el("textarea", { id: reasonId, name: "reason", rows: 2, maxlength: 1000, required: true, dataset: { field: "reason" } }),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "danger" }, confirm)),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const reason = requiredText(form.querySelector("textarea"), label);
    if (reason) onReason(form, reason);
  });
  return form;
}

// The supplier's latest orders: those to ship or on their way (the 20 newest, each read whole with
// its shipments), and the returns asked of them (an order carries its returns' ids; there is no
// list of a supplier's returns: docs/decisions.md D36).
const RECENT_ORDERS = 50;
const MAX_DETAILED = 20;
const IN_PROGRESS = ["ACCEPTED", "PARTIALLY_SHIPPED", "SHIPPED"];
async function loadRecent() {
  const page = await api.get("/supplier-orders", { limit: RECENT_ORDERS });
  const moving = page.items.filter((o) => IN_PROGRESS.includes(o.status)).slice(0, MAX_DETAILED);
  const returning = page.items.filter((o) => o.returns && Object.keys(o.returns).length);
  await Promise.all([loadInProgress(moving), loadReturns(returning)]);
}

async function loadInProgress(listed) {
  const orders = await Promise.all(
    listed.map(async (o) => {
      const id = enc(o.supplierOrderId);
      const [order, shipments] = await Promise.all([
        api.get(`/supplier-orders/${id}`),
        o.status === "ACCEPTED" ? { items: [] } : api.get(`/supplier-orders/${id}/shipments`),
      ]);
      return { ...order, shipments: shipments.items };
    }),
  );
  $("#accepted-table tbody").replaceChildren(...orders.map(inProgressRow));
  $("#accepted-none").hidden = orders.length > 0;
  $("#accepted-table").hidden = orders.length === 0;
}

function shipmentItem(s) {
  const tracking = s.trackingUrl
    ? el("a", { href: s.trackingUrl, rel: "noopener noreferrer", target: "_blank" }, s.trackingNumber)
    : s.trackingNumber;
  const units = (s.lines || []).map(unitsOf).join(", ");
  return el("li", {}, `${s.carrier} `, tracking, `: ${units}`);
}

function inProgressRow(order) {
  const id = order.supplierOrderId;
  const label = orderLabel(order);
  const actions = el("div", { class: "actions" });
  const forms = [];
  if (order.status === "ACCEPTED" || order.status === "PARTIALLY_SHIPPED") {
    const form = shipmentForm(order);
    forms.push(form);
    actions.append(toggleFor(form, `Add a shipment to order ${label}…`));
  }
  if (order.status === "ACCEPTED") {
    const send = actionKey();
    const form = reasonForm(`cancel-${id}`, `Reason for cancelling order ${label}`, "Confirm the cancellation", (f, reason) =>
      act(f.querySelector("button[type=submit]"), f, `Cancelling order ${label}`, async () => {
        const result = await send((headers) => api.post(`/supplier-orders/${enc(id)}/cancel`, { reason }, headers));
        announce(`Order ${label} is ${result.status}.`);
      }),
    );
    forms.push(form);
    actions.append(toggleFor(form, `Cancel order ${label}…`));
  }
  if (order.status === "SHIPPED") {
    const send = actionKey();
    const button = el("button", { type: "button" }, `Mark order ${label} delivered`);
    button.addEventListener("click", () =>
      act(button, null, `Marking order ${label} delivered`, async () => {
        const result = await send((headers) => api.post(`/supplier-orders/${enc(id)}/delivered`, undefined, headers));
        announce(`Order ${label} is ${result.status}.`);
      }),
    );
    actions.append(button);
  }
  return el(
    "tr",
    { dataset: { supplierOrderId: id } },
    el("td", {}, order.customerOrderId || "", el("br"), el("small", {}, id)),
    el("td", {}, badge(order.status), order.shipBy ? el("p", { class: "hint" }, `Ship by ${formatTime(order.shipBy)}`) : ""),
    el("td", {}, el("ul", {}, (order.lines || []).map((line) => el("li", {}, lineText(line))))),
    el("td", {}, order.shipTo ? shipToText(order.shipTo) : ""),
    el("td", {}, order.shipments.length ? el("ul", { class: "shipments" }, order.shipments.map(shipmentItem)) : "None yet."),
    el("td", {}, actions, forms),
  );
}

// A parcel: carrier, tracking number and URL, and how many units of each line still to ship it
// carries (each offered at what is left; a line left at 0 is not sent).
function shipmentForm(order) {
  const id = order.supplierOrderId;
  const label = orderLabel(order);
  const formId = `ship-${id}`;
  const field = (name, text, attributes = {}) => [
    el("label", { for: `${formId}-${name}` }, text),
    el("input", { id: `${formId}-${name}`, name, dataset: { field: name }, autocomplete: "off", ...attributes }),
  ];
  const open = (order.lines || []).filter((line) => line.status !== "REFUSED" && line.status !== "CANCELLED" && line.quantity - (line.shipped || 0) > 0);
  const units = open.flatMap((line) => {
    const left = line.quantity - (line.shipped || 0);
    const input = el("input", { id: `${formId}-units-${line.sku}`, type: "number", min: 0, max: left, step: 1, value: left, dataset: { sku: line.sku } });
    return [el("label", { for: input.id }, `Units of ${line.sku} in this parcel (${left} left to ship)`), input];
  });
  const form = el(
    "form",
    { id: formId, class: "reject-form", hidden: true, novalidate: true },
    field("carrier", `Carrier of the parcel for order ${label}`, { required: true, maxlength: 100 }),
    field("trackingNumber", "Tracking number", { required: true, maxlength: 64, spellcheck: "false" }),
    field("trackingUrl", "Tracking URL (optional, https)", { type: "url", spellcheck: "false" }),
    el("fieldset", {}, el("legend", {}, "Units in this parcel"), units),
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Add the shipment")),
  );
  const send = actionKey();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const lines = [];
    for (const input of form.querySelectorAll("input[data-sku]")) {
      delete input.dataset.field;
      const quantity = Number(input.value);
      if (input.value.trim() === "" || quantity === 0) continue;
      input.dataset.field = `lines.${lines.length}.quantity`;
      // A quantity that is not a whole number goes as typed, for the API to name lines.<n>.quantity.
      lines.push({ sku: input.dataset.sku, quantity: Number.isInteger(quantity) ? quantity : input.value });
    }
    const value = (name) => form.elements[name].value.trim();
    const body = { carrier: value("carrier"), trackingNumber: value("trackingNumber"), lines };
    if (value("trackingUrl")) body.trackingUrl = value("trackingUrl");
    act(form.querySelector("button[type=submit]"), form, `Adding a shipment to order ${label}`, async () => {
      await send((headers) => api.post(`/supplier-orders/${enc(id)}/shipments`, body, headers));
      const after = await api.get(`/supplier-orders/${enc(id)}`);
      announce(`Shipment added: order ${label} is ${after.status}.`);
    });
  });
  return form;
}

async function loadReturns(orders) {
  const returns = await Promise.all(
    orders.flatMap((o) => Object.keys(o.returns).map(async (returnId) => ({ ...(await api.get(`/returns/${enc(returnId)}`)), order: o }))),
  );
  $("#returns-table tbody").replaceChildren(...returns.map(returnRow));
  $("#returns-none").hidden = returns.length > 0;
  $("#returns-table").hidden = returns.length === 0;
}

function returnRow(ret) {
  const label = `return ${ret.returnId.slice(0, 8)} of order ${orderLabel(ret.order)}`;
  const path = `/returns/${enc(ret.returnId)}`;
  const actions = el("div", { class: "actions" });
  const forms = [];
  const answerButton = (text, step, verb) => {
    const send = actionKey();
    const button = el("button", { type: "button" }, text);
    button.addEventListener("click", () =>
      act(button, null, `${verb} ${label}`, async () => {
        const result = await send((headers) => api.post(`${path}/${step}`, undefined, headers));
        announce(`The ${label} is ${result.status}.`);
      }),
    );
    return button;
  };
  if (ret.status === "REQUESTED") {
    actions.append(answerButton(`Accept ${label}`, "accept", "Accepting"));
    const send = actionKey();
    const form = reasonForm(`refuse-${ret.returnId}`, `Reason for refusing ${label}`, "Confirm the refusal", (f, reason) =>
      act(f.querySelector("button[type=submit]"), f, `Refusing ${label}`, async () => {
        const result = await send((headers) => api.post(`${path}/refuse`, { reason }, headers));
        announce(`The ${label} is ${result.status}.`);
      }),
    );
    forms.push(form);
    actions.append(toggleFor(form, `Refuse ${label}…`));
  }
  if (ret.status === "ACCEPTED") actions.append(answerButton(`Mark ${label} received`, "received", "Receiving"));
  return el(
    "tr",
    { dataset: { returnId: ret.returnId } },
    el("td", {}, `${ret.returnId.slice(0, 8)} (order ${orderLabel(ret.order)})`, el("br"), el("small", {}, ret.returnId)),
    el("td", {}, el("ul", {}, (ret.lines || []).map((l) => el("li", {}, unitsOf(l))))),
    el("td", {}, ret.reason || ""),
    el("td", {}, badge(ret.status), ret.statusReason ? el("p", { class: "hint" }, ret.statusReason) : ""),
    el("td", {}, ret.refund ? money(ret.refund) : ""),
    el("td", {}, actions, forms),
  );
}

async function loadOrders() {
  const items = await all("/supplier-orders", { status: "AWAITING_ACCEPTANCE" });
  $("#orders-table tbody").replaceChildren(...items.map(orderRow));
  $("#orders-none").hidden = items.length > 0;
  $("#orders-table").hidden = items.length === 0;
}

function orderRow(order) {
  const id = order.supplierOrderId;
  const label = orderLabel(order);
  const accept = el("button", { type: "button" }, `Accept order ${label}`);
  const sendAccept = actionKey();
  accept.addEventListener("click", () =>
    decide(accept, null, order, "Accepting", () => sendAccept((headers) => api.post(`/supplier-orders/${enc(id)}/accept`, undefined, headers))),
  );
  const rejectForm = reasonForm(`reject-${id}`, `Reason for rejecting order ${label}`, "Confirm the rejection", (form, reason) =>
    decide(form.querySelector("button[type=submit]"), form, order, "Rejecting", () => api.post(`/supplier-orders/${enc(id)}/reject`, { reason })),
  );
  const linesForm = lineDecisionsForm(order);
  const lines = el(
    "ul",
    {},
    (order.lines || []).map((line) => el("li", {}, unitsOf(line), line.unitPrice ? ` at ${money(line.unitPrice)}` : "")),
  );
  return el(
    "tr",
    { dataset: { supplierOrderId: id } },
    el("td", {}, order.customerOrderId || "", el("br"), el("small", {}, id)),
    el("td", {}, lines),
    el("td", {}, formatTime(order.deadline)),
    el(
      "td",
      {},
      el("div", { class: "actions" }, accept, toggleFor(rejectForm, `Reject order ${label}…`), toggleFor(linesForm, `Decide order ${label} line by line…`)),
      rejectForm,
      linesForm,
    ),
  );
}

// Each line accepted unless its box is ticked; a refused line needs its reason, which the API asks
// for (the body names every line in the order's own order, so the API's lines.<n> is the n-th line).
function lineDecisionsForm(order) {
  const id = order.supplierOrderId;
  const formId = `lines-${id}`;
  const decisions = (order.lines || []).map((line, i) => ({
    line,
    box: el("input", { type: "checkbox", id: `${formId}-refuse-${i}` }),
    reason: el("input", { id: `${formId}-reason-${i}`, maxlength: 1000, autocomplete: "off", dataset: { field: `lines.${i}.reason` } }),
  }));
  const rows = decisions.map(({ line, box, reason }) =>
    el(
      "div",
      { class: "line-decision" },
      el("label", { for: box.id, class: "inline" }, box, ` Refuse ${unitsOf(line)}`),
      el("label", { for: reason.id }, `Reason for refusing ${line.sku}`),
      reason,
    ),
  );
  const form = el(
    "form",
    { id: formId, class: "reject-form", hidden: true, novalidate: true },
    el("fieldset", {}, el("legend", {}, `The lines of order ${orderLabel(order)}: tick those you refuse`), rows),
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Send the line decisions")),
  );
  const send = actionKey();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    // A refusal without its reason is sent as it is: the API names the missing lines.<n>.reason.
    const lines = decisions.map(({ line, box, reason }) => {
      const why = reason.value.trim();
      return box.checked ? { sku: line.sku, accept: false, ...(why ? { reason: why } : {}) } : { sku: line.sku, accept: true };
    });
    decide(form.querySelector("button[type=submit]"), form, order, "Deciding the lines of", () =>
      send((headers) => api.post(`/supplier-orders/${enc(id)}/accept`, { lines }, headers)),
    );
  });
  return form;
}

async function decide(button, form, order, verb, call) {
  const label = orderLabel(order);
  await act(button, form, `${verb} order ${label}`, async () => {
    const result = await call();
    announce(`Order ${label} is ${result.status}.`);
  });
  // The decided order's row is gone, and its button with it: give focus a place to land, unless the
  // user has already moved it somewhere (say, into another order's rejection reason) meanwhile.
  if (!document.activeElement || document.activeElement === document.body) $("#orders-heading").focus();
}

async function loadDeliveries() {
  let webhook = null;
  try {
    webhook = await api.get(`/suppliers/${enc(supplierId())}/webhook`);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
  }
  $("#webhook").textContent = webhook ? `Your webhook: ${webhook.url}` : "You have no webhook registered.";
  $("#webhook-hint").hidden = Boolean(webhook);
  $("#webhook-hint").textContent = webhook
    ? ""
    : `Without one you see new orders only here. Register it with PUT /suppliers/${supplierId()}/webhook and ` +
      'the body {"url": "https://…", "secret": "…"}: every order event is then POSTed to it, signed with the secret.';
  const items = await all(`/suppliers/${enc(supplierId())}/deliveries`);
  $("#deliveries-table tbody").replaceChildren(
    ...items.map((d) =>
      el(
        "tr",
        {},
        el("td", {}, d.event),
        el("td", {}, el("span", { class: `status-badge status-${d.status}` }, d.status)),
        el("td", {}, d.attempts ?? ""),
        el("td", {}, d.lastError || ""),
        el("td", {}, formatTime(d.createdAt)),
        el("td", {}, el("code", {}, d.deliveryId)),
      ),
    ),
  );
  $("#deliveries-none").hidden = items.length > 0;
  $("#deliveries-table").hidden = items.length === 0;
}

// ------------------------------------------------------------------------------------ start
async function start() {
  api = createClient(await loadApiBase(), () => session.token);
  $("#sign-in-form").addEventListener("submit", onSignIn);
  $("#sign-out").addEventListener("click", () => signOut("Signed out."));
  $("#refresh").addEventListener("click", openHome);
  const token = session.token;
  const check = token ? checkToken(token, "supplier") : { problem: "none" };
  if (check.problem || !(await openHome())) signOut();
  document.body.dataset.ready = "true";
}

start();

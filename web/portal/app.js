// The supplier portal: registration status and flags, listings, orders awaiting acceptance
// (accept or reject with a reason) and webhook deliveries. Plain ES module, no build step.
import { ApiError, createClient, enc, loadApiBase } from "../shared/api.js";
import { Session, checkToken, signInWith } from "../shared/session.js";
import { $, announce, clearError, el, flagsList, formatTime, guardedBy, requiredText, showView } from "../shared/ui.js";

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
    await Promise.all([loadListings(), loadOrders(), loadAccepted(), loadDeliveries()]);
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
  if (record.updatedAt) rows.push(["Last change", formatTime(record.updatedAt)]);
  $("#registration").replaceChildren(...rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  $("#registration-flags").replaceChildren(flagsList(record.flags));
  return record;
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
        el("td", {}, el("span", { class: `status-badge status-${p.status}` }, p.status)),
        // A rejected listing sells nothing, whatever quantity it was given.
        el("td", {}, p.status === "REJECTED" ? "none (rejected)" : (p.quantity ?? "")),
        el("td", {}, p.price ? `${p.price.amount} ${p.price.currency}` : ""),
        el("td", {}, p.flags && p.flags.length ? flagsList(p.flags) : "", p.status === "FLAGGED" ? fixHint(p) : ""),
      ),
    ),
  );
  $("#listings-none").hidden = items.length > 0;
  $("#listings-table").hidden = items.length === 0;
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

// Orders accepted and to ship: each with the address, which the supplier order shows once accepted.
const MAX_ACCEPTED_SHOWN = 20;
async function loadAccepted() {
  const page = await api.get("/supplier-orders", { status: "ACCEPTED", limit: MAX_ACCEPTED_SHOWN });
  const orders = await Promise.all(page.items.map((o) => api.get(`/supplier-orders/${enc(o.supplierOrderId)}`)));
  $("#accepted-table tbody").replaceChildren(
    ...orders.map((o) =>
      el(
        "tr",
        { dataset: { supplierOrderId: o.supplierOrderId } },
        el("td", {}, o.customerOrderId || "", el("br"), el("small", {}, o.supplierOrderId)),
        el("td", {}, el("ul", {}, (o.lines || []).map((line) => el("li", {}, `${line.quantity} × ${line.sku}`)))),
        el("td", {}, o.shipTo ? shipToText(o.shipTo) : ""),
      ),
    ),
  );
  $("#accepted-none").hidden = orders.length > 0;
  $("#accepted-table").hidden = orders.length === 0;
}

async function loadOrders() {
  const items = await all("/supplier-orders", { status: "AWAITING_ACCEPTANCE" });
  $("#orders-table tbody").replaceChildren(...items.map(orderRow));
  $("#orders-none").hidden = items.length > 0;
  $("#orders-table").hidden = items.length === 0;
}

function orderRow(order) {
  const id = order.supplierOrderId;
  const formId = `reject-${id}`;
  const reasonId = `reason-${id}`;
  const rejectToggle = el(
    "button",
    { type: "button", class: "secondary", "aria-expanded": "false", "aria-controls": formId },
    `Reject order ${order.customerOrderId || id}…`,
  );
  const form = el(
    "form",
    { id: formId, class: "reject-form", hidden: true, novalidate: true },
    el("label", { for: reasonId }, `Reason for rejecting order ${order.customerOrderId || id}`),
    el("textarea", { id: reasonId, name: "reason", rows: 2, maxlength: 1000, required: true }),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "danger" }, "Confirm the rejection")),
  );
  const accept = el("button", { type: "button" }, `Accept order ${order.customerOrderId || id}`);
  accept.addEventListener("click", () => decide(accept, order, "accept"));
  rejectToggle.addEventListener("click", () => {
    const open = form.hidden;
    form.hidden = !open;
    rejectToggle.setAttribute("aria-expanded", String(open));
    if (open) form.querySelector("textarea").focus();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const reason = requiredText(form.querySelector("textarea"), "Cannot reject");
    if (!reason) return;
    decide(form.querySelector("button[type=submit]"), order, "reject", reason);
  });
  const lines = el(
    "ul",
    {},
    (order.lines || []).map((line) => el("li", {}, `${line.quantity} × ${line.sku}`, line.unitPrice ? ` at ${line.unitPrice.amount} ${line.unitPrice.currency}` : "")),
  );
  return el(
    "tr",
    { dataset: { supplierOrderId: id } },
    el("td", {}, order.customerOrderId || "", el("br"), el("small", {}, id)),
    el("td", {}, lines),
    el("td", {}, formatTime(order.deadline)),
    el("td", {}, el("div", { class: "actions" }, accept, rejectToggle), form),
  );
}

async function decide(button, order, action, reason) {
  const label = order.customerOrderId || order.supplierOrderId;
  await guarded(button, `${action === "accept" ? "Accepting" : "Rejecting"} order ${label}`, async () => {
    const path = `/supplier-orders/${enc(order.supplierOrderId)}/${action}`;
    const result = action === "accept" ? await api.post(path) : await api.post(path, { reason });
    announce(`Order ${label} is ${result.status}.`);
    await Promise.all([loadOrders(), loadAccepted(), loadListings(), loadDeliveries()]);
    // The decided order's row is gone, and its button with it: give focus a place to land, unless the
    // user has already moved it somewhere (say, into another order's rejection reason) meanwhile.
    if (!document.activeElement || document.activeElement === document.body) $("#orders-heading").focus();
  });
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

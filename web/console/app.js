// The admin console: the correction queue, a record with its fix form, the drain, rejection, an
// incident's decision, suspension and delisting, a supplier's performance, and the audit trail. Plain ES module, no build step.
import { ApiError, actionKey, createClient, enc, loadApiBase } from "../shared/api.js";
import { Session, checkToken, signInWith } from "../shared/session.js";
import {
  $,
  announce,
  clearError,
  el,
  flagsList,
  formatAge,
  formatTime,
  guardedBy,
  performanceTable,
  requiredText,
  showError,
  showView,
} from "../shared/ui.js";

const session = new Session("marketplace.console.token");
let api;
let current = null; // {kind, recordId, correctionId, supplierId, supplierOrderId, sku, record}
let nextToken = null;
const supplierNames = new Map(); // supplierId -> legal name, for listings and orders
const saleOnce = actionKey(); // suspend, reinstate, delist, relist

// A listing or order names its supplier by id; the admin reads its name (the id when unknown).
async function nameSuppliers(ids) {
  const missing = [...new Set(ids)].filter((id) => id && !supplierNames.has(id));
  await Promise.all(
    missing.map(async (id) => {
      try {
        supplierNames.set(id, (await api.get(`/suppliers/${enc(id)}`)).legalName || id);
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) throw error;
        supplierNames.set(id, id);
      }
    }),
  );
}
const supplierLabel = (id) => (supplierNames.get(id) && supplierNames.get(id) !== id ? `${supplierNames.get(id)} (${id})` : id);

// Every kind is rejected and retried through the correction queue's own routes, by correction id.
const reject = (c) => `/admin/corrections/${enc(c.correctionId)}/reject`;
const retry = (c) => `/admin/corrections/${enc(c.correctionId)}/retry`;

// What each kind of queued record can do, and where in the API.
const KINDS = {
  SUPPLIER: {
    label: "Supplier",
    // Taken off sale and back (docs/decisions.md D40): the action the record's status offers.
    sale: { APPROVED: ["suspend", "Suspend the supplier"], SUSPENDED: ["reinstate", "Reinstate the supplier"] },
    path: (c) => `/suppliers/${enc(c.recordId)}`,
    editable: true,
    history: (c) => `/suppliers/${enc(c.recordId)}/history`,
    name: (r) => r.legalName,
  },
  PRODUCT: {
    label: "Listing",
    sale: { ACTIVE: ["delist", "Delist the listing"], DELISTED: ["relist", "Relist the listing"] },
    path: (c) => `/suppliers/${enc(c.supplierId)}/products/${enc(c.sku)}`,
    editable: true,
    history: (c) => `/suppliers/${enc(c.supplierId)}/products/${enc(c.sku)}/history`,
    name: (r) => r.title,
  },
  // A high-risk change to a live record, reviewed while the record stays live (docs/decisions.md D41):
  // shown with its record (GET shows the pending proposal); fixed by a PATCH of the record through
  // the API, rejected or retried here.
  SUPPLIER_PROPOSAL: {
    label: "Supplier change",
    path: (c) => `/suppliers/${enc(c.recordId)}`,
    editable: false,
    history: (c) => `/suppliers/${enc(c.recordId)}/history`,
    name: (r) => r.legalName,
    // The pending proposal is what the queue holds; once decided it is no longer shown.
    view: (r) => (r.proposal ? { ...r.proposal, legalName: r.legalName } : { status: "NO LONGER PENDING", version: r.version }),
  },
  PRODUCT_PROPOSAL: {
    label: "Listing change",
    path: (c) => `/suppliers/${enc(c.supplierId)}/products/${enc(c.sku)}`,
    editable: false,
    history: (c) => `/suppliers/${enc(c.supplierId)}/products/${enc(c.sku)}/history`,
    name: (r) => r.title,
    // The pending proposal is what the queue holds; once decided it is no longer shown.
    view: (r) => (r.proposal ? { ...r.proposal, title: r.title } : { status: "NO LONGER PENDING", version: r.version }),
  },
  SUPPLIER_ORDER: {
    label: "Supplier order",
    path: (c) => `/supplier-orders/${enc(c.recordId)}`,
    editable: false,
    history: null,
    name: (r) => r.orderId,
  },
  // An incident: a return its supplier refused, decided by the admin (refund or not) with a reason.
  RETURN: {
    label: "Incident (refused return)",
    path: (c) => `/returns/${enc(c.recordId)}`,
    editable: false,
    decided: true,
    queued: "REFUSED",
    history: (c) => `/supplier-orders/${enc(c.supplierOrderId)}/history`,
    name: () => "",
  },
};

// Fields the workflow and the API manage: shown in the summary, never in the fix form.
const MANAGED = new Set(["status", "version", "flags", "supplierId", "sku", "tenantId", "statusReason", "orderId", "supplierOrderId", "importId"]);
const isManaged = (key) => MANAGED.has(key) || /(At|By)$/.test(key);

// ------------------------------------------------------------------------------------ sign-in
function signedIn() {
  const claims = session.claims;
  $("#whoami").textContent = `Signed in as an admin of ${claims["custom:tenant_id"]}`;
  $("#whoami").hidden = false;
  $("#sign-out").hidden = false;
}

function signOut(message) {
  session.token = "";
  current = null;
  $("#whoami").hidden = true;
  $("#sign-out").hidden = true;
  showView("sign-in-view");
  if (message) announce(message);
  $("#token").focus();
}

async function onSignIn(event) {
  event.preventDefault();
  clearError();
  if (!signInWith(session, $("#token"), "admin")) return;
  const ok = await openQueue();
  if (ok) {
    signedIn();
    announce("Signed in.");
  }
}

// A 401 anywhere ends the session; other errors are shown with their fields.
const guarded = guardedBy(signOut);

// ------------------------------------------------------------------------------------ queue
async function openQueue() {
  const loaded = await guarded($("#refresh-queue"), "Loading the correction queue", async () => {
    const page = await api.get("/admin/corrections", { limit: 50 });
    await nameSuppliers(page.items.filter((i) => i.recordType !== "SUPPLIER").map((i) => i.supplierId));
    renderQueue(page, false);
    return true;
  });
  if (loaded) {
    showView("queue-view");
    $("#queue-heading").focus();
  }
  return loaded;
}

async function moreQueue() {
  await guarded($("#more"), "Loading more of the queue", async () => {
    const page = await api.get("/admin/corrections", { limit: 50, nextToken });
    await nameSuppliers(page.items.filter((i) => i.recordType !== "SUPPLIER").map((i) => i.supplierId));
    renderQueue(page, true);
  });
}

function renderQueue(page, append) {
  const body = $("#queue-table tbody");
  if (!append) body.replaceChildren();
  for (const item of page.items) {
    const kind = KINDS[item.recordType] || { label: item.recordType, name: () => "" };
    const name = kind.name(item.record || {}) || "";
    const label = name ? `${name} (${item.recordId})` : item.recordId;
    body.append(
      el(
        "tr",
        { dataset: { recordId: item.recordId } },
        el("td", {}, el("button", { type: "button", class: "link", onclick: () => openRecord(item) }, `Open ${label}`)),
        el("td", {}, item.recordType === "SUPPLIER" ? kind.label : `${kind.label} of ${supplierLabel(item.supplierId)}`),
        el("td", {}, flagsList(item.flags)),
        el("td", {}, formatAge(item.ageSeconds)),
      ),
    );
  }
  nextToken = page.nextToken || null;
  $("#more").hidden = !nextToken;
  const empty = body.children.length === 0;
  $("#queue-empty").hidden = !empty;
  $("#queue-table").hidden = empty;
}

// ------------------------------------------------------------------------------------ record
async function openRecord(item) {
  current = {
    kind: item.recordType,
    recordId: item.recordId,
    correctionId: item.correctionId,
    supplierId: item.supplierId,
    supplierOrderId: item.supplierOrderId,
    sku: item.sku,
    record: null,
  };
  $("#fix-note").hidden = true;
  const loaded = await guarded(null, "Opening the record", async () => {
    await loadRecord();
    return true;
  });
  if (!loaded) return;
  showView("record-view");
  $("#record-heading").focus();
  await loadAudit();
}

async function loadRecord() {
  const kind = KINDS[current.kind];
  const got = await api.get(kind.path(current));
  current.record = kind.view ? kind.view(got) : got;
  if (current.kind !== "SUPPLIER") await nameSuppliers([current.supplierId]);
  // A supplier's record shows how it performs (GET /suppliers/{id}/performance).
  const figures = current.kind === "SUPPLIER" ? await api.get(`${kind.path(current)}/performance`) : null;
  $("#performance-section").hidden = !figures;
  $("#performance").replaceChildren(...(figures ? [performanceTable(figures, "performance-table")] : []));
  renderRecord();
}

function renderRecord() {
  const kind = KINDS[current.kind];
  const record = current.record;
  const name = kind.name(record);
  $("#record-heading").textContent = `${kind.label} ${name ? `${name} ` : ""}(${current.recordId})`;
  const rows = [
    ["Status", el("span", { id: "record-status", class: `status-badge status-${record.status}` }, record.status)],
    ["Version", String(record.version)],
    ["Kind", kind.label],
  ];
  if (current.kind !== "SUPPLIER") rows.push(["Supplier", el("span", { id: "record-supplier" }, supplierLabel(current.supplierId))]);
  if (kind.decided) {
    rows.push(["Order", record.supplierOrderId]);
    rows.push(["Units", el("span", { id: "record-lines" }, (record.lines || []).map((l) => `${l.quantity} x ${l.sku}`).join(", "))]);
    rows.push(["Retailer's reason", el("span", { id: "record-retailer-reason" }, record.reason || "")]);
    if (record.statusReason) rows.push(["Supplier's reason", el("span", { id: "record-supplier-reason" }, record.statusReason)]);
    if (record.decision) rows.push(["Decision", el("span", { id: "record-decision" }, `${record.decision.refund ? "Refund" : "No refund"}: ${record.decision.reason}`)]);
    if (record.refund) rows.push(["Refund", el("span", { id: "record-refund" }, `${record.refund.amount} ${record.refund.currency}`)]);
  } else if (record.statusReason) rows.push(["Reason", record.statusReason]);
  if (record.updatedAt) rows.push(["Last change", formatTime(record.updatedAt)]);
  $("#record-summary").replaceChildren(...rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  $("#record-flags").replaceChildren(flagsList(record.flags));
  // Only a flagged record is corrected; an approved or rejected one is shown with its trail.
  const open = record.status === (kind.queued || "FLAGGED");
  $("#fix-form").hidden = !(kind.editable && open);
  $("#no-fix").hidden = kind.editable || kind.decided || !open;
  // An incident is decided, not fixed, drained or rejected.
  $("#record-actions").hidden = !open || Boolean(kind.decided);
  $("#reject-form").hidden = !open || Boolean(kind.decided);
  $("#decide-form").hidden = !(open && kind.decided);
  $("#closed-note").hidden = open;
  $("#closed-note").textContent = open ? "" : `This record is ${record.status}: there is nothing ${kind.decided ? "to decide" : "to correct"}.`;
  if (!open) $("#fix-note").hidden = true;
  if (kind.editable && open) renderFixForm(record);
  $("#reject").textContent = current.kind === "SUPPLIER_ORDER" ? "Cancel the order" : "Reject the record";
  const sale = kind.sale && kind.sale[record.status];
  $("#sale-form").hidden = !sale;
  if (sale) {
    const off = sale[0] === "suspend" || sale[0] === "delist";
    $("#sale-heading").textContent = off ? "Take off sale" : "Put back on sale";
    $("#sale").textContent = sale[1];
    $("#sale").className = off ? "danger" : "";
    const kept = "The reason is kept on the record, in its audit trail and in the event the supplier receives.";
    $("#sale-hint").textContent = `${kept} ${SALE_HINTS[sale[0]]}`;
  }
}

const SALE_HINTS = {
  suspend: "Its orders awaiting acceptance are cancelled (their stock is released); accepted orders go on.",
  reinstate: "Its onboarding rules run again first: a supplier that no longer passes them stays suspended.",
  delist: "It can no longer be ordered; orders already placed go on.",
  relist: "The listing rules run again first (its supplier must be approved).",
};

// A supplier or a listing opened by its ids, to take it off sale or put it back.
async function onFind(event) {
  event.preventDefault();
  clearError();
  const supplierId = requiredText($("#find-supplier"), "Cannot open", "supplierId");
  if (!supplierId) return;
  const sku = $("#find-sku").value.trim();
  const item = sku
    ? { recordType: "PRODUCT", recordId: `${supplierId}/${sku}`, correctionId: `PRODUCT:${supplierId}:${sku}`, supplierId, sku }
    : { recordType: "SUPPLIER", recordId: supplierId, correctionId: supplierId, supplierId };
  await openRecord(item);
}

async function onSale(event) {
  event.preventDefault();
  const [action] = KINDS[current.kind].sale[current.record.status];
  const field = $("#sale-reason");
  const reason = requiredText(field, `Cannot ${action}`);
  if (!reason) return;
  field.removeAttribute("aria-invalid");
  const doing = { suspend: "Suspending", reinstate: "Reinstating", delist: "Delisting", relist: "Relisting" }[action];
  await guarded($("#sale"), doing, async () => {
    // One Idempotency-Key per action meant: a retried lost answer is answered once (web/shared/api.js).
    const path = `${KINDS[current.kind].path(current)}/${action}`;
    current.record = await saleOnce((headers) => api.post(path, { reason }, headers));
    field.value = "";
    renderRecord();
    announce(`${KINDS[current.kind].label} is ${current.record.status}.`);
    await loadAudit();
  });
}

// Every editable leaf of the record, as "a.b.c" paths; arrays are edited as JSON.
function leaves(value, prefix, out) {
  for (const [key, child] of Object.entries(value)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (!prefix && isManaged(key)) continue;
    if (child !== null && typeof child === "object" && !Array.isArray(child)) leaves(child, path, out);
    else out.set(path, child);
  }
  return out;
}

function getPath(record, path) {
  return path.split(".").reduce((node, key) => (node === undefined || node === null ? undefined : node[key]), record);
}

function renderFixForm(record) {
  const all = leaves(record, "", new Map());
  const reasons = new Map();
  for (const flag of record.flags || []) {
    // A flag inside an array ("images.0") is fixed by editing the array, a leaf of the form.
    let path = flag.field;
    for (let cut = path; cut.includes(".") && !all.has(path); ) {
      cut = cut.slice(0, cut.lastIndexOf("."));
      if (all.has(cut)) path = cut;
    }
    // A missing field the rules want gets an empty input; "(body)"-like flags name no field.
    if (!all.has(path) && !isManaged(path.split(".")[0]) && !path.startsWith("(")) all.set(path, getPath(record, path));
    reasons.set(path, [...(reasons.get(path) || []), flag.reason]);
  }
  const ordered = [...all.keys()].sort((a, b) => Number(reasons.has(b)) - Number(reasons.has(a)));
  const fields = ordered.map((path, index) => {
    const value = all.get(path);
    const id = `fix-${index}`;
    // A list of texts (a listing's image URLs) is one per line; another list is edited as JSON.
    const isLines = Array.isArray(value) && value.every((v) => typeof v === "string");
    const type = isLines ? "lines" : Array.isArray(value) ? "json" : typeof value === "number" ? "number" : typeof value === "boolean" ? "boolean" : "string";
    const shown = type === "lines" ? value.join("\n") : type === "json" ? JSON.stringify(value) : value === undefined || value === null ? "" : String(value);
    const reason = reasons.get(path);
    const attributes = {
      id,
      name: path,
      dataset: { path, type, original: shown },
      "aria-invalid": reason ? "true" : null,
      "aria-describedby": reason ? `${id}-reason` : null,
      spellcheck: "false",
      autocomplete: "off",
    };
    const multiline = type === "json" || type === "lines";
    const rows = type === "lines" ? Math.max(2, value.length + 1) : 2;
    const input = multiline ? el("textarea", { ...attributes, rows }, shown) : el("input", { ...attributes, type: "text", value: shown });
    return el(
      "div",
      { class: "field" },
      el("label", { for: id }, type === "lines" ? `${path} (one per line)` : path),
      input,
      reason ? el("p", { id: `${id}-reason`, class: "field-reason" }, `Flagged: ${reason.join("; ")}`) : null,
    );
  });
  $("#fix-fields").replaceChildren(...fields);
}

function setPath(target, segments, value) {
  let node = target;
  for (const key of segments.slice(0, -1)) {
    if (node[key] === null || typeof node[key] !== "object") node[key] = {};
    node = node[key];
  }
  node[segments.at(-1)] = value;
}

// The API's field errors, on the inputs they name (focus goes to the first).
function markFields(fields) {
  let first = null;
  for (const { field, reason } of fields) {
    const input = [...$("#fix-fields").querySelectorAll("[data-path]")].find((i) => i.dataset.path === field);
    if (!input) continue;
    input.setAttribute("aria-invalid", "true");
    let note = document.getElementById(`${input.id}-error`);
    if (!note) {
      note = el("p", { id: `${input.id}-error`, class: "field-reason" });
      input.after(note);
      const described = input.getAttribute("aria-describedby");
      input.setAttribute("aria-describedby", described ? `${described} ${note.id}` : note.id);
    }
    note.textContent = `Refused: ${reason}`;
    first = first || input;
  }
  if (first) first.focus();
}

async function onFix(event) {
  event.preventDefault();
  const patch = {};
  const problems = [];
  for (const input of $("#fix-fields").querySelectorAll("[data-path]")) {
    const { path, type, original } = input.dataset;
    if (input.value === original) continue;
    let value = input.value;
    if (type === "number" && value.trim() !== "" && !Number.isNaN(Number(value))) value = Number(value);
    if (type === "boolean" && (value === "true" || value === "false")) value = value === "true";
    if (type === "lines") value = value.split("\n").map((line) => line.trim()).filter(Boolean);
    if (type === "json") {
      try {
        value = JSON.parse(value);
      } catch {
        problems.push({ field: path, reason: "is not valid JSON" });
        continue;
      }
    }
    const [top, ...rest] = path.split(".");
    if (rest.length) {
      if (!(top in patch)) patch[top] = structuredClone(current.record[top] ?? {});
      setPath(patch[top], rest, value);
    } else {
      patch[top] = value;
    }
  }
  if (problems.length) {
    showError(new ApiError(0, "invalid_input", "Cannot save the fix", problems));
    return;
  }
  if (!Object.keys(patch).length) {
    showError(new ApiError(0, "nothing_changed", "Nothing to save: change a field first."));
    return;
  }
  await guarded($("#save-fix"), "Saving the fix", async () => {
    try {
      current.record = await api.patch(KINDS[current.kind].path(current), patch, { "If-Match": String(current.record.version) });
    } catch (error) {
      markFields(error.fields || []);
      throw error;
    }
    renderRecord();
    const saved = `Saved: version ${current.record.version}. Re-run the drain to resume its workflow.`;
    announce(saved);
    // Said where the admin is too (the form's end, not the page's top), by the button that does it.
    $("#fix-note").textContent = saved;
    $("#fix-note").hidden = false;
    $("#record-drain").focus();
    await loadAudit();
  });
}

// ------------------------------------------------------------------------------------ actions
const MAX_DRAIN_CALLS = 10;

async function drain(button) {
  await guarded(button, "Running the drain", async () => {
    // One call drains what fits in the API's time and says "more" when the queue held more: call
    // again, a bounded number of times, and add the counts up.
    let resumed = 0;
    let waiting = 0;
    let more = true;
    for (let call = 0; more && call < MAX_DRAIN_CALLS; call += 1) {
      const result = await api.post("/admin/corrections/drain");
      resumed += result.resumed;
      waiting += result.waiting;
      more = result.more;
    }
    const rest = more ? " More is queued: run the drain again." : "";
    announce(`Drain done: ${resumed} resumed, ${waiting} still waiting.${rest}`);
    if (current && !$("#record-view").hidden) await followRecord();
    else await openQueue();
  });
}

// After a drain the workflow runs on its own: watch the record (bounded) until its status moves.
async function followRecord() {
  const before = current.record.status;
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    await loadRecord();
    if (current.record.status !== before) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  $("#fix-note").hidden = true;
  announce(`${KINDS[current.kind].label} is ${current.record.status}.`);
  await loadAudit();
}

async function onReject(event) {
  event.preventDefault();
  const field = $("#reject-reason");
  const reason = requiredText(field, "Cannot reject");
  if (!reason) return;
  field.removeAttribute("aria-invalid");
  await guarded($("#reject"), "Rejecting", async () => {
    current.record = await api.post(reject(current), { reason });
    field.value = "";
    renderRecord();
    announce(`${KINDS[current.kind].label} is ${current.record.status}.`);
    await loadAudit();
  });
}

async function onDecide(event) {
  event.preventDefault();
  clearError();
  const chosen = document.querySelector('input[name="refund"]:checked');
  if (!chosen) {
    showError(new ApiError(0, "invalid_input", "Cannot record the decision", [{ field: "refund", reason: "choose refund or no refund" }]));
    $("#decide-refund").focus();
    return;
  }
  const field = $("#decide-reason");
  const reason = requiredText(field, "Cannot record the decision");
  if (!reason) return;
  field.removeAttribute("aria-invalid");
  await guarded($("#decide"), "Recording the decision", async () => {
    // One decision per click: a retry of a lost answer with the same key is answered, not repeated.
    const key = `console-decide-${current.recordId}-${chosen.value}`;
    current.record = await api.post(`/returns/${enc(current.recordId)}/decide`, { refund: chosen.value === "true", reason }, { "Idempotency-Key": key });
    field.value = "";
    chosen.checked = false;
    renderRecord();
    announce(`The incident is decided: the return is ${current.record.status}.`);
    await loadAudit();
  });
}

async function onRetry() {
  await guarded($("#retry"), "Asking for another validation round", async () => {
    current.record = await api.post(retry(current));
    renderRecord();
    announce("Marked for another validation round: re-run the drain.");
  });
}

async function loadAudit() {
  const kind = KINDS[current.kind];
  const body = $("#audit-table tbody");
  if (!kind.history) {
    body.replaceChildren();
    $("#audit-none").hidden = false;
    $("#audit-none").textContent = "This kind of record has no audit trail of its own.";
    return;
  }
  await guarded($("#refresh-audit"), "Loading the audit trail", async () => {
    const items = [];
    let token = null;
    do {
      const page = await api.get(kind.history(current), { limit: 100, nextToken: token });
      items.push(...page.items);
      token = page.nextToken;
    } while (token);
    body.replaceChildren(
      ...items.map((entry) =>
        el(
          "tr",
          {},
          el("td", {}, formatTime(entry.at)),
          el("td", {}, entry.by || ""),
          el("td", {}, entry.action || ""),
          el("td", {}, (entry.changed || []).join(", ")),
          el("td", {}, (entry.after && entry.after.status) || ""),
        ),
      ),
    );
    $("#audit-none").hidden = items.length > 0;
    $("#audit-none").textContent = "No audit entries yet.";
  });
}

// ------------------------------------------------------------------------------------ start
async function start() {
  api = createClient(await loadApiBase(), () => session.token);
  $("#sign-in-form").addEventListener("submit", onSignIn);
  $("#sign-out").addEventListener("click", () => signOut("Signed out."));
  $("#refresh-queue").addEventListener("click", openQueue);
  $("#more").addEventListener("click", moreQueue);
  $("#drain").addEventListener("click", (e) => drain(e.currentTarget));
  $("#record-drain").addEventListener("click", (e) => drain(e.currentTarget));
  $("#back").addEventListener("click", openQueue);
  // The record and its audit trail, which a change of the record extends.
  $("#refresh-record").addEventListener("click", () => guarded($("#refresh-record"), "Refreshing", async () => {
    await loadRecord();
    await loadAudit();
  }));
  $("#refresh-audit").addEventListener("click", loadAudit);
  $("#fix-form").addEventListener("submit", onFix);
  $("#reject-form").addEventListener("submit", onReject);
  $("#retry").addEventListener("click", onRetry);
  $("#decide-form").addEventListener("submit", onDecide);
  $("#find-form").addEventListener("submit", onFind);
  $("#sale-form").addEventListener("submit", onSale);
  const token = session.token;
  if (token && !checkToken(token, "admin").problem && (await openQueue())) {
    signedIn();
  } else {
    signOut();
  }
  document.body.dataset.ready = "true";
}

start();

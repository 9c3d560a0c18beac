// Small DOM helpers. Everything the API returns is written with textContent, never as HTML.
import { ApiError } from "./api.js";

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function $(selector) {
  return document.querySelector(selector);
}

// The status line is an aria-live region: screen readers read each message once.
export function announce(message) {
  const region = $("#status");
  region.textContent = "";
  // A fresh text node on the next frame makes a repeated message be announced again.
  requestAnimationFrame(() => {
    region.textContent = message;
  });
}

// API errors with their field and reason, in the alert region.
export function showError(error, context) {
  const region = $("#error");
  region.replaceChildren();
  const title = context ? `${context}: ${error.message}` : error.message;
  region.append(el("p", { class: "error-title" }, title));
  if (error.fields && error.fields.length) {
    region.append(
      el(
        "ul",
        { class: "error-fields" },
        error.fields.map((f) => el("li", {}, el("code", {}, f.field), " ", f.reason)),
      ),
    );
  }
  region.hidden = false;
}

export function clearError() {
  const region = $("#error");
  region.replaceChildren();
  region.hidden = true;
}

export function formatAge(seconds) {
  if (seconds === null || seconds === undefined) return "unknown";
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d ${Math.floor((seconds % 86400) / 3600)} h`;
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

// Shows one view (a <section data-view>) and hides the others.
export function showView(id) {
  for (const section of document.querySelectorAll("[data-view]")) section.hidden = section.id !== id;
}

// Runs an action with its button disabled, reporting failures in the alert region.
export async function busy(button, context, action) {
  if (button) button.disabled = true;
  clearError();
  try {
    return await action();
  } catch (error) {
    showError(error, context);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

export function flagsList(flags) {
  if (!flags || !flags.length) return el("p", {}, "No flags.");
  return el(
    "ul",
    { class: "flags" },
    flags.map((f) => el("li", {}, el("code", {}, f.field), " ", f.reason)),
  );
}

// `busy`, and a 401 anywhere ends the session (through the page's own sign-out); other errors are
// shown with their fields.
export function guardedBy(signOut) {
  return (button, context, action) =>
    busy(button, context, async () => {
      try {
        return await action();
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) {
          signOut();
          showError(new ApiError(401, "unauthorized", "The API refused the token (expired or not valid): sign in again."));
          return undefined;
        }
        throw error;
      }
    });
}

// The trimmed text of a required field, or null after marking the field and saying why.
export function requiredText(field, context, name = "reason") {
  const value = field.value.trim();
  if (value) return value;
  field.setAttribute("aria-invalid", "true");
  showError(new ApiError(0, "invalid_input", context, [{ field: name, reason: "is required" }]));
  field.focus();
  return null;
}

// Marks the controls of `form` an API error names (each control says which body field it fills in
// data-field, e.g. "lines.1.reason"): invalid, with the reason under it, and focuses the first. The
// alert region shows the same fields and reasons (showError); the marks of an earlier try are cleared.
export function markFields(form, error) {
  for (const old of form.querySelectorAll(".field-reason")) old.remove();
  for (const control of form.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
    control.removeAttribute("aria-errormessage");
  }
  let first = null;
  for (const { field, reason } of (error && error.fields) || []) {
    const control = [...form.querySelectorAll("[data-field]")].find((c) => c.dataset.field === field);
    if (!control) continue;
    const note = el("p", { class: "field-reason", id: `${control.id}-reason` }, reason);
    control.after(note);
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-errormessage", note.id);
    first = first || control;
  }
  if (first) first.focus();
}

// A supplier's performance (GET /suppliers/{id}/performance) as a table: each rate with the counts
// it shares, and the median acceptance delay's bucket, over the last 30 and 90 days. Shown by the
// console (a supplier's record) and the portal (the supplier's own).
const RATE_ROWS = [
  ["Acceptance rate", "acceptanceRate", "accepted", "decided"],
  ["Refusal rate", "refusalRate", "refused", "decided"],
  ["Expiry rate", "expiryRate", "expired", "decided"],
  ["Late shipment rate", "lateShipmentRate", "shippedLate", "shipped"],
  ["Cancellation rate", "cancellationRate", "cancelled", "accepted"],
  ["Return rate", "returnRate", "returned", "delivered"],
  ["Refund rate", "refundRate", "refunded", "delivered"],
  ["Incident rate", "incidentRate", "incidents", "delivered"],
];

function delaySpan(seconds) {
  return seconds < 3600 ? `${seconds / 60} min` : `${seconds / 3600} h`;
}

function delayBucket(bucket) {
  if (!bucket) return "none yet (no order accepted)";
  if (bucket.toSeconds === null) return `${delaySpan(bucket.fromSeconds)} or more`;
  if (bucket.fromSeconds === 0) return `under ${delaySpan(bucket.toSeconds)}`;
  return `${delaySpan(bucket.fromSeconds)} to ${delaySpan(bucket.toSeconds)}`;
}

function rateText(window, key, numerator, denominator) {
  const counts = window.counts;
  const value = window.rates[key];
  const share = `${counts[numerator]} of ${counts[denominator]} ${denominator}`;
  return value === null ? `none yet (${share})` : `${(value * 100).toFixed(1)} % (${share})`;
}

export function performanceTable(figures, id) {
  const windows = [figures.last30Days, figures.last90Days];
  const cell = (key, window, text) => el("td", { dataset: { rate: key, days: window === figures.last30Days ? "30" : "90" } }, text);
  return el(
    "table",
    { id },
    el("caption", {}, `What became of the orders placed in the last 30 days (from ${figures.last30Days.from}) and 90 days (from ${figures.last90Days.from})`),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Indicator"), el("th", { scope: "col" }, "Last 30 days"), el("th", { scope: "col" }, "Last 90 days"))),
    el(
      "tbody",
      {},
      RATE_ROWS.map(([label, key, numerator, denominator]) =>
        el("tr", {}, el("th", { scope: "row" }, label), windows.map((w) => cell(key, w, rateText(w, key, numerator, denominator)))),
      ),
      el("tr", {}, el("th", { scope: "row" }, "Median acceptance delay"), windows.map((w) => cell("medianAcceptanceDelay", w, delayBucket(w.medianAcceptanceDelay)))),
    ),
  );
}

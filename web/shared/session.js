// Sign-in with a pasted token: kept in sessionStorage (gone when the tab closes), never written
// into the page. The claims are read only to greet the user and find the supplier id; the API
// verifies the token on every call.
import { ApiError } from "./api.js";
import { showError } from "./ui.js";

export function decodeClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

export function groupsOf(claims) {
  const groups = claims["cognito:groups"];
  if (Array.isArray(groups)) return groups.map(String);
  if (typeof groups === "string") return groups.replace(/^\[|\]$/g, "").split(/[\s,]+/).filter(Boolean);
  return [];
}

// Checks a token before it is kept: well formed, not expired, in the group the page is for.
// Returns {claims} or {problem}.
export function checkToken(token, group) {
  const claims = decodeClaims(token);
  if (!claims) return { problem: "This is not a token: paste the whole ID token (three parts separated by dots)." };
  if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) {
    return { problem: "This token has expired: get a new one and sign in again." };
  }
  if (!groupsOf(claims).includes(group)) {
    return { problem: `This token is not for the ${group} role.` };
  }
  return { claims };
}

export class Session {
  constructor(key) {
    this.key = key;
  }

  get token() {
    return sessionStorage.getItem(this.key) || "";
  }

  set token(value) {
    if (value) sessionStorage.setItem(this.key, value);
    else sessionStorage.removeItem(this.key);
  }

  get claims() {
    return this.token ? decodeClaims(this.token) : null;
  }
}

// Takes the token pasted in `input` for the page's `group`: keeps it in `session` and clears the
// field, or marks the field and shows why not (`extra(claims)` may name one more problem).
// Returns whether the token was kept.
export function signInWith(session, input, group, extra = () => null) {
  const token = input.value.trim();
  const { claims, problem: first } = token ? checkToken(token, group) : { problem: "Paste a token first." };
  const problem = first || extra(claims);
  if (problem) {
    input.setAttribute("aria-invalid", "true");
    showError(new ApiError(0, "invalid_token", "Cannot sign in", [{ field: "token", reason: problem }]));
    input.focus();
    return false;
  }
  session.token = token;
  input.value = "";
  input.removeAttribute("aria-invalid");
  return true;
}

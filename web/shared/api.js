// The marketplace API client shared by the admin console and the supplier portal.
// The API base URL is the page's own origin unless a config.json next to the page names another
// (the deployment writes {"apiBaseUrl": "/api"}: CloudFront serves the API under /api on the
// same origin as the pages, so no CORS is involved).

export class ApiError extends Error {
  constructor(status, code, message, fields = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

export async function loadApiBase() {
  let configured = "";
  try {
    const response = await fetch("config.json", { cache: "no-store", credentials: "omit" });
    if (response.ok) {
      const config = await response.json();
      if (config && typeof config.apiBaseUrl === "string") configured = config.apiBaseUrl;
    }
  } catch {
    // No config.json, or not JSON: the page's own origin is the API (the local stack's config says so too).
  }
  const base = new URL(configured || "/", window.location.href);
  return base.href.replace(/\/+$/, "");
}

export function createClient(base, getToken) {
  async function request(method, path, { body, headers = {}, query } = {}) {
    const url = new URL(base + path);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
    }
    const sent = { Accept: "application/json", ...headers };
    const token = getToken();
    if (token) sent.Authorization = `Bearer ${token}`;
    let payload;
    if (body !== undefined) {
      sent["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, { method, headers: sent, body: payload, credentials: "omit", cache: "no-store" });
    } catch (error) {
      throw new ApiError(0, "network_error", `the API could not be reached (${error.message})`);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(
        response.status,
        error.code || `http_${response.status}`,
        error.message || (data && data.message) || response.statusText || "request failed",
        Array.isArray(error.fields) ? error.fields : [],
      );
    }
    return data;
  }
  return {
    get: (path, query) => request("GET", path, { query }),
    post: (path, body, headers) => request("POST", path, { body, headers }),
    patch: (path, body, headers) => request("PATCH", path, { body, headers }),
  };
}

export const enc = encodeURIComponent;

// One Idempotency-Key per action the user means, for the POSTs that take one: kept while the action's
// answer is unknown (the network failed, a 5xx, or the first try still in progress), so trying again
// is the same request and the API answers it once; replaced once the API has answered it.
export function actionKey() {
  let key = crypto.randomUUID();
  return async (call) => {
    try {
      const answer = await call({ "Idempotency-Key": key });
      key = crypto.randomUUID();
      return answer;
    } catch (error) {
      const unknown = !(error instanceof ApiError) || error.status === 0 || error.status >= 500 || error.code === "in_progress";
      if (!unknown) key = crypto.randomUUID();
      throw error;
    }
  };
}

// Calls to the gateway's API with the key this browser tab holds. The key lives in sessionStorage: it is gone when
// the tab closes, and never leaves this origin.

const storageKey = "iot-gateway.api-key";

export const session = {
  key: sessionStorage.getItem(storageKey),
  me: null, // { name, role, mayQueueCommands } from GET /api/me
};

export function keepKey(key) {
  session.key = key;
  sessionStorage.setItem(storageKey, key);
}

export function forgetKey() {
  session.key = null;
  session.me = null;
  sessionStorage.removeItem(storageKey);
}

// Raised for every answer that is not a success; `status` 0 means the gateway did not answer at all.
export class ApiError extends Error {
  constructor(status, problem) {
    super(describe(status, problem));
    this.status = status;
    this.problem = problem;
  }
}

function describe(status, problem) {
  if (status === 0) return "The gateway does not answer. Is it running, and is this its address?";
  if (typeof problem === "string") return problem || `HTTP ${status}`;
  const errors = problem?.errors ? Object.values(problem.errors).flat() : [];
  return [problem?.title, problem?.detail, ...errors].filter(Boolean).join(": ") || `HTTP ${status}`;
}

// Listeners learn that the key stopped working (401), e.g. after the gateway's keys were changed.
export const keyEvents = new EventTarget();

export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (session.key) headers["X-API-Key"] = session.key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: "no-store" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, null);
  }

  const type = response.headers.get("content-type") ?? "";
  const data = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && session.me) keyEvents.dispatchEvent(new CustomEvent("refused", { detail: error }));
    throw error;
  }

  return data;
}

// Who the key is; throws ApiError (401 for a key the gateway does not know).
export async function signIn(key) {
  const previous = session.key;
  session.key = key;
  try {
    session.me = await api("/api/me");
    keepKey(key);
    return session.me;
  } catch (e) {
    session.key = previous;
    throw e;
  }
}

// A download that needs the key header: fetched, then handed to the browser as a file.
export async function download(path, fallbackName) {
  const response = await fetch(path, { headers: { "X-API-Key": session.key ?? "" } }).catch(() => null);
  if (!response) throw new ApiError(0, null);
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const name = /filename="?([^";]+)"?/.exec(response.headers.get("content-disposition") ?? "")?.[1] ?? fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return name;
}

export const enc = encodeURIComponent;

// Small DOM helpers: elements are built with textContent, never from HTML strings, so device data cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateTime = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function formatTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toDateString() === new Date().toDateString() ? timeOnly.format(d) : dateTime.format(d);
}

export function ago(iso) {
  if (!iso) return "";
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// A <time> showing the local time and how long ago; refreshRelativeTimes() keeps "ago" current.
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "never");
  return h("time", { datetime: iso, title: iso }, formatTime(iso), " ", h("span", { class: "ago", "data-ago": iso }, `(${ago(iso)})`));
}

export function refreshRelativeTimes(root = document) {
  for (const el of root.querySelectorAll("[data-ago]")) el.textContent = `(${ago(el.dataset.ago)})`;
}

// A reading's payload on one line: JSON compact, text as it is, binary as its size.
export function payloadText(reading) {
  if (!reading) return "";
  if (reading.format === "Binary") return `(binary, ${Math.floor((reading.payload?.length ?? 0) * 3 / 4)} bytes)`;
  return typeof reading.payload === "string" ? reading.payload : JSON.stringify(reading.payload);
}

export function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function statusBadge(status) {
  return h("span", { class: `status status-${String(status).toLowerCase()}` }, status);
}

export function presenceBadge(device) {
  return device.signedIn
    ? h("span", { class: "presence on" }, "Signed in")
    : h("span", { class: "presence off" }, "Signed out");
}

// Runs fn at most once per `ms`, the last call winning; the timer is cleared when the page changes.
export function throttle(fn, ms) {
  let timer = null;
  let pending = false;
  const run = () => {
    timer = null;
    if (pending) {
      pending = false;
      fn();
      timer = setTimeout(run, ms);
    }
  };
  const call = () => {
    pending = true;
    if (timer === null) run();
  };
  call.cancel = () => { clearTimeout(timer); timer = null; pending = false; };
  return call;
}

export const deviceHref = (id) => `#/devices/${encodeURIComponent(id)}`;

export const openStatuses = new Set(["Pending", "Published"]);
const statusRank = { Pending: 0, Published: 1 };
// Statuses only move forward; an event that arrives after a fresher read does not move one back.
export const isNewer = (next, current) => (statusRank[next] ?? 2) >= (statusRank[current] ?? 2);

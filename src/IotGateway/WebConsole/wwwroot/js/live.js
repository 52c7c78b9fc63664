// Live state: the event stream (GET /api/events, opened with a short-lived token because EventSource cannot send the
// key header) and the gateway's readiness (GET /health/ready). Pages listen on `live` for "event" and "resync".

import { api, ApiError, enc } from "./api.js";
import { h, replace } from "./dom.js";

export const live = new EventTarget();

const stream = { source: null, filter: undefined, state: "off", retry: null, attempt: 0 };
const health = { reachable: true, checks: null, since: null, timer: null };

// One stream at a time: every device (deviceId null) or one device's events.
export function follow(deviceId) {
  if (stream.filter === deviceId && stream.source) return;
  stream.filter = deviceId;
  connect();
}

export function stop() {
  clearTimeout(stream.retry);
  stream.source?.close();
  stream.source = null;
  stream.filter = undefined;
  setState("off");
}

export function streamState() {
  return stream.state;
}

async function connect() {
  clearTimeout(stream.retry);
  stream.source?.close();
  stream.source = null;
  setState("connecting");
  const filter = stream.filter;
  let url;
  try {
    ({ url } = await api("/api/events/tokens", { method: "POST" }));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return setState("off");
    return retryLater();
  }

  if (filter !== stream.filter) return; // the page changed meanwhile; its own follow() connects
  const source = new EventSource(filter ? `${url}&deviceId=${enc(filter)}` : url);
  stream.source = source;
  source.onopen = () => {
    stream.attempt = 0;
    setState("open");
    // What happened before the stream was open (while it was down, or while the page was loading) is read again.
    live.dispatchEvent(new Event("resync"));
  };
  source.onmessage = (message) => {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }

    if (data.type === "dropped") return; // the stream ends next; onerror reconnects and resyncs
    live.dispatchEvent(new CustomEvent("event", { detail: data }));
  };
  source.onerror = () => {
    // EventSource would retry with the same token, which expires: close and reconnect with a new one.
    if (stream.source !== source) return;
    source.close();
    stream.source = null;
    retryLater();
    checkHealth();
  };
}

function retryLater() {
  setState("reconnecting");
  stream.attempt++;
  const delay = Math.min(10_000, 500 * 2 ** Math.min(stream.attempt, 5));
  stream.retry = setTimeout(connect, delay);
}

function setState(state) {
  stream.state = state;
  render();
}

// Readiness: whether the gateway answers, and its broker and database checks.
export function watchHealth() {
  checkHealth();
}

async function checkHealth() {
  clearTimeout(health.timer);
  try {
    const response = await fetch("/health/ready", { cache: "no-store" });
    const body = await response.json();
    health.reachable = true;
    health.checks = body.checks ?? {};
  } catch {
    if (health.reachable) health.since = new Date();
    health.reachable = false;
  }

  const fine = health.reachable && Object.values(health.checks ?? {}).every((c) => c.status === "Healthy");
  render();
  // Every 5 s while all is well; every 2 s while something is down, so recovery shows soon.
  health.timer = setTimeout(checkHealth, fine ? 5000 : 2000);
}

function render() {
  const el = document.getElementById("health");
  if (!el) return;
  const problems = [];
  if (!health.reachable) {
    problems.push(`The gateway does not answer (since ${health.since?.toLocaleTimeString() ?? "now"}); retrying every 5 s.`);
  } else if (health.checks) {
    const broker = health.checks.broker;
    if (broker && broker.status !== "Healthy") problems.push(`Broker not connected: ${broker.description ?? "unknown reason"}. Devices cannot be reached; commands wait.`);
    const database = health.checks.database;
    if (database && database.status !== "Healthy") problems.push(`Database not available: ${database.description ?? "unknown reason"}.`);
  }

  if (health.reachable && (stream.state === "reconnecting")) problems.push("Live updates interrupted; reconnecting…");
  const broker = !health.checks ? "…" : health.checks.broker?.status === "Healthy" ? "connected" : "down";
  const liveText = { open: "on", connecting: "connecting…", reconnecting: "reconnecting…", off: "off" }[stream.state];
  const signature = JSON.stringify([health.reachable, health.checks, stream.state]);
  if (el.dataset.signature === signature) return; // unchanged: a live region is not re-announced
  el.dataset.signature = signature;
  el.classList.toggle("bad", problems.length > 0);
  replace(el,
    h("span", { class: "pill" }, h("span", { class: `dot ${health.reachable ? "ok" : "down"}` }), "Gateway: ", health.reachable ? "reachable" : "not answering"),
    h("span", { class: "pill" }, h("span", { class: `dot ${broker === "connected" ? "ok" : "down"}` }), "Broker: ", health.reachable ? broker : "unknown"),
    h("span", { class: "pill" }, h("span", { class: `dot ${stream.state === "open" ? "ok" : "down"}` }), "Live updates: ", liveText),
    problems.length ? h("p", { class: "problem" }, problems.join(" ")) : null);
}

// Fleet: every device, a page at a time (the API's keyset cursor; never more than one page in the DOM), with
// presence, last seen, latest reading and pending commands kept current from the event stream.

import { api, enc, session, ApiError } from "./api.js";
import { h, replace, when, payloadText, truncate, presenceBadge, deviceHref, throttle } from "./dom.js";
import { live, follow } from "./live.js";
import { fleetState as state, selection, bulkState } from "./state.js";

const pageSize = 50;

export function fleetPage(main) {
  const rows = new Map(); // id -> device, this page only
  const rowEls = new Map();
  const dirty = new Set(); // rows to redraw on the next frame
  const stale = new Set(); // rows whose pending count changed: re-read from the API
  let nextCursor = null;
  let frame = 0;
  let loading = null;
  let late = null; // events that arrive while a page is being read

  const presence = h("select", { id: "presence-filter" },
    h("option", { value: "" }, "All devices"),
    h("option", { value: "true" }, "Signed in"),
    h("option", { value: "false" }, "Signed out"));
  presence.value = state.presence;
  const search = h("input", { id: "id-search", type: "search", value: state.search, placeholder: "e.g. sensor-1", autocomplete: "off" });
  const summary = h("p", { class: "summary", "aria-live": "polite" });
  const notice = h("p", { class: "notice", hidden: true });
  const tbody = h("tbody");
  const transportHead = h("th", { scope: "col", hidden: true }, "Transport");
  const selectHead = h("th", { scope: "col", class: "select", hidden: !mayQueue() }, h("span", { class: "sr-only" }, "Select"));
  const table = h("table", { class: "devices" },
    h("caption", { class: "sr-only" }, "Devices"),
    h("thead", {}, h("tr", {}, selectHead,
      h("th", { scope: "col" }, "Device"),
      h("th", { scope: "col" }, "Presence"),
      transportHead,
      h("th", { scope: "col" }, "Last seen"),
      h("th", { scope: "col" }, "Latest reading"),
      h("th", { scope: "col", class: "num" }, "Pending commands"))),
    tbody);
  const previous = h("button", { type: "button", onclick: () => turn(-1) }, "Previous page");
  const next = h("button", { type: "button", onclick: () => turn(1) }, "Next page");
  const selected = h("span");
  const bulkBar = h("div", { class: "selection", hidden: true },
    selected,
    h("a", { class: "button", href: "#/bulk", onclick: () => { bulkState.target = "selected"; } }, "Send a command to the selected devices"),
    h("button", { type: "button", class: "link", onclick: () => { selection.clear(); for (const id of rows.keys()) dirty.add(id); redraw(); } }, "Clear selection"));

  replace(main,
    h("h1", {}, "Fleet"),
    h("form", { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
      h("label", { for: "presence-filter" }, "Show"), presence,
      h("label", { for: "id-search" }, "Device id contains"), search),
    summary,
    notice,
    h("div", { class: "table-wrap" }, table),
    h("nav", { class: "pager", "aria-label": "Device pages" }, previous, next),
    bulkBar);

  presence.addEventListener("change", () => { state.presence = presence.value; restart(); });
  let typing = 0;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.search = search.value.trim(); restart(); }, 250);
  });

  function restart() {
    state.cursors = [null];
    state.pageIndex = 0;
    load();
  }

  function turn(step) {
    if (step > 0 && !nextCursor) return;
    if (step > 0) state.cursors[state.pageIndex + 1] = nextCursor;
    state.pageIndex = Math.max(0, state.pageIndex + step);
    load();
  }

  function query(cursor, limit = pageSize) {
    const params = new URLSearchParams({ limit });
    if (state.presence) params.set("signedIn", state.presence);
    if (state.search) params.set("search", state.search);
    if (cursor) params.set("cursor", cursor);
    return `/api/devices?${params}`;
  }

  async function load() {
    const mine = (loading = Symbol());
    late = [];
    try {
      const page = await api(query(state.cursors[state.pageIndex]));
      if (loading !== mine) return;
      nextCursor = page.nextCursor;
      notice.hidden = true;
      rows.clear();
      rowEls.clear();
      for (const device of page.items) rows.set(device.id, device);
      transportHead.hidden = !page.items.some((d) => d.transport);
      tbody.replaceChildren(...page.items.map(renderRow));
      if (page.items.length === 0) {
        tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty" },
          state.search || state.presence ? "No device matches these filters." : "No device has connected yet. Devices appear here when they sign in or send data.")));
      }

      const first = state.pageIndex * pageSize + 1;
      summary.textContent = page.items.length
        ? `Devices ${first}–${first + page.items.length - 1}${nextCursor ? "" : " (last page)"}`
        : "";
      previous.disabled = state.pageIndex === 0;
      next.disabled = !nextCursor;
      showSelection();
      // The page may have been read before the events that arrived meanwhile: they are applied again on top.
      const arrived = late;
      late = null;
      for (const e of arrived) onEvent({ detail: e });
    } catch (e) {
      if (loading !== mine) return;
      late = null;
      replace(summary, h("span", { class: "error" }, `Could not load devices. ${e.message}`));
    }
  }

  function renderRow(device) {
    const tr = h("tr", { "data-device": device.id });
    fillRow(tr, device);
    rowEls.set(device.id, tr);
    return tr;
  }

  function fillRow(tr, d) {
    const latest = d.latestReading;
    const text = latest ? payloadText(latest) : "";
    replace(tr,
      h("td", { class: "select", hidden: !mayQueue() }, h("input", {
        type: "checkbox", checked: selection.has(d.id), "aria-label": `Select ${d.id}`,
        onchange: (e) => { if (e.target.checked) selection.add(d.id); else selection.delete(d.id); showSelection(); },
      })),
      h("td", { "data-label": "Device" }, h("a", { href: deviceHref(d.id) }, d.id)),
      h("td", { "data-label": "Presence" }, presenceBadge(d), " ", h("span", { class: "since" }, "since ", when(d.signedIn ? d.signedInAt : (d.signedOutAt ?? d.firstSeen)))),
      h("td", { "data-label": "Transport", hidden: transportHead.hidden }, d.transport ?? ""),
      h("td", { "data-label": "Last seen" }, when(d.lastSeen)),
      h("td", { "data-label": "Latest reading", class: "reading", title: text }, latest ? truncate(text, 90) : h("span", { class: "muted" }, "none yet")),
      h("td", { "data-label": "Pending commands", class: "num" }, String(d.pendingCommands)));
  }

  function showSelection() {
    bulkBar.hidden = !mayQueue() || selection.size === 0;
    selected.textContent = `${selection.size} selected`;
  }

  function redraw() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      for (const id of dirty) {
        const tr = rowEls.get(id);
        if (tr) fillRow(tr, rows.get(id));
      }

      dirty.clear();
    });
  }

  // Pending counts change with command transitions, which carry no count: the rows are re-read, at most every 1 s.
  const refreshStale = throttle(async () => {
    const ids = [...stale];
    stale.clear();
    for (const id of ids) {
      try {
        const device = await api(`/api/devices/${enc(id)}`);
        if (rows.has(id)) { rows.set(id, device); dirty.add(id); }
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) continue; // forgotten meanwhile
      }
    }

    redraw();
  }, 1000);

  function onEvent({ detail: e }) {
    late?.push(e);
    const device = rows.get(e.deviceId);
    if (!device) {
      if (e.type === "presence" || e.type === "reading") maybeNew(e.deviceId);
      return;
    }

    if (e.type === "presence") {
      device.signedIn = e.signedIn;
      if (e.signedIn) device.signedInAt = e.at; else device.signedOutAt = e.at;
    } else if (e.type === "reading") {
      device.latestReading = { receivedAt: e.receivedAt, format: e.format, payload: e.payload, topic: e.topic };
      device.lastSeen = e.receivedAt;
      device.telemetryCount++;
    } else if (e.type === "command") {
      stale.add(e.deviceId);
      refreshStale();
    }

    dirty.add(e.deviceId);
    redraw();
  }

  // A device not on this page: new to the gateway, or on another page. New ones are offered, not pushed in.
  const known = new Set();
  async function maybeNew(id) {
    if (known.has(id) || (state.search && !asciiLower(id).includes(asciiLower(state.search)))) return;
    known.add(id);
    const firstPage = state.pageIndex === 0;
    try {
      const device = await api(`/api/devices/${enc(id)}`);
      if (Date.now() - new Date(device.firstSeen).getTime() > 60_000) return; // an old device on another page
    } catch {
      return;
    }

    // The whole list fits on this page: show the new device at once (a newcomer's first device appears by itself).
    if (firstPage && !nextCursor && state.pageIndex === 0) return load();
    notice.hidden = false;
    replace(notice, "New devices have appeared. ",
      h("button", { type: "button", class: "link", onclick: () => (firstPage ? load() : restart()) }, "Show them"));
  }

  const onResync = () => load();
  live.addEventListener("event", onEvent);
  live.addEventListener("resync", onResync);
  follow(null);
  load();

  return () => {
    live.removeEventListener("event", onEvent);
    live.removeEventListener("resync", onResync);
    refreshStale.cancel();
    cancelAnimationFrame(frame);
  };
}

// The API's rule for `search`: only A–Z are folded, on every database (toLowerCase() would also fold Σ, É… and then
// miss devices the API lists: "ΟΔΟΣ" lowers to "οδος", which holds no "σ").
function asciiLower(text) {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

function mayQueue() {
  return session.me?.mayQueueCommands === true;
}

// One device: presence and facts, its latest reading, commands (send, history, live status) and its readings
// (a chart of a numeric field over a range, the readings page by page, export).

import { api, enc, session, download, ApiError } from "./api.js";
import { h, replace, when, formatTime, payloadText, presenceBadge, statusBadge, throttle, openStatuses, isNewer } from "./dom.js";
import { live, follow, streamState } from "./live.js";
import { commandForm } from "./commandform.js";
import { drawChart, numericFields, intervalFor } from "./chart.js";

const ranges = [["15m", "Last 15 minutes", 900], ["1h", "Last hour", 3600], ["6h", "Last 6 hours", 21600], ["24h", "Last 24 hours", 86400],
  ["7d", "Last 7 days", 604800], ["30d", "Last 30 days", 2592000], ["all", "Everything", 0]];
const readingsPageSize = 20;
const commandsPageSize = 20;
const view = { range: "1h", field: null };

export async function devicePage(main, id) {
  replace(main, h("p", { class: "muted" }, "Loading…"));
  follow(id);
  let device;
  try {
    device = await api(`/api/devices/${enc(id)}`);
  } catch (e) {
    replace(main, h("p", {}, h("a", { href: "#/" }, "← Fleet")), h("h1", {}, "Device ", h("code", {}, id)),
      h("p", { class: "error" }, e instanceof ApiError && e.status === 404 ? `The gateway has never seen a device named “${id}”.` : e.message));
    return null;
  }

  const mayQueue = session.me?.mayQueueCommands === true;
  const facts = h("dl", { class: "facts" });
  const latest = h("div", { class: "latest" });
  const sent = h("div", { class: "sent", role: "status", "aria-live": "polite", "aria-label": "Sent command" });
  const history = h("tbody");
  const olderCommands = h("button", { type: "button", hidden: true }, "Older commands");
  const rangeSelect = h("select", { id: "range" }, ranges.map(([value, label]) => h("option", { value }, label)));
  rangeSelect.value = view.range;
  const fieldSelect = h("select", { id: "field" });
  const chartBox = h("figure", { class: "chart-box" });
  const chartNote = h("p", { class: "muted small" });
  const readings = h("tbody");
  const readingsInfo = h("p", { class: "summary" });
  const newer = h("button", { type: "button" }, "Newer readings");
  const older = h("button", { type: "button" }, "Older readings");
  const exportNote = h("span", { class: "muted small", role: "status" });

  let field = null; // the numeric field charted
  const commands = new Map(); // id -> { view, tr }
  let commandsCursor = null;
  let lastSent = null;
  const readingCursors = [null];
  let readingPage = 0;
  let readingsNext = null;
  let readingsRequest = 0; // the newest read of the table: only its answer is shown
  let readingsLoading = 0;

  replace(main,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← Fleet")),
    h("h1", {}, "Device ", h("code", {}, id)),
    facts,
    h("section", { "aria-labelledby": "latest-h" }, h("h2", { id: "latest-h" }, "Latest reading"), latest),
    h("section", { "aria-labelledby": "commands-h" },
      h("h2", { id: "commands-h" }, "Commands"),
      mayQueue ? commandForm(sendCommand) : h("p", { class: "muted" }, "This key is a Reader: it may read commands but not send them."),
      sent,
      h("div", { class: "table-wrap" }, h("table", { class: "commands" },
        h("caption", { class: "sr-only" }, "Command history"),
        h("thead", {}, h("tr", {}, ["Queued", "Command", "Status", "Result", "By", ""].map((t) => h("th", { scope: "col" }, t)))),
        history)),
      olderCommands),
    h("section", { "aria-labelledby": "readings-h" },
      h("h2", { id: "readings-h" }, "Readings"),
      h("div", { class: "controls" },
        h("label", { for: "range" }, "Range"), rangeSelect,
        h("label", { for: "field" }, "Field"), fieldSelect),
      chartBox,
      chartNote,
      h("p", { class: "export" },
        h("button", { type: "button", onclick: () => exportAs("csv") }, "Export CSV"),
        h("button", { type: "button", onclick: () => exportAs("ndjson") }, "Export NDJSON"),
        exportNote),
      readingsInfo,
      h("div", { class: "table-wrap" }, h("table", { class: "readings" },
        h("caption", { class: "sr-only" }, "Readings, newest first"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Received"), h("th", { scope: "col" }, "Payload"))),
        readings)),
      h("nav", { class: "pager", "aria-label": "Reading pages" }, newer, older)));

  // Facts and latest reading
  function showFacts() {
    const since = device.signedIn ? device.signedInAt : (device.signedOutAt ?? device.firstSeen);
    replace(facts,
      h("div", {}, h("dt", {}, "Presence"), h("dd", {}, presenceBadge(device), " since ", when(since))),
      device.transport ? h("div", {}, h("dt", {}, "Transport"), h("dd", {}, device.transport)) : null,
      h("div", {}, h("dt", {}, "Last seen"), h("dd", {}, when(device.lastSeen))),
      h("div", {}, h("dt", {}, "First seen"), h("dd", {}, when(device.firstSeen))),
      h("div", {}, h("dt", {}, "Readings stored"), h("dd", {}, device.telemetryCount.toLocaleString())),
      h("div", {}, h("dt", {}, "Pending commands"), h("dd", {}, String(device.pendingCommands))));
  }

  function showLatest() {
    const r = device.latestReading;
    if (!r) return replace(latest, h("p", { class: "muted" }, "No reading stored yet."));
    const text = r.format === "Json" ? JSON.stringify(r.payload, null, 2) : payloadText(r);
    replace(latest, h("p", { class: "small" }, "Received ", when(r.receivedAt), " on ", h("code", {}, r.topic)), h("pre", { class: "payload" }, text));
    // The fields to chart are the latest reading's numbers; a new one joins the list, the chosen one stays.
    const fields = numericFields(r.format === "Json" ? r.payload : null);
    const known = [...fieldSelect.options].map((o) => o.value);
    if (fields.length && fields.some((f) => !known.includes(f))) {
      const all = [...known, ...fields.filter((f) => !known.includes(f))];
      const chosen = field ?? (view.field && all.includes(view.field) ? view.field : all.includes("temp") ? "temp" : all[0]);
      replace(fieldSelect, all.map((f) => h("option", { value: f }, f)));
      fieldSelect.value = chosen;
      if (chosen !== field) {
        field = chosen;
        return true;
      }
    }

    return false;
  }

  const refreshDevice = throttle(async () => {
    try {
      device = await api(`/api/devices/${enc(id)}`);
      showFacts();
      if (showLatest()) drawAggregate();
    } catch {
      // the health line says why
    }
  }, 1000);

  // Commands
  function commandRow(c) {
    const cancel = mayQueue && openStatuses.has(c.status)
      ? h("button", { type: "button", class: "small", "aria-label": `Cancel ${c.command} queued ${formatTime(c.createdAt)}`, onclick: () => cancelCommand(c.id) }, "Cancel")
      : null;
    return [
      h("td", { "data-label": "Queued" }, when(c.createdAt)),
      h("td", { "data-label": "Command" }, h("code", {}, c.command), c.payload ? h("span", { class: "muted small" }, " ", JSON.stringify(c.payload)) : null),
      h("td", { "data-label": "Status" }, statusBadge(c.status)),
      h("td", { "data-label": "Result" }, c.result ?? ""),
      h("td", { "data-label": "By" }, c.requestedBy ?? ""),
      h("td", {}, cancel),
    ];
  }

  function showCommand(c, { prepend = false } = {}) {
    const entry = commands.get(c.id);
    if (entry) {
      entry.view = c;
      replace(entry.tr, commandRow(c));
    } else {
      const tr = h("tr", { "data-command": c.id }, commandRow(c));
      commands.set(c.id, { view: c, tr });
      if (prepend) history.prepend(tr); else history.append(tr);
    }

    if (lastSent === c.id) showSent(c);
  }

  function showSent(c) {
    const done = !openStatuses.has(c.status);
    replace(sent, h("strong", {}, c.command), " — ", statusBadge(c.status),
      c.result != null ? h("span", {}, " result: ", h("code", { class: "result" }, c.result)) : null,
      done ? null : h("span", { class: "muted" }, c.status === "Pending" ? " (stored; handing to the broker)" : " (with the broker; waiting for the device)"));
  }

  async function loadCommands(more = false) {
    const params = new URLSearchParams({ limit: commandsPageSize });
    if (more && commandsCursor) params.set("cursor", commandsCursor);
    try {
      const page = await api(`/api/devices/${enc(id)}/commands?${params}`);
      if (!more) { history.replaceChildren(); commands.clear(); }
      for (const c of page.items) showCommand(c);
      commandsCursor = page.nextCursor;
      olderCommands.hidden = !commandsCursor;
      if (commands.size === 0) history.append(h("tr", { class: "empty-row" }, h("td", { colspan: 6, class: "empty" }, "No command sent to this device yet.")));
    } catch (e) {
      replace(history, h("tr", {}, h("td", { colspan: 6, class: "error" }, `Could not load commands. ${e.message}`)));
    }
  }

  olderCommands.addEventListener("click", () => loadCommands(true));

  async function sendCommand(body) {
    const queued = await api(`/api/devices/${enc(id)}/commands`, { method: "POST", body });
    lastSent = queued.id;
    history.querySelector(".empty-row")?.remove();
    const c = { id: queued.id, deviceId: id, command: body.command, payload: body.payload ?? null, status: queued.status, result: null, createdAt: new Date().toISOString(), requestedBy: session.me?.name };
    if (!commands.has(c.id)) showCommand(c, { prepend: true });
    else showSent(commands.get(c.id).view);
    // Without the event stream, wait for the answer the long way: the route waits up to 25 s per request.
    if (streamState() !== "open") waitFor(queued.id);
  }

  async function waitFor(commandId) {
    for (let i = 0; i < 40 && commands.has(commandId); i++) {
      if (streamState() === "open" && i > 0) return;
      try {
        const c = await api(`/api/commands/${commandId}?waitSeconds=25`);
        update(c);
        if (!openStatuses.has(c.status)) return;
      } catch {
        return;
      }
    }
  }

  // A command this page had not listed (sent from elsewhere, or its events came before the POST answered).
  function addOrUpdate(c) {
    if (commands.has(c.id)) return update(c);
    history.querySelector(".empty-row")?.remove();
    showCommand(c, { prepend: true });
  }

  function update(c) {
    const current = commands.get(c.id)?.view;
    if (!current || isNewer(c.status, current.status)) showCommand({ ...current, ...c });
  }

  async function cancelCommand(commandId) {
    try {
      update(await api(`/api/commands/${commandId}`, { method: "DELETE" }));
    } catch (e) {
      replace(sent, h("span", { class: "error" }, `Not cancelled. ${e.message}`));
    }
  }

  // Readings: range, chart, table, export
  function rangeBounds() {
    const to = new Date();
    const seconds = ranges.find(([v]) => v === view.range)?.[2] ?? 3600;
    const from = seconds ? new Date(to.getTime() - seconds * 1000) : new Date(device.firstSeen);
    return { from, to };
  }

  let chartRequest = null;
  async function drawAggregate() {
    if (!field) {
      replace(chartBox, h("p", { class: "muted" }, "No numeric field in the latest reading to chart."));
      return;
    }

    const { from, to } = rangeBounds();
    const [interval, seconds] = intervalFor(Math.max(60, (to - from) / 1000));
    const params = new URLSearchParams({ field, interval, from: from.toISOString(), to: to.toISOString() });
    const mine = (chartRequest = Symbol());
    try {
      const answer = await api(`/api/devices/${enc(id)}/telemetry/aggregate?${params}`);
      if (chartRequest !== mine) return;
      replace(chartBox, drawChart({ items: answer.items, from, to, intervalSeconds: seconds, field }),
        h("figcaption", {}, `${field}: average per ${interval} (line) and min–max (band)`));
      chartNote.textContent = answer.skipped ? `${answer.skipped.toLocaleString()} readings in the range have no number at ${field} and are left out.` : "";
    } catch (e) {
      if (chartRequest === mine) replace(chartBox, h("p", { class: "error" }, `Could not chart ${field}. ${e.message}`));
    }
  }

  // A read started earlier can be answered later (the page's first read, overtaken by a live reading's re-read): its
  // older page must not replace the newer one. aria-busy says while reads are in flight.
  async function loadReadings() {
    const mine = ++readingsRequest;
    readingsLoading++;
    readings.setAttribute("aria-busy", "true");
    const { from } = rangeBounds();
    const params = new URLSearchParams({ limit: readingsPageSize, from: from.toISOString() });
    if (readingCursors[readingPage]) params.set("cursor", readingCursors[readingPage]);
    try {
      const page = await api(`/api/devices/${enc(id)}/telemetry?${params}`);
      if (mine !== readingsRequest) return;
      readingsNext = page.nextCursor;
      replace(readings, page.items.map((r) => h("tr", {},
        h("td", { "data-label": "Received" }, when(r.receivedAt)),
        h("td", { "data-label": "Payload", class: "reading" }, payloadText(r)))));
      if (!page.items.length) readings.append(h("tr", {}, h("td", { colspan: 2, class: "empty" }, "No reading in this range.")));
      const first = readingPage * readingsPageSize + 1;
      readingsInfo.textContent = page.items.length ? `Readings ${first}–${first + page.items.length - 1}, newest first` : "";
      newer.disabled = readingPage === 0;
      older.disabled = !readingsNext;
    } catch (e) {
      if (mine === readingsRequest) replace(readings, h("tr", {}, h("td", { colspan: 2, class: "error" }, `Could not load readings. ${e.message}`)));
    } finally {
      if (--readingsLoading === 0) readings.setAttribute("aria-busy", "false");
    }
  }

  newer.addEventListener("click", () => { readingPage = Math.max(0, readingPage - 1); loadReadings(); });
  older.addEventListener("click", () => {
    if (!readingsNext) return;
    readingCursors[readingPage + 1] = readingsNext;
    readingPage++;
    loadReadings();
  });
  rangeSelect.addEventListener("change", () => {
    view.range = rangeSelect.value;
    readingCursors.length = 1;
    readingPage = 0;
    drawAggregate();
    loadReadings();
  });
  fieldSelect.addEventListener("change", () => { field = view.field = fieldSelect.value; drawAggregate(); });

  async function exportAs(format) {
    const { from, to } = rangeBounds();
    const params = new URLSearchParams({ format, from: from.toISOString(), to: to.toISOString() });
    exportNote.textContent = "Exporting…";
    try {
      const name = await download(`/api/devices/${enc(id)}/telemetry/export?${params}`, `${id}.${format}`);
      exportNote.textContent = `Saved ${name}.`;
    } catch (e) {
      exportNote.textContent = `Export failed. ${e.message}`;
    }
  }

  // Live
  const redrawChart = throttle(drawAggregate, 5000);
  const reloadReadings = throttle(() => { if (readingPage === 0) loadReadings(); }, 1000);

  function onEvent({ detail: e }) {
    if (e.deviceId !== id) return;
    if (e.type === "presence") {
      device.signedIn = e.signedIn;
      if (e.signedIn) device.signedInAt = e.at; else device.signedOutAt = e.at;
      showFacts();
    } else if (e.type === "reading") {
      device.latestReading = { receivedAt: e.receivedAt, topic: e.topic, format: e.format, payload: e.payload };
      device.lastSeen = e.receivedAt;
      device.telemetryCount++;
      showFacts();
      if (showLatest()) drawAggregate(); else redrawChart();
      reloadReadings();
    } else if (e.type === "command") {
      const known = commands.get(e.commandId);
      if (known) update({ id: e.commandId, status: e.status, result: e.result ?? known.view.result, ...(e.status === "Published" ? { publishedAt: e.at } : {}) });
      else api(`/api/commands/${e.commandId}`).then(addOrUpdate, () => {});
      refreshDevice();
    }
  }

  const onResync = () => { refreshDevice(); loadCommands(); loadReadings(); drawAggregate(); };
  live.addEventListener("event", onEvent);
  live.addEventListener("resync", onResync);

  showFacts();
  showLatest();
  drawAggregate();
  loadCommands();
  loadReadings();

  return () => {
    live.removeEventListener("event", onEvent);
    live.removeEventListener("resync", onResync);
    refreshDevice.cancel();
    redrawChart.cancel();
    reloadReadings.cancel();
    commands.clear();
  };
}

// Bulk: one command to the devices selected on the fleet page or to every signed-in device, then the batch's progress
// (counts by status and each device's command) kept current from the event stream.

import { api, session } from "./api.js";
import { h, replace, deviceHref, statusBadge, throttle, openStatuses } from "./dom.js";
import { live, follow } from "./live.js";
import { commandForm } from "./commandform.js";
import { selection, bulkState } from "./state.js";

const listSize = 100;
const order = ["Pending", "Published", "Completed", "Failed", "Expired", "Cancelled"];

export function bulkPage(main, batchId) {
  const mayQueue = session.me?.mayQueueCommands === true;
  follow(null);

  const useSelection = selection.size > 0 && bulkState.target !== "signedIn";
  const allSignedIn = h("input", { type: "radio", name: "target", id: "target-signed-in", value: "signedIn", checked: !useSelection });
  const selected = h("input", { type: "radio", name: "target", id: "target-selected", value: "selected", checked: useSelection, disabled: selection.size === 0 });
  for (const radio of [allSignedIn, selected]) radio.addEventListener("change", () => { bulkState.target = radio.value; });
  const targets = h("fieldset", { class: "targets" },
    h("legend", {}, "Devices"),
    h("div", {}, allSignedIn, h("label", { for: allSignedIn.id }, "All devices signed in now")),
    h("div", {}, selected, h("label", { for: selected.id }, `The ${selection.size} devices selected on the fleet page`)),
    selection.size
      ? h("p", { class: "muted small" }, [...selection].slice(0, 20).join(", "), selection.size > 20 ? ` and ${selection.size - 20} more` : "")
      : h("p", { class: "muted small" }, "To choose devices, tick them on the ", h("a", { href: "#/" }, "fleet page"), "."));

  const batch = h("section", { "aria-labelledby": "batch-h", class: "batch", hidden: !batchId });
  replace(main,
    h("h1", {}, "Bulk command"),
    mayQueue
      ? commandForm(send, { extra: targets })
      : h("p", { class: "muted" }, "This key is a Reader: it may watch a batch but not send commands. Sending needs an Operator key."),
    batch);

  async function send(body) {
    const request = { ...body };
    if (selected.checked) request.deviceIds = [...selection];
    else request.signedIn = true;
    const accepted = await api("/api/commands/bulk", { method: "POST", body: request });
    if (accepted.count === 0) throw new Error("No device is signed in right now: nothing was sent.");
    location.hash = `#/bulk/${accepted.batchId}`;
  }

  if (!batchId) return () => {};

  const progress = h("progress", { max: 1, value: 0, "aria-labelledby": "batch-progress" });
  const counts = h("p", { id: "batch-progress", class: "counts", role: "status", "aria-live": "polite" });
  const list = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "More devices");
  const cancel = mayQueue ? h("button", { type: "button", hidden: true }, "Cancel the unanswered commands") : null;
  let cursor = null;
  const rows = new Map();

  replace(batch,
    h("h2", { id: "batch-h" }, "Batch ", h("code", {}, batchId)),
    progress, counts, cancel,
    h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "sr-only" }, "Commands of the batch"),
      h("thead", {}, h("tr", {}, ["Device", "Command", "Status", "Result"].map((t) => h("th", { scope: "col" }, t)))),
      list)),
    more);

  async function summary() {
    try {
      const s = await api(`/api/commands/bulk/${batchId}`);
      const finished = Object.entries(s.byStatus).filter(([k]) => !openStatuses.has(k)).reduce((n, [, v]) => n + v, 0);
      progress.max = s.total;
      progress.value = finished;
      const parts = order.filter((k) => s.byStatus[k]).map((k) => `${k} ${s.byStatus[k]}`);
      counts.textContent = `${finished} of ${s.total} finished${finished === s.total ? " — done" : ""}. ${parts.join(", ")}.`;
      if (cancel) cancel.hidden = finished === s.total;
    } catch (e) {
      counts.textContent = `Could not read the batch. ${e.message}`;
    }
  }

  function row(c) {
    return [
      h("td", { "data-label": "Device" }, h("a", { href: deviceHref(c.deviceId) }, c.deviceId)),
      h("td", { "data-label": "Command" }, h("code", {}, c.command)),
      h("td", { "data-label": "Status" }, statusBadge(c.status)),
      h("td", { "data-label": "Result" }, c.result ?? ""),
    ];
  }

  async function loadList(next = false) {
    const params = new URLSearchParams({ limit: listSize });
    if (next && cursor) params.set("cursor", cursor);
    try {
      const page = await api(`/api/commands/bulk/${batchId}/commands?${params}`);
      if (!next) { list.replaceChildren(); rows.clear(); }
      for (const c of page.items) {
        const tr = h("tr", {}, row(c));
        rows.set(c.id, tr);
        list.append(tr);
      }

      cursor = page.nextCursor;
      more.hidden = !cursor;
    } catch (e) {
      replace(list, h("tr", {}, h("td", { colspan: 4, class: "error" }, `Could not list the batch. ${e.message}`)));
    }
  }

  // The rows shown are re-read with the counts; each device's row changes as its command moves.
  const refresh = throttle(async () => {
    await summary();
    const loaded = rows.size;
    const page = await api(`/api/commands/bulk/${batchId}/commands?limit=${Math.min(1000, Math.max(listSize, loaded))}`).catch(() => null);
    for (const c of page?.items ?? []) {
      const tr = rows.get(c.id);
      if (tr) replace(tr, row(c));
    }
  }, 1000);

  more.addEventListener("click", () => loadList(true));
  cancel?.addEventListener("click", async () => {
    try {
      await api(`/api/commands/bulk/${batchId}`, { method: "DELETE" });
    } catch (e) {
      counts.textContent = `Not cancelled. ${e.message}`;
    }

    refresh();
  });

  const onEvent = ({ detail: e }) => { if (e.type === "command") refresh(); };
  const onResync = () => refresh();
  live.addEventListener("event", onEvent);
  live.addEventListener("resync", onResync);
  summary();
  loadList();

  return () => {
    live.removeEventListener("event", onEvent);
    live.removeEventListener("resync", onResync);
    refresh.cancel();
  };
}

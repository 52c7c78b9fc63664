// The form that sends a command, on the device page and the bulk page: name, JSON payload, TTL.

import { h } from "./dom.js";

let formCount = 0;

// onSend({ command, payload, ttlSeconds }) returns a promise; its error message is shown under the form.
export function commandForm(onSend, { extra = null } = {}) {
  const n = ++formCount;
  const command = h("input", { id: `command-${n}`, name: "command", required: true, list: "known-commands", autocomplete: "off", maxlength: "128", placeholder: "PING" });
  const payload = h("textarea", { id: `payload-${n}`, name: "payload", rows: 2, spellcheck: "false", placeholder: '{"seconds": 30}' });
  const ttl = h("input", { id: `ttl-${n}`, name: "ttl", type: "number", min: "1", step: "1", inputmode: "numeric", placeholder: "default" });
  const error = h("p", { class: "error", role: "alert" });
  const send = h("button", { type: "submit" }, "Send");
  const form = h("form", { class: "command-form", novalidate: true },
    extra,
    h("div", { class: "field" }, h("label", { for: command.id }, "Command"), command),
    h("div", { class: "field grow" }, h("label", { for: payload.id }, "Payload (JSON, optional)"), payload),
    h("div", { class: "field" }, h("label", { for: ttl.id }, "TTL in seconds (optional)"), ttl),
    h("div", { class: "field" }, send),
    error,
    h("datalist", { id: "known-commands" },
      ["PING", "GET_CONFIG", "SET_INTERVAL", "REBOOT"].map((c) => h("option", { value: c }))));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    const body = { command: command.value.trim() };
    if (!body.command) {
      error.textContent = "Name the command to send, e.g. PING.";
      return command.focus();
    }

    if (payload.value.trim()) {
      try {
        body.payload = JSON.parse(payload.value);
      } catch (err) {
        error.textContent = `The payload is not JSON: ${err.message}`;
        return payload.focus();
      }
    }

    if (ttl.value) {
      const seconds = Number(ttl.value);
      if (!Number.isInteger(seconds) || seconds < 1) {
        error.textContent = "The TTL is a whole number of seconds, at least 1.";
        return ttl.focus();
      }

      body.ttlSeconds = seconds;
    }

    send.disabled = true;
    try {
      await onSend(body);
    } catch (err) {
      error.textContent = `Not sent. ${err.message}`;
    } finally {
      send.disabled = false;
    }
  });
  return form;
}

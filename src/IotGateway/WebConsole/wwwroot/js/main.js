// The console's shell: asks for an API key, shows what it may do, and routes #/… links to the pages.

import { session, signIn, forgetKey, keyEvents, ApiError } from "./api.js";
import { h, replace, refreshRelativeTimes } from "./dom.js";
import { watchHealth, stop } from "./live.js";
import { fleetPage } from "./fleet.js";

const main = document.getElementById("main");
let leave = null; // the current page's clean-up

const routes = [
  [/^#?\/?$/, () => fleetPage(main)],
  [/^#\/devices\/(.+)$/, (raw) => {
    const id = decodeSegment(raw);
    return id === null ? notADevice(raw) : import("./device.js").then((m) => m.devicePage(main, id));
  }],
  [/^#\/bulk(?:\/([0-9a-f-]{36}))?$/, (batchId) => import("./bulk.js").then((m) => m.bulkPage(main, batchId ?? null))],
];

async function route() {
  if (!session.me) return;
  leave?.();
  leave = null;
  const hash = location.hash;
  for (const [pattern, page] of routes) {
    const match = pattern.exec(hash);
    if (match) {
      const current = Symbol();
      route.current = current;
      const cleanUp = await page(...match.slice(1));
      if (route.current === current) leave = cleanUp ?? null;
      else cleanUp?.();
      markCurrentPage(hash);
      return;
    }
  }

  replace(main, h("h1", {}, "Not found"), h("p", {}, "No page here. ", h("a", { href: "#/" }, "Go to the fleet.")));
}

// A hand-typed or cut-off address (#/devices/%E0) is not valid percent-encoding: say so instead of throwing.
function decodeSegment(raw) {
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

function notADevice(raw) {
  replace(main, h("h1", {}, "Not a valid device address"),
    h("p", {}, "The address ends in ", h("code", {}, raw), ", which does not spell a device id (its %-escapes are not valid UTF-8). ",
      h("a", { href: "#/" }, "Go to the fleet"), " and pick the device there."));
  return null; // no clean-up
}

function markCurrentPage(hash) {
  const page = hash.startsWith("#/bulk") ? "bulk" : hash.startsWith("#/devices/") ? "device" : "fleet";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function showWho() {
  const who = document.getElementById("who");
  const nav = document.getElementById("nav");
  nav.hidden = !session.me;
  if (!session.me) return replace(who);
  const { name, role, mayQueueCommands } = session.me;
  replace(who,
    h("span", { class: "key-name", title: "The API key's name" }, name),
    h("span", { class: `role role-${role.toLowerCase()}` }, role),
    h("span", { class: "may" }, mayQueueCommands ? "may read and send commands" : "may read; sending commands needs an Operator key"),
    h("button", { type: "button", class: "link", onclick: () => { forgetKey(); askForKey(); } }, "Forget key"));
}

function askForKey(message) {
  leave?.();
  leave = null;
  stop();
  session.me = null;
  showWho();
  const input = h("input", { id: "api-key", name: "api-key", type: "password", autocomplete: "off", spellcheck: "false", required: true });
  const error = h("p", { id: "key-error", class: "error", role: "alert" }, message ?? "");
  const button = h("button", { type: "submit" }, "Use this key");
  const form = h("form", { class: "card key-form", "aria-labelledby": "key-title" },
    h("h1", { id: "key-title" }, "Sign in"),
    h("p", {}, "The gateway needs an API key for everything it shows. On its first start it generated one and printed it in its log ",
      "(“It is shown only this once: …”); it is also saved in ", h("code", {}, "data/api-key"), " where the gateway runs."),
    h("label", { for: "api-key" }, "API key"),
    input,
    h("p", { class: "hint" }, "Kept only for this browser tab (session storage): closing the tab forgets it."),
    button,
    error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    error.textContent = "";
    try {
      // A gateway that has just started answers 503 while it opens its database: wait for it rather than fail.
      for (let attempt = 0; ; attempt++) {
        try {
          await signIn(key);
          break;
        } catch (err) {
          if (!(err instanceof ApiError && err.status === 503) || attempt >= 60) throw err;
          error.textContent = `The gateway is not ready yet (${err.problem?.detail ?? "starting"}); trying again…`;
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
      }

      start();
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 401
        ? "This key was refused: the gateway does not know it. Check that it was pasted whole, or ask for a valid key."
        : `Could not check the key. ${err.message}`;
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  replace(main, form);
  input.focus();
}

function start() {
  showWho();
  route();
}

keyEvents.addEventListener("refused", () => {
  forgetKey();
  askForKey("The gateway no longer accepts this key (its keys may have changed). Paste a valid key.");
});

window.addEventListener("hashchange", () => {
  route();
  main.focus({ preventScroll: true });
});
setInterval(() => refreshRelativeTimes(), 10_000);
watchHealth();

if (session.key) {
  signIn(session.key).then(start, (e) => {
    if (e instanceof ApiError && e.status === 401) forgetKey();
    askForKey(e instanceof ApiError && e.status === 401 ? "" : e.message);
  });
} else {
  askForKey();
}

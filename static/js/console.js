// What every Spiral page shares, beside the live dashboard's own behaviour (dashboard.js): phase
// changes and new ritual runs said once to screen readers, long lists as one stop for the Tab key,
// "for 4 more minutes" kept true, the protection panel fetched again when the breath says it
// changed, copy buttons, the glint sheet opened from its own address, and a line in the form
// when the server cannot be reached. The server renders every piece of HTML; this file only
// moves focus, sets attributes and writes short texts.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  let offset = 0; // the hub's clock minus this browser's, in ms

  function learnClock(iso) {
    const t = Date.parse(iso || "");
    if (!Number.isNaN(t)) offset = t - Date.now();
  }

  // -- times in words (the same words as filters.seconds_in_words) ------------------------------
  function inWords(seconds, prep) {
    const s = Math.max(0, Math.ceil(seconds));
    let n = s;
    let unit = "second";
    if (s >= 3600) { n = Math.max(1, Math.round(s / 3600)); unit = "hour"; }
    else if (s >= 60) { n = Math.max(1, Math.round(s / 60)); unit = "minute"; }
    const units = n === 1 ? unit : `${unit}s`;
    return prep === "for" ? `for ${n} more ${units}` : `in ${n} ${units}`;
  }

  function tickTimesLeft() {
    const now = Date.now() + offset;
    for (const el of document.querySelectorAll("[data-left-until]")) {
      const until = Date.parse(el.dataset.leftUntil);
      if (Number.isNaN(until)) continue;
      const text = until > now ? inWords((until - now) / 1000, "for") : "until now: lifting";
      if (el.textContent !== text) el.textContent = text;
    }
  }

  // -- said once, politely ------------------------------------------------------------------------
  const pending = [];
  let speakTimer = 0;
  function say(text) {
    pending.push(text);
    if (speakTimer) return;
    // Gathered for a moment, so a burst of runs is one sentence rather than a queue of them.
    speakTimer = setTimeout(() => {
      speakTimer = 0;
      const out = $("announcer");
      if (!out) return;
      out.textContent = pending.splice(0).join(" ");
    }, 600);
  }

  let seenPhase = null;
  let seenRun = null;
  function announceChanges() {
    const breath = $("breath");
    if (breath) {
      learnClock(breath.dataset.serverTime);
      const phase = breath.dataset.phase;
      if (seenPhase !== null && phase !== seenPhase) say(`Phase: ${phase.replace("_", " ")}.`);
      seenPhase = phase;
    }
    const log = $("ritual-log");
    if (log) {
      const newest = Number(log.firstElementChild?.dataset.seq || 0);
      if (seenRun !== null && newest > seenRun) {
        const fresh = [...log.children].filter((li) => Number(li.dataset.seq) > seenRun);
        const words = fresh.slice(0, 3).map((li) => {
          const status = li.querySelector(".run-status")?.textContent.trim() || "";
          return `${li.dataset.ritual} ${status}`.trim();
        });
        const more = fresh.length > 3 ? ` and ${fresh.length - 3} more` : "";
        say(fresh.length === 1 ? `Ritual ran: ${words[0]}.` : `${fresh.length} ritual runs: ${words.join(", ")}${more}.`);
      }
      if (newest) seenRun = Math.max(seenRun || 0, newest);
      else if (seenRun === null) seenRun = 0;
    }
  }

  // -- the protection panel follows the breath ----------------------------------------------------
  // The breath carries the throttle and the watcher's alerts; when either changes, the panel with
  // its unblock buttons is fetched again (hx-trigger="protectionchange from:body").
  let protectionSeen = null;
  let protectionActedAt = 0;
  function followProtection() {
    const breath = $("breath");
    if (!breath || !$("protection")) return;
    const alerts = $("breath-facts")?.querySelector(".alerts")?.textContent || "";
    const now = `${breath.dataset.throttled}|${alerts}`;
    if (protectionSeen !== null && now !== protectionSeen) {
      // Just acted on from the panel itself: its answer is newer than this breath.
      if (Date.now() - protectionActedAt > 2500) htmx.trigger(document.body, "protectionchange");
    }
    protectionSeen = now;
  }

  // -- long lists are one stop for the Tab key ----------------------------------------------------
  // The glint timeline (up to 200 rows) and the ritual log (up to 60) sit before the forms and the
  // statistics: each is one Tab stop (the newest row, or the one last used); the arrow keys, Home
  // and End move within it. Without script every row is a stop, as links are.
  const LISTS = { timeline: "a.glint-open", "ritual-log": "summary" };
  const observed = new Map();

  function rove(list, selector) {
    for (const item of list.querySelectorAll(`${selector}:not([tabindex])`)) item.tabIndex = -1;
    const current = list.querySelector(`${selector}[tabindex="0"]`);
    const first = list.querySelector(selector);
    if (list.contains(document.activeElement) && current) return;
    if (current && current !== first) current.tabIndex = -1;
    if (first && first.tabIndex !== 0) first.tabIndex = 0;
  }

  function watchLists() {
    for (const [id, selector] of Object.entries(LISTS)) {
      const list = $(id);
      if (!list || observed.get(id) === list) continue;
      observed.set(id, list);
      new MutationObserver(() => rove(list, selector)).observe(list, { childList: true });
      rove(list, selector);
    }
  }

  document.addEventListener("keydown", (evt) => {
    if (evt.altKey || evt.ctrlKey || evt.metaKey) return;
    const list = evt.target.closest?.("#timeline, #ritual-log");
    if (!list) return;
    const selector = LISTS[list.id];
    if (!evt.target.matches(selector)) return;
    const items = [...list.querySelectorAll(selector)];
    const at = items.indexOf(evt.target);
    const to = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 }[evt.key];
    if (to === undefined || !items[to]) return;
    evt.preventDefault();
    evt.target.tabIndex = -1;
    items[to].tabIndex = 0;
    items[to].focus();
  });

  // -- copy buttons -----------------------------------------------------------------------------
  document.addEventListener("click", async (evt) => {
    const button = evt.target.closest?.("[data-copy]");
    if (!button) return;
    const source = document.querySelector(button.dataset.copy);
    if (!source) return;
    const what = button.textContent.replace(/^Copy\s*/i, "");
    let copied = false;
    try {
      await navigator.clipboard.writeText(source.value ?? source.textContent);
      copied = true;
    } catch {
      // No clipboard (a page served over plain http to another machine): show the text, selected.
      const details = source.closest("details");
      if (details) details.open = true;
      source.focus();
      source.select?.();
    }
    const status = $("glint-actions-status");
    if (status) {
      const note = document.createElement("span");
      note.className = copied ? "notice ok" : "notice";
      note.textContent = copied ? `Copied ${what}.` : "Selected below: copy it with Ctrl+C (⌘C).";
      status.replaceChildren(note);
    }
  });

  // -- the glint sheet has an address: /?glint=<id> ----------------------------------------------
  function glintUrl(id) {
    return document.body.dataset.glintUrl.replace("GLINT_ID", encodeURIComponent(id));
  }

  function openFromAddress() {
    const id = new URLSearchParams(location.search).get("glint");
    if (id && $("detail-body") && $("detail")) {
      htmx.ajax("GET", glintUrl(id), { target: "#detail-body", swap: "innerHTML" });
    }
  }

  function keepAddress(id) {
    const url = new URL(location.href);
    if (id) url.searchParams.set("glint", id);
    else url.searchParams.delete("glint");
    if (url.href !== location.href) history.replaceState(history.state, "", url);
  }

  document.addEventListener("close", (evt) => {
    if (evt.target?.id === "detail") keepAddress(null);
  }, true);

  // -- refusals that cannot reach the server, and the page's own line ----------------------------
  const SLOTS = { "emit-form": "emit-form-status", admin: "admin-status", protection: "protection-status" };
  document.addEventListener("htmx:error", (evt) => {
    const ctx = evt.detail?.ctx;
    if (!ctx || ctx.response || ctx.sourceElement?.id === "live") return; // answered, or the stream's own business
    const slot = $(SLOTS[ctx.target?.id] || "") || $("page-problem");
    if (!slot) return;
    const note = document.createElement("span");
    note.className = "problem";
    note.textContent = "The server could not be reached, so nothing was sent. Try again when it is back.";
    slot.replaceChildren(note);
    if (slot.id === "page-problem") fadeProblem();
  });

  let problemTimer = 0;
  function fadeProblem() {
    clearTimeout(problemTimer);
    problemTimer = setTimeout(() => $("page-problem")?.replaceChildren(), 10_000);
  }
  document.addEventListener("click", (evt) => {
    if (evt.target.closest?.("#page-problem")) $("page-problem").replaceChildren();
  });

  // -- "Emit one with the form": the form may be far below --------------------------------------
  document.addEventListener("click", (evt) => {
    const link = evt.target.closest?.('a[href="#emit-form"]');
    const field = $("emit-module");
    if (!link || !field) return;
    evt.preventDefault();
    field.focus({ preventScroll: true });
    field.scrollIntoView({ block: "center", behavior: "smooth" });
  });

  // -- after every swap ---------------------------------------------------------------------------
  document.addEventListener("htmx:after:swap", (evt) => {
    const target = evt.detail?.ctx?.target;
    const id = typeof target === "string" ? target.replace(/^#/, "") : target?.id;
    if (id === "protection" && evt.detail.ctx.request?.method === "POST") protectionActedAt = Date.now();
    if (id === "page-problem") fadeProblem();
    announceChanges();
    followProtection();
    watchLists();
    tickTimesLeft();
    const detail = $("glint-detail");
    if (id === "detail-body" && $("detail") && detail?.dataset.glintId) keepAddress(detail.dataset.glintId);
  });

  document.addEventListener("DOMContentLoaded", () => {
    learnClock(document.body.dataset.serverTime);
    announceChanges();
    followProtection();
    watchLists();
    tickTimesLeft();
    openFromAddress();
    setInterval(tickTimesLeft, 1000); // a clock, not a poll: it only rewrites "for N more minutes"
  });
})();

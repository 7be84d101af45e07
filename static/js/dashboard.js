// Spiral dashboard behaviour. The server renders every piece of HTML and htmx swaps it in; this file
// keeps time (the glyph breathes in step with the server's clock), holds new glints while the reader
// pauses, keeps the timeline bounded and free of duplicates, opens the glint sheet and shows the
// state of the connection. It never builds markup from data.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  let serverOffset = 0; // the server's clock minus this browser's, in ms
  const flow = { paused: false, byScroll: false, held: 0, reset: false };

  // -- the breath -------------------------------------------------------------------------------
  // The server renders each phase's timing inline (the animations start at its point in the
  // phase, counted on its clock), so every browser breathes in step whatever its own clock says.
  // Here we only learn the offset between the two clocks, from the server_time each breath
  // message carries, for the countdown.
  let seenBreath = null;
  function syncBreath() {
    const breath = $("breath");
    if (!breath || breath === seenBreath) return;
    seenBreath = breath;
    const server = Date.parse(breath.dataset.serverTime);
    if (!Number.isNaN(server)) serverOffset = server - Date.now();
    document.title = `Spiral · ${breath.dataset.phase.replace("_", " ")}`;
    tick();
  }

  function countdown(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    if (s >= 3600) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
    if (s >= 60) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
    return `${s}s`;
  }

  function tick() {
    const breath = $("breath");
    const out = $("countdown");
    if (!breath || !out) return;
    const now = Date.now() + serverOffset;
    const started = Date.parse(breath.dataset.phaseStarted);
    const ends = Date.parse(breath.dataset.phaseEnds);
    const text = countdown(ends - now);
    if (out.textContent !== text) out.textContent = text;
    // Read by the progress ring when animations are off (prefers-reduced-motion).
    const progress = Math.min(1, Math.max(0, (now - started) / Math.max(1, ends - started)));
    breath.style.setProperty("--progress", progress.toFixed(3));
    expireCooldowns(now);
  }

  // -- the timeline ------------------------------------------------------------------------------
  function limit() {
    return Number($("timeline-body")?.dataset.limit || 200);
  }

  function trim(list, keep) {
    if (!list || list.children.length <= keep) return;
    while (list.children.length > keep) list.lastElementChild.remove();
    const more = $("timeline-more");
    if (more && list.id === "timeline") more.dataset.state = "more"; // what fell off is a click away
  }

  function showFlow() {
    const pause = $("pause");
    const badge = $("new-count");
    if (pause) pause.dataset.state = flow.paused ? "paused" : "live"; // its label says what a click does
    if (badge) {
      badge.hidden = !flow.paused || flow.held === 0;
      const n = $("new-n");
      const text = flow.reset ? `${flow.held}+` : String(flow.held);
      if (n && n.textContent !== text) n.textContent = text;
    }
  }

  function announce(text) {
    const status = $("flow-status");
    if (status) status.textContent = text;
  }

  function pause(byScroll) {
    if (flow.paused) return;
    Object.assign(flow, { paused: true, byScroll, held: 0, reset: false });
    showFlow();
    announce("Timeline paused; new glints are held.");
  }

  function resume() {
    if (!flow.paused) return;
    const list = $("timeline");
    const held = $("timeline-held");
    const shown = flow.held;
    if (list && held) {
      if (flow.reset) list.replaceChildren(...held.children); // the held rows replace a stale page
      else list.prepend(...held.children); // newest first on both lists, so order is kept
      trim(list, limit());
      if (list.children.length) $("timeline-empty")?.remove();
    }
    Object.assign(flow, { paused: false, byScroll: false, held: 0, reset: false });
    const body = $("timeline-body");
    if (body && body.scrollTop > 0) body.scrollTop = 0;
    showFlow();
    announce(shown ? `Timeline live; ${shown} new glints shown.` : "Timeline live.");
  }

  // Every SSE message and htmx response passes here before it is swapped in: drop rows the page
  // already has (a replay overlapping what was rendered), and while paused send new rows to the
  // hidden holding list instead of the visible one.
  document.addEventListener("htmx:before:swap", (evt) => {
    const tasks = evt.detail?.tasks;
    if (!Array.isArray(tasks)) return;
    for (const task of tasks) {
      const target = task.target;
      if (target?.id === "ritual-log" && task.fragment) dropSeenRuns(target, task);
      if (!target || target.id !== "timeline" || !task.fragment) continue;
      const style = task.swapSpec?.style;
      if (style !== "innerHTML") {
        for (const row of task.fragment.querySelectorAll("li[id^='glint-']")) {
          if (document.getElementById(row.id)) row.remove();
        }
      }
      if (flow.paused && (style === "afterbegin" || style === "innerHTML")) {
        const held = $("timeline-held");
        if (!held) continue;
        const n = task.fragment.querySelectorAll("li[id^='glint-']").length;
        if (style === "innerHTML") { flow.reset = true; flow.held = n; } else { flow.held += n; }
        task.target = held;
      }
    }
  });

  document.addEventListener("htmx:after:swap", (evt) => {
    syncBreath();
    const list = $("timeline");
    if (list && !flow.paused) trim(list, limit());
    const more = $("timeline-more");
    if (list && more && more.dataset.state === "none" && list.children.length >= limit()) more.dataset.state = "more";
    trim($("timeline-held"), limit());
    if (list && list.children.length) $("timeline-empty")?.remove();
    showFlow();
    const target = evt.detail?.ctx?.target;
    if (target && (target.id === "detail-body" || target === "#detail-body")) openSheet();
  });

  // A new filter brings a new timeline body (and a new connection): start live again.
  document.addEventListener("htmx:after:swap", (evt) => {
    const target = evt.detail?.ctx?.target;
    if (target && (target.id === "timeline-body" || target === "#timeline-body") && !$("timeline-held")?.children.length) {
      Object.assign(flow, { paused: false, byScroll: false, held: 0, reset: false });
      showFlow();
    }
  });

  // Scrolling away from the top pauses; coming back to the top resumes what scrolling paused.
  document.addEventListener("scroll", (evt) => {
    if (evt.target?.id !== "timeline-body") return;
    const top = evt.target.scrollTop;
    if (top > 48 && !flow.paused) pause(true);
    else if (top <= 2 && flow.paused && flow.byScroll) resume();
  }, { capture: true, passive: true });

  document.addEventListener("click", (evt) => {
    const button = evt.target.closest?.("#pause, #new-count");
    if (!button) return;
    if (button.id === "new-count" || flow.paused) resume();
    else pause(false);
  });

  // -- the ritual log ----------------------------------------------------------------------------
  // Runs arrive in seq order. The first render already shows every run up to the moment it was
  // read, and the stream may resume a little before that (after the newest glint shown, or after
  // a new filter), so a run at or below the newest one in the log is one the page already has.
  function dropSeenRuns(log, task) {
    if (task.swapSpec?.style === "innerHTML") return; // a reset brings the whole log
    const newest = Number(log.firstElementChild?.dataset.seq || 0);
    for (const row of task.fragment.querySelectorAll("li.run")) {
      if (Number(row.dataset.seq) <= newest) row.remove();
    }
  }

  document.addEventListener("htmx:after:swap", () => {
    const log = $("ritual-log");
    if (log) trim(log, Number(log.dataset.limit || 60));
  });

  // A cooldown shown in the rituals' state ends on the server's clock; hide it then.
  function expireCooldowns(now) {
    for (const note of document.querySelectorAll("#ritual-states [data-until]")) {
      const until = Date.parse(note.dataset.until);
      if (!note.hidden && !Number.isNaN(until) && until <= now) note.hidden = true;
    }
  }

  // The oldest row on the page, for the "older glints" button: set as the button is pressed, in
  // the capture phase, so before htmx (listening on the button) reads the form value.
  function oldestSeq() {
    const rows = $("timeline")?.children;
    const last = rows && rows[rows.length - 1];
    return last ? Number(last.dataset.seq) : 0;
  }
  document.addEventListener("click", (evt) => {
    if (!evt.target.closest?.("#timeline-more button")) return;
    const before = $("older-before");
    if (before) before.value = String(oldestSeq());
  }, { capture: true });
  window.Spiral = { oldestSeq };

  // -- the glint sheet ---------------------------------------------------------------------------
  function openSheet() {
    const sheet = $("detail");
    if (sheet && !sheet.open && typeof sheet.showModal === "function") sheet.showModal();
    $("detail-body")?.scrollTo?.(0, 0);
  }
  document.addEventListener("click", (evt) => {
    const sheet = $("detail");
    if (sheet?.open && evt.target === sheet) sheet.close(); // a click on the backdrop
  });

  // -- the connection ----------------------------------------------------------------------------
  function setConnection(state, label) {
    const conn = $("conn");
    if (!conn || conn.dataset.state === state) return;
    conn.dataset.state = state;
    conn.querySelector(".conn-label").textContent = label;
  }
  const fromLive = (evt) => evt.target?.id === "live";
  document.addEventListener("htmx:sse:after:connection", (evt) => { if (fromLive(evt)) setConnection("live", "live"); });
  // The server greets every connection with the breath, so any message also proves we are live.
  document.addEventListener("htmx:sse:after:message", (evt) => { if (fromLive(evt)) setConnection("live", "live"); });
  document.addEventListener("htmx:sse:error", (evt) => { if (fromLive(evt)) setConnection("reconnecting", "reconnecting…"); });
  document.addEventListener("htmx:sse:before:connection", (evt) => {
    // Fires again before every reconnect attempt (after a drop, or a background tab coming back).
    if (fromLive(evt) && evt.detail?.connection?.attempt > 0) setConnection("reconnecting", "reconnecting…");
  });
  document.addEventListener("htmx:sse:close", (evt) => {
    // An element swapped out (a new filter) closes its stream on purpose; its successor reconnects.
    if (!fromLive(evt) || !evt.target.isConnected) return;
    setConnection("closed", "disconnected");
  });
  // A stream that ends (server restart, `dropped`, `closing`) is reopened by htmx with Last-Event-ID.
  for (const name of ["closing", "dropped"]) {
    document.addEventListener(name, (evt) => { if (fromLive(evt)) setConnection("reconnecting", "reconnecting…"); });
  }

  document.addEventListener("DOMContentLoaded", () => {
    syncBreath();
    showFlow();
    setInterval(tick, 250); // a clock, not a poll: it only redraws the countdown
  });
})();

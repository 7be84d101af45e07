// Spiral dashboard behaviour. The server renders every piece of HTML and htmx swaps it in; this file
// keeps time (the glyph breathes in step with the server's clock; times read in this browser's
// zone), holds new glints while the reader pauses, keeps the timeline bounded and free of
// duplicates, opens the glint sheet, and tells the truth about the connection: live, behind (with
// a way to skip to now), or reconnecting. It never builds markup from data.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const flow = { paused: false, byScroll: false, held: 0, reset: false };
  // The connection: `state` is what #conn shows; `baseline` is the smallest gap seen on this
  // connection between a message's stream mark and its arrival (the lag when nothing queues);
  // `server` is the process that writes it, `stopping` one that said it is closing.
  const conn = { state: "connecting", retry: 0, timer: 0, baseline: null, server: null, stopping: null };

  // -- the breath -------------------------------------------------------------------------------
  // The server renders each phase's timing inline (the animations start at its point in the
  // phase, counted on its clock), so every browser breathes in step whatever its own clock says.
  // Here we only learn the offset between the two clocks, for the countdown: from the
  // server_time each breath message carries. A message that waited in a queue carries an old
  // time, so the largest offset seen on a connection is the truest; a new connection starts over.
  let serverOffset = 0; // the server's clock minus this browser's, in ms
  let offsetFresh = false; // the next breath seen sets the offset whatever it says
  let seenBreath = null;
  function syncBreath() {
    const breath = $("breath");
    if (!breath || breath === seenBreath) return;
    seenBreath = breath;
    const server = Date.parse(breath.dataset.serverTime);
    if (!Number.isNaN(server)) {
      const offset = server - Date.now();
      if (!offsetFresh || offset > serverOffset) serverOffset = offset;
      offsetFresh = true;
    }
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
    // Without a connection the count goes on from the phase end we know, marked as such.
    const offline = $("countdown-offline");
    const down = conn.state === "reconnecting";
    if (offline && offline.hidden === down) offline.hidden = !down;
    // Read by the progress arc (.js-breath in spiral.css), and by the head when animations are
    // off (prefers-reduced-motion).
    const progress = Math.min(1, Math.max(0, (now - started) / Math.max(1, ends - started)));
    breath.style.setProperty("--progress", progress.toFixed(3));
    expireCooldowns(now);
  }

  // -- times -------------------------------------------------------------------------------------
  // The server writes times in UTC (true without JavaScript). Here they read in this browser's
  // zone, named in the top bar, or in UTC when the reader chose so (remembered). Only the text of
  // <time datetime> elements changes; its shape is what the server wrote (HH:MM, HH:MM:SS, or a
  // date and time; named with its zone when the server named it "UTC"), kept in data-time.
  const TIME_KEY = "spiral.times";
  const zone = { utc: false, name: Intl.DateTimeFormat().resolvedOptions().timeZone || "local" };
  try { zone.utc = localStorage.getItem(TIME_KEY) === "utc"; } catch { /* storage refused */ }
  const formats = new Map();

  function shape(text) {
    const named = text.endsWith(" UTC");
    const clock = named ? text.slice(0, -4) : text;
    let kind = "none"; // a countdown, words ("for 4 more minutes"): not ours to change
    if (/^\d\d:\d\d$/.test(clock)) kind = "minute";
    else if (/^\d\d:\d\d:\d\d$/.test(clock)) kind = "second";
    else if (/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(clock)) kind = "date";
    return kind !== "none" && named ? `${kind} named` : kind;
  }

  function clockParts(when) {
    const key = zone.utc ? "utc" : "local";
    let format = formats.get(key);
    if (!format) {
      format = new Intl.DateTimeFormat("en-GB", {
        year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
        second: "2-digit", hourCycle: "h23", timeZone: zone.utc ? "UTC" : undefined,
      });
      formats.set(key, format);
    }
    return Object.fromEntries(format.formatToParts(when).map((p) => [p.type, p.value]));
  }

  const zoneNames = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" });
  function zoneLabel(utc, when = new Date()) {
    if (utc) return "UTC";
    const part = zoneNames.formatToParts(when).find((p) => p.type === "timeZoneName");
    return part ? part.value : zone.name;
  }

  function localize(root) {
    for (const el of root.querySelectorAll("time[datetime]")) {
      const [kind, named] = (el.dataset.time ||= shape(el.textContent.trim())).split(" ");
      if (kind === "none") continue;
      const when = new Date(el.getAttribute("datetime"));
      if (Number.isNaN(when.getTime())) continue;
      const p = clockParts(when);
      const label = zoneLabel(zone.utc, when);
      const clock = kind === "minute" ? `${p.hour}:${p.minute}` : `${p.hour}:${p.minute}:${p.second}`;
      const text = kind === "date" ? `${p.year}-${p.month}-${p.day} ${clock}` : clock;
      el.textContent = named ? `${text} ${label}` : text;
      el.title = `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${label}`;
    }
  }

  function showZone() {
    const local = $("tz-local");
    const utc = $("tz-utc");
    if (!local || !utc) return;
    const name = zoneLabel(false); // this browser's zone by its short name: EDT, GMT+2…
    local.textContent = name;
    local.title = `Times in ${zone.name}`;
    utc.title = "Times in UTC";
    local.hidden = name === "UTC"; // a browser on UTC has nothing to choose
    if (local.hidden) zone.utc = true;
    local.setAttribute("aria-pressed", String(!zone.utc));
    utc.setAttribute("aria-pressed", String(zone.utc));
  }

  document.addEventListener("click", (evt) => {
    const choice = evt.target.closest?.("#tz-local, #tz-utc");
    if (!choice) return;
    zone.utc = choice.id === "tz-utc";
    try { localStorage.setItem(TIME_KEY, zone.utc ? "utc" : "local"); } catch { /* storage refused */ }
    showZone();
    localize(document);
  });

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
  // already has (a replay overlapping what was rendered), while paused send new rows to the
  // hidden holding list instead of the visible one, and put times in the reader's zone.
  document.addEventListener("htmx:before:swap", (evt) => {
    // A message still on its way from a connection the page has closed (a new filter, a
    // reconnect) is stale: its successor brings the same rows and newer state.
    const source = evt.detail?.ctx?.sourceElement;
    if (source?.hasAttribute?.("hx-sse:connect") && source !== $("live")) {
      evt.preventDefault();
      return;
    }
    const tasks = evt.detail?.tasks;
    if (!Array.isArray(tasks)) return;
    for (const task of tasks) {
      if (task.fragment) localize(task.fragment);
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
    measureLag();
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
  // #live holds the stream. htmx opens it and swaps each message; reconnecting is ours (its own
  // retries log every failed attempt as an error): after `closing` (a server stopping), a dropped
  // or ended stream, or a failed connect, the page says "reconnecting", closes what is left, asks
  // the server (a HEAD of the stream's URL) until it answers, then opens a fresh connection that
  // resumes with Last-Event-ID after the last message it swapped: no row missed or twice. It says
  // "live" once the new stream's first mark arrives, and not if that mark comes from the process
  // that said it was closing (it may accept connections for a moment as it stops).
  const BEHIND_MS = 1500; // messages this much later than the stream's own pace: the page is behind
  const CAUGHT_UP_MS = 500;

  function setConnection(state, label) {
    const el = $("conn");
    conn.state = state;
    const skip = $("skip");
    if (skip) skip.hidden = state !== "behind";
    tick();
    if (!el || (el.dataset.state === state && el.querySelector(".conn-label").textContent === label)) return;
    el.dataset.state = state;
    el.querySelector(".conn-label").textContent = label;
  }

  const fromLive = (evt) => evt.target?.id === "live";

  // Close the current connection now and put an idle copy of its element in its place; connect()
  // opens that one. The old element loses its id first, so what its closing says is not ours.
  function retire() {
    const old = $("live");
    if (!old || !old.isConnected) return;
    old.removeAttribute("id");
    old.setAttribute("hx-ignore", ""); // the forced process below then only cleans up: htmx's
    htmx.process(old, true); //           cleanup closes the stream (the SSE extension's hook)
    const fresh = old.cloneNode(false);
    fresh.removeAttribute("hx-ignore");
    fresh.id = "live";
    old.replaceWith(fresh);
  }

  function connect() {
    const live = $("live");
    if (live) htmx.process(live);
  }

  // Ask (HEAD of the stream's URL) until a server answers, and one that is not stopping; then
  // connect. Only the browser notes a refused ask; htmx would log a refused connect as an error.
  function reconnectSoon(delay) {
    clearTimeout(conn.timer);
    conn.timer = setTimeout(async () => {
      const live = $("live");
      if (!live) return;
      let server = null;
      try {
        const url = live.getAttribute("hx-sse:connect");
        const answer = await fetch(url, { method: "HEAD", cache: "no-store" });
        server = answer.headers.get("X-Spiral-Server");
      } catch {
        server = undefined;
      }
      if (conn.stopping && server === conn.stopping) {
        reconnectSoon(1000); // still stopping: it will refuse connections any moment now
        return;
      }
      if (server === undefined) {
        reconnectSoon(backoff());
        return;
      }
      connect();
    }, delay);
  }

  // Each failure in a row waits longer (up to 10 s), a little at random so that pages do not all
  // come back in the same moment; a live connection starts the count again.
  function backoff() {
    conn.retry += 1;
    return Math.min(10_000, 500 * 2 ** conn.retry) * (0.8 + Math.random() * 0.4);
  }

  function lost(delay) {
    setConnection("reconnecting", "reconnecting…");
    retire();
    reconnectSoon(delay);
  }

  // The resume point: the id of the last message swapped in (kept on the element, so an idle
  // copy carries it). A first connection resumes from its URL's lastEventId instead.
  document.addEventListener("htmx:config:request", (evt) => {
    const source = evt.detail?.ctx?.sourceElement;
    const last = source?.id === "live" ? source.dataset.lastId : "";
    if (last) evt.detail.ctx.request.headers["Last-Event-ID"] = last;
  });
  document.addEventListener("htmx:sse:after:message", (evt) => {
    const id = evt.detail?.message?.id;
    if (fromLive(evt) && id) evt.target.dataset.lastId = id;
  });

  document.addEventListener("htmx:sse:after:connection", (evt) => {
    if (!fromLive(evt)) return;
    Object.assign(conn, { baseline: null, server: null });
    offsetFresh = false;
  });
  // The server is stopping (it says so at once) or dropped this reader: reconnect. A stopping
  // server is given a moment to stop taking connections.
  document.addEventListener("closing", (evt) => {
    if (!fromLive(evt)) return;
    conn.stopping = conn.server;
    lost(1500);
  });
  document.addEventListener("dropped", (evt) => { if (fromLive(evt)) lost(0); });
  document.addEventListener("htmx:sse:error", (evt) => {
    if (fromLive(evt)) setConnection("reconnecting", "reconnecting…"); // its close follows
  });
  document.addEventListener("htmx:sse:close", (evt) => {
    // An element swapped out (a new filter) closes its stream on purpose; its successor connects.
    if (fromLive(evt) && evt.target.isConnected) lost(backoff());
  });
  // The connect itself failed (no server) or was refused (a 4xx or 5xx instead of a stream).
  document.addEventListener("htmx:error", (evt) => { if (fromLive(evt)) lost(backoff()); });
  document.addEventListener("htmx:response:error", (evt) => { if (fromLive(evt)) lost(backoff()); });

  // How far behind the page is: each message ends with a stream mark, how long the stream had
  // been open when the message was written. Its arrival time minus that is steady while the page
  // keeps up; what it grows by is time spent queued behind earlier messages.
  let seenMark = null;
  function measureLag() {
    const mark = $("stream-mark");
    if (!mark || mark === seenMark || !mark.dataset.age) return;
    seenMark = mark;
    if (conn.server === null) { // this connection's first message
      if (conn.stopping && mark.dataset.server === conn.stopping) {
        lost(2000); // the stopping server, still answering: not live, try again
        return;
      }
      Object.assign(conn, { server: mark.dataset.server, stopping: null, retry: 0 });
      setConnection("live", "live");
    }
    const gap = performance.now() - Number(mark.dataset.age);
    if (conn.baseline === null || gap < conn.baseline) conn.baseline = gap;
    const lag = gap - conn.baseline;
    if (conn.state !== "live" && conn.state !== "behind") return;
    if (lag >= (conn.state === "behind" ? CAUGHT_UP_MS : BEHIND_MS)) {
      setConnection("behind", `behind by ${Math.max(1, Math.round(lag / 1000))} s`);
    } else {
      setConnection("live", "live");
    }
  }

  // Skip to now: drop what is queued and connect again from the last message swapped in. A page
  // far behind then gets the newest rows in one message (the server's reset), not the backlog.
  document.addEventListener("click", (evt) => {
    if (!evt.target.closest?.("#skip")) return;
    setConnection("reconnecting", "skipping to now…");
    retire();
    connect();
  });

  document.addEventListener("DOMContentLoaded", () => {
    showZone();
    localize(document);
    syncBreath();
    showFlow();
    document.documentElement.classList.add("js-breath");
    setInterval(tick, 100); // a clock, not a poll: it redraws the countdown and the arc
  });
})();

// Spiral dashboard behaviour. The server renders every piece of HTML; this file only keeps time
// (countdown, breathing in step with the server), trims the timeline and shows the connection state.
(() => {
  "use strict";

  let serverOffset = 0; // server clock minus browser clock, in ms

  function syncBreath() {
    const breath = document.getElementById("breath");
    if (!breath) return;
    const server = Date.parse(breath.dataset.serverTime);
    if (!Number.isNaN(server)) serverOffset = server - Date.now();
    const started = Date.parse(breath.dataset.phaseStarted);
    const ends = Date.parse(breath.dataset.phaseEnds);
    const length = Math.max(1, ends - started);
    const elapsed = Math.min(length, Math.max(0, Date.now() + serverOffset - started));
    // A negative delay starts the animation part-way through, so every browser breathes in step.
    breath.style.setProperty("--phase-ms", `${length}ms`);
    breath.style.setProperty("--phase-delay", `-${elapsed}ms`);
    tick();
  }

  function tick() {
    const breath = document.getElementById("breath");
    const out = document.getElementById("countdown");
    if (!breath || !out) return;
    const left = Math.max(0, Date.parse(breath.dataset.phaseEnds) - (Date.now() + serverOffset));
    const s = Math.ceil(left / 1000);
    const text = s >= 3600 ? `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`
      : s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
    if (out.textContent !== text) out.textContent = text;
  }

  function trimTimeline() {
    const list = document.getElementById("timeline");
    const app = document.querySelector(".app");
    if (!list || !app) return;
    const limit = Number(app.dataset.timelineLimit || 200);
    while (list.children.length > limit) list.lastElementChild.remove();
    if (list.children.length) document.getElementById("timeline-empty")?.remove();
  }

  function setConnection(state, label) {
    const conn = document.getElementById("conn");
    if (!conn) return;
    conn.dataset.state = state;
    conn.querySelector(".conn-label").textContent = label;
  }

  document.addEventListener("htmx:sse:after:connection", () => setConnection("live", "live"));
  // The server greets every connection with the breath state, so a message also proves we are live.
  document.addEventListener("htmx:sse:after:message", () => setConnection("live", "live"));
  document.addEventListener("htmx:sse:error", () => setConnection("reconnecting", "reconnecting…"));
  document.addEventListener("htmx:sse:close", () => setConnection("reconnecting", "disconnected"));
  document.addEventListener("htmx:after:swap", () => { syncBreath(); trimTimeline(); });
  document.addEventListener("DOMContentLoaded", () => {
    syncBreath();
    setInterval(tick, 250);
  });
})();

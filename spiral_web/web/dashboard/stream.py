"""`GET /dashboard/stream`: the events of `/stream` as HTML for htmx, a tick at a time.

A dashboard shows rows (glints, ritual runs) and state (the breath, the statistics, the rituals'
state). Under load it must neither queue every past state nor swap once per glint, or the page
falls behind the hub and still says it is live. So each connection reads its subscription at most
once a tick (TICK_SECONDS) and sends what that tick brought as ONE unnamed message, one htmx swap:
the tick's rows in one `<hx-partial>` for the timeline and one for the ritual log (more rows than
the page keeps: the newest, replacing the list), then only the newest state of each panel. A quiet
hub's event still goes out at once; the next waits for the tick.

Same events, ids and replay as `/stream`: the message's id is the newest seq it carries, so
`Last-Event-ID` resumes exactly after it. Each row and each breath is rendered once, with the same
partial as the first page load, and shared by every dashboard; the statistics and the rituals'
state once for all of them (panels.py). Each message ends with a stream mark: how long this stream
had been open when it was written, from which dashboard.js tells how far behind the page is, and
which server process wrote it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import orjson
from flask import Flask, Response, current_app, render_template, request

from ...bus import frames
from ...engine.events import Event
from ...engine.feed import listener_feed
from ...engine.ports import Subscription
from ..access import access
from ..common import spiral, subscriber_info
from ..errors import BadRequest
from ..queries import last_event_id
from ..stream import SSE_HEADERS
from . import bp
from .context import (
    RITUAL_LIMIT,
    TIMELINE_LIMIT,
    breath_now,
    ritual_context,
    timeline_filters,
    with_triggers,
)
from .frames import data_lines, html_frame, message, partial, rendering
from .panels import Panels

TICK_SECONDS = 0.25  # at most four messages a second per dashboard, however busy the hub
PULSE_SECONDS = 1.0  # an idle stream looks at the statistics once a second (time moves them)
_RENDERED = {"glint_emission", "breath", "ritual"}


@bp.get("/dashboard/stream")
@access("read", stream="sse")
def stream():
    hub = spiral()
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    panels: Panels = app.extensions["spiral.dashboard"]
    if request.method == "HEAD":
        # dashboard.js asks before it reconnects: is a server there, and which process is it (a
        # page told `closing` waits for another one)
        return Response(
            mimetype="text/event-stream",
            headers={**SSE_HEADERS, "X-Spiral-Server": panels.instance},
        )
    filters, phase, problem = timeline_filters(request.args)
    if problem:
        raise BadRequest("invalid_filter", problem)
    resume = last_event_id(request.headers.get("Last-Event-ID"), request.args.get("lastEventId"))
    # before reading history, so nothing falls between the two
    sub = hub.hub.subscribe(filters, subscriber_info("dashboard"))
    writer = TickWriter(app, panels, request.script_root)

    greeting = b"retry: %d\n\n" % hub.config.retry_ms + html_frame(
        render_template("dashboard/_breath_event.html", breath=breath_now())
    )
    newest = hub.store.seq_bounds()[1]
    if resume is not None and newest - resume > TIMELINE_LIMIT:
        # Far behind (a tab asleep for an hour, or "skip to now"): the page only shows the newest
        # rows, so send those in one message instead of replaying thousands of glints. Still no
        # gap: the rows reach exactly up to `newest`, and the live feed continues after it.
        rows = [
            g.to_dict()
            for g in hub.store.query(
                module=filters.module, phase=phase, before_seq=newest + 1, limit=TIMELINE_LIMIT
            )
        ]
        greeting += html_frame(
            render_template("dashboard/_timeline_reset.html", glints=rows), newest
        )
        greeting += html_frame(
            render_template(
                "dashboard/_ritual_log_reset.html",
                **ritual_context(newest),
                rituals=hub.rituals.describe(),
            )
        )
        resume = newest
    greeting += writer.write([])  # the statistics as they are now, and the first stream mark
    feed = listener_feed(
        Ticked(sub, TICK_SECONDS, again=lambda: writer.owed),
        hub.store,
        resume,
        filters,
        PULSE_SECONDS,
        hub.config.replay_limit,
    )
    body = _dashboard_events(feed, writer, greeting, hub.config.heartbeat_seconds)
    response = Response(body, mimetype="text/event-stream", headers=SSE_HEADERS)
    response.call_on_close(sub.close)  # also when the body never runs (HEAD, early disconnect)
    return response


class Ticked:
    """A subscription read at most once a tick: what arrives in between waits for the next read,
    so a busy hub hands each dashboard one batch per tick; a read after a quiet spell returns at
    once. When a tick brings more than BUSY events, the next ones are also drained every DRAIN
    seconds (into the same batch), so that a reader waiting for its tick never falls further
    behind than the hub's buffer and gets dropped. While `again()` says so, a read with nothing
    new returns after a tick instead of the caller's timeout. (The sleeps yield to greenlets.)"""

    BUSY = 512
    DRAIN = 0.05

    def __init__(self, sub: Subscription, tick: float, again: Callable[[], bool]) -> None:
        self._sub = sub
        self._tick = tick
        self._again = again
        self._last = float("-inf")
        self._busy = False

    @property
    def closed(self) -> bool:
        return self._sub.closed

    def wait(self, timeout: float) -> list[Event]:
        start = time.monotonic()
        events: list[Event] = []
        rest = self._last + self._tick - start
        while rest > 0 and not self._sub.closed:
            time.sleep(min(self.DRAIN, rest) if self._busy else rest)
            if self._busy:
                events += self._sub.wait(0)
            rest = self._last + self._tick - time.monotonic()
        if not events:  # a quiet tick: wait for the next event, or a tick when asked again
            if self._again():
                timeout = min(timeout, self._tick)
            events = self._sub.wait(max(0.0, timeout - (time.monotonic() - start)))
        else:
            events += self._sub.wait(0)
        if events:
            self._last = time.monotonic()
        self._busy = len(events) > self.BUSY
        return events

    def close(self) -> None:
        self._sub.close()


def _dashboard_events(
    feed: Iterator[list[Event] | None], writer: TickWriter, greeting: bytes, heartbeat: float
) -> Iterator[bytes]:
    """The SSE body: the greeting, then a message per batch of the feed (a tick's events), or the
    statistics when they changed, or a comment heartbeat when nothing was written for `heartbeat`
    seconds. The feed wakes at least once a second, so the statistics follow a burst after it ends.

    Takes plain arguments (no request): it runs after the view has returned."""
    yield greeting
    last_write = time.monotonic()
    for batch in feed:
        out = writer.write(batch or [])
        now = time.monotonic()
        if out:
            yield out
            last_write = now
        elif now - last_write >= heartbeat:
            yield b": heartbeat\n\n"
            last_write = now


class TickWriter:
    """One connection's messages: each batch of its feed as one unnamed message (rows, then the
    newest state), then the batch's named notices (closing, dropped, replay_gap…), which htmx
    turns into DOM events on the connection's element. Remembers what this connection was last
    sent of the statistics, so unchanged panels are not sent again."""

    def __init__(self, app: Flask, panels: Panels, script_root: str) -> None:
        self.app = app
        self.panels = panels
        self.script_root = script_root
        self.opened = time.monotonic()
        # Rows went out with statistics that may be a moment older than them (one snapshot serves
        # every dashboard for FIGURES_EVERY): look again a tick later, even if nothing new comes.
        self.owed = False
        self._figures: object = None
        self._detail: object = None
        self._detail_at = float("-inf")

    def write(self, batch: list[Event]) -> bytes:
        glints = [e for e in batch if e.kind == "glint_emission"]
        runs = [e for e in batch if e.kind == "ritual"]
        breath = next((e for e in reversed(batch) if e.kind == "breath"), None)
        # Rows beyond what the page keeps would be trimmed as they arrive: not even rendered.
        shown, shown_runs = glints[-TIMELINE_LIMIT:], runs[-RITUAL_LIMIT:]
        with ExitStack() as stack:
            render = _lazy_rendering(stack, self.app, self.script_root)
            rows = [frames.html(e, lambda e: _glint_row(render, e)) for e in reversed(shown)]
            run_rows = [
                frames.html(e, lambda e: _run_row(render, e, self.app))
                for e in reversed(shown_runs)
            ]
            breath_html = frames.html(breath, lambda e: _breath(render, e)) if breath else ""
        parts = []
        if rows:
            swap = "innerHTML" if len(glints) > TIMELINE_LIMIT else "afterbegin"
            parts.append(partial("#timeline", swap, "".join(rows)))
        if run_rows:
            swap = "innerHTML" if len(runs) > RITUAL_LIMIT else "afterbegin"
            parts.append(partial("#ritual-log", swap, "".join(run_rows)))
            parts.append(self.panels.rituals(runs[-1].seq or 0))
        parts.append(breath_html)
        parts.extend(self._statistics())
        self.owed = bool(rows or run_rows)
        named = b"".join([frames.sse(e) for e in batch if e.kind not in _RENDERED])
        if not any(parts):
            return named
        parts.append(self._mark())
        seq = max((e.seq for e in batch if e.seq is not None), default=None)
        return message("".join(parts), seq) + named

    def _statistics(self) -> list[str]:
        """The figures when they changed; the detail when it changed, at most once a second."""
        out = []
        key, lines = self.panels.figures()
        if key != self._figures:
            self._figures = key
            out.append(lines)
        now = time.monotonic()
        if now - self._detail_at >= PULSE_SECONDS:
            key, lines = self.panels.detail()
            if key != self._detail:
                self._detail, self._detail_at = key, now
                out.append(lines)
        return out

    def _mark(self) -> str:
        age = int((time.monotonic() - self.opened) * 1000)
        mark = (
            f'<i id="stream-mark" hidden data-age="{age}" data-server="{self.panels.instance}"></i>'
        )
        return partial("#stream-mark", "outerHTML", f"data: {mark}\n")


def _lazy_rendering(stack: ExitStack, app: Flask, script_root: str) -> Callable[..., str]:
    """A render function whose request context is pushed on first use: a tick whose events are
    all rendered already (by another dashboard) pushes none, a busy one pushes one for all."""
    render: Callable[..., str] | None = None

    def render_one(template: str, **context: Any) -> str:
        nonlocal render
        if render is None:
            render = stack.enter_context(rendering(app, script_root))
        return render(template, **context)

    return render_one


def _glint_row(render: Callable[..., str], event: Event) -> str:
    return data_lines(render("dashboard/_glint.html", glint=orjson.loads(event.data)))


def _run_row(render: Callable[..., str], event: Event, app: Flask) -> str:
    run = with_triggers([orjson.loads(event.data)], app.extensions["spiral"].store)[0]
    return data_lines(render("dashboard/_ritual_run.html", run=run))


def _breath(render: Callable[..., str], event: Event) -> str:
    return data_lines(render("dashboard/_breath_event.html", breath=orjson.loads(event.data)))

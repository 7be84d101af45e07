"""`GET /dashboard/stream`: the events of `/stream` as HTML for htmx, and the statistics panels."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
from flask import Flask, Response, current_app, render_template, request

from ...engine.events import Event
from ...engine.feed import listener_feed
from ..access import access
from ..common import spiral
from ..errors import BadRequest
from ..queries import last_event_id
from ..stream import SSE_HEADERS
from . import bp
from .context import (
    TIMELINE_LIMIT,
    breath_now,
    ritual_context,
    timeline_filters,
    with_triggers,
)
from .frames import html_frame, render
from .panels import Panels

PULSE_SECONDS = 1.0  # at most one statistics message a second per connection
_RENDERED = {"glint_emission", "breath", "ritual"}


@bp.get("/dashboard/stream")
@access("read", stream="sse")
def stream():
    hub = spiral()
    filters, phase, problem = timeline_filters(request.args)
    if problem:
        raise BadRequest("invalid_filter", problem)
    resume = last_event_id(request.headers.get("Last-Event-ID"), request.args.get("lastEventId"))
    sub = hub.hub.subscribe(filters)  # before reading history, so nothing falls between the two
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    panels: Panels = app.extensions["spiral.dashboard"]

    root = request.script_root
    greeting = b"retry: %d\n\n" % hub.config.retry_ms + html_frame(
        render_template("dashboard/_breath_event.html", breath=breath_now())
    )
    newest = hub.store.seq_bounds()[1]
    if resume is not None and newest - resume > TIMELINE_LIMIT:
        # Far behind (a tab asleep for an hour): the page only shows the newest rows, so send those
        # in one message instead of replaying thousands of glints one by one. Still no gap: the
        # rows reach exactly up to `newest`, and the live feed continues after it.
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
    feed = listener_feed(sub, hub.store, resume, filters, PULSE_SECONDS, hub.config.replay_limit)
    body = _dashboard_events(feed, app, panels, greeting, hub.config.heartbeat_seconds, root)
    response = Response(body, mimetype="text/event-stream", headers=SSE_HEADERS)
    response.call_on_close(sub.close)  # also when the body never runs (HEAD, early disconnect)
    return response


def _dashboard_events(
    feed: Iterator[list[Event] | None],
    app: Flask,
    panels: Panels,
    greeting: bytes,
    heartbeat: float,
    script_root: str,
) -> Iterator[bytes]:
    """The SSE body: events as HTML, plus the statistics panels when they changed (at most once a
    second), plus a comment heartbeat when nothing else was written for `heartbeat` seconds.

    The feed wakes at least once a second, so the statistics follow a burst even after it ends.
    Takes plain arguments (no request): it runs after the view has returned."""
    yield greeting
    last_write = last_pulse = time.monotonic()
    sent_key: object = None
    for batch in feed:
        out = [_event_frame(app, e, script_root) for e in batch] if batch else []
        now = time.monotonic()
        if now - last_pulse >= PULSE_SECONDS:
            key, frame = panels.current()
            if key != sent_key:
                out.append(frame)
                sent_key, last_pulse = key, now
        if out:
            yield b"".join(out)
            last_write = now
        elif now - last_write >= heartbeat:
            yield b": heartbeat\n\n"
            last_write = now


def _event_frame(app: Flask, event: Event, script_root: str) -> bytes:
    if event.kind in _RENDERED:
        return event.html(
            lambda e: _render_event(app, e, script_root)
        ).encode()  # rendered once, shared
    # Named events (ritual runs, and the control notices dropped, closing, replay_gap) become DOM
    # events on the connection's element; htmx swaps only unnamed messages.
    return event.sse


def _render_event(app: Flask, event: Event, script_root: str) -> str:
    """One event as an unnamed SSE message of `<hx-partial>`s (htmx 4 swaps unnamed messages)."""
    hub = app.extensions["spiral"]
    if event.kind == "glint_emission":
        html = render(
            app,
            "dashboard/_glint_event.html",
            script_root,
            glint=orjson.loads(event.data),
            stats=hub.orchestrator.statistics(),
        )
        return html_frame(html, event.seq).decode()
    if event.kind == "breath":
        return html_frame(
            render(
                app, "dashboard/_breath_event.html", script_root, breath=orjson.loads(event.data)
            )
        ).decode()
    if event.kind == "ritual":
        run = with_triggers([orjson.loads(event.data)], hub.store)[0]
        html = render(
            app,
            "dashboard/_ritual_event.html",
            script_root,
            run=run,
            rituals=hub.rituals.describe(),
        )
        return html_frame(html, event.seq).decode()
    return ""

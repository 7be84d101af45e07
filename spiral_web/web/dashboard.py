"""The dashboard: a complete server-rendered page, made live by htmx over its own SSE stream.

The stream carries the same events, ids and replay as `/stream`, rendered with the same Jinja
partials as the first page load; htmx swaps them in (`<hx-partial>` targets), so no JavaScript builds
HTML from JSON.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from ..engine.breath import PHASES
from ..engine.events import Event
from ..engine.feed import listener_feed
from ..engine.glints import GlintError, Glint, validate_glint
from .common import last_event_id, source, spiral, stream_filters
from .stream import SSE_HEADERS, sse_events

bp = Blueprint("dashboard", __name__)

RECENT = 50
_RENDERED = {"glint_emission", "breath"}


def _page_context() -> dict[str, Any]:
    hub = spiral()
    glints = hub.store.query(limit=RECENT)
    return {
        "breath": hub.breath.state().to_dict(),
        "glints": [g.to_dict() for g in glints],
        "stats": hub.orchestrator.statistics(),
        "last_seq": glints[0].seq if glints else hub.store.seq_bounds()[1],
        "phases": PHASES,
        "timeline_limit": RECENT * 4,
    }


@bp.get("/")
def index():
    return render_template("dashboard/index.html", form={}, form_errors=[], **_page_context())


@bp.post("/dashboard/emit")
def emit():
    """The emit form. With htmx: answers the form partial (errors inline, 422). Without: the page."""
    form = {k: request.form.get(k, "") for k in ("module", "phase", "context")}
    errors: list[dict[str, str]] = []
    notice = None
    try:
        try:
            context = orjson.loads(form["context"]) if form["context"].strip() else {}
        except orjson.JSONDecodeError:
            raise GlintError(422, "invalid_glint", "context: not valid JSON",
                             [{"field": "context", "problem": "not valid JSON"}]) from None
        data = validate_glint({"module": form["module"].strip(), "phase": form["phase"] or None,
                               "context": context})
        result = spiral().orchestrator.emit(data, source())
        notice = f"Glint {result.glint.id} broadcast (seq {result.glint.seq})."
        form = {}
    except GlintError as exc:
        spiral().breath.record_rejection(source())
        errors = exc.details or [{"field": "", "problem": exc.message}]
    status = 422 if errors else 200
    if request.headers.get("HX-Request"):
        html = render_template("dashboard/_emit_form.html", form=form, form_errors=errors,
                               notice=notice, phases=PHASES)
        return html, status
    if not errors:
        return redirect(url_for("dashboard.index"), 303)
    return render_template("dashboard/index.html", form=form, form_errors=errors, **_page_context()), status


@bp.get("/dashboard/stream")
def stream():
    hub = spiral()
    filters = stream_filters(request.args)
    resume = last_event_id(request.headers.get("Last-Event-ID"), request.args.get("lastEventId"))
    sub = hub.hub.subscribe(filters)
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def frame(event: Event) -> bytes:
        if event.kind in _RENDERED:
            return event.html(lambda e: _render_event(app, e)).encode()
        return event.sse  # control notices (closing, dropped, replay_gap) stay named events

    greeting = b"retry: %d\n\n" % hub.config.retry_ms + _html_frame(
        _render(app, "dashboard/_breath.html", breath=hub.breath.state().to_dict(), oob=True))
    feed = listener_feed(sub, hub.store, resume, filters, hub.config.heartbeat_seconds,
                         hub.config.replay_limit)
    body = sse_events(feed, frame=frame, greeting=greeting)
    response = Response(body, mimetype="text/event-stream", headers=SSE_HEADERS)
    response.call_on_close(sub.close)  # also when the body never runs (HEAD, early disconnect)
    return response


def _render(app, template: str, **context: Any) -> str:
    with app.app_context():
        return render_template(template, **context)


def _render_event(app, event: Event) -> str:
    """One event as an unnamed SSE message of `<hx-partial>`s (htmx 4 swaps unnamed messages)."""
    hub = app.extensions["spiral"]
    if event.kind == "glint_emission":
        glint = Glint.from_json(event.data).to_dict()
        html = _render(app, "dashboard/_glint_event.html", glint=glint,
                       stats=hub.orchestrator.statistics(), phases=PHASES)
        return _html_frame(html, event.seq).decode()
    if event.kind == "breath":
        return _html_frame(_render(app, "dashboard/_breath.html", breath=orjson.loads(event.data),
                                   oob=True)).decode()
    return ""


def _html_frame(html: str, seq: int | None = None) -> bytes:
    """An unnamed SSE message whose data is `html`, one `data:` line per line of markup."""
    head = b"id: %d\n" % seq if seq is not None else b""
    lines = html.strip().replace("\r", "").split("\n")
    return head + b"".join(b"data: " + line.encode() + b"\n" for line in lines) + b"\n"



@bp.app_template_filter("pretty_json")
def pretty_json(value: Any) -> str:
    """Readable JSON as plain text: autoescaping then shows any markup in it as text."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()

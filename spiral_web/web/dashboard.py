"""The dashboard: a complete server-rendered page, made live by htmx over its own SSE stream.

The stream carries the same events, ids and replay as `/stream`, rendered with the same Jinja
partials as the first page load; htmx swaps them in (`<hx-partial>` targets), so no JavaScript
builds HTML from JSON. Besides the events, each dashboard connection gets the statistics panels at
most once a second while something changes; that message is rendered once for every dashboard.

Ritual runs stream the same way: each `ritual` event is rendered once (a row for the ritual log and
the rituals' state) and shared by every dashboard. Admins invoke rituals from the admin panel, whose
form route calls the same engine method as `POST /api/rituals/<name>/invoke`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.datastructures import MultiDict
from werkzeug.test import EnvironBuilder

from ..engine.breath import CLIMATES, CYCLE, PHASES
from ..engine.events import Event, Filters
from ..engine.feed import listener_feed
from ..engine.glints import GlintError, validate_glint
from . import admin
from .auth import admin_refusal, signed_in
from .common import last_event_id, source, spiral, stream_filters
from .stream import SSE_HEADERS

bp = Blueprint("dashboard", __name__)

FIRST_RENDER = 100  # rows in the first render
TIMELINE_LIMIT = 200  # rows the page keeps; older ones are a click away
OLDER_PAGE = 50
WINDOW = 600  # seconds of history behind the sparkline and the heat strip
SPARK_STEP = 10  # seconds per sparkline point
HEAT_STEP = 30  # seconds per heat-strip cell
HEAT_MODULES = 6
PULSE_SECONDS = 1.0  # at most one statistics message a second per connection
OVERRIDE_MINUTES = (1, 5, 15, 60)
RITUAL_FIRST_RENDER = 30  # ritual runs in the first render
RITUAL_LIMIT = 60  # ritual runs the page keeps; /api/rituals/history has them all
_RENDERED = {"glint_emission", "breath", "ritual"}


# -- pages ---------------------------------------------------------------------------------------


@bp.get("/")
def index():
    return render_template("dashboard/index.html", **_page_context())


@bp.get("/dashboard/timeline")
def timeline():
    """The timeline body for a new filter: rows, and a live connection that follows the filter."""
    ctx = _timeline_context(request.args)
    html = render_template("dashboard/_timeline_body.html", **ctx)
    query = {k: v for k, v in (("module", ctx["filters"].module), ("phase", ctx["phase"])) if v}
    return html, 200, {"HX-Replace-Url": url_for("dashboard.index", **query)}


@bp.get("/dashboard/glints")
def older():
    """Rows older than `before` (a seq), for the "older glints" button at the timeline's end."""
    filters, phase, problem = _filters(request.args)
    if problem:
        raise GlintError(400, "invalid_filter", problem)
    try:
        before = int(request.args.get("before", ""))
    except ValueError:
        raise GlintError(400, "invalid_query", "before must be a glint seq") from None
    glints = [
        g.to_dict()
        for g in spiral().store.query(
            module=filters.module, phase=phase, before_seq=before, limit=OLDER_PAGE
        )
    ]
    return render_template(
        "dashboard/_older.html",
        glints=glints,
        filters=filters,
        phase=phase,
        more=True,
        end=len(glints) < OLDER_PAGE,
    )


@bp.get("/dashboard/glints/<glint_id>")
def glint(glint_id: str):
    """One glint: its context and lineage. A partial for htmx, a page without it."""
    found = spiral().lineage(glint_id)
    if found is None:
        if request.headers.get("HX-Request"):
            return render_template("dashboard/_glint_missing.html", glint_id=glint_id), 404
        abort(404)
    if request.headers.get("HX-Request"):
        return render_template("dashboard/_glint_detail.html", lineage=found)
    return render_template("dashboard/glint_page.html", lineage=found)


@bp.post("/dashboard/emit")
def emit():
    """The emit form. With htmx: answers the form partial (errors inline, 422). Else the page."""
    form = {k: request.form.get(k, "") for k in ("module", "phase", "context")}
    errors: list[dict[str, str]] = []
    notice = None
    status = 200
    try:
        try:
            context = orjson.loads(form["context"]) if form["context"].strip() else {}
        except orjson.JSONDecodeError:
            raise GlintError(
                422,
                "invalid_glint",
                "context: not valid JSON",
                [{"field": "context", "problem": "not valid JSON"}],
            ) from None
        data = validate_glint(
            {"module": form["module"].strip(), "phase": form["phase"] or None, "context": context}
        )
        result = spiral().orchestrator.emit(data, source())
        notice = f"Glint {result.glint.id} broadcast (seq {result.glint.seq})."
        form = {}
    except GlintError as exc:  # invalid (422), or refused while the hub protects itself (429)
        spiral().breath.record_rejection(source())
        errors = exc.details or [{"field": "", "problem": exc.message}]
        status = exc.status
    if request.headers.get("HX-Request"):
        html = render_template(
            "dashboard/_emit_form.html", form=form, form_errors=errors, notice=notice, phases=PHASES
        )
        return html, status
    if not errors:
        return redirect(url_for("dashboard.index"), 303)
    return render_template(
        "dashboard/index.html", **_page_context(form=form, form_errors=errors)
    ), status


@bp.post("/dashboard/admin")
def admin_form():
    """The breath controls: set or release a phase or climate override for a few minutes."""
    form = request.form
    action = form.get("do", "")
    errors: dict[str, str] = {}
    notice = None
    status = 200
    refusal = _admin_refusal()
    if refusal is not None:
        status, field, errors[field] = refusal
    else:
        try:
            minutes = float(form.get("minutes") or 5)
        except ValueError:
            minutes = -1
        try:
            if action == "set-phase":
                admin.set_phase(form.get("phase") or "", minutes * 60)
                notice = f"Phase held at {form['phase'].replace('_', ' ')} for {_minutes(minutes)}."
            elif action == "release-phase":
                admin.set_phase(None, 0)
                notice = "Phase override released; the cycle resumes."
            elif action == "set-climate":
                admin.set_climate(form.get("climate") or "", minutes * 60)
                notice = f"Climate set to {form['climate']} for {_minutes(minutes)}."
            elif action == "release-climate":
                admin.set_climate(None, 0)
                notice = "Climate override released; traffic decides again."
            else:
                status, errors["form"] = 400, "choose an action"
        except GlintError as exc:
            status = exc.status
            for d in exc.details or [{"field": "form", "problem": exc.message}]:
                errors[d["field"]] = d["problem"]
    if status >= 400:
        spiral().breath.record_rejection(source())  # refused admin actions count for the climate
    if request.headers.get("HX-Request"):
        html = render_template(
            "dashboard/_admin.html",
            admin_form=form,
            admin_errors=errors,
            admin_notice=notice,
            **_admin_context(),
        )
        return html, status
    if status == 200:
        return redirect(url_for("dashboard.index"), 303)
    return render_template(
        "dashboard/index.html", **_page_context(admin_form=form, admin_errors=errors)
    ), status


@bp.post("/dashboard/rituals/<name>/invoke")
def invoke_ritual(name: str):
    """The admin panel's ritual control: run a ritual now, as `POST /api/rituals/<name>/invoke`
    does, and answer the panel with the run's result inline (the run itself streams to the log)."""
    hub = spiral()
    errors: dict[str, str] = {}
    run = None
    status = 200
    refusal = _admin_refusal()
    if name not in hub.rituals.specs:
        status, errors["form"] = 404, "no such ritual"
    elif refusal is not None:
        status, field, errors[field] = refusal
    else:
        run = hub.rituals.invoke(name)  # what the JSON API's invoke calls
        if run is None:
            status, errors["form"] = 503, "the ritual ran but its run could not be recorded"
    if status >= 400:
        hub.breath.record_rejection(source())  # refused admin actions count for the climate
    invoked = {
        "ritual": name,
        "run": _with_triggers([run])[0] if run else None,
        "error": next(iter(errors.values()), None),
    }
    token_error = {"token": errors["token"]} if "token" in errors else {}
    if request.headers.get("HX-Request"):
        html = render_template(
            "dashboard/_admin.html",
            admin_form=request.form,
            admin_errors=token_error,
            admin_notice=None,
            **{**_admin_context(), "invoked": invoked},
        )
        return html, status
    if run is not None:
        return redirect(url_for("dashboard.index") + f"#run-{run['seq']}", 303)
    return render_template(
        "dashboard/index.html",
        **_page_context(admin_form=request.form, admin_errors=token_error, invoked=invoked),
    ), status


def _admin_refusal() -> tuple[int, str, str] | None:
    """Why this form post may not act as admin, as (status, field, message); None when it may.

    `auth.admin_refusal` decides, as `require_admin` does for the JSON API: a token typed into the
    panel's field, else the bearer header or the signed-in session. The request guard has already
    refused a post from another origin or without this session's CSRF token."""
    problem = admin_refusal(request.form.get("token") or None)
    if problem is not None:
        return problem.status, "token", problem.message
    return None


# -- the dashboard's stream ------------------------------------------------------------------------


@bp.get("/dashboard/stream")
def stream():
    hub = spiral()
    filters, phase, problem = _filters(request.args)
    if problem:
        raise GlintError(400, "invalid_filter", problem)
    resume = last_event_id(request.headers.get("Last-Event-ID"), request.args.get("lastEventId"))
    sub = hub.hub.subscribe(filters)  # before reading history, so nothing falls between the two
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    panels: Panels = app.extensions["spiral.dashboard"]

    root = request.script_root
    greeting = b"retry: %d\n\n" % hub.config.retry_ms + _html_frame(
        render_template("dashboard/_breath_event.html", breath=_breath_now())
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
        greeting += _html_frame(
            render_template("dashboard/_timeline_reset.html", glints=rows), newest
        )
        greeting += _html_frame(
            render_template(
                "dashboard/_ritual_log_reset.html",
                **_ritual_context(newest),
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


def _render(app: Flask, template: str, script_root: str = "", **context: Any) -> str:
    """Render outside the request that opened the stream (it has returned): a request context of
    its own lets the partials build their links with url_for, under the app's script root."""
    environ = EnvironBuilder(path="/", base_url="http://spiral.invalid" + script_root).get_environ()
    with app.request_context(environ):
        return render_template(template, **context)


def _render_event(app: Flask, event: Event, script_root: str) -> str:
    """One event as an unnamed SSE message of `<hx-partial>`s (htmx 4 swaps unnamed messages)."""
    hub = app.extensions["spiral"]
    if event.kind == "glint_emission":
        html = _render(
            app,
            "dashboard/_glint_event.html",
            script_root,
            glint=orjson.loads(event.data),
            stats=hub.orchestrator.statistics(),
        )
        return _html_frame(html, event.seq).decode()
    if event.kind == "breath":
        return _html_frame(
            _render(
                app, "dashboard/_breath_event.html", script_root, breath=orjson.loads(event.data)
            )
        ).decode()
    if event.kind == "ritual":
        run = _with_triggers([orjson.loads(event.data)], hub.store)[0]
        html = _render(
            app,
            "dashboard/_ritual_event.html",
            script_root,
            run=run,
            rituals=hub.rituals.describe(),
        )
        return _html_frame(html, event.seq).decode()
    return ""


def _html_frame(html: str, seq: int | None = None) -> bytes:
    """An unnamed SSE message whose data is `html`, one `data:` line per line of markup."""
    head = b"id: %d\n" % seq if seq is not None else b""
    lines = html.strip().replace("\r", "").split("\n")
    return head + b"".join(b"data: " + line.encode() + b"\n" for line in lines) + b"\n"


class Panels:
    """The statistics panels as one SSE message, shared by every dashboard connection.

    Rendered again only when what they show changed (new glints, listeners, or the time window
    moving on), and by one caller at a time: a thousand dashboards cost one render."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._key: object = None
        self._frame = b""

    def current(self) -> tuple[object, bytes]:
        hub = self.app.extensions["spiral"]
        stats = hub.orchestrator.statistics()
        key = (
            stats["total"],
            stats["listeners"],
            stats["stream_sync"],
            int(hub.clock.now() // SPARK_STEP),
        )
        with self._lock:
            if key != self._key:
                html = _render(
                    self.app, "dashboard/_panels_event.html", stats=stats, activity=activity(hub)
                )
                self._key, self._frame = key, _html_frame(html)
            return self._key, self._frame


@bp.record_once
def _attach_panels(state) -> None:
    state.app.extensions["spiral.dashboard"] = Panels(state.app)


# -- what the templates are given ------------------------------------------------------------------


def _breath_now() -> dict[str, Any]:
    """The breath as the page shows it: the same dict `/api/breath` answers and the stream sends."""
    return spiral().breath.state().to_dict()


def _filters(args: Any) -> tuple[Filters, str | None, str | None]:
    """The timeline filter (a module glob and one phase) and, when it is not valid, why."""
    phase = args.get("phase") or None
    wanted = MultiDict({k: v for k, v in (("module", args.get("module")), ("phase", phase)) if v})
    try:
        return stream_filters(wanted), phase, None
    except GlintError as exc:
        return Filters(), None, exc.message


def _timeline_context(args: Any) -> dict[str, Any]:
    filters, phase, problem = _filters(args)
    store = spiral().store
    newest = store.seq_bounds()[1]  # read first: the rows and the stream then meet exactly here
    glints = store.query(
        module=filters.module, phase=phase, before_seq=newest + 1, limit=FIRST_RENDER
    )
    return {
        "glints": [g.to_dict() for g in glints],
        # Resume after the newest row shown: later events (ritual runs, say) are replayed.
        "last_seq": glints[0].seq if glints else newest,
        "filters": filters,
        "phase": phase,
        "filter_problem": problem,
        "timeline_limit": TIMELINE_LIMIT,
        "more": len(glints) == FIRST_RENDER,
        "end": False,
    }


def _admin_context() -> dict[str, Any]:
    hub = spiral()
    who = signed_in()  # a signed-in admin's session already proves it: no token field then
    return {
        "token_required": bool(hub.config.admin_token)
        and not (who is not None and who.can("admin")),
        "override_minutes": OVERRIDE_MINUTES,
        "rituals": hub.rituals.describe(),
        "invoked": None,
    }


def _ritual_context(newest: int | None = None) -> dict[str, Any]:
    """The ritual log's newest runs up to `newest` (a seq; default: the store's newest), each with
    its trigger glint. The page's stream resumes at or below `newest`: dashboard.js drops a run the
    log already shows, so a run is never shown twice nor missed."""
    store = spiral().store
    if newest is None:
        newest = store.seq_bounds()[1]
    runs = [
        orjson.loads(body) for body in store.runs(before_seq=newest + 1, limit=RITUAL_FIRST_RENDER)
    ]
    return {"ritual_runs": _with_triggers(runs, store), "ritual_limit": RITUAL_LIMIT}


def _with_triggers(runs: list[dict[str, Any]], store: Any = None) -> list[dict[str, Any]]:
    """Runs with the glint that triggered each (`trigger`: the glint as a dict, or None)."""
    store = store or spiral().store
    found: dict[str, Any] = {}
    for run in runs:
        tid = run.get("trigger_id")
        if tid and tid not in found:
            glint = store.get(tid)
            found[tid] = glint.to_dict() if glint is not None else None
    return [{**run, "trigger": found.get(run.get("trigger_id") or "")} for run in runs]


def _page_context(**extra: Any) -> dict[str, Any]:
    hub = spiral()
    ctx: dict[str, Any] = {
        "breath": _breath_now(),
        "stats": hub.orchestrator.statistics(),
        "activity": activity(hub),
        "form": {},
        "form_errors": [],
        "admin_form": {},
        "admin_errors": {},
        "admin_notice": None,
        **_timeline_context(request.args),
        **_admin_context(),
        **_ritual_context(),
    }
    ctx.update(extra)
    return ctx


def activity(hub: Any) -> dict[str, Any]:
    """Glint counts over the last WINDOW seconds, from the store (so: across every worker):
    a sparkline of glints per minute and a per-module heat strip."""
    now = hub.clock.now()
    rows = hub.store.activity(now, WINDOW, SPARK_STEP)
    points = WINDOW // SPARK_STEP
    cells = WINDOW // HEAT_STEP
    spark = [0] * points  # oldest first
    per_module: dict[str, list[int]] = {}
    for module, ago, n in rows:
        ago = min(int(ago), points - 1)
        spark[points - 1 - ago] += n
        cell = cells - 1 - min(ago * SPARK_STEP // HEAT_STEP, cells - 1)
        per_module.setdefault(module, [0] * cells)[cell] += n
    per_minute = [n * 60 // SPARK_STEP for n in spark]
    last_minute = sum(spark[-(60 // SPARK_STEP) :])
    top = sorted(per_module.items(), key=lambda kv: (-sum(kv[1]), kv[0]))[:HEAT_MODULES]
    peak_cell = max((max(c) for _, c in top), default=0)
    return {
        "per_minute": per_minute,
        "peak": max(per_minute),
        "rate": last_minute,  # glints in the last minute
        "level": round(min(1.0, math.log10(1 + last_minute) / math.log10(1 + 3000)), 3),
        "heat": [
            {"module": m, "total": sum(c), "cells": [_heat(n, peak_cell) for n in c], "counts": c}
            for m, c in top
        ],
        "window_minutes": WINDOW // 60,
        "heat_step": HEAT_STEP,
    }


def _heat(n: int, peak: int) -> float:
    """0..1 on a log scale, so one busy module does not wash out the rest."""
    if n <= 0 or peak <= 0:
        return 0.0
    return round(0.15 + 0.85 * math.log1p(n) / math.log1p(peak), 3)


def _minutes(m: float) -> str:
    if m >= 60 and m % 60 == 0:
        return f"{int(m // 60)} h"
    return f"{m:g} min"


# -- template helpers ------------------------------------------------------------------------------


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()  # Python 3.11 reads the trailing "Z"


def countdown(seconds: float) -> str:
    """'12s', '3m 05s', '5h 03m': the same format dashboard.js ticks with."""
    s = max(0, math.ceil(seconds))
    if s >= 3600:
        return f"{s // 3600}h {(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


@bp.app_template_global()
def breath_timing(breath: dict[str, Any]) -> dict[str, Any]:
    """Where the breath is within its phase, as the server saw it when the state was taken: the
    first render and every swap start the glyph's animations at the right point, before any
    script runs; dashboard.js then keeps them in step with the server's clock."""
    start, end, now = (
        _ts(breath["phase_started_at"]),
        _ts(breath["phase_ends_at"]),
        _ts(breath["server_time"]),
    )
    length = max(0.001, end - start)
    elapsed = min(length, max(0.0, now - start))
    reason = breath.get("phase_reason", "cycle")
    if reason == "cycle" and breath["phase"] in CYCLE:
        upcoming = CYCLE[(CYCLE.index(breath["phase"]) + 1) % len(CYCLE)].replace("_", " ")
    else:
        upcoming = "the cycle"
    return {
        "ms": int(length * 1000),
        "elapsed_ms": int(elapsed * 1000),
        "progress": round(elapsed / length, 4),
        "left": countdown(end - now),
        "next": upcoming,
    }


@bp.app_template_global()
def spark_path(values: list[int], width: float, height: float, peak: int) -> dict[str, str]:
    """An SVG line and area for a sparkline, oldest value at the left."""
    if not values:
        return {"line": "", "area": ""}
    top = max(peak, 1)
    step = width / max(1, len(values) - 1)
    pts = [
        (round(i * step, 1), round(height - 2 - (v / top) * (height - 6), 1))
        for i, v in enumerate(values)
    ]
    line = "M" + " L".join(f"{x},{y}" for x, y in pts)
    area = f"{line} L{pts[-1][0]},{height} L0,{height} Z"
    return {"line": line, "area": area}


@bp.app_template_filter("pretty_json")
def pretty_json(value: Any) -> str:
    """Readable JSON as plain text: autoescaping then shows any markup in it as text."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


@bp.app_template_filter("compact_json")
def compact_json(value: Any, limit: int = 160) -> str:
    """One line of JSON for a timeline row, cut at `limit` characters (autoescaped by Jinja)."""
    text = orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


@bp.app_template_filter("ritual_name")
def ritual_name(context: Any) -> str | None:
    """The ritual that produced a glint, where its context says so (`"ritual": name`/`{name}`)."""
    if not isinstance(context, dict):
        return None
    ritual = context.get("ritual")
    if isinstance(ritual, dict):
        ritual = ritual.get("name")
    return ritual if isinstance(ritual, str) and ritual else None


_STATUS_LABELS = {
    "ok": "ok",
    "error": "error",
    "deferred": "deferred",
    "skipped_cooldown": "cooldown",
}


@bp.app_template_filter("run_status")
def run_status(status: str) -> str:
    """A run's status as the log labels it."""
    return _STATUS_LABELS.get(status, status.replace("_", " "))


@bp.app_template_filter("run_trigger")
def run_trigger(run: dict[str, Any]) -> str:
    """What set a run off, in a few words: the glint's module and seq, a breath change, an admin."""
    glint = run.get("trigger")
    named = f"{glint['module']} #{glint['seq']}" if glint else run.get("trigger_id")
    event = run.get("trigger_event")
    if event == "invoke":
        return f"invoked by an admin on {named}" if named else "invoked by an admin"
    if event == "phase_change":
        return "a phase change"
    if event == "climate_change":
        return "a climate change"
    return named or "a glint"


@bp.app_template_filter("run_summary")
def run_summary(run: dict[str, Any]) -> str:
    """A run's result in one line for the log; the full result is one click away."""
    raw = run.get("result")
    result: dict[str, Any] = raw if isinstance(raw, dict) else {}
    status, action = run.get("status"), run.get("action")
    if status == "deferred":
        return "caesura: waits for the next inhale"
    if status == "skipped_cooldown":
        until = str(result.get("cooldown_until") or "")
        return (
            f"matched in its cooldown (until {until[11:19]}): not run"
            if until
            else "matched in its cooldown: not run"
        )
    if status == "error":
        return str(result.get("error") or "failed")
    try:
        text = _ok_summary(action, result)
    except (TypeError, ValueError):  # a record of another shape (an older version): show it as is
        text = compact_json(result)
    if run.get("deferred_from") is not None:
        n = run.get("coalesced") or 1
        text = f"after the caesura ({n} match{'es' if n != 1 else ''}): {text}"
    return text


def _ok_summary(action: Any, r: dict[str, Any]) -> str:
    if "message" in r and action not in ("caesura",):
        return str(r["message"])
    if action == "archive":
        moved, days = r.get("moved", 0), r.get("retention_days", 0)
        if not moved:
            return f"nothing older than {days:g} days to archive"
        return f"archived {moved} glint{'s' if moved != 1 else ''} older than {days:g} days"
    if action == "throttle":
        return (
            f"input paused at {round(100 * float(r.get('usage') or 0))}% usage; "
            f"resumes below {round(100 * float(r.get('release_below') or 0))}%"
        )
    if action == "caesura":
        until = str(r.get("until") or "")
        return f"the hub rests until {until[11:19]}" if until else "the hub rests"
    if action == "emit":
        return f"emitted {r.get('module', 'a glint')}"
    if action == "webhook":
        attempts = r.get("attempts", 1)
        plural = "s" if attempts != 1 else ""
        return f"answered {r.get('status_code')} after {attempts} attempt{plural}"
    if action == "set_climate":
        until = str(r.get("until") or "")
        return (
            f"climate {r.get('climate')} until {until[11:16]}"
            if until
            else f"climate {r.get('climate')}"
        )
    return compact_json(r)


@bp.app_template_filter("duration")
def duration(ms: Any) -> str:
    """'<1 ms', '42 ms', '1.3 s'."""
    try:
        ms = float(ms)
    except (TypeError, ValueError):
        return ""
    if ms < 1:
        return "<1 ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


@bp.app_context_processor
def _constants() -> dict[str, Any]:
    return {"phases": PHASES, "cycle": CYCLE, "climates": CLIMATES}

"""The dashboard's forms: emit a glint, the breath controls, the ritual control (with its
confirmation for rituals that block or pause).

Each answers htmx with its panel (errors inline, with the status that says why) and a browser
without JavaScript with a redirect to the page, or the page with the errors in it."""

from __future__ import annotations

from typing import Any

import orjson
from flask import redirect, render_template, request, url_for

from ...engine.breath import PHASES
from ...engine.glints import validate_glint
from .. import admin
from ..access import access
from ..auth.identity import admin_refusal
from ..common import source, spiral
from ..errors import REFUSALS, Invalid
from ..htmx import is_htmx, panel
from . import bp
from .context import admin_context, page_context, with_triggers
from .invoking import aftermath, asks_first, risk
from .wording import for_people, json_problem, refusal_words


@bp.post("/dashboard/emit")
@access("publish", page=True, rate_limited=True)
def emit():
    """The emit form. With htmx: answers the form partial (errors inline, 422). Else the page.
    After a glint is sent, the module and phase stay (the next one is often from the same
    sender); the context, which is what changes, is cleared."""
    form = {k: request.form.get(k, "") for k in ("module", "phase", "context")}
    errors: list[dict[str, str]] = []
    notice = emitted = None
    status = 200
    try:
        try:
            context = orjson.loads(form["context"]) if form["context"].strip() else {}
        except orjson.JSONDecodeError as exc:
            raise Invalid(
                "invalid_glint",
                "context: not valid JSON",
                [{"field": "context", "problem": json_problem(exc)}],
            ) from None
        data = validate_glint(
            {"module": form["module"].strip(), "phase": form["phase"] or None, "context": context}
        )
        result = spiral().orchestrator.emit(data, source())
        emitted = result.glint
        notice = f"Glint {emitted.id} broadcast (seq {emitted.seq})."
        form = {"module": form["module"].strip(), "phase": form["phase"]}
    except REFUSALS as exc:  # invalid (422), or refused while the hub protects itself (429)
        spiral().breath.record_rejection(source(), exc.status, exc.error)
        wait = getattr(exc, "retry_after", None)
        errors = [for_people(d) for d in exc.details] or [
            {"field": "", "problem": refusal_words(exc.status, exc.error, exc.message, wait)}
        ]
        status = exc.status
    if is_htmx():
        html = render_template(
            "dashboard/_emit_form.html",
            form=form,
            form_errors=errors,
            notice=notice,
            emitted=emitted,
            phases=PHASES,
        )
        return panel(html, status)
    if not errors:
        return redirect(url_for("dashboard.index"), 303)
    return render_template(
        "dashboard/index.html", **page_context(form=form, form_errors=errors)
    ), status


@bp.post("/dashboard/admin")
@access("admin", page=True, token_field=True)
def admin_form():
    """The breath controls: set or release a phase or climate override for a few minutes."""
    form = request.form
    action = form.get("do", "")
    errors: dict[str, str] = {}
    notice = None
    status, reason = 200, ""
    refusal = admin_refusal_of_form()
    if refusal is not None:
        status, field, errors[field], reason = refusal
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
                status, reason, errors["form"] = 400, "bad_request", "choose an action"
        except REFUSALS as exc:
            status, reason = exc.status, exc.error
            for d in exc.details or [{"field": "form", "problem": exc.message}]:
                errors[d["field"]] = d["problem"]
    if status >= 400:  # refused admin actions count for the climate
        spiral().breath.record_rejection(source(), status, reason)
    if is_htmx():
        html = render_template(
            "dashboard/_admin.html",
            admin_form=form,
            admin_errors=errors,
            admin_notice=notice,
            **admin_context(),
        )
        return panel(html, status)
    if status == 200:
        return redirect(url_for("dashboard.index"), 303)
    return render_template(
        "dashboard/index.html", **page_context(admin_form=form, admin_errors=errors)
    ), status


@bp.post("/dashboard/rituals/<name>/invoke")
@access("admin", page=True, token_field=True)
def invoke_ritual(name: str):
    """The admin panel's ritual control: run a ritual now, as `POST /api/rituals/<name>/invoke`
    does, and answer the panel with the run's result inline (the run itself streams to the log).

    A ritual that blocks or pauses (invoking.asks_first) first answers with a confirmation in
    the panel; its "Yes" posts `confirm=<name>` here again, its "Cancel" `cancel=<name>`."""
    hub = spiral()
    errors: dict[str, str] = {}
    run = None
    confirming = None
    status, reason = 200, ""
    refusal = admin_refusal_of_form()
    spec = hub.rituals.specs.get(name)
    if spec is None:
        status, reason, errors["form"] = 404, "not_found", "no such ritual"
    elif refusal is not None:
        status, field, errors[field], reason = refusal
    elif request.form.get("cancel") == name:
        pass  # the panel says nothing was changed
    elif asks_first(spec) and request.form.get("confirm") != name:
        confirming = {"ritual": name, "risk": risk(spec, hub.breath.state())}
    else:
        run = hub.rituals.invoke(name)  # what the JSON API's invoke calls
        if run is None:
            status, reason = 503, "store_unavailable"
            errors["form"] = "the ritual ran but its run could not be recorded"
    if status >= 400:  # refused admin actions count for the climate
        hub.breath.record_rejection(source(), status, reason)
    invoked: dict[str, Any] | None = {
        "ritual": name,
        "run": with_triggers([run])[0] if run else None,
        "after": aftermath(run),
        "error": next(iter(errors.values()), None),
    }
    if confirming is not None:
        invoked = None
    token_error = {"token": errors["token"]} if "token" in errors else {}
    extra = {"invoked": invoked, "confirming": confirming}
    if is_htmx():
        html = render_template(
            "dashboard/_admin.html",
            admin_form=request.form,
            admin_errors=token_error,
            admin_notice=None,
            **{**admin_context(), **extra},
        )
        return panel(html, status)
    if run is not None:
        return redirect(url_for("dashboard.index") + f"#run-{run['seq']}", 303)
    return render_template(
        "dashboard/index.html",
        **page_context(admin_form=request.form, admin_errors=token_error, **extra),
    ), status


def admin_refusal_of_form() -> tuple[int, str, str, str] | None:
    """Why this form post may not act as admin, as (status, field, message, error code); None
    when it may.

    `admin_refusal` decides, as the guard does for the JSON API: a token typed into the panel's
    field, else the bearer header or the signed-in session. The guard has already refused a post
    from another origin or without this session's CSRF token (these views declare
    `token_field`, so it checked `read` only)."""
    problem = admin_refusal(request.form.get("token") or None)
    if problem is not None:
        return problem.status, "token", problem.message, problem.error
    return None


def _minutes(m: float) -> str:
    if m >= 60 and m % 60 == 0:
        return f"{int(m // 60)} h"
    return f"{m:g} min"

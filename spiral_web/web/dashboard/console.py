"""The operator's console: what blocks input and the way out (unblock, end the throttle), who was
refused and why, and who is connected, per worker and in total.

The same data as /api/operators/ (web/operators.py), whose functions act here too. Refusals and
subscriber lag are sampled state that no event stream carries, so the console's live part asks
again every few seconds; the protection panel on the live dashboard is fetched again only when
the breath says that the protection changed.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for

from .. import operators
from ..access import access
from ..common import source, spiral
from ..htmx import is_htmx
from . import bp
from .forms import admin_refusal_of_form

REFUSALS_SHOWN = 50


@bp.get("/dashboard/console")
@access("admin", page=True)
def console():
    """The console's page; to htmx (its every-few-seconds refresh) only the live part."""
    ctx = console_context()
    if is_htmx():
        return render_template("console/_live.html", **ctx)
    return render_template("console/page.html", **ctx)


@bp.get("/dashboard/protection")
@access("read", page=True)
def protection():
    """The protection panel alone: the live dashboard fetches it when the breath changed."""
    if not is_htmx():
        return redirect(url_for("dashboard.console"), 303)
    return render_template(
        "dashboard/_protection.html",
        protection=operators.protection(),
        quiet=bool(request.args.get("quiet")),
    )


@bp.post("/dashboard/protection")
@access("admin", page=True, token_field=True)
def protection_act():
    """Unblock a source (`unblock=<source>`) or end the throttle (`do=end-throttle`), with the
    admin token typed into the form, the bearer header or the session; answers the panel."""
    form = request.form
    notice = error = None
    status = 200
    refusal = admin_refusal_of_form()
    if refusal is not None:
        status, _, error, reason = refusal
        spiral().breath.record_rejection(source(), status, reason)
    elif form.get("unblock"):
        who = form["unblock"]
        if operators.unblock(who):
            notice = f"{who} is let in again."
        else:
            notice = f"{who} was not blocked (any more)."
    elif form.get("do") == "end-throttle":
        ended = operators.end_throttle()
        notice = "The throttle is ended: input flows again." if ended else "Input was not paused."
    else:
        status, error = 400, "choose what to lift"
        spiral().breath.record_rejection(source(), status, "bad_request")
    if not is_htmx():
        back = "dashboard.console" if form.get("back") == "console" else "dashboard.index"
        return redirect(url_for(back), 303)
    html = render_template(
        "dashboard/_protection.html",
        protection=operators.protection(),
        quiet=form.get("back") != "console",
        protection_notice=notice,
        protection_error=error,
    )
    return html, status


def console_context() -> dict[str, Any]:
    hub = spiral()
    refused = operators.refusals(REFUSALS_SHOWN)
    return {
        "protection": operators.protection(),
        "breath": hub.breath.state().to_dict(),
        "refused": refused,
        "reasons_max": max(refused["by_reason"].values(), default=1),
        "clients": operators.clients(),
        "quiet": False,
    }

"""The dashboard's pages: the whole page, the timeline for a new filter, older rows, one glint."""

from __future__ import annotations

from flask import abort, render_template, request, url_for

from ..access import access
from ..common import spiral
from ..errors import BadRequest
from ..htmx import is_htmx
from . import bp
from .context import page_context, timeline_context, timeline_filters

OLDER_PAGE = 50


@bp.get("/")
@access("read", page=True)
def index():
    return render_template("dashboard/index.html", **page_context())


@bp.get("/dashboard/timeline")
@access("read", page=True)
def timeline():
    """The timeline body for a new filter: rows, and a live connection that follows the filter."""
    ctx = timeline_context(request.args)
    html = render_template("dashboard/_timeline_body.html", **ctx)
    query = {k: v for k, v in (("module", ctx["filters"].module), ("phase", ctx["phase"])) if v}
    return html, 200, {"HX-Replace-Url": url_for("dashboard.index", **query)}


@bp.get("/dashboard/glints")
@access("read", page=True)
def older():
    """Rows older than `before` (a seq), for the "older glints" button at the timeline's end."""
    filters, phase, problem = timeline_filters(request.args)
    if problem:
        raise BadRequest("invalid_filter", problem)
    try:
        before = int(request.args.get("before", ""))
    except ValueError:
        raise BadRequest("invalid_query", "before must be a glint seq") from None
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
@access("read", page=True)
def glint(glint_id: str):
    """One glint: its context and lineage. A partial for htmx, a page without it."""
    found = spiral().lineage(glint_id)
    if found is None:
        if is_htmx():
            return render_template("dashboard/_glint_missing.html", glint_id=glint_id), 404
        abort(404)
    if is_htmx():
        return render_template("dashboard/_glint_detail.html", lineage=found)
    return render_template("dashboard/glint_page.html", lineage=found)

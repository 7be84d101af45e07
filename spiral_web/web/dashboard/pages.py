"""The dashboard's pages: the whole page, the timeline for a new filter, older rows, one glint."""

from __future__ import annotations

from typing import Any

import orjson
from flask import redirect, render_template, request, url_for

from ...engine.glints import validate_glint
from ..access import access
from ..auth.tokens import tokens
from ..common import source, spiral
from ..errors import BadRequest, NotFound
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
    """One glint: its context and lineage, and ways to copy, share or send it again. A partial
    for htmx, a page without it; an unknown id is a 404 page (or partial), not a JSON body."""
    found = spiral().lineage(glint_id)
    if found is None:
        if is_htmx():
            return render_template("dashboard/_glint_missing.html", glint_id=glint_id), 404
        return render_template("dashboard/glint_page.html", lineage=None, glint_id=glint_id), 404
    ctx = {"lineage": found, "share": share_texts(found["glint"])}
    if is_htmx():
        return render_template("dashboard/_glint_detail.html", **ctx)
    return render_template("dashboard/glint_page.html", **ctx)


@bp.post("/dashboard/glints/<glint_id>/republish")
@access("publish", page=True, rate_limited=True)
def republish(glint_id: str):
    """Send a glint again as a new one: the same module, phase and context, a new id and seq
    (an explicit action, from its detail). Refusals answer as any form's do (problems.py)."""
    hub = spiral()
    old = hub.store.get(glint_id)
    if old is None:
        raise NotFound(f"no glint with id {glint_id!r} is stored")
    data = validate_glint({"module": old.module, "phase": old.phase, "context": old.context})
    new = hub.orchestrator.emit(data, source()).glint
    url = url_for("dashboard.glint", glint_id=new.id)
    if not is_htmx():
        return redirect(url, 303)
    return render_template("dashboard/_republished.html", glint=new.to_dict(), url=url)


def share_texts(glint: dict[str, Any]) -> dict[str, str]:
    """The glint as JSON, as a `curl` command that publishes it again, and the address that opens
    its detail on the live dashboard: the texts the detail's copy buttons copy."""
    body = orjson.dumps(
        {"module": glint["module"], "phase": glint["phase"], "context": glint["context"]}
    ).decode()
    quoted = "'" + body.replace("'", "'\\''") + "'"  # one shell word, whatever the context holds
    target = request.url_root.rstrip("/") + url_for("stream.emit")
    lines = [f"curl -X POST '{target}'", "  -H 'Content-Type: application/json'"]
    if tokens().publish_required:
        lines.append('  -H "Authorization: Bearer $SPIRAL_TOKEN"')
    lines.append(f"  -d {quoted}")
    return {
        "json": orjson.dumps(glint, option=orjson.OPT_INDENT_2).decode(),
        "curl": " \\\n".join(lines),
        "link": url_for("dashboard.index", glint=glint["id"], _external=True),
    }

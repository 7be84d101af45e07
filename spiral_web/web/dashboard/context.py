"""What the dashboard's templates are given: the timeline for a filter, the admin panel, the
ritual log, and the whole page."""

from __future__ import annotations

from typing import Any

import orjson
from flask import request
from werkzeug.datastructures import MultiDict

from ...engine.events import Filters
from .. import operators
from ..auth.identity import signed_in
from ..common import spiral
from ..errors import ApiError
from ..queries import stream_filters
from .activity import activity
from .invoking import asks_first

FIRST_RENDER = 100  # rows in the first render
TIMELINE_LIMIT = 200  # rows the page keeps; older ones are a click away
OVERRIDE_MINUTES = (1, 5, 15, 60)
RITUAL_FIRST_RENDER = 30  # ritual runs in the first render
RITUAL_LIMIT = 60  # ritual runs the page keeps; /api/rituals/history has them all


def breath_now() -> dict[str, Any]:
    """The breath as the page shows it: the same dict `/api/breath` answers and the stream sends."""
    return spiral().breath.state().to_dict()


def timeline_filters(args: Any) -> tuple[Filters, str | None, str | None]:
    """The timeline filter (a module glob and one phase) and, when it is not valid, why."""
    phase = args.get("phase") or None
    wanted = MultiDict({k: v for k, v in (("module", args.get("module")), ("phase", phase)) if v})
    try:
        return stream_filters(wanted), phase, None
    except ApiError as exc:
        return Filters(), None, exc.message


def timeline_context(args: Any) -> dict[str, Any]:
    filters, phase, problem = timeline_filters(args)
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


def admin_context() -> dict[str, Any]:
    """The admin panel: its controls, the rituals (and which ask to be confirmed), and what
    blocks input now with the way out."""
    hub = spiral()
    who = signed_in()  # a signed-in admin's session already proves it: no token field then
    return {
        "token_required": bool(hub.config.admin_token)
        and not (who is not None and who.can("admin")),
        "override_minutes": OVERRIDE_MINUTES,
        "rituals": hub.rituals.describe(),
        "disruptive": {name for name, spec in hub.rituals.specs.items() if asks_first(spec)},
        "protection": operators.protection(),
        "invoked": None,
        "confirming": None,
    }


def ritual_context(newest: int | None = None) -> dict[str, Any]:
    """The ritual log's newest runs up to `newest` (a seq; default: the store's newest), each with
    its trigger glint. The page's stream resumes at or below `newest`: dashboard.js drops a run the
    log already shows, so a run is never shown twice nor missed."""
    store = spiral().store
    if newest is None:
        newest = store.seq_bounds()[1]
    runs = [
        orjson.loads(body) for body in store.runs(before_seq=newest + 1, limit=RITUAL_FIRST_RENDER)
    ]
    return {"ritual_runs": with_triggers(runs, store), "ritual_limit": RITUAL_LIMIT}


def with_triggers(runs: list[dict[str, Any]], store: Any = None) -> list[dict[str, Any]]:
    """Runs with the glint that triggered each (`trigger`: the glint as a dict, or None)."""
    store = store or spiral().store
    found: dict[str, Any] = {}
    for run in runs:
        tid = run.get("trigger_id")
        if tid and tid not in found:
            glint = store.get(tid)
            found[tid] = glint.to_dict() if glint is not None else None
    return [{**run, "trigger": found.get(run.get("trigger_id") or "")} for run in runs]


def page_context(**extra: Any) -> dict[str, Any]:
    """Everything the whole page shows; `extra` overrides (a form's values and errors)."""
    hub = spiral()
    ctx: dict[str, Any] = {
        "breath": breath_now(),
        "stats": hub.orchestrator.statistics(),
        "activity": activity(hub),
        "form": {},
        "form_errors": [],
        "admin_form": {},
        "admin_errors": {},
        "admin_notice": None,
        **timeline_context(request.args),
        **admin_context(),
        **ritual_context(),
    }
    ctx.update(extra)
    return ctx

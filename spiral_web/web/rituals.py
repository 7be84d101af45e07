"""The ritual API under /api/: definitions and state, run history, invoke (admin), dry-run, and
the archive; and the 429 answer (with Retry-After) for input the throttle or the watcher refuses."""

from __future__ import annotations

import re

import orjson
from flask import Blueprint, request
from pydantic import BaseModel, ValidationError

from ..engine.glints import GlintError
from ..engine.orchestrator import Refused
from ..engine.rituals import NAME_PATTERN, STATUSES
from ..engine.rules import Rule, RuleError
from .api import _int as _parse_int  # one parser for query numbers and times across the API
from .api import glint_page
from .auth import require_admin
from .common import error, json_response, source, spiral
from .schemas import DryRunIn, InvokeIn

bp = Blueprint("rituals", __name__, url_prefix="/api")

MAX_PAGE = 500


@bp.app_errorhandler(Refused)
def _refused(exc: Refused):
    """Throttled or blocked: 429 with Retry-After. It counts as a rejection for the climate, as
    every refused write does, so a source that ignores Retry-After stays suspicious."""
    spiral().breath.record_rejection(source())
    response = error(429, exc.error, exc.message, retry_after=exc.retry_after)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.get("/rituals")
def list_rituals():
    return json_response({"rituals": spiral().rituals.describe()})


@bp.get("/rituals/history")
def history():
    args = request.args
    ritual = args.get("ritual") or None
    if ritual is not None and not re.match(NAME_PATTERN, ritual):
        raise GlintError(
            400, "invalid_query", "ritual must be a ritual name (lowercase, digits, '_')"
        )
    status = args.get("status") or None
    if status is not None and status not in STATUSES:
        raise GlintError(400, "invalid_query", f"status must be one of {', '.join(STATUSES)}")
    limit = _int("limit", 50, 1, MAX_PAGE)
    runs = spiral().store.runs(
        ritual=ritual, status=status, before_seq=_int("before_seq", None, 0, None), limit=limit
    )
    body = b'{"runs":[' + b",".join(runs) + b'],"next_before_seq":'
    body += str(orjson.loads(runs[-1])["seq"]).encode() if len(runs) == limit else b"null"
    return json_response(body + b"}")


@bp.post("/rituals/<name>/invoke")
@require_admin
def invoke(name: str):
    hub = spiral()
    _known(name)
    given = _body(InvokeIn)
    trigger = None
    if given.glint_id is not None:
        trigger = hub.store.get(given.glint_id)
        if trigger is None:
            raise GlintError(
                422,
                "invalid_request",
                f"glint_id: no glint with id {given.glint_id!r}",
                [{"field": "glint_id", "problem": "no such glint"}],
            )
    run = hub.rituals.invoke(name, trigger)
    if run is None:
        raise GlintError(
            503, "store_unavailable", "the ritual ran but its run could not be recorded"
        )
    return json_response({"run": run})


@bp.post("/rituals/<name>/dry-run")
def dry_run(name: str):
    hub = spiral()
    _known(name)
    given = _body(DryRunIn)
    rule = None
    if given.rule is not None:
        try:
            rule = Rule(given.rule)
        except RuleError as exc:
            raise GlintError(
                422, "invalid_rule", f"rule: {exc}", [{"field": "rule", "problem": str(exc)}]
            ) from None
    return json_response(hub.rituals.dry_run(name, hub.store.query(limit=given.last), rule))


@bp.get("/archive")
def archive():
    """Archived glints, newest first: the same filters and paging as /api/glints."""
    return glint_page(spiral().store.query_archive)


def _known(name: str) -> None:
    if name not in spiral().rituals.specs:
        raise GlintError(404, "not_found", f"no ritual named {name!r}")


def _body(model: type[BaseModel]):
    """An optional JSON object body validated by `model` (an empty body takes the defaults)."""
    raw = request.get_data(cache=False)
    if not raw.strip():
        return model()
    if request.mimetype != "application/json":
        raise GlintError(415, "unsupported_media_type", "send the body as application/json")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise GlintError(400, "invalid_json", "the body is not valid JSON") from None
        details = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
            for e in errors
        ]
        first = details[0]
        raise GlintError(
            422, "invalid_request", f"{first['field']}: {first['problem']}", details
        ) from None


def _int(name: str, default: int | None, lo: int, hi: int | None) -> int | None:
    return _parse_int(request.args, name, default, lo, hi)

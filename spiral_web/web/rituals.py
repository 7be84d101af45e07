"""The ritual API under /api/: definitions and state, run history, invoke and dry-run (admin),
and the archive."""

from __future__ import annotations

import re
from typing import TypeVar

import orjson
from flask import Blueprint, request
from pydantic import BaseModel, ValidationError

from ..engine.rituals import NAME_PATTERN, STATUSES
from ..engine.rules import Rule, RuleError
from ..engine.validation import explain
from .access import access
from .api import glint_page
from .common import json_response, spiral
from .errors import ApiError, BadRequest, Invalid, NotFound, Unavailable, UnsupportedMediaType
from .queries import whole_number
from .schemas import DryRunIn, InvokeIn

bp = Blueprint("rituals", __name__, url_prefix="/api")

MAX_PAGE = 500

M = TypeVar("M", bound=BaseModel)


@bp.get("/rituals")
@access("read")
def list_rituals():
    return json_response({"rituals": spiral().rituals.describe()})


@bp.get("/rituals/history")
@access("read")
def history():
    args = request.args
    ritual = args.get("ritual") or None
    if ritual is not None and not re.match(NAME_PATTERN, ritual):
        raise BadRequest("invalid_query", "ritual must be a ritual name (lowercase, digits, '_')")
    status = args.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest("invalid_query", f"status must be one of {', '.join(STATUSES)}")
    limit = whole_number(args, "limit", 50, 1, MAX_PAGE)
    runs = spiral().store.runs(
        ritual=ritual,
        status=status,
        before_seq=whole_number(args, "before_seq", None, 0, None),
        limit=limit,
    )
    body = b'{"runs":[' + b",".join(runs) + b'],"next_before_seq":'
    body += str(orjson.loads(runs[-1])["seq"]).encode() if len(runs) == limit else b"null"
    return json_response(body + b"}")


@bp.post("/rituals/<name>/invoke")
@access("admin")
def invoke(name: str):
    hub = spiral()
    _known(name)
    given = _body(InvokeIn)
    trigger = None
    if given.glint_id is not None:
        trigger = hub.store.get(given.glint_id)
        if trigger is None:
            raise Invalid(
                "invalid_request",
                f"glint_id: no glint with id {given.glint_id!r}",
                [{"field": "glint_id", "problem": "no such glint"}],
            )
    run = hub.rituals.invoke(name, trigger)
    if run is None:
        raise Unavailable("store_unavailable", "the ritual ran but its run could not be recorded")
    return json_response({"run": run})


@bp.post("/rituals/<name>/dry-run")
@access("admin")
def dry_run(name: str):
    """Try the ritual's rule, or one given, on the latest glints. An admin tool: a rule has a
    bounded cost (engine/rules.py), but a dry run still evaluates it up to 1,000 times."""
    hub = spiral()
    _known(name)
    given = _body(DryRunIn)
    rule = None
    if given.rule is not None:
        try:
            rule = Rule(given.rule)
        except RuleError as exc:
            raise Invalid(
                "invalid_rule", f"rule: {exc}", [{"field": "rule", "problem": str(exc)}]
            ) from None
    return json_response(hub.rituals.dry_run(name, hub.store.query(limit=given.last), rule))


@bp.get("/archive")
@access("read")
def archive():
    """Archived glints, newest first: the same filters and paging as /api/glints."""
    return glint_page(spiral().store.query_archive)


def _known(name: str) -> None:
    if name not in spiral().rituals.specs:
        raise NotFound(f"no ritual named {name!r}")


def _body(model: type[M]) -> M:
    """An optional JSON object body validated by `model` (an empty body takes the defaults)."""
    raw = request.get_data(cache=False)
    if not raw.strip():
        return model()
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ApiError(*explain(exc, "invalid_request")) from None

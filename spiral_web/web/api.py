"""The JSON API under /api/: glints, lineage, statistics, breath, and the OpenAPI document."""

from __future__ import annotations

import math
from datetime import datetime
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

from flask import Blueprint, Response, request

from ..engine.breath import PHASES
from ..engine.glints import GlintError
from .common import json_response, spiral
from .openapi import build_openapi

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_PAGE = 500


@bp.get("/glints")
def list_glints():
    return glint_page(spiral().store.query)


def glint_page(query) -> Response:
    """A page of glints from `query` (hot store or archive) with the filters and paging of the
    request's arguments: module (exact or glob), phase, since, until, before_seq, limit."""
    args = request.args
    module = args.get("module") or None
    if module is not None and (
        len(module) > 100 or not all(c.isalnum() or c in "._*?" for c in module)
    ):
        raise GlintError(
            400, "invalid_query", "module may hold letters, digits, '.', '_', '*' and '?'"
        )
    phase = args.get("phase") or None
    if phase is not None and phase not in PHASES:
        raise GlintError(400, "invalid_query", f"phase must be one of {', '.join(PHASES)}")
    limit = _int(args, "limit", 50, 1, MAX_PAGE)
    before = _int(args, "before_seq", None, 0, None)
    glints = query(
        module=module,
        phase=phase,
        since=_time(args, "since"),
        until=_time(args, "until"),
        before_seq=before,
        limit=limit,
    )
    body = b'{"glints":[' + b",".join(g.json for g in glints) + b'],"next_before_seq":'
    body += str(glints[-1].seq).encode() if len(glints) == limit else b"null"
    return json_response(body + b"}")


@bp.get("/glints/<glint_id>")
def get_glint(glint_id: str):
    glint = spiral().store.get(glint_id)
    if glint is None:
        raise GlintError(404, "not_found", f"no glint with id {glint_id!r}")
    return json_response(glint.json)


@bp.get("/glints/<glint_id>/lineage")
def lineage(glint_id: str):
    found = spiral().lineage(glint_id)
    if found is None:
        raise GlintError(404, "not_found", f"no glint with id {glint_id!r}")
    return json_response(found)


@bp.get("/stats")
def stats():
    return json_response(spiral().orchestrator.statistics())


@bp.get("/breath")
def breath():
    return json_response(spiral().breath.state().to_dict())


@bp.get("/openapi.json")
def openapi():
    return json_response(_openapi_document())


@lru_cache(maxsize=1)
def _openapi_document() -> dict:
    try:
        v = version("spiral-web")
    except PackageNotFoundError:
        v = "0.0.0"
    return build_openapi(v)


def _int(args, name: str, default: int | None, lo: int, hi: int | None) -> int | None:
    raw = args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise GlintError(400, "invalid_query", f"{name} must be a whole number") from None
    hi = MAX_INT if hi is None else hi  # beyond SQLite's 64-bit integers is a 400, not a 500
    if value < lo or value > hi:
        raise GlintError(400, "invalid_query", f"{name} must be between {lo} and {hi}")
    return value


MAX_INT = 2**63 - 1


def _time(args, name: str) -> float | None:
    raw = args.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise GlintError(
                400, "invalid_query", f"{name} must be a finite number of epoch seconds"
            )
        return value
    try:
        when = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))  # RFC 3339 allows t, z
    except ValueError:
        raise GlintError(
            400, "invalid_query", f"{name} must be an ISO 8601 time or epoch seconds"
        ) from None
    if when.tzinfo is None:
        raise GlintError(400, "invalid_query", f"{name} needs a time zone (e.g. a trailing Z)")
    return when.timestamp()

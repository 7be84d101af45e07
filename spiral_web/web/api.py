"""The JSON API under /api/: glints, lineage, statistics, breath, and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Response, request

from ..engine.breath import PHASES
from .access import access
from .common import json_response, spiral
from .errors import BadRequest, NotFound
from .openapi import build_openapi
from .queries import is_module_glob, moment, whole_number

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_PAGE = 500


@bp.get("/glints")
@access("read")
def list_glints():
    return glint_page(spiral().store.query)


def glint_page(query: Callable[..., Any]) -> Response:
    """A page of glints from `query` (hot store or archive) with the filters and paging of the
    request's arguments: module (exact or glob), phase, since, until, before_seq, limit."""
    args = request.args
    module = args.get("module") or None
    if module is not None and not is_module_glob(module):
        raise BadRequest("invalid_query", "module may hold letters, digits, '.', '_', '*' and '?'")
    phase = args.get("phase") or None
    if phase is not None and phase not in PHASES:
        raise BadRequest("invalid_query", f"phase must be one of {', '.join(PHASES)}")
    limit = whole_number(args, "limit", 50, 1, MAX_PAGE)
    before = whole_number(args, "before_seq", None, 0, None)
    glints = query(
        module=module,
        phase=phase,
        since=moment(args, "since"),
        until=moment(args, "until"),
        before_seq=before,
        limit=limit,
    )
    body = b'{"glints":[' + b",".join(g.json for g in glints) + b'],"next_before_seq":'
    body += str(glints[-1].seq).encode() if len(glints) == limit else b"null"
    return json_response(body + b"}")


@bp.get("/glints/<glint_id>")
@access("read")
def get_glint(glint_id: str):
    glint = spiral().store.get(glint_id)
    if glint is None:
        raise NotFound(f"no glint with id {glint_id!r}")
    return json_response(glint.json)


@bp.get("/glints/<glint_id>/lineage")
@access("read")
def lineage(glint_id: str):
    found = spiral().lineage(glint_id)
    if found is None:
        raise NotFound(f"no glint with id {glint_id!r}")
    return json_response(found)


@bp.get("/stats")
@access("read")
def stats():
    return json_response(spiral().orchestrator.statistics())


@bp.get("/breath")
@access("read")
def breath():
    return json_response(spiral().breath.state().to_dict())


@bp.get("/openapi.json")
@access("public")
def openapi():
    return json_response(_openapi_document())


@lru_cache(maxsize=1)
def _openapi_document() -> dict:
    try:
        v = version("spiral-web")
    except PackageNotFoundError:
        v = "0.0.0"
    return build_openapi(v)

"""Small helpers the blueprints share."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, current_app, g, request

from ..bus import Filters
from ..engine.breath import PHASES
from ..engine.glints import GlintError
from ..services import Spiral


def spiral() -> Spiral:
    return current_app.extensions["spiral"]


def source() -> str:
    """Who sent this request, for the glint's `source`, the climate and the rate limits: the name
    of the token it carries (or its signed-in session's), else the client's address."""
    who = g.get("spiral_principal")
    if who is not None:
        return who.name
    return request.remote_addr or "unknown"


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return Response(body, status=status, mimetype="application/json", headers=headers)


def error(status: int, code: str, message: str, **extra: Any) -> Response:
    return json_response({"error": code, "message": message, **extra}, status)


def stream_filters(args: Any) -> Filters:
    """`?module=memory.*&phase=return` (phase may repeat or be comma-separated)."""
    module = args.get("module") or None
    if module is not None and (
        len(module) > 100 or not all(c.isalnum() or c in "._*?" for c in module)
    ):
        raise GlintError(
            400, "invalid_filter", "module filter may hold letters, digits, '.', '_', '*' and '?'"
        )
    phases: set[str] = set()
    for value in args.getlist("phase"):
        phases.update(p for p in value.split(",") if p)
    unknown = phases - set(PHASES)
    if unknown:
        raise GlintError(
            400,
            "invalid_filter",
            f"unknown phase {sorted(unknown)[0]!r}; expected one of {', '.join(PHASES)}",
        )
    return Filters(module, frozenset(phases))


def last_event_id(header: str | None, query: str | None) -> int | None:
    """The resume point: the Last-Event-ID header wins over the query parameter."""
    raw = header if header not in (None, "") else query
    if raw in (None, ""):
        return None
    try:
        value = int(raw)  # type: ignore[arg-type]
    except ValueError:
        raise GlintError(
            400, "invalid_last_event_id", "Last-Event-ID must be a whole number (a glint seq)"
        ) from None
    if value < 0:
        raise GlintError(400, "invalid_last_event_id", "Last-Event-ID must not be negative")
    if value >= 2**63:  # SQLite's integers are 64-bit: a larger one would fail the replay query
        raise GlintError(400, "invalid_last_event_id", "Last-Event-ID is larger than any glint seq")
    return value

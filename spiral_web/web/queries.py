"""Reading a request's query, headers and JSON body: stream filters, the resume point, numbers,
times, and a body checked by a pydantic model. Each refuses what it cannot read with a 4xx that
says what was expected."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, TypeVar, overload

import orjson
from flask import request
from pydantic import BaseModel, ValidationError

from ..bus import Filters
from ..engine.breath import PHASES
from ..engine.validation import explain
from .errors import ApiError, BadRequest, Invalid

M = TypeVar("M", bound=BaseModel)

MAX_INT = 2**63 - 1  # SQLite's integers are 64-bit: beyond is a 400, not a failing query


def is_module_glob(value: str) -> bool:
    """A module name or glob as the filters take it: letters, digits, '.', '_', '*' and '?'."""
    return len(value) <= 100 and all(c.isalnum() or c in "._*?" for c in value)


def stream_filters(args: Any) -> Filters:
    """`?module=memory.*&phase=return` (phase may repeat or be comma-separated)."""
    module = args.get("module") or None
    if module is not None and not is_module_glob(module):
        raise BadRequest(
            "invalid_filter", "module filter may hold letters, digits, '.', '_', '*' and '?'"
        )
    phases: set[str] = set()
    for value in args.getlist("phase"):
        phases.update(p for p in value.split(",") if p)
    unknown = phases - set(PHASES)
    if unknown:
        raise BadRequest(
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
        value = int(raw)
    except ValueError:
        raise BadRequest(
            "invalid_last_event_id", "Last-Event-ID must be a whole number (a glint seq)"
        ) from None
    if value < 0:
        raise BadRequest("invalid_last_event_id", "Last-Event-ID must not be negative")
    if value > MAX_INT:
        raise BadRequest("invalid_last_event_id", "Last-Event-ID is larger than any glint seq")
    return value


@overload
def whole_number(args: Any, name: str, default: int, lo: int, hi: int | None) -> int: ...


@overload
def whole_number(args: Any, name: str, default: None, lo: int, hi: int | None) -> int | None: ...


def whole_number(args: Any, name: str, default: int | None, lo: int, hi: int | None) -> int | None:
    """`?name=` as an integer in [lo, hi] (no upper bound but SQLite's when hi is None)."""
    raw = args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("invalid_query", f"{name} must be a whole number") from None
    hi = MAX_INT if hi is None else hi
    if value < lo or value > hi:
        raise BadRequest("invalid_query", f"{name} must be between {lo} and {hi}")
    return value


def moment(args: Any, name: str) -> float | None:
    """`?name=` as epoch seconds, given as a number or an ISO 8601 time with a zone."""
    raw = args.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise BadRequest("invalid_query", f"{name} must be a finite number of epoch seconds")
        return value
    try:
        when = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))  # RFC 3339 allows t, z
    except ValueError:
        raise BadRequest(
            "invalid_query", f"{name} must be an ISO 8601 time or epoch seconds"
        ) from None
    if when.tzinfo is None:
        raise BadRequest("invalid_query", f"{name} needs a time zone (e.g. a trailing Z)")
    return when.timestamp()


def json_object(model: type[M], error: str) -> M:
    """The request's JSON object body validated by `model` (for views that take
    application/json only); `error` is the 422's code for a body of the wrong shape."""
    try:
        data = orjson.loads(request.get_data(cache=False) or b"null")
    except orjson.JSONDecodeError:
        raise BadRequest("invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Invalid(error, "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(*explain(exc, error)) from None

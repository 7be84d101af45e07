"""How a failed validation is told to whoever sent the input: one wording for every entry point."""

from __future__ import annotations

from typing import NamedTuple

from pydantic import ValidationError


class Problem(NamedTuple):
    """A refusal's parts, in the order GlintError and the web layer's ApiError take them."""

    status: int
    error: str
    message: str
    details: list[dict[str, str]]


def explain(exc: ValidationError, error: str, not_an_object: str | None = None) -> Problem:
    """400 `invalid_json` for input that is not JSON at all; else 422 `error` with one detail per
    problem (`{"field": "context.a", "problem": ...}`) and the first as the message.

    `not_an_object`, when given, is the whole answer for input that is JSON but not an object."""
    errors = exc.errors(include_url=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return Problem(400, "invalid_json", "the body is not valid JSON", [])
    if not_an_object is not None and any(
        e["type"] == "model_type" and not e["loc"] for e in errors
    ):
        return Problem(422, error, not_an_object, [])
    details = [
        {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
        for e in errors
    ]
    first = details[0]
    return Problem(422, error, f"{first['field']}: {first['problem']}", details)

"""Every refusal is a JSON body with `error` and `message`; never an HTML page or a bare 500.

The web layer raises ApiError (or one of its kinds below); the engine raises GlintError (a glint
refused) and Refused (input paused for now: 429). All of them are answered here, the same way, and
the WebSocket turns the same `to_dict()` into its error frames.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from ..engine.glints import GlintError
from ..engine.orchestrator import Unavailable as RecordDown
from ..engine.ports import RecordUnavailable
from .common import count_rejection, json_response, source

log = logging.getLogger(__name__)


class ApiError(GlintError):
    """A request refused by the web layer: the HTTP `status`, a stable `error` code, a `message` a
    person can act on, `details` for a body of the wrong shape (one `{"field", "problem"}` each)
    and, for a refusal that passes, `retry_after` in seconds. The same shape as the engine's
    GlintError, whose constructor and `to_dict` it shares, so both are answered alike."""


class BadRequest(ApiError):
    """400: a query, header or frame that cannot be read (`error` says which kind)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(400, error, message)


class Unauthorized(ApiError):
    """401: no credentials where they are needed (answered with WWW-Authenticate)."""

    def __init__(self, message: str) -> None:
        super().__init__(401, "unauthorized", message)


class Forbidden(ApiError):
    """403: credentials that do not allow this, or a request from the wrong place."""

    def __init__(self, message: str, error: str = "forbidden") -> None:
        super().__init__(403, error, message)


class NotFound(ApiError):
    """404: no such glint or ritual."""

    def __init__(self, message: str) -> None:
        super().__init__(404, "not_found", message)


class UnsupportedMediaType(ApiError):
    """415: a body that is not JSON where only JSON is taken."""

    def __init__(self, message: str = "send the body as application/json") -> None:
        super().__init__(415, "unsupported_media_type", message)


class Invalid(ApiError):
    """422: a body (or form) of the wrong shape; `details` name the fields."""

    def __init__(self, error: str, message: str, details: list[dict[str, str]] | None = None):
        super().__init__(422, error, message, details)


class RateLimited(ApiError):
    """429: a source sent faster than its rate (answered like the throttle, with Retry-After)."""

    def __init__(self, retry_after: int, rate: float) -> None:
        super().__init__(
            429,
            "rate_limited",
            f"this source may send {rate:g} glints a second; try again in {retry_after} s",
            retry_after=retry_after,
        )


class TooManyFailures(ApiError):
    """429: too many failed attempts to authenticate from one address (web/auth/throttle.py)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            429,
            "too_many_failures",
            "too many failed attempts to authenticate from this address; no token is checked "
            f"from it for now: try again in {retry_after} s",
            retry_after=retry_after,
        )


class Unavailable(ApiError):
    """503: the server cannot take this now (too many listeners; a store that failed)."""

    def __init__(self, error: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(503, error, message, retry_after=retry_after)


# What a transport answers as a refusal: ours (ApiError), and the engine's (Refused is one too).
REFUSALS = GlintError

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "unavailable",
}


def init_app(app: Flask) -> None:
    @app.errorhandler(GlintError)  # ApiError and the engine's refusals alike
    def _refusal(exc: GlintError) -> Response:
        return refuse(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _CODES.get(status, exc.name.lower().replace(" ", "_"))
        _count_rejection(status, code)
        message = exc.description or exc.name
        if status == 413:
            message = f"the body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        return error(status, code, message)

    @app.errorhandler(RecordUnavailable)
    def _record_unavailable(exc: RecordUnavailable) -> Response:  # a read: try again later
        return refuse(RecordDown(exc))

    @app.errorhandler(OverflowError)
    def _overflow(exc: OverflowError) -> Response:
        # A number past what SQLite (64-bit) or a float can hold, from any query or header that
        # was checked only for being a number: the request is at fault, so a 400, not a 500.
        _count_rejection(400, "out_of_range")
        return error(400, "out_of_range", "a number in this request is too large")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error(
            500, "internal_error", "the server failed to handle this request; it was logged"
        )


def refuse(exc: GlintError) -> Response:
    """The answer to a refusal, counted for the climate when it is one that counts."""
    _count_rejection(exc.status, exc.error)
    response = json_response(exc.to_dict(), exc.status)
    response.headers.extend(refusal_headers(exc))
    return response


def refusal_headers(exc: GlintError) -> list[tuple[str, str]]:
    """The headers a refusal carries beside its body: how to authenticate, when to try again."""
    headers = []
    if exc.status == 401:
        headers.append(("WWW-Authenticate", 'Bearer realm="spiral"'))
    if exc.retry_after is not None:
        headers.append(("Retry-After", str(exc.retry_after)))
    return headers


def error(status: int, code: str, message: str) -> Response:
    """A JSON error body for what is not an ApiError (HTTP errors, the unexpected)."""
    return json_response({"error": code, "message": message}, status)


def _count_rejection(status: int, reason: str) -> None:
    """Rejected writes, refused credentials and input refused for now (429, so a source that
    ignores Retry-After stays suspicious) feed the climate: many from one source make it
    suspicious. Not what a page of another site made a browser send (common.count_rejection)."""
    write = request.method == "POST" and 400 <= status < 500 and status != 404
    if write or status in (401, 403, 429):
        count_rejection(source(), status, reason)

"""Every refusal is a JSON body with `error` and `message`; never an HTML page or a bare 500."""

from __future__ import annotations

import logging

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from ..engine.glints import GlintError
from ..engine.ports import RecordUnavailable
from .common import error, source, spiral

log = logging.getLogger(__name__)

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
    @app.errorhandler(GlintError)
    def _glint_error(exc: GlintError):
        _count_rejection(exc.status)
        response = error(
            exc.status, exc.error, exc.message, **({"details": exc.details} if exc.details else {})
        )
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="spiral"'
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        _count_rejection(status)
        message = exc.description or exc.name
        if status == 413:
            message = f"the body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        return error(status, _CODES.get(status, exc.name.lower().replace(" ", "_")), message)

    @app.errorhandler(RecordUnavailable)
    def _record_unavailable(exc: RecordUnavailable):  # nothing was stored: retry later
        response = error(503, "record_unavailable", f"{exc}; nothing was stored, retry later")
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(OverflowError)
    def _overflow(exc: OverflowError):
        # A number past what SQLite (64-bit) or a float can hold, from any query or header that
        # was checked only for being a number: the request is at fault, so a 400, not a 500.
        _count_rejection(400)
        return error(400, "out_of_range", "a number in this request is too large")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error(
            500, "internal_error", "the server failed to handle this request; it was logged"
        )


def _count_rejection(status: int) -> None:
    """Rejected writes and refused credentials feed the climate: many from one source make it
    suspicious."""
    if (request.method == "POST" and 400 <= status < 500 and status != 404) or status in (401, 403):
        spiral().breath.record_rejection(source())

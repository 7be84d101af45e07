"""`POST /stream/glint` served in front of Flask, by the gate (web/gate.py).

Publishing is the hub's hottest path, and Flask's own work per request (the request context, URL
matching, the session, the hooks, the response object) cost as much as a bare Flask endpoint does
in all: more than storing the glint. So the gate hands `POST /stream/glint` to the handler here,
which answers exactly as the Flask view does, through the same functions:

- the view's declaration (web/access.py) says which checks apply, as it does for the guard;
- who the caller is: `Authorization: Bearer` (auth/identity.py: verify_token, with the guessing
  throttle), the cross-origin refusal and the roles in the guard's order (auth/guard.py), the
  source's rate (security.py: rate_refusal), JSON only (415), the body size (413);
- the glint: `publish` below, which the Flask view calls too (validation, the orchestrator, the
  answer);
- the answer: the same JSON bodies, statuses and headers (a JSON answer's security headers,
  `X-Spiral-Worker`, `WWW-Authenticate`, `Retry-After`, and `Vary: Cookie` when the guard would
  have looked at the session), and every refusal counted for the climate with its status and
  reason, as web/errors.py counts Flask's.

tests/integration/test_ingest.py posts the same requests to both and compares the answers.

A request with a cookie goes to Flask: a cookie may carry a signed-in session, whose checks (and
CSRF token) are Flask's. So does anything the handler would not answer as Flask does: another
method or path, a Content-Length that is not a number.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson
from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES, parse_options_header
from werkzeug.wsgi import get_host

from ..engine.glints import GlintError
from ..engine.orchestrator import Unavailable as RecordDown
from ..engine.ports import RecordUnavailable
from .access import ATTRIBUTE, Access
from .auth.guard import cross_origin_refusal, roles_checked
from .auth.identity import bearer_of, role_refusal, verify_token
from .auth.tokens import Principal
from .common import is_cross_origin
from .errors import ApiError, UnsupportedMediaType, refusal_headers
from .security import API_HEADERS, rate_refusal

if TYPE_CHECKING:
    from ..services import Spiral
    from .gate import Gate

log = logging.getLogger(__name__)

PATH = "/stream/glint"
VIEW = "stream.emit"
StartResponse = Callable[..., Any]


def publish(hub: Spiral, body: bytes, source: str) -> tuple[int, bytes]:
    """Validate the body, store and broadcast the glint: (201, or 200 for a repeat; the JSON
    answer). Raises GlintError (400, 409, 422, 429, 503). The Flask view and the handler both
    publish through this."""
    result = hub.orchestrator.emit(body, source)  # validated with the rest of its batch
    return (200 if result.duplicate else 201), orjson.dumps(result.answer())


def mount(app: Flask, gate: Gate) -> None:
    """Let the gate hand `POST /stream/glint` to the handler, when the handler can answer for
    the view's declaration (a page, a stream or an admin view it cannot: those stay Flask's)."""
    view = app.view_functions.get(VIEW)
    access = getattr(view, ATTRIBUTE, None)
    if isinstance(access, Access) and _servable(access):
        gate.ingest = Ingest(app, access)
        app.extensions["spiral.ingest"] = gate.ingest


def _servable(access: Access) -> bool:
    return (
        access.role in ("public", "read", "publish")
        and access.json_only  # never a CSRF token to check
        and not access.page
        and access.stream is None
        and not access.token_field
    )


class Ingest:
    """The WSGI handler of `POST /stream/glint` (see the module's docstring). `enabled` off
    hands every request to Flask (the tests compare the two)."""

    def __init__(self, app: Flask, access: Access) -> None:
        self.hub: Spiral = app.extensions["spiral"]
        self.tokens = app.extensions["spiral.tokens"]
        self.guesses = app.extensions["spiral.guess_throttle"]
        self.limiter = app.extensions["spiral.limiter"]
        self.max_body: int = app.config["MAX_CONTENT_LENGTH"]
        self.roles = roles_checked(access)
        self.rate_limited = access.rate_limited
        self.enabled = True
        self._headers = list(API_HEADERS.items())
        self._worker = [("X-Spiral-Worker", str(os.getpid()))]
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._worker = [("X-Spiral-Worker", str(os.getpid()))]

    def takes(self, environ: dict[str, Any], body: bytes | None) -> bool:
        """Whether this request is the handler's (else Flask's). `body`: what the gate read (None:
        not read, because it is larger than allowed or its length is not a number)."""
        return (
            self.enabled
            and environ.get("PATH_INFO") == PATH
            and environ["REQUEST_METHOD"] == "POST"
            and "HTTP_COOKIE" not in environ
            and (body is not None or self._too_large(environ))
        )

    def _too_large(self, environ: dict[str, Any]) -> bool:
        try:
            return int(environ.get("CONTENT_LENGTH") or 0) > self.max_body
        except ValueError:
            return False

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse, body: bytes | None
    ) -> Iterable[bytes]:
        hub = self.hub
        address = environ.get("REMOTE_ADDR") or "unknown"
        given = bearer_of(environ.get("HTTP_AUTHORIZATION", ""))
        who: Principal | None = None
        problem: ApiError | None = None
        if given is not None:
            try:
                who = verify_token(self.tokens, self.guesses, hub, given, "bearer", address)
            except ApiError as exc:
                problem = exc
        source = who.name if who is not None else address
        # Without a bearer token the guard looks for a session (there is none: no cookie), and
        # Flask then answers `Vary: Cookie`.
        vary = [("Vary", "Cookie")] if given is None else []
        try:
            if self._cross_origin(environ):
                raise cross_origin_refusal()
            for role in self.roles:
                refused = role_refusal(self.tokens, role, who, problem, False)
                if refused is not None:
                    raise refused
            if self.rate_limited:
                limited = rate_refusal(self.limiter, hub, source)
                if limited is not None:
                    raise limited
            if _mimetype(environ.get("CONTENT_TYPE", "")) != "application/json":
                raise UnsupportedMediaType()
            if body is None or len(body) > self.max_body:
                raise ApiError(
                    413, "body_too_large", f"the body is larger than {self.max_body} bytes"
                )
            status, answer = publish(hub, body, source)
        except GlintError as exc:  # ours (ApiError) or the engine's
            return self._refuse(environ, start_response, exc, source, vary)
        except RecordUnavailable as exc:
            return self._refuse(environ, start_response, RecordDown(exc), source, vary)
        except Exception:
            log.exception("unexpected error on POST %s", PATH)
            answer = orjson.dumps(
                {
                    "error": "internal_error",
                    "message": "the server failed to handle this request; it was logged",
                }
            )
            return self._answer(start_response, 500, answer, [], vary)
        return self._answer(start_response, status, answer, [], vary)

    def _cross_origin(self, environ: dict[str, Any]) -> bool:
        return is_cross_origin(
            environ.get("HTTP_SEC_FETCH_SITE"),
            environ.get("HTTP_ORIGIN"),
            lambda: get_host(environ),
        )

    def _refuse(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        exc: GlintError,
        source: str,
        vary: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        """As web/errors.py answers a refusal, and counts it for the climate: a write refused
        (any 4xx but 404), unless a page of another origin made a browser send it."""
        status = exc.status
        if 400 <= status < 500 and status != 404 and not self._cross_origin(environ):
            self.hub.breath.record_rejection(source, status, exc.error)
        body = orjson.dumps(exc.to_dict())
        return self._answer(start_response, status, body, refusal_headers(exc), vary)

    def _answer(
        self,
        start_response: StartResponse,
        status: int,
        body: bytes,
        headers: list[tuple[str, str]],
        vary: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        """Headers in the order Flask's response has them: its own, the view's, then the hooks'."""
        start_response(
            _STATUS[status],
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            + headers
            + self._worker
            + self._headers
            + vary,
        )
        return [body]


def _mimetype(content_type: str) -> str:
    """The media type of a Content-Type header, as werkzeug reads it for `request.mimetype`."""
    if content_type == "application/json":
        return content_type
    return parse_options_header(content_type)[0].lower()


_STATUS = {code: f"{code} {HTTP_STATUS_CODES[code].upper()}" for code in HTTP_STATUS_CODES}

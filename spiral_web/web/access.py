"""Who may call each view, declared on the view itself:

    @bp.post("/stream/glint")
    @access("publish", json_only=True, rate_limited=True)
    def emit(): ...

The request guard (web/auth/guard.py) and the limits (web/security.py) read the declaration of the
view a request was routed to. A view that declares nothing is refused, whoever asks; the test
tests/security/test_access.py lists every route with its declaration.

Roles: `public` (anyone), `read`, `publish`, `admin` (a token of that kind or a higher one; read
and publish only once tokens of that kind are configured, admin once any token is; web/auth/).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, Literal, TypeVar

from flask import Flask, current_app, request

from .errors import UnsupportedMediaType

F = TypeVar("F", bound=Callable[..., Any])
Role = Literal["public", "read", "publish", "admin"]
Stream = Literal["sse", "websocket"]

ATTRIBUTE = "spiral_access"


@dataclass(frozen=True)
class Access:
    """What a view declares. Flags not given are off."""

    role: Role
    # A page or form of the dashboard's, used by a person: an unsafe request needs the session's
    # CSRF token whatever its body, and an anonymous caller is sent to sign in instead of a 401.
    page: bool = False
    # Refuses anything but application/json (415) before the view runs: a form on another site
    # cannot send that without a CORS preflight, so no CSRF token is asked for.
    json_only: bool = False
    # A POST takes one token from its source's bucket (429 with Retry-After when it is empty).
    rate_limited: bool = False
    # An event stream: takes `?token=` (EventSource cannot set headers) and counts against the
    # subscriber cap (503). A WebSocket's handshake is a GET that a page of any origin may open,
    # so there the session cookie does not count from another origin, nor does an anonymous
    # caller get in from one.
    stream: Stream | None = None
    # For `admin` forms: the token may be typed into the form's `token` field, so the view checks
    # it and answers a refusal inline in the panel; the guard checks `read` only.
    token_field: bool = False

    def describe(self) -> str:
        """One line, e.g. `publish page rate_limited`: what tests and docs list."""
        flags = [
            name
            for name in ("page", "json_only", "rate_limited", "token_field")
            if getattr(self, name)
        ]
        if self.stream:
            flags.append(f"stream={self.stream}")
        return " ".join([self.role, *flags])


def access(
    role: Role,
    *,
    page: bool = False,
    json_only: bool = False,
    rate_limited: bool = False,
    stream: Stream | None = None,
    token_field: bool = False,
) -> Callable[[F], F]:
    """Declare who may call the view (put it below the route decorator)."""
    declared = Access(role, page, json_only, rate_limited, stream, token_field)
    if token_field and role != "admin":
        raise ValueError("token_field is for admin forms")

    def declare(view: F) -> F:
        if json_only:
            view = _json_only(view)
        setattr(view, ATTRIBUTE, declared)
        return view

    return declare


def declared(endpoint: str | None) -> Access | None:
    """The access the view behind `endpoint` declares; None when it declares none."""
    view = current_app.view_functions.get(endpoint) if endpoint else None
    found = getattr(view, ATTRIBUTE, None)
    return found if isinstance(found, Access) else None


def declare_static(app: Flask) -> None:
    """Flask's own `static` endpoint serves the stylesheet and scripts: open to everyone."""
    if "static" in app.view_functions:
        access("public")(app.view_functions["static"])


def _json_only(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.mimetype != "application/json":
            raise UnsupportedMediaType()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

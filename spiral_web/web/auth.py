"""Who may do what. Admin actions (ritual invocation, phase and climate overrides) need the admin
token when one is configured; without one the server is a local, open instance."""

from __future__ import annotations

import hmac
from functools import wraps
from typing import Any, Callable, TypeVar

from flask import request

from ..engine.glints import GlintError
from .common import spiral

F = TypeVar("F", bound=Callable[..., Any])


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_admin(view: F) -> F:
    """Refuse with 401 unless the request carries the configured admin token."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        expected = spiral().config.admin_token
        if expected:
            given = bearer_token()
            if given is None:
                raise GlintError(401, "unauthorized", "this action needs the admin token (Authorization: Bearer …)")
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise GlintError(403, "forbidden", "the admin token is not valid")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

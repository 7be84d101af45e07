"""The session: Flask's signed cookie, HttpOnly and SameSite=Strict, for twelve hours from
signing in, however busy it is (the cookie is not re-issued on every request).

A signed-in session carries an id and the time it began. Signing out puts the id on the hub's deny
list (`cluster.deny`, kept until the session would have ended anyway): shared by every worker and
host, and kept across restarts, so a copy of the cookie stops working everywhere at once. A
session without an id (made before sessions had one) is not honoured.
"""

from __future__ import annotations

import secrets
from collections.abc import MutableMapping
from datetime import timedelta
from typing import Any, TypeGuard

from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from ...config import Config
from ..common import spiral

SESSION_HOURS = 12
LIFETIME = SESSION_HOURS * 3600.0  # seconds from signing in


def init_app(app: Flask, config: Config) -> None:
    """The session cookie's settings, and the session interface below."""
    app.config.update(
        SESSION_COOKIE_NAME="spiral_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=bool(config.secure_cookies),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        # The cookie's own expiry stays where signing in set it: re-issuing it on every request
        # would make its life slide for ever.
        SESSION_REFRESH_EACH_REQUEST=False,
    )
    app.session_interface = Sessions()


class Sessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without building a signer for every request: most requests
    (publishers, listeners) carry no session cookie at all, and the key does not change."""

    def open_session(self, app: Flask, request: Any) -> Any:
        if not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask) -> Any:
        cached = app.extensions.get("spiral.session_signer")
        if cached is None or cached[0] != app.secret_key:
            cached = (app.secret_key, super().get_signing_serializer(app))
            app.extensions["spiral.session_signer"] = cached
        return cached[1]


def begin(session: MutableMapping[str, Any]) -> None:
    """Give a session that is signing in its id and its start (engine time)."""
    session["sid"] = secrets.token_urlsafe(18)
    session["at"] = spiral().clock.now()


def ended(session: MutableMapping[str, Any]) -> bool:
    """True when the signed-in session is over: signed out, past its lifetime, or from before
    sessions had an id."""
    sid, began = session.get("sid"), session.get("at")
    if not isinstance(sid, str) or not sid or not _is_time(began):
        return True
    hub = spiral()
    now = hub.clock.now()
    return now >= began + LIFETIME or hub.cluster.denied(f"session:{sid}", now)


def end(session: MutableMapping[str, Any]) -> None:
    """Sign out: deny the session's id on the hub until it would have ended anyway."""
    sid, began = session.get("sid"), session.get("at")
    if isinstance(sid, str) and sid and _is_time(began):
        spiral().cluster.deny(f"session:{sid}", began + LIFETIME)


def _is_time(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

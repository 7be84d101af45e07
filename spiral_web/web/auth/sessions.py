"""The session: Flask's signed cookie, HttpOnly and SameSite=Strict, for twelve hours."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from ...config import Config

SESSION_HOURS = 12


def init_app(app: Flask, config: Config) -> None:
    """The session cookie's settings, and the session interface below."""
    app.config.update(
        SESSION_COOKIE_NAME="spiral_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=bool(config.secure_cookies),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
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

"""The session's CSRF token: every form post, and every request acting through the session
cookie, carries it (web/auth/guard.py decides which requests must)."""

from __future__ import annotations

import hmac
import secrets

from flask import g, request, session
from markupsafe import Markup

from ..errors import Forbidden

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def csrf_token() -> str:
    """This session's CSRF token (created on first use). Templates: `{{ csrf_token() }}`."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def renew_csrf_token() -> None:
    """A new token for a new session (signing in)."""
    session["csrf"] = secrets.token_urlsafe(32)


def csrf_field() -> Markup:
    """The hidden input every state-changing form carries. Templates: `{{ csrf_field() }}`."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, csrf_token())


def check_csrf() -> None:
    """Refuse (403) a request without this session's CSRF token, in the form or the header."""
    if g.get("spiral_csrf_ok"):
        return
    expected = session.get("csrf")
    candidates = [request.headers.get(CSRF_HEADER)]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        candidates.append(request.form.get(CSRF_FIELD))
    if (
        isinstance(expected, str)
        and expected
        and any(
            isinstance(c, str) and hmac.compare_digest(c.encode(), expected.encode())
            for c in candidates
        )
    ):
        g.spiral_csrf_ok = True
        return
    raise Forbidden(
        "this form is out of date or did not come from this "
        "dashboard: reload the page and try again",
        "csrf_failed",
    )

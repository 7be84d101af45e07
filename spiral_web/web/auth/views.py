"""Signing in and out: `/auth/sign-in` takes a token and keeps its name in the session."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, session, url_for

from ..access import access
from ..common import address, count_rejection
from ..errors import ApiError, Unauthorized
from . import sessions
from .csrf import renew_csrf_token
from .identity import check_token, signed_in
from .tokens import tokens

bp = Blueprint("auth", __name__, url_prefix="/auth")


@bp.get("/sign-in")
@access("public", page=True)
def sign_in():
    return sign_in_page(None, 200)


@bp.post("/sign-in")
@access("public", page=True, rate_limited=True)
def sign_in_post():
    given = (request.form.get("token") or "").strip()
    try:
        if not given:
            raise Unauthorized("enter a token")
        who = check_token(given, "session")
    except ApiError as exc:
        count_rejection(address(), exc.status, exc.error)
        html, status, headers = sign_in_page(
            exc.message, exc.status if exc.status in (401, 429) else 403
        )
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        return html, status, headers
    session.clear()  # a new session: nothing from before signing in carries over (fixation)
    session.permanent = True
    session["who"] = {"name": who.name, "role": who.role, "fp": tokens().fingerprint(who.name)}
    sessions.begin(session)
    renew_csrf_token()
    return redirect(_safe_next(request.form.get("next")), 303)


@bp.post("/sign-out")
@access("public", page=True)
def sign_out():
    sessions.end(session)  # a copy of the cookie stops working too, on every worker
    session.clear()
    return redirect(_safe_next(request.form.get("next")), 303)


def sign_in_page(problem: str | None, status: int) -> Any:
    html = render_template(
        "auth/sign_in.html",
        problem=problem,
        guarded=tokens().guarded,
        next=_safe_next(request.values.get("next")),
        who=signed_in(),
    )
    return html, status, {"Cache-Control": "no-store"}


def _safe_next(value: str | None) -> str:
    """Only a path on this site: never `//host`, a scheme, or a backslash trick."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return url_for("dashboard.index")
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value):
        return url_for("dashboard.index")
    return value

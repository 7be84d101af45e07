"""Who a request acts as (a Principal, or anonymous), and why it may not act as a role.

Each check is a function of what it needs (`verify_token`, `role_refusal`), called here for
Flask's request and by web/ingest.py for `POST /stream/glint` served in front of Flask."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import g, request, session

from ..access import declared
from ..common import address, cross_origin, spiral
from ..errors import ApiError, Forbidden, Unauthorized
from . import sessions
from .throttle import GuessThrottle, throttle
from .tokens import Principal, Tokens, tokens

if TYPE_CHECKING:
    from ...services import Spiral

_VERBS = {"read": "read the stream", "publish": "publish glints", "admin": "act as admin"}


def bearer_token() -> str | None:
    return bearer_of(request.headers.get("Authorization", ""))


def bearer_of(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for another scheme or none."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if token and scheme.lower() == "bearer" else None


def principal() -> Principal | None:
    """Who this request acts as (None: anonymous). Settled once per request by the guard."""
    if "spiral_principal" not in g:
        authenticate()
    return g.spiral_principal


def authenticate() -> None:
    """Bearer header, then `?token=` (streams only), then the session cookie. A token that is
    given but not valid is remembered as the problem, and reported where a token is needed."""
    g.spiral_principal, g.spiral_auth_problem = None, None
    table = tokens()
    access = declared(request.endpoint)
    stream = access.stream if access is not None else None
    given, via = bearer_token(), "bearer"
    if given is None and stream is not None and request.args.get("token"):
        given, via = request.args["token"], "query"
    if given is not None:
        try:
            g.spiral_principal = check_token(given, via)
        except ApiError as exc:
            g.spiral_auth_problem = exc
        return
    if "who" in session:
        who = table.from_session(session["who"])
        if who is None or sessions.ended(session):
            # signed out, past its lifetime, or its token was removed, changed or revoked
            who = None
            for key in ("who", "sid", "at"):
                session.pop(key, None)
        elif stream == "websocket" and cross_origin():
            who = None  # a page of another origin must not ride on the dashboard's cookie
        g.spiral_principal = who


def check_token(given: str, via: str) -> Principal:
    """The principal `given` stands for; raises Forbidden for a wrong or revoked secret, and
    TooManyFailures (429) while this address is throttled for guessing (throttle.py)."""
    return verify_token(tokens(), throttle(), spiral(), given, via, address())


def verify_token(
    table: Tokens, guesses: GuessThrottle, hub: Spiral, given: str, via: str, who: str
) -> Principal:
    """check_token for a request from the address `who`."""
    if not table.guarded:
        return table.identify(given, via)  # nothing needs a token: nothing to guess
    problem = guesses.refusal(who, hub)
    if problem is not None:
        raise problem
    try:
        return table.identify(given, via)
    except ApiError as exc:
        raise (guesses.failed(given, who, hub) or exc) from None


def refusal(role: str) -> ApiError | None:
    """Why this request may not act as `role`; None when it may. The admin role is needed only
    once tokens are configured; publish and read only once tokens of that kind are."""
    who = principal()
    access = declared(request.endpoint)
    stream = access is not None and access.stream is not None
    return role_refusal(tokens(), role, who, g.spiral_auth_problem, stream)


def role_refusal(
    table: Tokens, role: str, who: Principal | None, problem: ApiError | None, stream: bool
) -> ApiError | None:
    """refusal() for a request that acts as `who` (None: anonymous), whose token was refused
    with `problem` if it gave one, on a view that is an event stream (`?token=` works there) or
    not."""
    if role == "admin":
        if not table.guarded:
            return None
        if not table.admin_configured:
            return Forbidden(
                "admin actions are off: no admin token is configured (set SPIRAL_ADMIN_TOKEN)"
            )
    elif role == "publish" and not table.publish_required:
        return None
    elif role == "read" and not table.read_required:
        return None
    if who is not None and who.can(role):
        return None
    if problem is not None:
        return problem
    if who is not None:
        return Forbidden(f"the token {who.name!r} may not {_VERBS[role]}")
    return Unauthorized(
        f"this needs a {role} token (Authorization: Bearer …"
        f"{', or ?token=' if stream else ''}"
        ", or sign in on the dashboard)"
    )


def admin_refusal(given: str | None = None) -> ApiError | None:
    """Why this request may not act as admin; None when it may. `given` is a token typed into a
    form; without it the bearer header or the signed-in session decides."""
    if given is None:
        problem = refusal("admin")
        if problem is not None and problem.status == 401:
            return Unauthorized(
                "this action needs the admin token (Authorization: Bearer …, "
                "or sign in on the dashboard)"
            )
        return problem
    table = tokens()
    if not table.guarded:
        return None
    if not table.admin_configured:
        return refusal("admin")
    try:
        who = check_token(given, "form")
    except ApiError as exc:
        if exc.error == "forbidden":
            return Forbidden("the admin token is not valid")
        return exc
    if who.role != "admin":
        return Forbidden("the admin token is not valid")
    return None


def signed_in() -> Principal | None:
    """The signed-in session's principal (templates: show who, and the sign-out button)."""
    who = principal()
    return who if who is not None and who.via == "session" else None

"""Who may do what.

Three kinds of token, each a secret with a name (the admin token's name is `admin`):

    read      /stream, /dashboard/stream, /ws, the dashboard and the read API   ([tokens.read])
    publish   POST /stream/glint, the WebSocket's emit, the dashboard's emit     ([tokens.publish])
    admin     ritual invocation, phase and climate overrides; and all of the above (admin_token)

A kind is required only once tokens of it are configured (a local hub with none runs open); once any
token is configured, admin actions need the admin token, and with none configured they are off.
A token is given as `Authorization: Bearer <secret>`, as `?token=` on the stream URLs (EventSource
cannot set headers), or by signing in on the dashboard, which keeps the token's name in a signed,
HttpOnly, SameSite=Strict session cookie. The name of the token becomes the glint's `source`.
Tokens are compared in constant time and never logged; a session is checked against the current
configuration on every request, so removing or revoking a token also ends its sessions.

Every state-changing request from a browser page of another origin is refused, and every form post
(and every request that acts through the session cookie) must carry the session's CSRF token, in the
`csrf_token` field (`csrf_field()` in templates) or the `X-CSRF-Token` header (base.html makes htmx
send it with every request). JSON API calls with a bearer token are exempt: a browser cannot send
those across origins without a CORS preflight, which Spiral never grants.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from markupsafe import Markup

from ..config import Config
from ..engine.glints import GlintError
from .common import spiral

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint("auth", __name__, url_prefix="/auth")

RANK = {"read": 0, "publish": 1, "admin": 2}
SESSION_HOURS = 12
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What an HTML form (or a no-CORS fetch) on another site can send without a preflight.
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})

# Open to everyone, whatever is configured.
PUBLIC = frozenset(
    {
        "static",
        "auth.sign_in",
        "auth.sign_in_post",
        "auth.sign_out",
        "ops.healthz",
        "ops.readyz",
        "ops.metrics",
        "ops.move_clock",
        "api.openapi",
    }
)
PUBLISH = frozenset({"stream.emit", "dashboard.emit"})
JSON_ONLY = frozenset({"stream.emit", "admin.phase", "admin.climate"})
STREAMS = frozenset({"stream.stream", "dashboard.stream", "ws.websocket"})  # these take ?token=


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a token's name and kind, and how it was given."""

    name: str
    role: str  # read | publish | admin
    via: str  # bearer | query | session

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


class Tokens:
    """The configured secrets. Built once per app from the Config; read-only afterwards."""

    def __init__(self, config: Config, key: bytes) -> None:
        self._key = key
        entries: list[tuple[str, str, bytes]] = []
        if config.admin_token:
            entries.append(("admin", "admin", config.admin_token.encode()))
        entries += [(n, "publish", s.encode()) for n, s in config.publish_tokens.items()]
        entries += [(n, "read", s.encode()) for n, s in config.read_tokens.items()]
        self._entries = entries
        self._by_name = {name: (role, secret) for name, role, secret in entries}
        self.revoked = frozenset(config.revoked_tokens)
        self.guarded = config.guarded
        self.admin_configured = bool(config.admin_token) and "admin" not in self.revoked
        self.publish_required = bool(config.publish_tokens)
        self.read_required = bool(config.read_tokens)

    def identify(self, given: str, via: str) -> Principal:
        """The principal a secret stands for; GlintError 403 when it is unknown or revoked."""
        raw = given.encode()
        found: tuple[str, str] | None = None
        for name, role, secret in self._entries:  # every entry, every time: no early exit
            if hmac.compare_digest(raw, secret):
                found = (name, role)
        if found is None:
            raise GlintError(403, "forbidden", "the token is not valid")
        name, role = found
        if name in self.revoked:
            raise GlintError(403, "token_revoked", f"the token {name!r} has been revoked")
        return Principal(name, role, via)

    def fingerprint(self, name: str) -> str | None:
        """A keyed digest of a token's secret: a session holds it, never the secret."""
        entry = self._by_name.get(name)
        if entry is None:
            return None
        return hmac.new(self._key, entry[1], hashlib.sha256).hexdigest()[:32]

    def from_session(self, who: Any) -> Principal | None:
        """The session's principal if its token is still configured, unchanged and not revoked."""
        if not isinstance(who, dict):
            return None
        name, role, fp = who.get("name"), who.get("role"), who.get("fp")
        if not isinstance(name, str) or name in self.revoked or name not in self._by_name:
            return None
        if role != self._by_name[name][0] or not isinstance(fp, str):
            return None
        expected = self.fingerprint(name) or ""
        if not hmac.compare_digest(fp.encode(), expected.encode()):
            return None
        return Principal(name, role, "session")


def init_app(app: Flask, config: Config) -> None:
    """Sessions (signed cookie), the token table, the request guard, the sign-in pages."""
    app.secret_key = _secret_key(config)
    app.config.update(
        SESSION_COOKIE_NAME="spiral_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=bool(config.secure_cookies),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )
    app.session_interface = _Sessions()
    app.extensions["spiral.tokens"] = Tokens(config, app.secret_key)
    app.before_request(_guard)
    app.add_template_global(csrf_token)
    app.add_template_global(csrf_field)
    app.add_template_global(signed_in)
    app.add_template_global(lambda: tokens().guarded, "auth_guarded")
    app.add_template_global(can_publish)
    app.register_blueprint(bp)


class _Sessions(SecureCookieSessionInterface):
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


def tokens() -> Tokens:
    return current_app.extensions["spiral.tokens"]


# -- who is asking ---------------------------------------------------------------------------------


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def principal() -> Principal | None:
    """Who this request acts as (None: anonymous). Settled once per request by the guard."""
    if "spiral_principal" not in g:
        _authenticate()
    return g.spiral_principal


def _authenticate() -> None:
    """Bearer header, then `?token=` (stream URLs only), then the session cookie. A token that is
    given but not valid is remembered as the problem, and reported where a token is needed."""
    g.spiral_principal, g.spiral_auth_problem = None, None
    table = tokens()
    given, via = bearer_token(), "bearer"
    if given is None and request.endpoint in STREAMS and request.args.get("token"):
        given, via = request.args["token"], "query"
    if given is not None:
        try:
            g.spiral_principal = table.identify(given, via)
        except GlintError as exc:
            g.spiral_auth_problem = exc
        return
    if "who" in session:
        who = table.from_session(session["who"])
        if who is None:  # the token was removed, changed or revoked: the session ends here
            session.pop("who", None)
        elif request.endpoint == "ws.websocket" and _cross_origin():
            who = None  # a page of another origin must not ride on the dashboard's cookie
        g.spiral_principal = who


def refusal(role: str) -> GlintError | None:
    """Why this request may not act as `role`; None when it may. The admin role is needed only
    once tokens are configured; publish and read only once tokens of that kind are."""
    table = tokens()
    if role == "admin":
        if not table.guarded:
            return None
        if not table.admin_configured:
            return GlintError(
                403,
                "forbidden",
                "admin actions are off: no admin token is configured (set SPIRAL_ADMIN_TOKEN)",
            )
    elif role == "publish" and not table.publish_required:
        return None
    elif role == "read" and not table.read_required:
        return None
    who = principal()
    if who is not None and who.can(role):
        return None
    if g.spiral_auth_problem is not None:
        return g.spiral_auth_problem
    if who is not None:
        return GlintError(403, "forbidden", f"the token {who.name!r} may not {_VERBS[role]}")
    return GlintError(
        401,
        "unauthorized",
        f"this needs a {role} token (Authorization: Bearer …"
        f"{', or ?token=' if request.endpoint in STREAMS else ''}"
        ", or sign in on the dashboard)",
    )


_VERBS = {"read": "read the stream", "publish": "publish glints", "admin": "act as admin"}


def admin_refusal(given: str | None = None) -> GlintError | None:
    """Why this request may not act as admin; None when it may. `given` is a token typed into a
    form; without it the bearer header or the signed-in session decides."""
    if given is None:
        problem = refusal("admin")
        if problem is not None and problem.status == 401:
            problem.message = (
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
        who = table.identify(given, "form")
    except GlintError as exc:
        if exc.error == "forbidden":
            exc.message = "the admin token is not valid"
        return exc
    if who.role != "admin":
        return GlintError(403, "forbidden", "the admin token is not valid")
    return None


def require_admin(view: F) -> F:
    """Refuse (401 without a token, 403 with a wrong or revoked one) unless the request carries
    the admin token or comes from a signed-in admin."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        problem = admin_refusal()
        if problem is not None:
            raise problem
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def signed_in() -> Principal | None:
    """The signed-in session's principal (templates: show who, and the sign-out button)."""
    who = principal()
    return who if who is not None and who.via == "session" else None


def can_publish() -> bool:
    """May this request emit glints (templates: show or hide the emit form)."""
    return refusal("publish") is None


# -- the guard: every request, before its view ---------------------------------------------------


def _guard() -> Any:
    endpoint = request.endpoint
    if endpoint is None:  # 404 or 405: nothing to guard
        return None
    unsafe = request.method in UNSAFE_METHODS
    _authenticate()
    if (unsafe or endpoint == "ws.websocket") and _cross_origin():
        if unsafe or g.spiral_principal is None:
            raise GlintError(
                403, "cross_origin", "requests from pages of another origin are refused"
            )
    if unsafe and _needs_csrf():
        try:
            check_csrf()
        except GlintError as exc:
            if endpoint == "auth.sign_in_post":
                spiral().breath.record_rejection(_address())
                return _sign_in_page(exc.message, 403)
            raise
    if endpoint in PUBLIC:
        return None
    problem = refusal("read")
    if problem is None and endpoint in PUBLISH:
        problem = refusal("publish")
    if problem is None:
        return None
    if (
        problem.status == 401
        and endpoint.startswith("dashboard.")
        and endpoint != "dashboard.stream"
    ):
        # A person at the dashboard: to the sign-in page, and back here (or to the page) after.
        if request.headers.get("HX-Request"):
            response = spiral_error_response(problem)
            response.headers["HX-Redirect"] = url_for(
                "auth.sign_in", next=url_for("dashboard.index")
            )
            return response
        back = _here() if request.method == "GET" else url_for("dashboard.index")
        spiral().breath.record_rejection(_address())
        return redirect(url_for("auth.sign_in", next=back), 303)
    raise problem


def spiral_error_response(problem: GlintError) -> Any:
    from .common import error

    response = error(problem.status, problem.error, problem.message)
    if problem.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="spiral"'
    spiral().breath.record_rejection(_address())
    return response


def _cross_origin() -> bool:
    """True for a request a browser sent from a page of another origin. Fetch metadata first
    (every current browser sends it, and it is right behind a proxy); else the Origin header."""
    site = request.headers.get("Sec-Fetch-Site")
    if site:
        return site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False  # not a browser, or a same-origin GET
    return origin == "null" or urlsplit(origin).netloc != request.host


def _needs_csrf() -> bool:
    if "Authorization" in request.headers:
        return False  # cannot come from another site's page (a preflight we never grant)
    endpoint = request.endpoint or ""
    if endpoint in JSON_ONLY:
        return False  # they refuse anything but application/json (415) before acting on it
    if request.mimetype in FORM_TYPES or endpoint.startswith(("dashboard.", "auth.")):
        return True  # a form, or a page's own endpoint: whatever the body, it needs the token
    who = g.spiral_principal
    return who is not None and who.via == "session" and request.mimetype != "application/json"


# -- CSRF ------------------------------------------------------------------------------------------


def csrf_token() -> str:
    """This session's CSRF token (created on first use). Templates: `{{ csrf_token() }}`."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


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
    raise GlintError(
        403,
        "csrf_failed",
        "this form is out of date or did not come from this "
        "dashboard: reload the page and try again",
    )


# -- sign in and out -------------------------------------------------------------------------------


@bp.get("/sign-in")
def sign_in():
    return _sign_in_page(None, 200)


@bp.post("/sign-in")
def sign_in_post():
    given = (request.form.get("token") or "").strip()
    try:
        if not given:
            raise GlintError(401, "unauthorized", "enter a token")
        who = tokens().identify(given, "session")
    except GlintError as exc:
        spiral().breath.record_rejection(_address())
        return _sign_in_page(exc.message, 401 if exc.status == 401 else 403)
    session.clear()  # a new session: nothing from before signing in carries over (fixation)
    session.permanent = True
    session["who"] = {"name": who.name, "role": who.role, "fp": tokens().fingerprint(who.name)}
    session["csrf"] = secrets.token_urlsafe(32)
    return redirect(_safe_next(request.form.get("next")), 303)


@bp.post("/sign-out")
def sign_out():
    session.clear()
    return redirect(_safe_next(request.form.get("next")), 303)


def _sign_in_page(problem: str | None, status: int) -> Any:
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


def _here() -> str:
    query = urlencode(list(request.args.items(multi=True)))
    return request.path + (f"?{query}" if query else "")


def _address() -> str:
    return request.remote_addr or "unknown"


# -- the signing key -------------------------------------------------------------------------------


def _secret_key(config: Config) -> bytes:
    """SPIRAL_SECRET_KEY, else a random key kept in the data folder (shared by every worker on this
    host; several hosts must be given the same SPIRAL_SECRET_KEY)."""
    if config.secret_key:
        return config.secret_key.encode()
    path = Path(config.data_dir) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written whole under another name, then linked into place: workers starting together
        # all end up reading the one key that won, never a half-written file.
        tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} is damaged (too short): delete it to make a new key")
    return key.encode()

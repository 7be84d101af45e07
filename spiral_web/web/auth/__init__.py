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

Which role each view needs is declared on the view (web/access.py); the guard enforces it.

    tokens.py      the configured secrets and who they stand for (Principal)
    identity.py    who a request acts as, and why it may not act as a role
    guard.py       the check before every view: origin, CSRF, the declared role
    throttle.py    guessing tokens: failed authentication throttled per address (429)
    csrf.py        the session's CSRF token
    views.py       the sign-in and sign-out pages
    sessions.py    the signed session cookie
    secret_key.py  the key that signs it
"""

from __future__ import annotations

from flask import Flask

from ...config import Config
from ..access import declare_static
from . import sessions
from .csrf import csrf_field, csrf_token
from .guard import guard
from .identity import signed_in
from .secret_key import secret_key
from .throttle import GuessThrottle
from .tokens import Tokens, tokens
from .views import bp


def init_app(app: Flask, config: Config) -> None:
    """Sessions (signed cookie), the token table, the request guard, the sign-in pages."""
    app.secret_key = secret_key(config)
    sessions.init_app(app, config)
    app.extensions["spiral.tokens"] = Tokens(config, app.secret_key)
    app.extensions["spiral.guess_throttle"] = GuessThrottle(app.secret_key)
    declare_static(app)
    app.before_request(guard)
    app.add_template_global(csrf_token)
    app.add_template_global(csrf_field)
    app.add_template_global(signed_in)
    app.add_template_global(lambda: tokens().guarded, "auth_guarded")
    app.register_blueprint(bp)

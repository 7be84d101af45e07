"""Sessions end (issue 10, item 9 of the report): signing out ends the session on the server, so a
copied cookie stops working, on every worker and after a restart; and a session lives at most
twelve hours from signing in, however busy it is (the cookie is not re-issued on every request)."""

from __future__ import annotations

from spiral_web import create_app
from spiral_web.web.auth.sessions import SESSION_HOURS
from spiral_web.web.auth.tokens import tokens

from .conftest import ADMIN, PUBLISH, csrf_of, guarded_config, sign_in

COOKIE = "spiral_session"


def _copy(cookie_from, app):
    """A second client holding the same cookie: what a thief who copied it has."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, cookie_from.get_cookie(COOKIE).value)
    return thief


def test_a_copied_cookie_stops_working_after_sign_out_and_after_a_restart(tmp_path):
    config = guarded_config(tmp_path)
    first = create_app(config)
    try:
        owner = first.test_client()
        assert sign_in(owner, PUBLISH["alpha"]).status_code == 303
        thief = _copy(owner, first)
        assert thief.get("/api/stats").status_code == 200  # the copy works while signed in
        out = owner.post("/auth/sign-out", data={"csrf_token": csrf_of(owner, "/")})
        assert out.status_code == 303
        assert thief.get("/api/stats").status_code == 401
        assert thief.get("/").status_code == 303  # a person is sent to sign in again
        kept = thief.get_cookie(COOKIE)
    finally:
        first.extensions["spiral"].close()
    second = create_app(config)  # the same data folder: the same key, the same deny list
    try:
        again = second.test_client()
        again.set_cookie(COOKIE, kept.value if kept else owner.get_cookie(COOKIE).value)
        assert again.get("/api/stats").status_code == 401
        # signing in again is a new session, unaffected
        assert sign_in(again, PUBLISH["alpha"]).status_code == 303
        assert again.get("/api/stats").status_code == 200
    finally:
        second.extensions["spiral"].close()


def test_a_session_ends_twelve_hours_after_sign_in(guarded):
    client = guarded.test_client()
    clock = guarded.extensions["spiral"].clock
    assert sign_in(client, ADMIN).status_code == 303
    for _ in range(11):  # busy all along: activity does not extend it
        clock.advance(3600)
        assert client.get("/api/stats").status_code == 200
    clock.advance(SESSION_HOURS * 3600 - 11 * 3600 - 5)
    assert client.get("/api/stats").status_code == 200
    clock.advance(10)
    assert client.get("/api/stats").status_code == 401
    assert client.get("/").status_code == 303


def test_the_cookie_is_not_re_issued_on_every_request(guarded):
    client = guarded.test_client()
    assert "Set-Cookie" in sign_in(client, ADMIN).headers
    for path in ("/", "/api/stats", "/dashboard/timeline"):
        assert "Set-Cookie" not in client.get(path).headers, path


def test_a_session_from_before_sessions_had_ids_is_refused(guarded):
    """A cookie signed with the right key but without an id and a sign-in time (as the previous
    version made them) cannot be ended, so it does not count."""
    serializer = guarded.session_interface.get_signing_serializer(guarded)
    with guarded.test_request_context():
        who = {"name": "beta", "role": "publish", "fp": tokens().fingerprint("beta")}
    old = guarded.test_client()
    old.set_cookie(COOKIE, serializer.dumps({"who": who, "csrf": "x" * 43}))
    assert old.get("/api/stats").status_code == 401

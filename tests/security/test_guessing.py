"""Guessing tokens is throttled (issue 10, item 10 of the report): failed authentication from one
address — a wrong bearer token, a wrong `?token=`, a wrong token typed into the sign-in form —
takes from that address's bucket in the cluster (shared by every worker and host). Once it is
empty, every attempt to authenticate from that address is answered 429 with Retry-After, whether
the token is right or wrong (or the answer would tell a right guess apart); other addresses are
not affected, and a client that repeats the same wrong token is not mistaken for a guesser."""

from __future__ import annotations

import pytest

from spiral_web.web.auth.throttle import GUESS_BURST

from .conftest import ADMIN, PUBLISH, READ, bearer, csrf_of
from .figures import record

GUESSER = "192.0.2.66"
HONEST = "192.0.2.77"


def _guess(n: int) -> str:
    return f"guess-{n:06d}-0123456789abcdef"


@pytest.mark.parametrize("way", ["bearer", "query", "sign-in"])
def test_600_wrong_guesses_meet_429s_and_others_are_unaffected(guarded, way):
    client = guarded.test_client()
    client.environ_base["REMOTE_ADDR"] = GUESSER
    csrf = csrf_of(client)
    statuses = []
    for n in range(600):
        if way == "bearer":
            resp = client.post("/stream/glint", json={"module": "a.b"}, headers=bearer(_guess(n)))
        elif way == "query":
            resp = client.get(f"/stream?token={_guess(n)}", buffered=False)
        else:
            resp = client.post("/auth/sign-in", data={"token": _guess(n), "csrf_token": csrf})
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            assert int(resp.headers["Retry-After"]) >= 1
            if resp.mimetype == "application/json":  # the sign-in's own rate limit may come first
                assert resp.get_json()["error"] in ("too_many_failures", "rate_limited")
            else:
                assert "too many failed attempts" in resp.text
        resp.close()
    record(
        f"token_guessing_{way}",
        guesses=600,
        checked=600 - statuses.count(429),
        refused_429=statuses.count(429),
    )
    assert statuses.count(429) >= 600 - GUESS_BURST - 5
    assert statuses.count(403) <= GUESS_BURST + 5  # at most the burst (and a trickle) was tried
    # while throttled, the right token from the guessing address does not get in either
    right = client.post("/stream/glint", json={"module": "a.b"}, headers=bearer(PUBLISH["alpha"]))
    assert right.status_code == 429
    # another address is not affected
    honest = guarded.test_client()
    honest.environ_base["REMOTE_ADDR"] = HONEST
    ok = honest.post("/stream/glint", json={"module": "a.b"}, headers=bearer(PUBLISH["alpha"]))
    assert ok.status_code == 201
    assert honest.get(f"/stream?token={READ['watcher']}", buffered=False).status_code == 200
    stored = guarded.extensions["spiral"].store.query(limit=10)
    assert [g.module for g in stored if not g.module.startswith("ritual.")] == ["a.b"]


def test_the_throttle_passes_with_time(guarded):
    client = guarded.test_client()
    client.environ_base["REMOTE_ADDR"] = GUESSER
    for n in range(GUESS_BURST + 3):
        client.get("/api/stats", headers=bearer(_guess(n)))
    assert client.get("/api/stats", headers=bearer(READ["watcher"])).status_code == 429
    guarded.extensions["spiral"].clock.advance(600)
    assert client.get("/api/stats", headers=bearer(READ["watcher"])).status_code == 200


def test_the_same_wrong_token_again_is_not_guessing(guarded):
    """A publisher left with an old token keeps getting its 403, and others at its address (a
    proxy, this machine) keep working."""
    client = guarded.test_client()
    client.environ_base["REMOTE_ADDR"] = GUESSER
    stale = "an-old-token-that-was-rotated-0123"
    for _ in range(200):
        resp = client.post("/stream/glint", json={"module": "a.b"}, headers=bearer(stale))
        assert resp.status_code == 403
    ok = client.post("/stream/glint", json={"module": "a.b"}, headers=bearer(PUBLISH["beta"]))
    assert ok.status_code == 201


def test_a_signed_in_session_is_not_throttled(guarded):
    client = guarded.test_client()
    client.environ_base["REMOTE_ADDR"] = GUESSER
    csrf = csrf_of(client)
    resp = client.post("/auth/sign-in", data={"token": ADMIN, "csrf_token": csrf})
    assert resp.status_code == 303
    other = guarded.test_client()
    other.environ_base["REMOTE_ADDR"] = GUESSER
    for n in range(GUESS_BURST + 10):
        other.get("/api/stats", headers=bearer(_guess(n)))
    assert client.get("/api/stats").status_code == 200  # it carries no token to check


def test_an_open_hub_counts_nothing(make_app):
    """With no tokens configured, a bearer token is not checked, so it cannot fail."""
    client = make_app().test_client()
    for n in range(GUESS_BURST + 10):
        resp = client.post("/stream/glint", json={"module": "a.b"}, headers=bearer(_guess(n)))
        assert resp.status_code == 201

"""Limits answer clearly (413, 415, 422 with the field path, 429 with Retry-After per source, 503
with Retry-After at the subscriber cap), and every response carries the security headers."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests
import websocket

from spiral_web.engine.glints import MAX_CONTEXT_DEPTH, MAX_CONTEXT_KEYS
from spiral_web.web.security import CSP
from tests.multiworker.conftest import RedisProcess
from tests.support import ServerProcess, post_glint

from .conftest import PUBLISH, READ, bearer

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _deep(n: int) -> dict:
    value: dict = {}
    for _ in range(n - 1):
        value = {"d": value}
    return value


@pytest.mark.parametrize(
    "kwargs, status, error, mentions",
    [
        pytest.param(
            {"data": b"{" + b" " * 20_000 + b"}", "content_type": "application/json"},
            413,
            "body_too_large",
            "16384",
            id="body-size",
        ),
        pytest.param(
            {"data": "module=a.b", "content_type": "text/plain"},
            415,
            "unsupported_media_type",
            "application/json",
            id="content-type",
        ),
        pytest.param(
            {"json": {"module": "Not Valid"}}, 422, "invalid_glint", "module", id="schema-field"
        ),
        pytest.param(
            {"json": {"module": "a.b", "context": {"list": [1, {"x": "\u202e"}]}}},
            422,
            "invalid_glint",
            "context",
            id="bidi-override",
        ),
        pytest.param(
            {"json": {"module": "a.b", "context": _deep(MAX_CONTEXT_DEPTH + 1)}},
            422,
            "invalid_glint",
            "deeper",
            id="context-depth",
        ),
        pytest.param(
            {
                "json": {
                    "module": "a.b",
                    "context": {f"k{i}": i for i in range(MAX_CONTEXT_KEYS + 1)},
                }
            },
            422,
            "invalid_glint",
            "keys",
            id="context-keys",
        ),
    ],
)
def test_limits_answer_clearly(make_app, kwargs, status, error, mentions):
    client = make_app().test_client()
    resp = client.post("/stream/glint", **kwargs)
    assert resp.status_code == status
    body = resp.get_json()
    assert body["error"] == error and mentions in (body["message"] + str(body.get("details")))
    assert client.get("/api/stats").get_json()["total"] == 0


def test_the_schema_error_names_the_field_path(make_app):
    resp = (
        make_app()
        .test_client()
        .post("/stream/glint", json={"module": "a.b", "context": {"a": 2**70}})
    )
    assert resp.status_code == 422
    assert resp.get_json()["details"][0]["field"].startswith("context")
    resp = make_app().test_client().post("/stream/glint", json={"module": "a.b", "phase": "dusk"})
    assert resp.get_json()["details"][0]["field"] == "phase"


def test_each_source_has_its_own_rate(make_app):
    app = make_app(publish_tokens=dict(PUBLISH), source_rate=2.0, source_burst=3)
    client = app.test_client()
    answers = [
        client.post("/stream/glint", json={"module": "rate.a"}, headers=bearer(PUBLISH["alpha"]))
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    refused = answers[-1]
    assert refused.headers["Retry-After"] == "1"
    assert refused.get_json() == {
        "error": "rate_limited",
        "retry_after": 1,
        "message": "this source may send 2 glints a second; try again in 1 s",
    }
    # another token is another source, with a bucket of its own
    other = client.post("/stream/glint", json={"module": "rate.b"}, headers=bearer(PUBLISH["beta"]))
    assert other.status_code == 201
    assert app.extensions["spiral"].store.seq_bounds()[1] == 4


def test_the_rate_is_on_by_default_only_beyond_a_local_open_hub(make_app):
    assert make_app().extensions["spiral.limiter"] is None
    limiter = make_app(publish_tokens=dict(PUBLISH)).extensions["spiral.limiter"]
    assert (limiter.rate, limiter.burst) == (200.0, 400.0)
    assert (
        make_app(publish_tokens=dict(PUBLISH), source_rate=0).extensions["spiral.limiter"] is None
    )


def test_a_bucket_refills_with_the_hubs_clock(make_app):
    app = make_app(publish_tokens=dict(PUBLISH), source_rate=10, source_burst=2)
    client, clock = app.test_client(), app.extensions["spiral"].clock

    def post() -> int:
        return post_glint(client, "refill.a", headers=bearer(PUBLISH["alpha"])).status_code

    assert [post(), post(), post()] == [201, 201, 429]
    clock.advance(0.15)  # one token back (and a half)
    assert [post(), post()] == [201, 429]
    clock.advance(60)  # a full bucket, never more
    assert [post(), post(), post()] == [201, 201, 429]


def test_a_source_limit_holds_across_hosts(tmp_path, make_app):
    """Two hubs joined by one Redis (two hosts, or two workers): one source shares one bucket."""
    redis_server = RedisProcess(tmp_path / "redis").start()
    try:
        settings = {
            "data_dir": str(tmp_path / "shared"),
            "redis_url": redis_server.url,
            "publish_tokens": dict(PUBLISH),
            "source_rate": 0.01,
            "source_burst": 5,
            "fake_clock": False,
        }
        hosts = [make_app(**settings).test_client(), make_app(**settings).test_client()]
        answers = [
            post_glint(hosts[n % 2], "shared.rate", headers=bearer(PUBLISH["alpha"])).status_code
            for n in range(12)
        ]
        assert answers.count(201) == 5 and answers[:5] == [201] * 5
        assert set(answers[5:]) == {429}
        # another source has its own bucket on both
        other = post_glint(hosts[1], "shared.rate", headers=bearer(PUBLISH["beta"]))
        assert other.status_code == 201
    finally:
        redis_server.stop()


def test_the_subscriber_cap_answers_503_with_retry_after(make_app):
    app = make_app(max_subscribers=2, max_subscribers_per_client=2)
    client = app.test_client()
    streams = [client.get("/stream", buffered=False) for _ in range(2)]
    try:
        assert [s.status_code for s in streams] == [200, 200]
        full = client.get("/stream", buffered=False)
        dash = client.get("/dashboard/stream", buffered=False)
        for resp in (full, dash):
            assert resp.status_code == 503
            assert 2 <= int(resp.headers["Retry-After"]) <= 8
            assert resp.get_json()["error"] == "too_many_listeners"
            assert resp.get_json()["retry_after"] == int(resp.headers["Retry-After"])
    finally:
        for s in streams:
            s.close()
    again = client.get("/stream", buffered=False)
    assert again.status_code == 200
    again.close()


def test_one_client_cannot_take_every_subscriber_slot(make_app):
    """Each client (a token's name, or the address of an anonymous one) may hold at most
    max_subscribers_per_client streams (by default half the cap) in this process; the others
    still get in."""
    app = make_app(max_subscribers=6, read_tokens=dict(READ), publish_tokens=dict(PUBLISH))
    greedy, other = app.test_client(), app.test_client()
    greedy.environ_base["REMOTE_ADDR"] = "192.0.2.1"
    held = [
        greedy.get("/stream", headers=bearer(READ["watcher"]), buffered=False) for _ in range(3)
    ]
    try:
        assert [s.status_code for s in held] == [200, 200, 200]
        for path in ("/stream", "/dashboard/stream"):
            refused = greedy.get(path, headers=bearer(READ["watcher"]), buffered=False)
            assert refused.status_code == 503
            body = refused.get_json()
            assert body["error"] == "too_many_streams_for_client"
            assert "watcher" in body["message"] and "3" in body["message"]
            assert body["retry_after"] == int(refused.headers["Retry-After"]) >= 1
        # the same address with another token is another client; so is another address
        mine = other.get("/stream", headers=bearer(PUBLISH["alpha"]), buffered=False)
        assert mine.status_code == 200
        mine.close()
    finally:
        held.pop().close()
    again = greedy.get("/stream", headers=bearer(READ["watcher"]), buffered=False)
    assert again.status_code == 200  # a slot given back is free again
    held.append(again)
    for s in held:
        s.close()
    assert app.extensions["spiral"].hub.local_listeners == 0
    # anonymous clients are told apart by address
    app = make_app(max_subscribers=4, max_subscribers_per_client=1)
    anonymous = app.test_client()
    anonymous.environ_base["REMOTE_ADDR"] = "192.0.2.2"
    first = anonymous.get("/stream", buffered=False)
    second = anonymous.get("/stream", buffered=False)
    assert (first.status_code, second.status_code) == (200, 503)
    elsewhere = app.test_client().get("/stream", buffered=False)
    assert elsewhere.status_code == 200
    for s in (first, second, elsewhere):
        s.close()


def test_a_refused_or_failed_stream_gives_its_slot_back(make_app):
    app = make_app(max_subscribers=4, max_subscribers_per_client=1)
    client = app.test_client()
    for _ in range(3):  # a stream refused by its own view (bad filter) holds no slot
        assert client.get("/stream?phase=dusk", buffered=False).status_code == 400
    ok = client.get("/stream", buffered=False)
    assert ok.status_code == 200
    ok.close()


@pytest.mark.parametrize(
    "path, method",
    [
        ("/", "GET"),
        ("/api/stats", "GET"),
        ("/stream/glint", "POST"),
        ("/healthz", "GET"),
        ("/static/css/spiral.css", "GET"),
        ("/no/such/page", "GET"),
        ("/auth/sign-in", "GET"),
        ("/api/openapi.json", "GET"),
    ],
)
def test_every_response_carries_the_security_headers(make_app, path, method):
    with (
        make_app()
        .test_client()
        .open(path, method=method, json={} if method == "POST" else None) as resp
    ):
        headers = resp.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        if resp.mimetype == "application/json":  # data: nothing in it may load, run or be framed
            assert (
                headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
            )
        else:
            assert headers["Content-Security-Policy"] == CSP
            assert headers["Referrer-Policy"] == "no-referrer"
            assert headers["X-Frame-Options"] == "DENY"


def test_the_policy_allows_only_the_apps_own_scripts():
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["script-src"] == "'self'"
    assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in CSP
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert directives["style-src-elem"] == "'self'"


def test_templates_hold_no_inline_script_or_handlers():
    """What the CSP would block: inline <script>, on* handler attributes, javascript: URLs, and
    htmx's hx-on:* (evaluated with Function(), which script-src 'self' forbids)."""
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text()
        for pattern in (
            r"<script(?![^>]*\bsrc=)[^>]*>",
            r"\son[a-z]+\s*=",
            r"javascript:",
            r"\bhx-on[:-]",
            r"\bhx-vals\s*=\s*['\"]\s*js:",
            r"hx-trigger\s*=\s*\"[^\"]*\[",
        ):
            for m in re.finditer(pattern, text):
                found.append(f"{path.relative_to(TEMPLATES)}: {m.group(0)!r}")
    assert not found


def test_websockets_and_streams_share_a_clients_slots_on_a_real_server(tmp_path):
    """gunicorn's gevent worker: a WebSocket holds its slot for its whole life and gives it back
    when it ends, as an SSE stream does when its reader leaves."""
    env = {"SPIRAL_MAX_SUBSCRIBERS_PER_CLIENT": "2", "SPIRAL_HEARTBEAT_SECONDS": "1"}
    server = ServerProcess(tmp_path / "server", env=env)
    server.start()
    ws_url = server.url.replace("http", "ws") + "/ws"
    try:
        first = websocket.create_connection(ws_url, timeout=5)
        sse = requests.get(server.url + "/stream", stream=True, timeout=5)
        assert sse.status_code == 200
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(ws_url, timeout=5)
        assert refused.value.status_code == 503
        assert requests.get(server.url + "/stream", stream=True, timeout=5).status_code == 503
        first.close()
        sse.close()
        deadline = time.monotonic() + 10
        while requests.get(server.url + "/api/stats", timeout=5).json()["listeners"]:
            assert time.monotonic() < deadline, "the slots were not given back"
            time.sleep(0.05)
        again = [websocket.create_connection(ws_url, timeout=5) for _ in range(2)]
        for ws in again:
            ws.close()
    finally:
        server.stop()

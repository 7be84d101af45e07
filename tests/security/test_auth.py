"""Tokens, sessions and CSRF: every protected route refuses without a token, with a wrong one and
with a revoked one; the dashboard's forms need the session's CSRF token; a server does not run
open on a public address unless told to."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import websocket  # websocket-client

from spiral_web import ExposureError, create_app
from spiral_web.cli import main as cli_main
from spiral_web.config import Config
from tests.support import ServerProcess

from .conftest import ADMIN, PUBLISH, READ, REVOKED, bearer, csrf_of, guarded_config, sign_in

ROOT = Path(__file__).resolve().parents[2]

# (method, path, what it needs). With read tokens configured, everything but PUBLIC needs at least
# a read token; these are the routes the issue names, and the sweep below catches any other.
READ_ROUTES = [
    ("GET", "/stream"),
    ("GET", "/dashboard/stream"),
    ("GET", "/api/glints"),
    ("GET", "/api/glints/some-id"),
    ("GET", "/api/glints/some-id/lineage"),
    ("GET", "/api/stats"),
    ("GET", "/api/breath"),
    ("GET", "/api/rituals"),
    ("GET", "/api/rituals/history"),
    ("GET", "/api/archive"),
    ("GET", "/dashboard/timeline"),
    ("GET", "/dashboard/glints?before=1"),
]
PUBLISH_ROUTES = [("POST", "/stream/glint"), ("POST", "/dashboard/emit")]
ADMIN_ROUTES = [
    ("POST", "/api/admin/phase"),
    ("POST", "/api/admin/climate"),
    ("POST", "/api/rituals/archival/invoke"),
    ("POST", "/api/rituals/archival/dry-run"),
]
DASHBOARD_ADMIN_FORMS = ["/dashboard/admin", "/dashboard/rituals/archival/invoke"]

BODIES = {
    "/stream/glint": {"json": {"module": "auth.test"}},
    "/api/admin/phase": {"json": {"phase": "hold", "seconds": 60}},
    "/api/admin/climate": {"json": {"climate": "unsettled", "seconds": 60}},
    "/dashboard/emit": {"data": {"module": "auth.test", "context": "{}"}},
    "/dashboard/admin": {"data": {"do": "set-climate", "climate": "unsettled", "minutes": "1"}},
}
PUBLIC = {
    "/static/css/spiral.css",
    "/auth/sign-in",
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/openapi.json",
}
# /ws: a plain GET never reaches it (400); its handshake is tested below. /_test/clock exists only
# with the test-only fake clock.
NOT_HTTP = {"ws.websocket", "ops.move_clock"}

CREDENTIALS = [
    pytest.param({}, (401,), id="no-token"),
    pytest.param(bearer("not-a-token-0123456789"), (403,), id="wrong-token"),
    pytest.param(bearer(REVOKED["old-reader"]), (403,), id="revoked-read-token"),
    pytest.param(bearer(REVOKED["gamma"]), (403,), id="revoked-publish-token"),
]


def _call(client, method: str, path: str, headers: dict[str, str] | None = None, **extra):
    kwargs = {**BODIES.get(path.split("?")[0], {}), **extra}
    headers = {**(headers or {}), "X-CSRF-Token": csrf_of(client)}
    return client.open(path, method=method, headers=headers, buffered=False, **kwargs)


def _refused(resp, statuses) -> bool:
    try:
        if resp.status_code == 303:  # a person at the dashboard is sent to sign in instead
            return "/auth/sign-in" in resp.headers["Location"] and 401 in statuses
        return resp.status_code in statuses
    finally:
        resp.close()


# -- every protected route ------------------------------------------------------------------------


@pytest.mark.parametrize("headers, statuses", CREDENTIALS)
@pytest.mark.parametrize(
    "method, path",
    READ_ROUTES
    + PUBLISH_ROUTES
    + ADMIN_ROUTES
    + [("GET", "/"), *(("POST", p) for p in DASHBOARD_ADMIN_FORMS)],
)
def test_protected_routes_refuse(guarded, method, path, headers, statuses):
    client = guarded.test_client()
    resp = _call(client, method, path, headers)
    body = resp.get_data() if resp.status_code != 303 else b""
    assert _refused(resp, statuses), (resp.status_code, body[:200])
    if "revoked" in str(headers) and resp.status_code == 403 and body.startswith(b"{"):
        assert json.loads(body)["error"] in ("token_revoked", "forbidden")
    assert guarded.extensions["spiral"].store.seq_bounds()[1] == 0  # nothing was stored


def test_no_route_is_left_open(guarded):
    """A sweep over the app's url map: any route not public refuses an anonymous caller (so a route
    added later is covered without being listed here)."""
    client = guarded.test_client()
    open_routes = []
    for rule in guarded.url_map.iter_rules():
        path = (
            rule.rule.replace("<path:filename>", "css/spiral.css")
            .replace("<glint_id>", "some-id")
            .replace("<name>", "archival")
        )
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if path in PUBLIC or rule.endpoint in NOT_HTTP or rule.endpoint.startswith("auth."):
                continue
            resp = _call(client, method, path)
            if not _refused(resp, (401, 403)):
                open_routes.append(f"{method} {path} -> {resp.status_code}")
    assert not open_routes


@pytest.mark.parametrize("path", sorted(PUBLIC))
def test_public_routes_stay_public(guarded, path):
    with guarded.test_client().get(path) as resp:
        assert resp.status_code == 200


def test_valid_tokens_pass_and_name_the_source(guarded):
    client = guarded.test_client()
    resp = client.post(
        "/stream/glint", json={"module": "auth.ok"}, headers=bearer(PUBLISH["alpha"])
    )
    assert resp.status_code == 201
    gid = resp.get_json()["id"]
    glint = client.get(f"/api/glints/{gid}", headers=bearer(READ["watcher"])).get_json()
    assert glint["source"] == "alpha"  # the token's name, not the client's address
    by_admin = client.post("/stream/glint", json={"module": "auth.ok"}, headers=bearer(ADMIN))
    assert by_admin.status_code == 201
    assert (
        client.get(f"/api/glints/{by_admin.get_json()['id']}", headers=bearer(ADMIN)).get_json()[
            "source"
        ]
        == "admin"
    )
    ok = client.post(
        "/api/admin/climate", json={"climate": "unsettled", "seconds": 60}, headers=bearer(ADMIN)
    )
    assert ok.status_code == 200 and ok.get_json()["breath"]["climate"] == "unsettled"


@pytest.mark.parametrize(
    "token, path, status",
    [
        pytest.param(READ["watcher"], "/stream/glint", 403, id="read-token-cannot-publish"),
        pytest.param(PUBLISH["alpha"], "/api/admin/phase", 403, id="publish-token-is-not-admin"),
        pytest.param(READ["watcher"], "/api/admin/climate", 403, id="read-token-is-not-admin"),
        pytest.param(
            PUBLISH["beta"], "/api/rituals/archival/invoke", 403, id="publish-cannot-invoke"
        ),
    ],
)
def test_a_token_does_only_what_its_kind_allows(guarded, token, path, status):
    resp = guarded.test_client().post(path, headers=bearer(token), **BODIES.get(path, {}))
    assert resp.status_code == status
    assert resp.get_json()["error"] == "forbidden"


def test_admin_actions_are_off_when_tokens_exist_but_no_admin_token(make_app):
    app = make_app(publish_tokens=dict(PUBLISH))
    client = app.test_client()
    resp = client.post("/api/admin/phase", json={"phase": "hold"}, headers=bearer(PUBLISH["alpha"]))
    assert resp.status_code == 403 and "no admin token" in resp.get_json()["message"]
    assert client.post("/api/admin/phase", json={"phase": "hold"}).status_code == 403
    # reading stays open (no read tokens), publishing needs a publish token
    assert client.get("/api/glints").status_code == 200
    assert client.post("/stream/glint", json={"module": "a.b"}).status_code == 401


def test_revoking_the_admin_token_by_name(make_app):
    app = make_app(admin_token=ADMIN, revoked_tokens=["admin"])
    resp = app.test_client().post("/api/admin/phase", json={"phase": "hold"}, headers=bearer(ADMIN))
    assert resp.status_code == 403


def test_a_local_hub_with_no_tokens_is_open(make_app):
    client = make_app().test_client()
    assert client.post("/stream/glint", json={"module": "a.b"}).status_code == 201
    assert client.post("/api/admin/climate", json={"climate": "unsettled"}).status_code == 200


def test_query_tokens_only_on_stream_urls(guarded):
    client = guarded.test_client()
    resp = client.get(f"/stream?token={READ['watcher']}", buffered=False)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    resp.close()
    assert client.get(f"/api/glints?token={READ['watcher']}").status_code == 401


def test_refusals_feed_the_climate_and_never_echo_the_token(guarded, caplog):
    client = guarded.test_client()
    secret = "wrong-secret-never-echoed-0123456789"
    with caplog.at_level(logging.DEBUG):
        for _ in range(12):
            resp = client.post("/stream/glint", json={"module": "a.b"}, headers=bearer(secret))
            assert resp.status_code == 403
            assert secret.encode() not in resp.get_data()
        resp = client.post("/stream/glint", json={"module": "a.b"})
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert secret not in caplog.text and PUBLISH["alpha"] not in caplog.text
    assert guarded.extensions["spiral"].breath.state().climate in ("unsettled", "suspicious")


# -- sign-in, sessions ----------------------------------------------------------------------------


def test_sign_in_gives_a_signed_httponly_strict_cookie_and_rotates_the_session(guarded):
    client = guarded.test_client()
    before = csrf_of(client)
    resp = client.post(
        "/auth/sign-in", data={"token": ADMIN, "csrf_token": before, "next": "/?module=a.*"}
    )
    assert resp.status_code == 303 and resp.headers["Location"] == "/?module=a.*"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Expires=" in cookie
    assert ADMIN not in cookie  # the session names the token; it never holds the secret
    after = csrf_of(client, "/")
    assert after != before  # a new session on sign-in: a planted session is of no use
    page = client.get("/").text
    assert "Signed in as admin" in page
    # the session is enough for admin actions (with the CSRF token, as htmx sends it)
    ok = client.post(
        "/api/admin/climate",
        json={"climate": "unsettled", "seconds": 60},
        headers={"X-CSRF-Token": after},
    )
    assert ok.status_code == 200
    form = client.post(
        "/dashboard/emit", data={"module": "by.session", "context": "{}", "csrf_token": after}
    )
    assert form.status_code == 303
    stored = client.get("/api/glints").get_json()["glints"][0]
    assert stored["module"] == "by.session" and stored["source"] == "admin"


def test_a_read_session_may_watch_but_not_emit(guarded):
    client = guarded.test_client()
    assert sign_in(client, READ["watcher"]).status_code == 303
    assert client.get("/").status_code == 200
    token = csrf_of(client, "/")
    resp = client.post("/dashboard/emit", data={"module": "a.b", "csrf_token": token})
    assert resp.status_code == 403


@pytest.mark.parametrize(
    "token, status",
    [
        pytest.param("", 401, id="empty"),
        pytest.param("nope-0123456789abcdef", 403, id="wrong"),
        pytest.param(REVOKED["gamma"], 403, id="revoked"),
    ],
)
def test_sign_in_refuses_bad_tokens(guarded, token, status):
    client = guarded.test_client()
    resp = client.post("/auth/sign-in", data={"token": token, "csrf_token": csrf_of(client)})
    assert resp.status_code == status
    assert 'id="sign-in-error"' in resp.text
    assert "Signed in" not in resp.text
    assert client.get("/").status_code == 303  # still signed out: sent to sign in


@pytest.mark.parametrize(
    "next_url",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "/\x00x",
    ],
)
def test_sign_in_only_returns_to_this_site(guarded, next_url):
    client = guarded.test_client()
    resp = client.post(
        "/auth/sign-in", data={"token": ADMIN, "csrf_token": csrf_of(client), "next": next_url}
    )
    assert resp.status_code == 303 and resp.headers["Location"] == "/"


def test_sign_out_ends_the_session(guarded):
    client = guarded.test_client()
    sign_in(client, PUBLISH["alpha"])
    token = csrf_of(client, "/")
    assert client.post("/auth/sign-out", data={}).status_code == 403  # CSRF: no token
    assert client.post("/auth/sign-out", data={"csrf_token": token}).status_code == 303
    assert client.get("/").status_code == 303


def test_removing_a_token_ends_its_sessions(tmp_path):
    config = guarded_config(tmp_path)
    first = create_app(config)
    client = first.test_client()
    sign_in(client, PUBLISH["alpha"])
    assert client.get("/api/stats").status_code == 200
    first.extensions["spiral"].close()
    # the same data folder (so the same session key) without alpha: its cookie no longer counts
    config["publish_tokens"] = {"beta": PUBLISH["beta"]}
    second = create_app(config)
    try:
        cookie = client.get_cookie("spiral_session")
        assert cookie is not None
        other = second.test_client()
        other.set_cookie("spiral_session", cookie.value)
        assert other.get("/api/stats").status_code == 401
    finally:
        second.extensions["spiral"].close()


# -- CSRF and cross-origin ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, data",
    [
        pytest.param("/dashboard/emit", {"module": "csrf.test", "context": "{}"}, id="emit-form"),
        pytest.param(
            "/dashboard/admin", {"do": "set-climate", "climate": "unsettled"}, id="breath-form"
        ),
        pytest.param("/dashboard/rituals/archival/invoke", {}, id="ritual-form"),
        pytest.param("/auth/sign-in", {"token": ADMIN}, id="sign-in"),
    ],
)
@pytest.mark.parametrize("given", [None, "wrong-csrf-token-0123456789abcdef0123456"])
def test_forms_need_the_csrf_token(make_app, path, data, given):
    client = make_app().test_client()  # an open local hub: CSRF is what stops another site
    csrf_of(client)  # the session has a token; the post does not carry it (or a wrong one)
    if given:
        data = {**data, "csrf_token": given}
    resp = client.post(path, data=data)
    assert resp.status_code == 403
    assert client.get("/api/stats").get_json()["total"] == 0
    assert client.get("/api/breath").get_json()["climate"] == "clear"


def test_the_csrf_token_in_the_field_or_the_header_passes(make_app):
    client = make_app().test_client()
    token = csrf_of(client, "/")
    assert (
        client.post("/dashboard/emit", data={"module": "a.b", "csrf_token": token}).status_code
        == 303
    )
    assert (
        client.post(
            "/dashboard/emit", data={"module": "a.b"}, headers={"X-CSRF-Token": token}
        ).status_code
        == 303
    )
    assert client.get("/api/stats").get_json()["total"] == 2


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="fetch-metadata-cross-site"),
        pytest.param({"Sec-Fetch-Site": "same-site"}, id="fetch-metadata-same-site"),
        pytest.param({"Origin": "http://evil.example"}, id="foreign-origin"),
        pytest.param({"Origin": "null"}, id="opaque-origin"),
    ],
)
def test_state_changes_from_other_origins_are_refused(make_app, headers):
    client = make_app().test_client()
    token = csrf_of(client, "/")
    form = client.post(
        "/dashboard/emit", data={"module": "a.b", "csrf_token": token}, headers=headers
    )
    assert form.status_code == 403 and form.get_json()["error"] == "cross_origin"
    empty = client.post("/api/rituals/caesura/invoke", headers=headers)  # a body-less "simple" POST
    assert empty.status_code == 403
    assert client.get("/api/stats").get_json()["total"] == 0


def test_json_api_calls_with_a_bearer_token_need_no_csrf(guarded):
    client = guarded.test_client()
    csrf_of(client)
    resp = client.post("/stream/glint", json={"module": "a.b"}, headers=bearer(PUBLISH["beta"]))
    assert resp.status_code == 201
    same_origin = client.post(
        "/api/admin/phase",
        json={"phase": "hold"},
        headers={**bearer(ADMIN), "Sec-Fetch-Site": "same-origin"},
    )
    assert same_origin.status_code == 200


def test_json_only_endpoints_still_answer_415_to_a_form(make_app):
    client = make_app().test_client()
    resp = client.post("/stream/glint", data={"module": "a.b"})
    assert resp.status_code == 415


# -- the WebSocket, against a real server ---------------------------------------------------------


@pytest.fixture(scope="module")
def ws_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("ws-auth")
    env = {
        "SPIRAL_ADMIN_TOKEN": ADMIN,
        "SPIRAL_PUBLISH_TOKENS": ",".join(
            f"{n}:{s}" for n, s in {**PUBLISH, **{"gamma": REVOKED["gamma"]}}.items()
        ),
        "SPIRAL_READ_TOKENS": ",".join(
            f"{n}:{s}" for n, s in {**READ, "old-reader": REVOKED["old-reader"]}.items()
        ),
        "SPIRAL_REVOKED_TOKENS": "gamma,old-reader",
        "SPIRAL_SOURCE_RATE": "0.5",  # per token name: alpha's bucket is the rate test's alone
        "SPIRAL_SOURCE_BURST": "3",
    }
    server = ServerProcess(data / "server", env=env).start()
    yield server
    server.kill()


def _ws(server, query: str = "", **kwargs) -> websocket.WebSocket:
    return websocket.create_connection(
        server.url.replace("http", "ws") + "/ws" + query, timeout=5, **kwargs
    )


def _answer(ws, kind: str) -> dict:
    for _ in range(20):
        frame = json.loads(ws.recv())
        if frame.get("type") == kind:
            return frame
    raise AssertionError(f"no {kind} frame")


@pytest.mark.parametrize(
    "query, header, status",
    [
        pytest.param("", [], 401, id="no-token"),
        pytest.param("?token=wrong-token-0123456789abcdef", [], 403, id="wrong-token"),
        pytest.param(
            "", [f"Authorization: Bearer {REVOKED['old-reader']}"], 403, id="revoked-token"
        ),
        pytest.param(
            f"?token={READ['watcher']}",
            ["Origin: http://evil.example"],
            200,
            id="foreign-page-with-token",
        ),
    ],
)
def test_websocket_handshake_needs_a_read_token(ws_server, query, header, status):
    if status == 200:
        ws = _ws(ws_server, query, header=header)
        ws.close()
        return
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        _ws(ws_server, query, header=header)
    assert info.value.status_code == status


def test_websocket_emit_needs_a_publish_token(ws_server):
    reader = _ws(ws_server, f"?token={READ['watcher']}")
    try:
        reader.send(json.dumps({"type": "emit", "ref": "r1", "glint": {"module": "ws.auth"}}))
        refused = _answer(reader, "error")
        assert refused["ref"] == "r1" and refused["error"] == "forbidden"
    finally:
        reader.close()
    publisher = _ws(ws_server, header=[f"Authorization: Bearer {PUBLISH['beta']}"])
    try:
        publisher.send(json.dumps({"type": "emit", "ref": "r2", "glint": {"module": "ws.auth"}}))
        answer = _answer(publisher, "emit_result")
        assert answer["status"] == "glint_broadcast"
    finally:
        publisher.close()
    import requests

    glint = requests.get(
        f"{ws_server.url}/api/glints/{answer['id']}", headers=bearer(ADMIN), timeout=5
    ).json()
    assert glint["source"] == "beta"


# -- no running open on a public address ----------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_create_app_refuses_a_public_address_without_tokens(tmp_path, host):
    with pytest.raises(ExposureError) as info:
        create_app({"data_dir": str(tmp_path), "host": host, "start_ticker": False})
    message = str(info.value)
    for needle in (
        "SPIRAL_PUBLISH_TOKENS",
        "[tokens.publish]",
        "SPIRAL_ADMIN_TOKEN",
        "--open",
        "SPIRAL_OPEN=1",
    ):
        assert needle in message
    assert not (tmp_path / "spiral.sqlite3").exists()  # refused before anything was built


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({"open": True}, id="open-on-purpose"),
        pytest.param({"publish_tokens": {"alpha": PUBLISH["alpha"]}}, id="with-tokens"),
        pytest.param({"host": "localhost"}, id="loopback-name"),
        pytest.param({"host": "::1"}, id="loopback-v6"),
    ],
)
def test_create_app_starts_when_protected_or_told_or_local(make_app, config):
    config.setdefault("host", "0.0.0.0")
    make_app(fake_clock=False, **config)


def test_spiral_open_in_the_environment_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIRAL_OPEN", "1")
    app = create_app({"data_dir": str(tmp_path), "host": "0.0.0.0", "start_ticker": False})
    app.extensions["spiral"].close()


def test_gunicorn_wsgi_app_refuses_too(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "SPIRAL_HOST": "0.0.0.0",
        "SPIRAL_DATA_DIR": str(tmp_path),
        "SPIRAL_START_TICKER": "0",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "ExposureError" in proc.stderr and "SPIRAL_PUBLISH_TOKENS" in proc.stderr


def test_cli_serve_refuses_and_says_how(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SPIRAL_OPEN", raising=False)
    assert cli_main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0" in err
    assert "SPIRAL_PUBLISH_TOKENS" in err and "--open" in err and "SPIRAL_OPEN=1" in err


@pytest.mark.parametrize(
    "args, env",
    [
        pytest.param(["--open"], {}, id="flag"),
        pytest.param([], {"SPIRAL_OPEN": "1"}, id="environment"),
        pytest.param([], {"SPIRAL_PUBLISH_TOKENS": "alpha:" + PUBLISH["alpha"]}, id="tokens"),
    ],
)
def test_cli_serve_starts_when_told(tmp_path, monkeypatch, args, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    started = {}
    monkeypatch.setattr(
        "spiral_web.server.serve", lambda host, port, **kw: started.update(host=host, **kw)
    )
    assert cli_main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path), *args]) == 0
    assert started["host"] == "0.0.0.0"
    if args:
        assert started["overrides"]["open"] is True  # the workers' create_app must agree


# -- configuration --------------------------------------------------------------------------------


def test_tokens_from_toml_and_environment_merge(tmp_path):
    toml = tmp_path / "spiral.toml"
    toml.write_text(
        f'[tokens]\nrevoked = ["beta"]\nadmin = "{ADMIN}"\n'
        f'[tokens.publish]\nalpha = "{PUBLISH["alpha"]}"\n'
        f'[tokens.read]\nwatcher = "{READ["watcher"]}"\n'
    )
    config = Config.load(
        {"config_file": str(toml)}, environ={"SPIRAL_PUBLISH_TOKENS": f"beta:{PUBLISH['beta']}"}
    )
    assert config.publish_tokens == PUBLISH
    assert config.read_tokens == READ and config.admin_token == ADMIN
    assert config.revoked_tokens == ["beta"]
    text = repr(config)
    assert all(secret not in text for secret in [ADMIN, *PUBLISH.values(), *READ.values()])


@pytest.mark.parametrize(
    "environ, problem",
    [
        pytest.param({"SPIRAL_PUBLISH_TOKENS": "alpha"}, "name:secret", id="no-secret"),
        pytest.param({"SPIRAL_PUBLISH_TOKENS": "alpha:short"}, "at least 16", id="short-secret"),
        pytest.param(
            {"SPIRAL_PUBLISH_TOKENS": "9lives:0123456789abcdefgh"}, "token name", id="bad-name"
        ),
        pytest.param(
            {"SPIRAL_PUBLISH_TOKENS": "admin:0123456789abcdefgh"}, "not 'admin'", id="reserved"
        ),
        pytest.param(
            {
                "SPIRAL_PUBLISH_TOKENS": "a:0123456789abcdefgh",
                "SPIRAL_READ_TOKENS": "b:0123456789abcdefgh",
            },
            "own",
            id="shared-secret",
        ),
    ],
)
def test_bad_token_configuration_is_a_clear_error(environ, problem):
    with pytest.raises(ValueError) as info:
        Config.load({}, environ=environ)
    assert problem in str(info.value)
    assert "0123456789abcdefgh" not in str(info.value)


def test_websocket_emit_has_the_same_rate_limit(ws_server):
    ws = _ws(ws_server, header=[f"Authorization: Bearer {PUBLISH['alpha']}"])
    try:
        answers = []
        for n in range(4):
            ws.send(json.dumps({"type": "emit", "ref": n, "glint": {"module": "ws.rate"}}))
            answers.append(_answer(ws, "error" if n == 3 else "emit_result"))
    finally:
        ws.close()
    assert [a["type"] for a in answers] == ["emit_result"] * 3 + ["error"]
    assert answers[-1]["error"] == "rate_limited" and answers[-1]["retry_after"] >= 1

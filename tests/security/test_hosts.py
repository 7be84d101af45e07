"""DNS rebinding (issue 10, item 3): a page at `rebind.evil.example`, whose name the attacker points
at 127.0.0.1, is same-origin with itself, so the browser lets it send anything; only the Host header
gives it away. Spiral answers only requests naming a host it is told about (SPIRAL_ALLOWED_HOSTS),
by default the loopback names, and refuses others with `400 host_not_allowed` before anything
else runs."""

from __future__ import annotations

import socket

import pytest

from spiral_web.config import Config, ConfigError

from .conftest import PUBLISH

REBIND = "rebind.evil.example"


def _request(client, method: str, path: str, host: str, **kwargs):
    return client.open(path, method=method, headers={"Host": host}, **kwargs)


def test_a_rebound_name_is_refused_before_anything_runs(make_app):
    app = make_app()
    client = app.test_client()
    hub = app.extensions["spiral"]
    before = hub.breath.state()
    same_origin = {"Origin": f"http://{REBIND}:5056", "Sec-Fetch-Site": "same-origin"}
    for method, path, kwargs in [
        ("GET", "/healthz", {}),
        ("GET", "/api/glints", {}),
        ("GET", "/", {}),
        ("POST", "/stream/glint", {"json": {"module": "rebind.test"}}),
        ("POST", "/api/admin/phase", {"json": {"phase": "hold", "seconds": 60}}),
        ("POST", "/api/admin/climate", {"json": {"climate": "suspicious"}}),
    ]:
        resp = client.open(
            path, method=method, headers={"Host": f"{REBIND}:5056", **same_origin}, **kwargs
        )
        assert resp.status_code == 400, (path, resp.status_code)
        body = resp.get_json()
        assert body["error"] == "host_not_allowed"
        assert REBIND in body["message"] and "SPIRAL_ALLOWED_HOSTS" in body["message"]
    assert hub.store.seq_bounds()[1] == 0
    after = hub.breath.state()
    assert (after.phase, after.phase_reason, after.climate) == (
        before.phase,
        before.phase_reason,
        before.climate,
    )


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:5056", "LOCALHOST:80", "127.0.0.1", "127.0.0.1:5056", "[::1]:5056"],
)
def test_the_loopback_names_are_allowed_by_default(make_app, host):
    resp = make_app().test_client().get("/healthz", headers={"Host": host})
    assert resp.status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        REBIND,
        "localhost.evil.example",
        "evil.localhost",
        "127.0.0.1.nip.io",
        "localhost@evil.example",
        "spiral",
        "",
        "bad host",
        "[::1",
    ],
)
def test_other_names_are_refused_by_default(make_app, host):
    resp = make_app().test_client().get("/healthz", headers={"Host": host})
    assert resp.status_code == 400 and resp.get_json()["error"] == "host_not_allowed"


def test_configured_names_and_subdomains(make_app):
    client = make_app(allowed_hosts=["spiral.example.org", ".hub.example.net"]).test_client()
    for host in (
        "spiral.example.org",
        "Spiral.Example.Org:443",
        "spiral.example.org.",
        "hub.example.net",
        "a.b.hub.example.net:8443",
        "localhost",
    ):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    for host in (REBIND, "example.org", "hub.example.net.evil.example", "xhub.example.net"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 400, host


def test_a_star_allows_any_host_when_told(make_app):
    client = make_app(allowed_hosts=["*"]).test_client()
    assert client.get("/healthz", headers={"Host": REBIND}).status_code == 200


def test_beyond_loopback_addresses_pass_and_names_must_be_configured(make_app):
    """A server on 0.0.0.0 is reached by its address (a rebinding page cannot send an address as
    its Host: its own origin is a name); a name must be listed."""
    client = make_app(host="0.0.0.0", publish_tokens=dict(PUBLISH), fake_clock=False).test_client()
    for host in ("192.0.2.10:5056", "[2001:db8::1]:5056", "localhost"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    resp = client.get("/healthz", headers={"Host": "spiral.example.org"})
    assert resp.status_code == 400 and "SPIRAL_ALLOWED_HOSTS" in resp.get_json()["message"]


def test_the_setting_from_the_environment(tmp_path):
    env = {"SPIRAL_ALLOWED_HOSTS": " spiral.example.org, .hub.example.net ,[::1]"}
    config = Config.load({"data_dir": str(tmp_path)}, environ=env)
    assert config.allowed_hosts == ["spiral.example.org", ".hub.example.net", "[::1]"]


@pytest.mark.parametrize(
    "value", ["http://spiral.example.org", "spiral.example.org:443", "a b", "spiral/x", "*x", ".."]
)
def test_a_bad_entry_is_a_clear_configuration_error(tmp_path, value):
    with pytest.raises(ConfigError) as refused:
        Config.load({"data_dir": str(tmp_path)}, environ={"SPIRAL_ALLOWED_HOSTS": value})
    assert "SPIRAL_ALLOWED_HOSTS" in str(refused.value)


def test_a_real_server_refuses_a_rebound_name(server):
    """gunicorn hands the header through untouched; the answer is the same JSON."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            f"POST /api/admin/phase HTTP/1.1\r\nHost: {REBIND}:{server.port}\r\n"
            f"Origin: http://{REBIND}:{server.port}\r\nContent-Type: application/json\r\n"
            'Content-Length: 17\r\nConnection: close\r\n\r\n{"phase": "hold"}'.encode()
        )
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b'"error":"host_not_allowed"' in answer

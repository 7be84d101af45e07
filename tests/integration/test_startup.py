"""A server bound beyond loopback with no publish tokens does not serve, however it was started:
`spiral serve`, gunicorn with or without gunicorn.conf.py, a bind given by -b or GUNICORN_CMD_ARGS,
--preload, or Flask's development server. With --open, SPIRAL_OPEN=1 or tokens it serves.

These start real servers listening on 0.0.0.0; every request goes to 127.0.0.1."""

from __future__ import annotations

import os
import runpy
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from spiral_web import ExposureError, create_app
from spiral_web.cli import main as cli_main
from spiral_web.config import Config
from spiral_web.server import SpiralServer, gunicorn_settings, post_worker_init
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
PUBLISH = "sensor-secret-0123456789abcdef"
GLINT = {"module": "startup.test"}
CLIMATE = {"climate": "unsettled", "seconds": 60}


class Started:
    """One server command, run until it stops by itself or answers on 127.0.0.1."""

    def __init__(self, tmp_path: Path, command: list[str], env: dict[str, str], cwd: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        tmp_path.mkdir()
        self.log_path = tmp_path / "server.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SPIRAL_", "GUNICORN_"))}
        base.update(SPIRAL_DATA_DIR=str(tmp_path / "data"), SPIRAL_START_TICKER="0")
        if cwd != ROOT:  # as a user would run it from elsewhere: no ./gunicorn.conf.py there
            base["PYTHONPATH"] = str(ROOT)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *(part.format(port=self.port) for part in command)],
                env={**base, **{k: v.format(port=self.port) for k, v in env.items()}},
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def outcome(self, timeout: float = 60.0) -> requests.Response | int:
        """The first answer to GET /readyz, or the exit status if the server stopped first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.proc.returncode
            try:
                return requests.get(self.url + "/readyz", timeout=2)
            except requests.RequestException:  # not listening yet, or no worker behind it
                time.sleep(0.1)
        raise AssertionError(f"neither served nor stopped within {timeout} s:\n{self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture
def start(tmp_path):
    started: list[Started] = []

    def run(command: list[str], env: dict[str, str] | None = None, elsewhere: bool = False):
        cwd = tmp_path if elsewhere else ROOT
        server = Started(tmp_path / f"run{len(started)}", command, env or {}, cwd)
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


GUNICORN_CONF = ["gunicorn", "-c", "gunicorn.conf.py"]
BIND = ["-b", "0.0.0.0:{port}"]

STOPS = [
    pytest.param(
        [*GUNICORN_CONF, *BIND, "wsgi:app"], {}, False, id="gunicorn.conf.py and -b 0.0.0.0"
    ),
    # From the repository, gunicorn reads ./gunicorn.conf.py by itself; from elsewhere it does
    # not, and each worker's create_app finds the socket it inherited.
    pytest.param(["gunicorn", "-k", "gevent", *BIND, "wsgi:app"], {}, False, id="-k gevent -b"),
    pytest.param(
        ["gunicorn", "-k", "gevent", *BIND, "wsgi:app"], {}, True, id="-k gevent -b, elsewhere"
    ),
    pytest.param(
        [*GUNICORN_CONF, "wsgi:app"],
        {"GUNICORN_CMD_ARGS": "--bind 0.0.0.0:{port}"},
        False,
        id="GUNICORN_CMD_ARGS",
    ),
    pytest.param(
        ["gunicorn", "wsgi:app"],
        {"GUNICORN_CMD_ARGS": "--bind 0.0.0.0:{port} -k gevent"},
        True,
        id="GUNICORN_CMD_ARGS, elsewhere",
    ),
]


@pytest.mark.parametrize("command, env, elsewhere", STOPS)
def test_gunicorn_bound_beyond_loopback_stops_before_serving(start, command, env, elsewhere):
    server = start(command, env, elsewhere)
    outcome = server.outcome()
    assert not isinstance(outcome, requests.Response), f"it served:\n{server.log}"
    assert outcome != 0
    assert f"refusing to listen on 0.0.0.0:{server.port}" in server.log
    assert "SPIRAL_PUBLISH_TOKENS" in server.log and "SPIRAL_OPEN=1" in server.log


REFUSES = [
    # Both load the app before they bind, so the check runs again before the first request.
    pytest.param(["gunicorn", "--preload", *BIND, "wsgi:app"], True, id="gunicorn --preload"),
    pytest.param(
        ["flask", "--app", "wsgi", "run", "--host", "0.0.0.0", "--port", "{port}"],
        False,
        id="flask run",
    ),
]


@pytest.mark.parametrize("command, elsewhere", REFUSES)
def test_a_server_that_binds_after_loading_the_app_refuses_every_request(start, command, elsewhere):
    server = start(command, {}, elsewhere)
    first = server.outcome()
    assert isinstance(first, requests.Response), server.log
    publish = requests.post(server.url + "/stream/glint", json=GLINT, timeout=10)
    admin = requests.post(server.url + "/api/admin/climate", json=CLIMATE, timeout=10)
    for answer in (first, publish, admin):
        assert answer.status_code == 503
        assert answer.json()["error"] == "exposed"
        assert f"refusing to listen on 0.0.0.0:{server.port}" in answer.json()["message"]
    assert "refusing to listen on 0.0.0.0" in server.log  # and the operator is told


SERVES = [
    pytest.param([*GUNICORN_CONF, *BIND, "wsgi:app"], {"SPIRAL_OPEN": "1"}, False, id="open"),
    pytest.param(
        ["gunicorn", "-k", "gevent", *BIND, "wsgi:app"],
        {"SPIRAL_PUBLISH_TOKENS": f"sensor:{PUBLISH}"},
        True,
        id="tokens",
    ),
    pytest.param(
        ["spiral_web.cli", "serve", "--host", "0.0.0.0", "--port", "{port}", "--open"],
        {},
        False,
        id="spiral serve --open",
    ),
    pytest.param(
        ["flask", "--app", "wsgi", "run", "--host", "0.0.0.0", "--port", "{port}"],
        {"SPIRAL_OPEN": "1"},
        False,
        id="flask run, open",
    ),
]


@pytest.mark.parametrize("command, env, elsewhere", SERVES)
def test_open_on_purpose_or_with_tokens_it_serves(start, command, env, elsewhere):
    server = start(command, env, elsewhere)
    ready = server.outcome()
    assert isinstance(ready, requests.Response) and ready.status_code == 200, server.log
    anonymous = requests.post(server.url + "/stream/glint", json=GLINT, timeout=10)
    if "SPIRAL_PUBLISH_TOKENS" in env:
        assert anonymous.status_code == 401
        signed = requests.post(
            server.url + "/stream/glint",
            json=GLINT,
            headers={"Authorization": f"Bearer {PUBLISH}"},
            timeout=10,
        )
        assert signed.status_code == 201, signed.text
    else:
        assert anonymous.status_code == 201, anonymous.text


def test_a_bad_setting_stops_gunicorn_with_the_configuration_message(start):
    server = start([*GUNICORN_CONF, "wsgi:app"], {"SPIRAL_HEARTBEAT_SECONDS": "soon"})
    assert server.outcome() == 2
    assert "SPIRAL_HEARTBEAT_SECONDS: input should be a valid number" in server.log


# -- one source for gunicorn's settings -----------------------------------------------------------


@pytest.fixture
def spiral_env(monkeypatch):
    for name in [n for n in os.environ if n.startswith(("SPIRAL_", "GUNICORN_"))]:
        monkeypatch.delenv(name)
    for name, value in {
        "SPIRAL_HOST": "::1",
        "SPIRAL_PORT": "6001",
        "SPIRAL_WORKERS": "3",
        "SPIRAL_LOG_LEVEL": "warning",
    }.items():
        monkeypatch.setenv(name, value)


def _plain(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if not callable(v)}


def test_gunicorn_conf_and_spiral_serve_give_gunicorn_the_same_settings(spiral_env, monkeypatch):
    expected = gunicorn_settings(Config.load())
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert _plain({k: conf[k] for k in expected}) == _plain(expected)
    assert conf["post_worker_init"] is post_worker_init and callable(conf["when_ready"])
    assert (conf["bind"], conf["workers"], conf["loglevel"]) == (["[::1]:6001"], 3, "warning")
    assert conf["worker_class"] == "gevent" and conf["preload_app"] is False

    given = {}
    monkeypatch.setattr(SpiralServer, "run", lambda server: given.update(server.options))
    assert cli_main(["serve"]) == 0  # gunicorn checked every setting in SpiralServer.load_config
    assert _plain(given) == _plain(expected)
    assert given["post_worker_init"] is post_worker_init and callable(given["when_ready"])


# -- in this process: what create_app sees of the sockets it will be served on -------------------


@pytest.fixture
def public_listener():
    """A socket listening on every interface, as a server's would be (nothing connects to it)."""
    with socket.create_server(("0.0.0.0", 0)) as sock:
        yield sock.getsockname()[1]


def _build(tmp_path, **config):
    return create_app({"data_dir": str(tmp_path), "start_ticker": False, **config})


def test_create_app_refuses_when_its_process_listens_beyond_loopback(tmp_path, public_listener):
    with pytest.raises(ExposureError) as info:
        _build(tmp_path)  # host is 127.0.0.1: the socket says otherwise
    assert f"0.0.0.0:{public_listener}" in str(info.value)


def test_the_default_rate_limit_follows_the_address_really_bound(tmp_path, public_listener):
    app = _build(tmp_path, open=True)
    try:
        assert app.extensions["spiral"].config.rate() == (200.0, 400.0)
    finally:
        app.extensions["spiral"].close()


def test_a_local_server_has_no_default_rate_limit(tmp_path):
    app = _build(tmp_path)
    try:
        assert app.extensions["spiral"].config.rate() == (0.0, 0.0)
    finally:
        app.extensions["spiral"].close()


def test_a_socket_bound_after_create_app_is_checked_before_the_first_request(tmp_path):
    app = _build(tmp_path)
    try:
        with socket.create_server(("0.0.0.0", 0)) as sock:
            port = sock.getsockname()[1]
            answer = app.test_client().post("/stream/glint", json=GLINT)
        assert answer.status_code == 503
        assert f"0.0.0.0:{port}" in answer.get_json()["message"]
        assert app.extensions["spiral"].store.counts() == ({}, {})  # nothing was stored
    finally:
        app.extensions["spiral"].close()

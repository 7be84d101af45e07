"""What many tests share: a real Spiral server process (free port, own data dir, readiness
wait), emitting a glint to a test client or a running server, and the bell and hook rituals.
Event streams are read with tests/sse.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`spiral serve` as a user runs it (gunicorn, gevent worker), on a free loopback port."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        workers: int = 1,
        log_path: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SPIRAL_FAKE_CLOCK": "0", **(env or {})}
        self.workers = workers
        self.log_path = log_path or self.data_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spiral_web.cli",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--workers",
                str(self.workers),
                "--log-level",
                "warning",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._close_log()  # or the ResourceWarning fails some later, unrelated test
                raise RuntimeError(
                    f"server exited early; see {self.log_path}:\n{self.log_path.read_text()}"
                )
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow under load
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL the whole process group: the crash the durability promise is about."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def bell_and_hook_rituals(port: int, hook_description: str, hook_note: str) -> str:
    """Two TOML rituals the dashboard tests share: `bell` answers `bell.tower` glints with one
    glint; `hook` calls a webhook on `port`, where nobody listens, so it fails at once. The hook's
    description and URL carry whatever (hostile) text a test passes."""
    return f"""
[rituals.bell]
description = "bell.tower: answer with one ring"
rule = 'module == "bell.tower"'
action = "emit"
module = "ritual.bell"
context = {{ rang = true }}

[rituals.hook]
description = '{hook_description}'
rule = 'module == "hook.me"'
action = "webhook"
url = 'http://127.0.0.1:{port}/down?note={hook_note}'
timeout = 1
retries = 0
"""


def post_glint(
    to: Any,
    module: str = "a.b",
    phase: str | None = None,
    *,
    http: requests.Session | None = None,
    headers: dict[str, str] | None = None,
    environ: dict[str, str] | None = None,
    **fields: Any,
) -> Any:
    """POST one glint to /stream/glint and return the response, to check a refusal.

    `to` is a Flask test client (`environ` then sets e.g. REMOTE_ADDR), or a running server: a
    ServerProcess or a base URL (`http`, a requests.Session, keeps the connection). `fields` are
    the glint's other fields: context, id, parent_id."""
    body = {"module": module, **({"phase": phase} if phase else {}), **fields}
    if isinstance(to, (str, ServerProcess)):
        url = to if isinstance(to, str) else to.url
        return (http or requests).post(
            url + "/stream/glint", json=body, headers=headers, timeout=10
        )
    extra = {"environ_base": environ} if environ else {}
    return to.post("/stream/glint", json=body, headers=headers, **extra)


def emit(to: Any, module: str = "a.b", phase: str | None = None, **options: Any) -> dict:
    """post_glint, failing the test unless the glint was stored (201); the emit answer."""
    resp = post_glint(to, module, phase, **options)
    if isinstance(resp, requests.Response):
        assert resp.status_code == 201, resp.text
        return resp.json()
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def answer_status(resp) -> int:
    """The status a dashboard form's panel answers with: htmx gets an expected refusal as 200 with
    the real status in X-Spiral-Status (a browser logs every 4xx fetch as a console error)."""
    return int(resp.headers.get("X-Spiral-Status", resp.status_code))


def listeners(to: str | ServerProcess) -> int:
    """The hub's listener count, as a running server (or its base URL) reports it."""
    url = to if isinstance(to, str) else to.url
    return requests.get(url + "/api/stats", timeout=5).json()["listeners"]


def wait_for(condition: Any, timeout: float = 5.0, step: float = 0.05) -> bool:
    """Whether `condition()` came true within `timeout` seconds, asked every `step`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()

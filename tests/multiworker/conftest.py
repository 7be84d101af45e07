"""Several Spiral processes joined by a real redis-server that the tests start on a free port."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import redis
import requests

from ..support import ServerProcess, free_port


class RedisProcess:
    def __init__(self, workdir) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProcess:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    client.close()
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def start_on_same_port(self) -> RedisProcess:
        return self.start()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def hub_pair(tmp_path, redis_server):
    """Two Spiral processes on different ports sharing one SQLite file and one Redis: two hosts."""
    env = {"SPIRAL_REDIS_URL": redis_server.url}
    data = tmp_path / "shared"
    a = ServerProcess(data, env=env, log_path=tmp_path / "a.log").start()
    b = ServerProcess(data, env=env, log_path=tmp_path / "b.log").start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def gunicorn_pair(tmp_path, redis_server):
    """One `spiral serve --workers 2`: gunicorn with two gevent workers on one port, one SQLite
    file."""
    proc = ServerProcess(
        tmp_path / "workers",
        env={"SPIRAL_REDIS_URL": redis_server.url, "SPIRAL_FAKE_CLOCK": "0"},
        workers=2,
    ).start()
    _wait_for_both_workers(proc.url)
    yield proc
    proc.stop()


def _wait_for_both_workers(url: str, timeout: float = 30.0) -> None:
    """The server is ready when one worker answers; on a busy machine the other may still be
    booting, and every connection would then land on the first."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    with requests.Session() as http:
        while len(seen) < 2 and time.monotonic() < deadline:
            http.headers["Connection"] = "close"  # a new connection each time: either worker
            seen.add(http.get(url + "/readyz", timeout=5).headers["X-Spiral-Worker"])
    assert len(seen) == 2, "the second worker never answered"


def worker_pids(server: ServerProcess) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True
    ).stdout
    return sorted(int(p) for p in out.split())

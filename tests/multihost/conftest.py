"""Two hosts as one hub: two `spiral serve` processes, each with its own data folder, sharing one
PostgreSQL (the record) and one Redis (the fan-out), all started by the tests."""

from __future__ import annotations

import threading
import time

import pytest

from spiral_web.client import Listener

from ..multiworker.conftest import RedisProcess
from ..support import ServerProcess


@pytest.fixture
def start_hosts(tmp_path, postgres_url):
    """Start two hosts with extra environment (a ritual file, say); stopped afterwards."""
    redis_server = RedisProcess(tmp_path / "redis").start()
    started: list[ServerProcess] = []

    def start(extra: dict[str, str] | None = None) -> list[ServerProcess]:
        env = {
            "SPIRAL_DATABASE_URL": postgres_url,
            "SPIRAL_REDIS_URL": redis_server.url,
            **(extra or {}),
        }
        for name in ("a", "b"):
            host = ServerProcess(tmp_path / name, env=env, log_path=tmp_path / f"{name}.log")
            started.append(host.start())
        return started

    try:
        yield start
    finally:
        for host in started:
            host.stop()
        redis_server.stop()


@pytest.fixture
def hosts(start_hosts):
    return start_hosts()


class Collector:
    """One listener's stream, read in a thread: the glint seqs it got, in order."""

    def __init__(self, url: str, last_event_id: int | None = None) -> None:
        self.listener = Listener(url, last_event_id=last_event_id, reconnect=False, read_timeout=30)
        self.seqs: list[int] = []
        self.notices: list[str] = []
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.connected.wait(10), "the stream did not greet"

    def _read(self) -> None:
        try:
            for item in self.listener:
                if item.event == "breath":
                    self.connected.set()
                elif item.event == "glint_emission":
                    self.seqs.append(int(item.id))
                elif item.event != "ritual":
                    self.notices.append(item.event)
        except Exception:  # the host was killed under it: what it got so far stands
            pass
        finally:
            self.connected.set()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(self.seqs) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.seqs)

    def close(self) -> None:
        self.listener.close()
        self._thread.join(5)

"""Rituals on a real `spiral serve` (gunicorn, gevent worker, the breath ticker on, the real clock):
the background worker runs as a greenlet, runs stream as `event: ritual`, the throttle bites."""

from __future__ import annotations

import threading
import time

import orjson
import requests

from tests.support import ServerProcess, free_port


class StreamTap:
    """Reads /stream on a thread and keeps every named event as (event, id, data)."""

    def __init__(self, url: str) -> None:
        self.events: list[tuple[str, str | None, dict]] = []
        self._resp = requests.get(url + "/stream", stream=True, timeout=(5, 30))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        kind, eid = None, None
        try:
            for line in self._resp.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("id: "):
                    eid = line[4:]
                elif line.startswith("data: ") and kind:
                    self.events.append((kind, eid, orjson.loads(line[6:])))
                elif line == "":
                    kind, eid = None, None
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed by the test

    def wait_for(self, predicate, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if predicate(event):
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no such event; got {self.events!r}")

    def close(self) -> None:
        self._resp.close()


def test_the_rituals_happen_on_a_real_server(tmp_path):
    config = tmp_path / "spiral.toml"
    config.write_text(f"""
[breath]
capacity = 1.0

[rituals.hook]
rule = 'module == "hook.me"'
action = "webhook"
url = "http://127.0.0.1:{free_port()}/down"
timeout = 1
retries = 2
backoff = 0.2
""")
    server = ServerProcess(tmp_path / "server", env={"SPIRAL_CONFIG": str(config)}).start()
    tap = StreamTap(server.url)
    try:
        with requests.Session() as http:

            def post(body: dict) -> requests.Response:
                return http.post(server.url + "/stream/glint", json=body, timeout=5)

            tap.wait_for(lambda e: e[0] == "breath")
            scroll = post({"module": "memory.scroll", "phase": "return"}).json()
            _, eid, run = tap.wait_for(lambda e: e[0] == "ritual" and e[2]["ritual"] == "archival")
            assert run["trigger_id"] == scroll["id"] and run["status"] == "ok"
            assert int(eid) == run["seq"] > scroll["seq"]

            started = time.perf_counter()
            assert post({"module": "hook.me"}).status_code == 201
            assert time.perf_counter() - started < 0.5  # the webhook retries elsewhere
            _, _, hook = tap.wait_for(lambda e: e[0] == "ritual" and e[2]["ritual"] == "hook")
            assert hook["status"] == "error" and hook["result"]["attempts"] == 3

            for _ in range(20):
                resp = post({"module": "load.test"})
                if resp.status_code == 429:
                    break
            assert resp.status_code == 429, "the throttle never answered 429"
            assert int(resp.headers["Retry-After"]) >= 1
            assert http.get(server.url + "/api/breath", timeout=5).json()["throttled"] is True
            _, _, warning = tap.wait_for(
                lambda e: e[0] == "glint_emission" and e[2]["module"] == "ritual.throttle"
            )
            assert warning["context"]["ritual"] == "throttle"
    finally:
        tap.close()
        server.stop()

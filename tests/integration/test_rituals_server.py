"""Rituals on a real `spiral serve` (gunicorn, gevent worker, the breath ticker on, the real clock):
the background worker runs as a greenlet, runs stream as `event: ritual`, the throttle bites."""

from __future__ import annotations

import time

import requests

from tests.sse import StreamTap
from tests.support import ServerProcess, free_port, post_glint


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
            assert tap.greeted.wait(10)
            scroll = post_glint(server, "memory.scroll", "return", http=http).json()
            archived = tap.wait_for(
                lambda f: f.event == "ritual" and f.json()["ritual"] == "archival"
            )
            run = archived.json()
            assert run["trigger_id"] == scroll["id"] and run["status"] == "ok"
            assert int(archived.id) == run["seq"] > scroll["seq"]

            started = time.perf_counter()
            assert post_glint(server, "hook.me", http=http).status_code == 201
            assert time.perf_counter() - started < 0.5  # the webhook retries elsewhere
            hook = tap.wait_for(
                lambda f: f.event == "ritual" and f.json()["ritual"] == "hook"
            ).json()
            assert hook["status"] == "error" and hook["result"]["attempts"] == 3

            for _ in range(20):
                resp = post_glint(server, "load.test", http=http)
                if resp.status_code == 429:
                    break
            assert resp.status_code == 429, "the throttle never answered 429"
            assert int(resp.headers["Retry-After"]) >= 1
            assert http.get(server.url + "/api/breath", timeout=5).json()["throttled"] is True
            warning = tap.wait_for(
                lambda f: f.event == "glint_emission" and f.json()["module"] == "ritual.throttle"
            ).json()
            assert warning["context"]["ritual"] == "throttle"
    finally:
        tap.close()
        server.stop()

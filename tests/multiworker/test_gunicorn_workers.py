"""`spiral serve --workers 2`: two gevent workers behind one port behave as one hub."""

from __future__ import annotations

import os
import signal
import threading
import time

import requests

from spiral_web.client import emit_glint

from ..support import post_glint
from .conftest import worker_pids
from .test_redis_hub import StreamCollector


def _collectors_on_both_workers(url: str, want: int = 8, tries: int = 40) -> list[StreamCollector]:
    """Open streams until both workers hold some (the kernel picks the worker per connection)."""
    streams: list[StreamCollector] = []
    for _ in range(tries):
        streams.append(StreamCollector(url, reconnect=True))
        served = {s.listener.worker for s in streams if s.listener.worker}
        if len(streams) >= want and len(served) >= 2:
            return streams
    return streams


def test_every_listener_on_every_worker_gets_every_glint_once(gunicorn_pair):
    streams = _collectors_on_both_workers(gunicorn_pair.url)
    try:
        assert len({s.listener.worker for s in streams}) == 2, "streams landed on both workers"
        posters = set()
        acked = []
        with requests.Session() as session:
            for i in range(40):
                resp = post_glint(gunicorn_pair.url, "workers.test", context={"i": i}, http=session)
                assert resp.status_code == 201
                posters.add(resp.headers["X-Spiral-Worker"])
                acked.append(resp.json()["seq"])
        for s in streams:
            assert s.wait_for(len(acked)) == acked
        stats = requests.get(gunicorn_pair.url + "/api/stats").json()
        assert stats["total"] == 40
    finally:
        for s in streams:
            s.close()


def test_sigterm_closes_a_workers_streams_and_clients_resume_without_loss(gunicorn_pair):
    streams = _collectors_on_both_workers(gunicorn_pair.url)
    acked: list[int] = []
    stop = threading.Event()

    def post() -> None:
        with requests.Session() as session:
            i = 0
            while not stop.is_set() and i < 400:
                try:
                    acked.append(
                        emit_glint(
                            "shutdown.test", None, {"i": i}, url=gunicorn_pair.url, session=session
                        )["seq"]
                    )
                except requests.ConnectionError:
                    pass  # a keep-alive connection to the stopping worker; the next post reconnects
                i += 1
                time.sleep(0.01)

    poster = threading.Thread(target=post)
    poster.start()
    try:
        victim = int(streams[0].listener.worker)
        on_victim = [s for s in streams if s.listener.worker == str(victim)]
        deadline = time.monotonic() + 10
        while len(acked) < 10 and time.monotonic() < deadline:  # glints are flowing before the stop
            time.sleep(0.01)
        started = time.monotonic()
        os.kill(victim, signal.SIGTERM)
        deadline = started + 10
        while time.monotonic() < deadline and not all(s.notices for s in on_victim):
            time.sleep(0.02)
        closed_in = time.monotonic() - started
        assert all(any(n.event == "closing" for n in s.notices) for s in on_victim)
        assert closed_in < 5, f"streams closed {closed_in:.1f}s after SIGTERM"
        settle = len(acked) + 20
        while len(acked) < settle and poster.is_alive():  # and go on flowing after it
            time.sleep(0.01)
    finally:
        stop.set()
        poster.join(30)
    try:
        assert len(acked) > 20
        for s in streams:
            assert s.wait_for(len(acked), timeout=15) == sorted(acked), (
                "resumed with nothing missed or repeated"
            )
        deadline = (
            time.monotonic() + 15
        )  # the stopped worker exits within gunicorn's graceful timeout
        while victim in worker_pids(gunicorn_pair) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert victim not in worker_pids(gunicorn_pair)
    finally:
        for s in streams:
            s.close()

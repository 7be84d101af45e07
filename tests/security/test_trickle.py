"""Bodies that trickle in are cut off (issue 10, item 4), against a real server (gunicorn, gevent
worker): 200 connections send their headers with `Content-Length: 16000`, then one byte at a time.
Each is answered `408 request_timeout` once the body deadline (`SPIRAL_BODY_TIMEOUT`, 1 s here)
has passed, and closed; the worker's file descriptors come back, and others are served throughout.
Before, every one of them stayed open for as long as the bytes kept coming."""

from __future__ import annotations

import os
import selectors
import socket
import time
from pathlib import Path

import pytest
import requests

from tests.support import ServerProcess

from .figures import record

SLOW = 200
GIVE_UP_AFTER = 45.0  # seconds of trickling after which the test fails (the server kept them)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trickle")
    proc = ServerProcess(folder / "server", env={"SPIRAL_BODY_TIMEOUT": "1"}).start()
    yield proc
    proc.stop()


def _worker_fds(server: ServerProcess) -> int:
    assert server.proc is not None
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    return len(os.listdir(f"/proc/{children[0]}/fd"))


def _headers(server: ServerProcess) -> bytes:
    return (
        f"POST /stream/glint HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 16000\r\n\r\n{"
    ).encode()


def test_a_body_that_trickles_in_is_answered_408_and_closed(server):
    baseline = _worker_fds(server)
    slow = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(SLOW)]
    selector = selectors.DefaultSelector()
    answers: dict[socket.socket, bytes] = {}
    for s in slow:
        s.sendall(_headers(server))
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
        answers[s] = b""
    open_ = set(slow)
    started = time.monotonic()
    served_meanwhile = []
    try:
        while open_ and time.monotonic() - started < GIVE_UP_AFTER:
            for s in list(open_):  # one more byte each, as a slow attacker sends
                try:
                    s.send(b" ")
                except OSError:
                    pass  # reset by the server: the read below sees it too
            for key, _ in selector.select(timeout=0.5):
                s = key.fileobj
                try:
                    chunk = s.recv(4096)
                except (ConnectionResetError, BlockingIOError) as exc:
                    chunk = b"" if isinstance(exc, ConnectionResetError) else None
                if chunk is None:
                    continue
                answers[s] += chunk
                if not chunk:
                    selector.unregister(s)
                    open_.discard(s)
            if len(served_meanwhile) < 5:  # the worker still serves everyone else
                resp = requests.post(
                    server.url + "/stream/glint", json={"module": "meanwhile.ok"}, timeout=10
                )
                served_meanwhile.append(resp.status_code)
        closed_after = time.monotonic() - started
    finally:
        selector.close()
        for s in slow:
            s.close()
    timed_out = [a for a in answers.values() if a.startswith(b"HTTP/1.1 408 ")]
    record(
        "trickled_bodies",
        connections=SLOW,
        closed=SLOW - len(open_),
        answered_408=len(timed_out),
        deadline_s=1.0,
        all_closed_within_s=round(closed_after, 1),
    )
    assert not open_, f"{len(open_)} of {SLOW} trickling connections were still open"
    assert served_meanwhile == [201] * len(served_meanwhile) and served_meanwhile
    # answered with the reason, as JSON (a reset before the answer was read counts as closed too)
    assert len(timed_out) >= SLOW // 2
    assert all(b'"error":"request_timeout"' in a for a in timed_out)
    # nothing was stored from a cut-off body, and the worker gave back its descriptors
    assert requests.get(server.url + "/api/glints?module=meanwhile.*").json()["glints"]
    assert requests.get(server.url + "/api/stats").json()["total"] == len(served_meanwhile)
    assert _worker_fds(server) <= baseline + 5


def test_a_body_that_arrives_in_time_is_served(server):
    body = b'{"module": "in.time", "context": {"pad": "' + b"x" * 4000 + b'"}}'
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            f"POST /stream/glint HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        for start in range(0, len(body), 1000):  # in pieces, well within the deadline
            s.sendall(body[start : start + 1000])
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201 ")

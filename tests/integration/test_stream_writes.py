"""`GET /stream` on a real server (gunicorn, gevent worker), where the hub writes to caught-up
readers' sockets itself: every glint once and in order (chunked for HTTP/1.1, plain for HTTP/1.0);
a reader that leaves is released within about a second (listener count, cap slot, the client's
share) without waiting for a heartbeat; a hub that is shutting down tells new streams `closing` at
once."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest
import requests

from tests.sse import SSEReader, StreamTap, glint_frames, seqs, split_frames
from tests.support import ServerProcess, emit, listeners, wait_for

SHARE = 4  # streams one client may hold


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("writes")
    env = {"SPIRAL_MAX_SUBSCRIBERS_PER_CLIENT": str(SHARE), "SPIRAL_CAPACITY": "1000000"}
    proc = ServerProcess(folder / "server", env=env).start()
    yield proc
    proc.stop()


def emit_many(url: str, n: int, threads: int = 4) -> list[int]:
    """n glints from a few publishers at once (group commits of several glints)."""
    acked: list[int] = []

    def post(part: range) -> None:
        with requests.Session() as http:
            for i in part:
                module = "writes.even" if i % 2 == 0 else "writes.odd"
                acked.append(emit(url, module, context={"i": i}, http=http)["seq"])

    workers = [threading.Thread(target=post, args=(range(k, n, threads),)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    return sorted(acked)


class Http10Reader:
    """A stream read over HTTP/1.0: no chunked encoding, the body is the events as they are."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self.head = b""
        self.body = b""

    def glints(self, count: int, timeout: float = 10.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frames, _ = split_frames(self.body)
            found = seqs(glint_frames(frames))
            if len(found) >= count:
                return found
            data = self.sock.recv(65536)
            if not data:
                break
            if not self.head:
                head, _, data = data.partition(b"\r\n\r\n")
                self.head = head
            self.body += data
        frames, _ = split_frames(self.body)
        return seqs(glint_frames(frames))

    def close(self) -> None:
        self.sock.close()


def test_every_reader_gets_every_glint_once_in_order(server):
    taps = [
        StreamTap(server.url, "/stream?module=writes.*"),
        StreamTap(server.url, "/stream?module=writes.*"),
        StreamTap(server.url, "/stream?module=writes.even"),
    ]
    plain = Http10Reader(server.port, "/stream?module=writes.*")
    try:
        for tap in taps:
            assert tap.greeted.wait(10)
        assert wait_for(lambda: listeners(server) == 4, 10)
        acked = emit_many(server.url, 60)
        assert len(acked) == 60
        assert wait_for(lambda: all(len(t.glints()) >= 60 for t in taps[:2]), 10)
        for tap in taps[:2]:
            assert tap.seqs() == acked  # once each, in order
        even = [int(f.id or 0) for f in taps[0].glints() if f.json()["module"] == "writes.even"]
        assert len(even) == 30
        assert wait_for(lambda: len(taps[2].glints()) >= 30, 10)
        assert taps[2].seqs() == even
        assert plain.glints(60) == acked
        assert plain.head.startswith(b"HTTP/1.0 200")
        assert b"chunked" not in plain.head.lower()
    finally:
        for tap in taps:
            tap.close()
        plain.close()
    assert wait_for(lambda: listeners(server) == 0, 5)


def test_a_reader_that_leaves_is_released_at_once(server):
    """The heartbeat is 15 s: a stream closed by its reader must not hold its place that long."""
    taps = [StreamTap(server.url) for _ in range(SHARE)]
    try:
        for tap in taps:
            assert tap.greeted.wait(10)
        assert wait_for(lambda: listeners(server) == SHARE, 10)
        refused = requests.get(server.url + "/stream", stream=True, timeout=5)
        assert refused.status_code == 503
        assert refused.json()["error"] == "too_many_streams_for_client"
        refused.close()

        taps[0].close()  # the reader goes away; no event is published
        assert wait_for(lambda: listeners(server) == SHARE - 1, 3)
        again = StreamTap(server.url)  # the client's share was given back too
        taps[0] = again
        assert again.greeted.wait(5)
        assert wait_for(lambda: listeners(server) == SHARE, 5)
        answer = emit(server.url, "writes.after")
        for tap in taps:
            tap.wait_for(lambda f: f.id == str(answer["seq"]))  # the others never noticed
    finally:
        for tap in taps:
            tap.close()
    assert wait_for(lambda: listeners(server) == 0, 5)


def test_a_stream_opened_after_the_hub_closed_is_told_closing_at_once(client, spiral):
    spiral.hub.close()  # what SIGTERM does first
    stream = SSEReader(client.get("/stream", buffered=False))
    frames = stream.read_to_end()
    assert [f.event for f in frames if f.event] == ["breath", "closing"]
    assert frames[-1].json()["last_id"] == -1
    assert spiral.hub.listeners == 0
    resumed = SSEReader(client.get("/stream", headers={"Last-Event-ID": "7"}, buffered=False))
    assert resumed.read_to_end()[-1].json()["last_id"] == 7  # no replay first: at once


def test_streams_opened_while_a_worker_stops_are_told_closing_at_once(tmp_path):
    """SIGTERM to the worker: it still accepts connections for up to a second; every stream it
    serves in that time must end with `closing` at once, not stay open until it is killed."""
    server = ServerProcess(tmp_path / "server").start()
    try:
        first = StreamTap(server.url)
        assert first.greeted.wait(10)
        victim = int(first._resp.headers["X-Spiral-Worker"])
        os.kill(victim, signal.SIGTERM)
        first.wait_for(lambda f: f.event == "closing", timeout=5)
        late: list[tuple[float, list[str]]] = []  # (seconds open, events) of the victim's streams
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                opened = time.monotonic()
                resp = requests.get(server.url + "/stream", stream=True, timeout=(2, 4))
            except requests.RequestException:
                continue  # refused: as good
            try:
                if resp.status_code != 200 or resp.headers["X-Spiral-Worker"] != str(victim):
                    continue  # refused, or the new worker's: not this test's business
                body = b"".join(resp.iter_content(chunk_size=None))  # to the end: closing
                frames, _ = split_frames(body)
                late.append((time.monotonic() - opened, [f.event or "" for f in frames]))
            except requests.RequestException as exc:
                raise AssertionError("a stream of the stopping worker stayed open") from exc
            finally:
                resp.close()
        for seconds, events in late:
            assert events[-1] == "closing" and seconds < 2, (seconds, events)
        first.close()
    finally:
        server.stop()

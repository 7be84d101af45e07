"""`GET /stream` (Server-Sent Events, JSON data) and `POST /stream/glint` (emit); and the write
watch that drops any event stream (this one or the dashboard's) whose reader stopped reading."""

from __future__ import annotations

import itertools
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, request

from ..engine.events import Event, sse_frame
from ..engine.feed import listener_feed
from .access import access
from .common import json_response, source, spiral, subscriber_info
from .ingest import publish
from .queries import last_event_id, stream_filters

log = logging.getLogger(__name__)

bp = Blueprint("stream", __name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@bp.post("/stream/glint")
@access("publish", json_only=True, rate_limited=True)
def emit():
    """Served by web/ingest.py in front of Flask, but for requests with a cookie; both answer
    alike, through `publish`."""
    status, answer = publish(spiral(), request.get_data(cache=False), source())
    return json_response(answer, status)


@bp.get("/stream")
@access("read", stream="sse")
def stream():
    hub = spiral()
    filters = stream_filters(request.args)
    resume = last_event_id(request.headers.get("Last-Event-ID"), request.args.get("lastEventId"))
    # before reading history, so nothing falls between the two
    sub = hub.hub.subscribe(filters, subscriber_info("sse"))
    breath = hub.orchestrator.breath.state().to_dict()
    feed = listener_feed(
        sub, hub.store, resume, filters, hub.config.heartbeat_seconds, hub.config.replay_limit
    )
    greeting = b"retry: %d\n\n" % hub.config.retry_ms + sse_frame("breath", orjson.dumps(breath))
    body = sse_events(feed, frame=lambda e: e.sse, greeting=greeting)
    response = Response(body, mimetype="text/event-stream", headers=SSE_HEADERS)
    response.call_on_close(sub.close)  # also when the body never runs (HEAD, early disconnect)
    return response


def sse_events(
    feed: Iterator[list[Event] | None], frame: Callable[[Event], bytes], greeting: bytes
) -> Iterator[bytes]:
    """An SSE body: the greeting, then each batch of the listener's feed in one write.

    Takes plain arguments (no request): it runs after the view has returned."""
    yield greeting
    for batch in feed:
        if batch is None:
            yield b": heartbeat\n\n"
        else:
            yield b"".join(frame(e) for e in batch)


# -- stalled readers ------------------------------------------------------------------------------


@bp.after_app_request
def _watch_writes(response: Response) -> Response:
    """Put every event stream served by gunicorn under the write watch (see WriteWatch)."""
    sock = request.environ.get("gunicorn.socket")
    if sock is not None and response.mimetype == "text/event-stream" and response.is_streamed:
        app = current_app
        watch = app.extensions.get("spiral.write_watch")
        if watch is None:
            watch = app.extensions["spiral.write_watch"] = WriteWatch(
                app.extensions["spiral"].config.send_timeout
            )
        _tcp_user_timeout(sock, watch.timeout)
        response.response = watch.wrap(response.response, sock)  # type: ignore[arg-type]
    return response


class WriteWatch:
    """Drops streams whose reader stopped reading.

    gunicorn's gevent worker writes a response with a blocking `sendall` and no timeout: once a
    reader stops reading and the kernel buffers fill, the stream's greenlet waits in that write for
    ever, and its subscription with it (it never asks the hub for more, so the hub cannot drop it
    either). Here each stream notes when a write starts and ends; one greenlet (started with the
    first stream) looks every quarter of `timeout` and, for a write that has made no progress for
    `timeout` seconds, resets the socket. The write then fails at once (gunicorn closes the
    connection quietly), the response is closed and the subscription with it, and the kernel
    frees the socket's buffers (SO_LINGER 0: no waiting to deliver them)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.dropped = 0
        self._writing: dict[int, tuple[float, Any]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def wrap(self, body: Iterable[bytes], sock: Any) -> Iterator[bytes]:
        self._start()
        key = next(self._ids)
        try:
            for chunk in body:
                with self._lock:
                    self._writing[key] = (time.monotonic(), sock)
                yield chunk  # the server writes it, then asks for the next: the write is done
                with self._lock:
                    self._writing.pop(key, None)
        finally:
            with self._lock:
                self._writing.pop(key, None)
            close = getattr(body, "close", None)
            if close is not None:
                close()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="spiral-write-watch", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.timeout / 4)
            now = time.monotonic()
            with self._lock:
                stalled = [
                    (k, s) for k, (at, s) in self._writing.items() if now - at > self.timeout
                ]
                for key, _ in stalled:
                    del self._writing[key]
            for _, sock in stalled:
                self.dropped += 1
                _reset(sock)
            if stalled:
                log.info(
                    "dropped %d stream(s) whose reader stopped reading for %g s",
                    len(stalled),
                    self.timeout,
                )


def _reset(sock: Any) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _tcp_user_timeout(sock: Any, seconds: float) -> None:
    """A peer that vanished (no FIN, no RST: a cut cable, a sleeping laptop) stops acknowledging;
    the kernel then ends the connection after this long instead of retrying for ~15 minutes."""
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if option is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, int(max(seconds, 1.0) * 3 * 1000))
    except OSError:
        pass

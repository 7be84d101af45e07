"""`GET /stream` (Server-Sent Events, JSON data) and `POST /stream/glint` (emit); the hub's
writer for a stream served by gunicorn's gevent worker; and the write watch that drops any event
stream (this one or the dashboard's) whose reader stopped reading."""

from __future__ import annotations

import errno
import itertools
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, request

from ..bus import frames
from ..bus.memory import BLOCKED, GONE, PARTIAL, SENT, Subscription
from ..engine.events import Event
from ..engine.feed import listener_feed
from .access import access
from .common import json_response, source, spiral, subscriber_info
from .ingest import publish
from .queries import last_event_id, stream_filters

log = logging.getLogger(__name__)

bp = Blueprint("stream", __name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# Set by server.post_worker_init in a gunicorn gevent worker speaking plain HTTP/1: the hub may
# then write to a stream's socket itself (SocketWriter).
DIRECT_WRITES = "spiral.direct_writes"


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
    heartbeat = hub.config.heartbeat_seconds
    writer = socket_writer(current_app, request.environ, heartbeat)
    breath = hub.orchestrator.breath.state().to_dict()
    feed = listener_feed(
        sub,
        hub.store,
        resume,
        filters,
        heartbeat,
        hub.config.replay_limit,
        written=(lambda: writer.seq) if writer is not None else (lambda: -1),
    )
    greeting = b"retry: %d\n\n" % hub.config.retry_ms + frames.sse_frame(
        "breath", orjson.dumps(breath)
    )
    if writer is not None and isinstance(sub, Subscription):
        body = direct_sse_events(feed, greeting, sub, writer)
    else:
        body = sse_events(feed, greeting)
    response = Response(body, mimetype="text/event-stream", headers=SSE_HEADERS)
    response.call_on_close(sub.close)  # also when the body never runs (HEAD, early disconnect)
    return response


def sse_events(feed: Iterator[list[Event] | None], greeting: bytes) -> Iterator[bytes]:
    """An SSE body: the greeting, then each batch of the listener's feed in one write.

    Takes plain arguments (no request): it runs after the view has returned."""
    yield greeting
    for batch in feed:
        if batch is None:
            yield frames.HEARTBEAT
        else:
            yield frames.sse_batch(batch)


def direct_sse_events(
    feed: Iterator[list[Event] | None],
    greeting: bytes,
    sub: Subscription,
    writer: SocketWriter,
) -> Iterator[bytes]:
    """An SSE body whose live events the hub mostly writes itself (see bus/memory.py): this
    greenlet writes the greeting and the replay, then sleeps while its reader is caught up. When
    the hub wakes it, it first sends what the hub left half-written, then what the hub could not
    send, through gunicorn and the write watch like any stream.

    Takes plain arguments (no request): it runs after the view has returned."""
    yield greeting
    # gunicorn wrote the headers and the greeting before asking for more: from here on, while this
    # greenlet sleeps in the hub, gunicorn waits for it and nobody else writes to the socket.
    writer.watch_peer()
    sub.attach(writer)
    try:
        for batch in feed:
            if sub.gone:
                return  # the reader went away (the hub saw it): end without writing
            try:
                finished = writer.finish()
            except OSError:
                return  # reset by the write watch, or by the reader: the stream is over
            if batch is None:
                if not finished:  # a write just went out: no need for a heartbeat
                    yield frames.HEARTBEAT
                continue
            newest = next((e.seq for e in reversed(batch) if e.seq is not None), None)
            if newest is not None:
                writer.seq = newest  # before the write: the hub writes only what comes after it
            yield frames.sse_batch(batch)
    finally:
        sub.close()  # before gunicorn closes the socket: the hub never writes to it after this
        writer.unwatch_peer()


def socket_writer(app: Flask, environ: dict[str, Any], heartbeat: float) -> SocketWriter | None:
    """The hub's writer for this request's socket, or None where the hub must not write to it
    itself: another server than gunicorn's gevent worker (post_worker_init says), TLS, HTTP/2,
    a HEAD request."""
    sock = environ.get("gunicorn.socket")
    if (
        sock is None
        or not app.extensions.get(DIRECT_WRITES)
        or environ.get("REQUEST_METHOD") != "GET"
        or environ.get("SERVER_PROTOCOL") not in ("HTTP/1.1", "HTTP/1.0")
        or not hasattr(sock, "_sock")
    ):
        return None
    chunked = environ["SERVER_PROTOCOL"] == "HTTP/1.1"  # as gunicorn frames the body
    return SocketWriter(sock, chunked, heartbeat, write_watch(app), peer_watch(app))


class SocketWriter:
    """Writes to one stream's socket for the hub (bus.memory.Writer), without ever blocking.

    gunicorn's gevent worker keeps the descriptor non-blocking and waits in the event loop when a
    write would block; this writes to the same descriptor directly (gevent's underlying socket),
    so a full buffer answers at once instead of switching greenlets. The bytes are framed as
    gunicorn frames the body (chunked for HTTP/1.1)."""

    __slots__ = (
        "framing",
        "heartbeat",
        "seq",
        "pending",
        "last_write",
        "_sock",
        "_raw",
        "_fd",
        "_writes",
        "_peers",
    )

    def __init__(
        self, sock: Any, chunked: bool, heartbeat: float, writes: WriteWatch, peers: PeerWatch
    ) -> None:
        self.framing = frames.SSE_CHUNKED if chunked else frames.SSE_PLAIN
        self.heartbeat = heartbeat
        self.seq = -1
        self.pending = b""
        self.last_write = time.monotonic()
        self._sock = sock  # gevent's socket: blocking writes wait in the event loop
        self._raw = sock._sock  # its non-blocking socket.socket (gevent: `_sock`)
        self._fd = sock.fileno()
        self._writes = writes
        self._peers = peers

    def offer(self, data: bytes) -> int:
        try:
            sent = self._raw.send(data)
        except BlockingIOError:
            return BLOCKED
        except OSError as exc:
            self._writes.ended(exc)
            return GONE
        if sent == len(data):
            return SENT
        self.pending = data[sent:]
        return PARTIAL

    def peer_closed(self) -> bool:
        if not self._peers.closed(self._fd):
            return False
        try:  # the kernel says: closed, reset, or (rarely) only that the reader stopped sending
            return self._raw.recv(1, socket.MSG_PEEK) == b""  # end of file: the reader closed
        except BlockingIOError:
            return False  # nothing to read: still there
        except OSError as exc:
            self._writes.ended(exc)
            return True  # reset, or given up on by the kernel

    def watch_peer(self) -> None:
        self._peers.add(self._fd)

    def unwatch_peer(self) -> None:
        self._peers.remove(self._fd)

    def finish(self) -> bool:
        """Send the rest of a write the hub began (blocking, under the write watch); False when
        there was none."""
        rest, self.pending = self.pending, b""
        if not rest:
            return False
        with self._writes.writing(self._sock):
            try:
                self._sock.sendall(rest)
            except OSError as exc:
                self._writes.ended(exc)
                raise
        return True


def peer_watch(app: Flask) -> PeerWatch:
    """The app's watch over its streams' readers, made with the first stream."""
    watch = app.extensions.get("spiral.peer_watch")
    if watch is None:
        watch = app.extensions["spiral.peer_watch"] = PeerWatch()
    return watch


class PeerWatch:
    """Which streams' readers closed or reset their connection, for the hub's look about once a
    second: one epoll set of the streams' sockets (EPOLLRDHUP: the reader closed; EPOLLHUP and
    EPOLLERR: reset), asked without waiting, so that the look costs one system call however many
    streams are open. (gevent's monkey-patching hides select.epoll: the original is used.) Where
    there is no epoll, every socket is looked at on its own."""

    EVERY = 0.25  # one question to the kernel serves every stream's look for this long

    def __init__(self) -> None:
        epoll = _original_epoll()
        self._epoll = epoll() if epoll is not None else None
        self._closed: set[int] = set()
        self._at = float("-inf")

    def add(self, fd: int) -> None:
        if self._epoll is None:
            return
        try:
            self._epoll.register(fd, select.EPOLLRDHUP)
        except FileExistsError:  # a descriptor whose last stream ended without a word
            self._epoll.modify(fd, select.EPOLLRDHUP)
        except OSError:
            pass

    def remove(self, fd: int) -> None:
        if self._epoll is None:
            return
        try:
            self._epoll.unregister(fd)
        except OSError:
            pass

    def closed(self, fd: int) -> bool:
        """True when the kernel reported something on `fd` (look at it more closely); always
        True without epoll."""
        if self._epoll is None:
            return True
        now = time.monotonic()
        if now - self._at >= self.EVERY:
            self._closed = {f for f, _ in self._epoll.poll(0, 4096)}
            self._at = now
        return fd in self._closed


def _original_epoll() -> Any:
    try:
        from gevent import monkey

        return monkey.get_original("select", "epoll")
    except (ImportError, AttributeError):
        return getattr(select, "epoll", None)


# -- stalled readers ------------------------------------------------------------------------------


@bp.after_app_request
def _watch_writes(response: Response) -> Response:
    """Put every event stream served by gunicorn under the write watch (see WriteWatch)."""
    sock = request.environ.get("gunicorn.socket")
    if sock is not None and response.mimetype == "text/event-stream" and response.is_streamed:
        watch = write_watch(current_app)
        _tcp_user_timeout(sock, watch.timeout)
        response.response = watch.wrap(response.response, sock)  # type: ignore[arg-type]
    return response


def write_watch(app: Flask) -> WriteWatch:
    """The app's write watch, made with the first stream."""
    watch = app.extensions.get("spiral.write_watch")
    if watch is None:
        watch = app.extensions["spiral.write_watch"] = WriteWatch(
            app.extensions["spiral"].config.send_timeout
        )
    return watch


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
                try:
                    yield chunk  # the server writes it, then asks for the next: the write is done
                except GeneratorExit as closing:
                    # gunicorn closes the body when its write failed: if the kernel gave up on
                    # the reader (TCP_USER_TIMEOUT), that failure is this exit's context
                    failed = closing.__context__
                    if isinstance(failed, OSError):
                        self.ended(failed)
                    raise
                with self._lock:
                    self._writing.pop(key, None)
        finally:
            with self._lock:
                self._writing.pop(key, None)
            close = getattr(body, "close", None)
            if close is not None:
                close()

    @contextmanager
    def writing(self, sock: Any) -> Iterator[None]:
        """Watch a write the stream makes itself (not through gunicorn)."""
        self._start()
        key = next(self._ids)
        with self._lock:
            self._writing[key] = (time.monotonic(), sock)
        try:
            yield
        finally:
            with self._lock:
                self._writing.pop(key, None)

    def ended(self, exc: OSError) -> None:
        """A stream's socket failed: if the kernel timed its reader out, that reader stalled and
        is counted so. The TCP_USER_TIMEOUT set on every stream also covers a window held shut:
        a reader that stops reading while small writes still fit in the kernel's buffers is
        ended by the kernel before any write of ours waits, so this watch never sees it stuck."""
        if exc.errno == errno.ETIMEDOUT:
            self._stalled("its window stayed shut until the kernel's timeout")

    def _stalled(self, why: str, n: int = 1) -> None:
        with self._lock:
            self.dropped += n
        log.info("dropped %d stream(s) whose reader stopped reading: %s", n, why)

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
                _reset(sock)
            if stalled:
                self._stalled(f"a write made no progress for {self.timeout:g} s", len(stalled))


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

"""A light HTTP/1.1 client on raw asyncio protocols: keep-alive POSTs and SSE subscribers.

Protocols (callbacks), not streams: a subscriber costs one `data_received` call per write the server
makes, with no coroutine per event, so one process can hold thousands of them without becoming the
bottleneck it is measuring.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import orjson


class HTTPError(Exception):
    pass


# -- keep-alive POSTs ---------------------------------------------------------------------------
class _ResponseProtocol(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._try_complete()

    def _try_complete(self) -> None:
        if self.waiter is None or self.waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        status = int(head[9:12])
        i = head.find(b"content-length:")
        if i < 0:
            self.waiter.set_exception(HTTPError("response without content-length"))
            return
        length = int(head[i + 15 : head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
        total = end + 4 + length
        if len(self.buf) < total:
            return
        body = bytes(self.buf[end + 4 : total])
        del self.buf[:total]
        if b"connection: close" in head:
            self.closed = True
        self.waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HTTPError(f"connection lost: {exc}"))


class Conn:
    """A reconnecting keep-alive connection for POSTs."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.proto: _ResponseProtocol | None = None
        self.reconnects = 0

    async def _ensure(self) -> _ResponseProtocol:
        if self.proto is None or self.proto.closed:
            if self.proto is not None:
                self.reconnects += 1
            loop = asyncio.get_running_loop()
            _, self.proto = await loop.create_connection(_ResponseProtocol, self.host, self.port)
        return self.proto

    async def post(self, path: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
        for attempt in (0, 1):  # a keep-alive connection the server closed while idle: retry once
            proto = await self._ensure()
            proto.waiter = asyncio.get_running_loop().create_future()
            assert proto.transport is not None
            proto.transport.write(
                b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s"
                % (path.encode(), self.host.encode(), self.port, len(body), body)
            )
            try:
                return await asyncio.wait_for(proto.waiter, timeout)
            except HTTPError:
                if attempt:
                    raise
            except (
                BaseException
            ):  # a timeout or cancellation: the answer may still come, so never reuse
                self.close()
                self.proto = None
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.close()


# -- SSE subscribers ----------------------------------------------------------------------------
class Sink:
    """What every subscriber reports into: latency samples (seconds) and counters."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.record = True
        self.out_of_order = 0
        self.duplicates = 0

    def reset(self) -> None:
        self.latencies.clear()
        self.out_of_order = self.duplicates = 0


_RECV = bytearray(
    256 * 1024
)  # one receive buffer shared by every subscriber (one event loop, one thread)
_RECV_VIEW = memoryview(_RECV)
_T_KEY = b'"context":{"t":'


class SSEProtocol(asyncio.BufferedProtocol):
    """GET /stream, decode chunked transfer coding and SSE frames, and account each glint.

    Latency is receipt time minus `context.t` (the publisher's time.time() at send); `received`
    counts glints per connection, `last_seq` checks order, `notices` keeps control events
    (`dropped`, `closing`, ...) with their data."""

    def __init__(
        self,
        sink: Sink,
        path: bytes = b"/stream",
        on_ready: Callable[[], None] | None = None,
        rcvbuf: int | None = None,
    ) -> None:
        self.sink = sink
        self.path = path
        self.on_ready = on_ready
        self.rcvbuf = rcvbuf
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.headers_done = False
        self.status = 0
        self.chunk_left = (
            0  # bytes of the current chunk (plus its CRLF) still to come; 0 = size line
        )
        self.sse = bytearray()
        self.ready = asyncio.get_running_loop().create_future()
        self.done = asyncio.get_running_loop().create_future()
        self.received = 0
        self.last_seq = 0
        self.bytes = 0
        self.notices: list[tuple[str, bytes]] = []
        self.on_glint: Callable[[SSEProtocol], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(
            b"GET " + self.path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Accept: text/event-stream\r\n\r\n"
        )  # type: ignore[attr-defined]

    def get_buffer(self, sizehint: int) -> memoryview:
        # a BufferedProtocol: the transport reads into this shared buffer, instead of allocating a
        # fresh 256 KiB bytes object per read (3x cheaper per event; the client must not be the
        # bottleneck)
        return _RECV_VIEW

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(_RECV_VIEW[:nbytes]))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.bytes += len(data)
        buf = self.buf
        buf += data
        pos = 0
        if not self.headers_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.status = int(buf[9:12])
            head = bytes(buf[:end]).lower()
            self.headers_done = True
            pos = end + 4
            if self.status != 200 or b"transfer-encoding: chunked" not in head:
                self._finish(f"status {self.status}, headers {head[:200]!r}")
                return
        n = len(buf)
        payload = []
        while pos < n:
            if self.chunk_left == 0:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(buf[pos:eol], 16)
                if size == 0:  # the last chunk: what came before it still counts
                    if payload:
                        self._feed(b"".join(payload), now)
                    self._finish("end of stream")
                    return
                self.chunk_left = size + 2
                pos = eol + 2
            take = min(self.chunk_left, n - pos)
            # the chunk's trailing CRLF is cut below, once the chunk is complete
            payload.append(bytes(buf[pos : pos + take]))
            self.chunk_left -= take
            pos += take
            if self.chunk_left == 0:
                payload[-1] = payload[-1][:-2]
            elif self.chunk_left == 1:  # split between the CR and the LF of the trailer
                payload[-1] = payload[-1][:-1]
        del buf[:pos]
        if payload:
            self._feed(b"".join(payload), now)

    def _feed(self, data: bytes, now: float) -> None:
        sse = self.sse
        sse += data
        end = sse.rfind(b"\n\n")
        if end < 0:
            return
        frames = bytes(sse[:end]).split(b"\n\n")
        del sse[: end + 2]
        sink = self.sink
        for frame in frames:
            if b"event: glint_emission" in frame:
                seq = 0
                data_at = frame.find(b"data: ")
                if frame.startswith(b"id: "):
                    seq = int(frame[4 : frame.find(b"\n")])
                if seq <= self.last_seq:
                    sink.duplicates += 1
                    continue
                if seq != self.last_seq + 1 and self.last_seq:
                    sink.out_of_order += 1
                self.last_seq = seq
                self.received += 1
                if sink.record:
                    i = frame.find(_T_KEY, data_at)
                    if i > 0:  # the bench's own glints: {"context":{"t":<send time>,...}
                        i += len(_T_KEY)
                        sink.latencies.append(now - float(frame[i : frame.find(b",", i)]))
                    else:
                        t = orjson.loads(frame[data_at + 6 :])["context"].get("t")
                        if t is not None:
                            sink.latencies.append(now - t)
                if self.on_glint is not None:
                    self.on_glint(self)
            elif frame.startswith((b"retry:", b":")):
                continue  # the reconnect delay, a heartbeat
            elif b"event: breath" in frame:
                if not self.ready.done():
                    self.ready.set_result(True)
            else:
                kind = frame[frame.find(b"event: ") + 7 :].split(b"\n", 1)[0].decode()
                self.notices.append((kind, frame[frame.find(b"data: ") + 6 :]))

    def _finish(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(HTTPError(why))
        if not self.done.done():
            self.done.set_result(why)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(HTTPError(f"connection lost before the greeting: {exc}"))
        if not self.done.done():
            self.done.set_result(f"connection lost: {exc}" if exc else "closed by server")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def subscribe(
    host: str,
    port: int,
    sink: Sink,
    path: bytes = b"/stream",
    rcvbuf: int | None = None,
    timeout: float = 30.0,
) -> SSEProtocol:
    """Open one SSE subscription and wait for the server's greeting (it is subscribed by then)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if rcvbuf is not None:  # before connect, so the advertised window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
        _, proto = await loop.create_connection(lambda: SSEProtocol(sink, path), sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        await asyncio.wait_for(asyncio.shield(proto.ready), timeout)
    except BaseException:
        proto.close()
        raise
    return proto  # type: ignore[return-value]


async def subscribe_many(
    host: str,
    port: int,
    sink: Sink,
    n: int,
    concurrency: int = 200,
    path: bytes = b"/stream",
    timeout: float = 60.0,
) -> list[SSEProtocol]:
    """n subscriptions, at most `concurrency` connecting at once; raises if any fails."""
    gate = asyncio.Semaphore(concurrency)
    deadline = time.monotonic() + timeout

    async def one() -> SSEProtocol:
        async with gate:
            left = max(0.1, deadline - time.monotonic())
            return await subscribe(host, port, sink, path, timeout=left)

    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    subs = [r for r in results if isinstance(r, SSEProtocol)]
    errors = [r for r in results if not isinstance(r, SSEProtocol)]
    if errors:
        for s in subs:
            s.close()
        raise HTTPError(f"{len(errors)} of {n} subscriptions failed; first: {errors[0]!r}")
    return subs

"""How each transport frames an event: SSE bytes, a WebSocket message, an HTML fragment.

Each framing is built once per event (cached on the event under its own key) and the same bytes go
to every socket. A `Framing` is what the hub needs to write a batch of events to a socket itself:
SSE inside HTTP/1.1's chunked encoding (what gunicorn would have sent), or plain for HTTP/1.0.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..engine.events import Event

HEARTBEAT = b": heartbeat\n\n"  # an SSE comment: keeps proxies from closing an idle stream


def sse_frame(kind: str, data: bytes, seq: int | None = None) -> bytes:
    """One SSE message: `id` (replayable events only), `event`, one `data` line of JSON."""
    head = b"id: %d\n" % seq if seq is not None else b""
    return head + b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def sse(event: Event) -> bytes:
    """The event as an SSE message."""
    return event.framed("sse", _sse)


def _sse(event: Event) -> bytes:
    return sse_frame(event.kind, event.data, event.seq)


def ws_text(event: Event) -> str:
    """The event as the text of a WebSocket message: `{"event", "id", "data"}`."""
    return event.framed("ws", _ws_text)


def _ws_text(event: Event) -> str:
    head = b'{"event":"' + event.kind.encode() + b'","id":'
    head += str(event.seq).encode() if event.seq is not None else b"null"
    return (head + b',"data":' + event.data + b"}").decode()


def ws_frame(event: Event) -> bytes:
    """The event as a whole WebSocket text frame, as a server sends it (unmasked, uncompressed):
    the same bytes for every socket."""
    return event.framed("ws-frame", _ws_frame)


def _ws_frame(event: Event) -> bytes:
    return ws_message(ws_text(event).encode())


def ws_message(payload: bytes) -> bytes:
    """One unfragmented, unmasked WebSocket text frame (RFC 6455 §5.2) carrying `payload`."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def html(event: Event, render: Callable[[Event], str]) -> str:
    """The event rendered as an HTML fragment: rendered by the first caller, shared after."""
    return event.framed("html", render)


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of HTTP/1.1's chunked transfer coding, framed as gunicorn frames it."""
    return b"%X\r\n" % len(data) + data + b"\r\n"


@dataclass(frozen=True, eq=False)
class Framing:
    """How the hub writes events to one kind of socket itself: a batch as one write, and the
    heartbeat it sends to a socket that has been quiet."""

    name: str
    batch: Callable[[Sequence[Event]], bytes]
    heartbeat: bytes


def sse_batch(events: Sequence[Event]) -> bytes:
    """Events as one SSE write (each event's frame is its own, built once)."""
    if len(events) == 1:
        return sse(events[0])
    return b"".join([sse(e) for e in events])


def _sse_chunk(events: Sequence[Event]) -> bytes:
    if len(events) == 1:
        return events[0].framed("sse-chunk", _chunk_one)
    return chunk(sse_batch(events))


def _chunk_one(event: Event) -> bytes:
    return chunk(sse(event))


SSE_CHUNKED = Framing("sse-chunked", _sse_chunk, chunk(HEARTBEAT))
SSE_PLAIN = Framing("sse", sse_batch, HEARTBEAT)

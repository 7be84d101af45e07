"""Transport framings (spiral_web/bus/frames.py): built once per event, byte for byte what the
libraries would have sent."""

from __future__ import annotations

import orjson
import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import TextMessage

from spiral_web.bus import MemoryHub, frames


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536], ids=lambda n: f"{n}B")
def test_a_websocket_frame_is_what_wsproto_sends(size):
    text = "x" * size
    server = Connection(ConnectionType.SERVER)
    assert frames.ws_message(text.encode()) == server.send(TextMessage(data=text))


def test_an_event_is_framed_once_per_transport():
    event = MemoryHub().publish("glint_emission", {"a": "é"}, seq=7)
    assert frames.sse(event) is frames.sse(event)
    assert frames.ws_frame(event) is frames.ws_frame(event)
    text = frames.ws_text(event)
    assert orjson.loads(text) == {"event": "glint_emission", "id": 7, "data": {"a": "é"}}
    assert frames.ws_frame(event) == frames.ws_message(text.encode())
    rendered = []
    html = frames.html(event, lambda e: rendered.append(e) or "<p>")
    assert frames.html(event, lambda e: "other") is html and rendered == [event]


def test_sse_chunks_are_framed_as_gunicorn_frames_them():
    hub = MemoryHub()
    a = hub.publish("glint_emission", data=b"{}", seq=1)
    b = hub.publish("breath", data=b'{"phase":"hold"}')
    one = frames.SSE_CHUNKED.batch([a])
    assert one == b"%X\r\n" % len(frames.sse(a)) + frames.sse(a) + b"\r\n"
    assert frames.SSE_CHUNKED.batch([a]) is one  # one event: framed once, shared
    both = frames.sse(a) + frames.sse(b)
    assert frames.SSE_CHUNKED.batch([a, b]) == b"%X\r\n" % len(both) + both + b"\r\n"
    assert frames.SSE_PLAIN.batch([a, b]) == both
    assert frames.SSE_CHUNKED.heartbeat == b"D\r\n: heartbeat\n\n\r\n"

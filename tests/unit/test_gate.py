"""The gate's body deadline is skipped only when gunicorn already holds the whole body: reading it
then cannot wait for the client (web/gate.py, `_buffered`)."""

from __future__ import annotations

import io

from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import Unreader

from spiral_web.web.gate import _buffered

BODY = b'{"module": "held.whole", "context": {"n": 1}}'


class Held(Unreader):
    """What gunicorn read from a socket along with the headers; the socket has nothing more."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.buf.write(data)

    def chunk(self, size_hint=None):
        raise AssertionError("the body was read from the socket: it could have waited")


def test_a_body_read_with_the_headers_is_served_from_memory_without_a_deadline():
    stream = Body(LengthReader(Held(BODY), len(BODY)))
    assert _buffered(stream, len(BODY))
    assert stream.read(len(BODY)) == BODY  # and reading it never touches the socket


def test_a_body_still_on_its_way_keeps_its_deadline():
    assert not _buffered(Body(LengthReader(Held(BODY[:10]), len(BODY))), len(BODY))
    assert not _buffered(Body(LengthReader(Held(b""), len(BODY))), len(BODY))


def test_a_stream_that_is_not_gunicorns_keeps_its_deadline():
    assert not _buffered(io.BytesIO(BODY), len(BODY))
    assert not _buffered(object(), len(BODY))

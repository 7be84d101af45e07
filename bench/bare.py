"""The bare references Spiral is measured against, served by the same gunicorn gevent worker
(`gunicorn -c gunicorn.conf.py bench.bare:app`). None validates, stores, counts or runs rules.

- `POST /stream/glint`: the simplest Flask JSON POST: parse the body, answer a small JSON object.
  `wsgi` is the same endpoint without Flask (what the framework costs per request).
- `GET /fanout`, `POST /fanout/glint`: the simplest gevent SSE fan-out. A POST becomes one
  pre-serialized frame in a ring and wakes every subscriber; each subscriber is one generator that
  yields the frames it has not sent yet (gunicorn writes each with a blocking `sendall`).
- `GET /direct`, `POST /direct/glint`: the same fan-out written from the publisher: the chunk is
  framed once and sent without blocking to every subscriber that is caught up; a subscriber's own
  greenlet only finishes what would have blocked. The floor for issue 11's "write caught-up
  subscribers from the publisher".
"""

import orjson
from flask import Flask, Response, request
from gevent.event import Event

app = Flask(__name__)
STREAM_HEADERS = {"Cache-Control": "no-cache"}


def _created(body: bytes) -> Response:
    module = orjson.loads(body).get("module")
    return Response(
        orjson.dumps({"status": "ok", "module": module}), status=201, mimetype="application/json"
    )


def _frame(seq: int, data: bytes) -> bytes:
    return b"id: %d\nevent: glint_emission\ndata: %s\n\n" % (seq, data)


@app.post("/stream/glint")
def glint():
    return _created(request.get_data(cache=False))


@app.get("/ping")
def ping():
    return "ok"


# -- one generator per subscriber -----------------------------------------------------------------
RING = 4096
_ring: list[bytes] = [b""] * RING
_head = 0  # frames published so far; frame n sits at _ring[n % RING]
_moved = Event()  # set, and replaced by a fresh one, by every publish


@app.post("/fanout/glint")
def fanout_publish():
    global _head, _moved
    body = request.get_data(cache=False)
    _ring[_head % RING] = _frame(_head + 1, body)
    _head += 1
    moved, _moved = _moved, Event()
    moved.set()
    return _created(body)


@app.get("/fanout")
def fanout_stream():
    def frames():
        cursor = _head
        yield b"retry: 1000\n\n"
        while True:
            moved = _moved  # taken before looking at the head: a publish after this sets it
            if cursor == _head:
                moved.wait()
            head = _head
            if head - cursor > RING:
                return  # a whole ring behind: drop it
            yield b"".join([_ring[i % RING] for i in range(cursor, head)])
            cursor = head

    return Response(frames(), mimetype="text/event-stream", headers=STREAM_HEADERS)


# -- written from the publisher -------------------------------------------------------------------
class _Subscriber:
    __slots__ = ("sock", "chunked", "backlog", "wake", "gone")

    def __init__(self, sock, chunked: bool) -> None:
        self.sock = sock
        self.chunked = chunked
        self.backlog: list[bytes] = []  # not empty: its greenlet is sending, the publisher queues
        self.wake = Event()
        self.gone = False


_subscribers: set[_Subscriber] = set()
_direct_seq = 0


@app.post("/direct/glint")
def direct_publish():
    global _direct_seq
    body = request.get_data(cache=False)
    _direct_seq += 1
    sse = _frame(_direct_seq, body)
    chunk = b"%X\r\n%s\r\n" % (len(sse), sse)
    for sub in tuple(_subscribers):
        data = chunk if sub.chunked else sse
        if sub.backlog:
            sub.backlog.append(data)
            continue
        try:
            sent = sub.sock.send(data, 0, 0.0)  # gevent's send: timeout 0.0 never waits
        except BlockingIOError:
            sent = 0
        except OSError:
            sub.gone = True
            _subscribers.discard(sub)
            sub.wake.set()
            continue
        if sent < len(data):
            sub.backlog.append(data[sent:])
            sub.wake.set()
    return _created(body)


@app.get("/direct")
def direct_stream():
    sub = _Subscriber(
        request.environ["gunicorn.socket"], request.environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    )

    def frames():
        yield b"retry: 1000\n\n"  # gunicorn sends the headers and this chunk
        _subscribers.add(sub)
        try:
            while not sub.gone:
                sub.wake.wait()
                sub.wake.clear()
                while sub.backlog and len(sub.backlog) <= RING:
                    n = len(sub.backlog)
                    sub.sock.sendall(b"".join(sub.backlog[:n]))  # may wait; publishes queue
                    del sub.backlog[:n]
                if sub.backlog:
                    return  # a whole ring behind: drop it
        finally:
            _subscribers.discard(sub)

    return Response(frames(), mimetype="text/event-stream", headers=STREAM_HEADERS)


def wsgi(environ, start_response):
    """The POST endpoint without Flask: what the framework itself costs per request."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = orjson.loads(environ["wsgi.input"].read(length)) if length else {}
    if environ["PATH_INFO"] == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    out = orjson.dumps({"status": "ok", "module": body.get("module")})
    start_response(
        "201 Created", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))]
    )
    return [out]

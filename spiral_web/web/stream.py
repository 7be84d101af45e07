"""`GET /stream` (Server-Sent Events, JSON data) and `POST /stream/glint` (emit)."""

from __future__ import annotations

from typing import Callable, Iterator

import orjson
from flask import Blueprint, Response, request

from ..engine.events import Event, sse_frame
from ..engine.feed import listener_feed
from ..engine.glints import GlintError, parse_glint
from .common import json_response, last_event_id, source, spiral, stream_filters

bp = Blueprint("stream", __name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@bp.post("/stream/glint")
def emit():
    if request.mimetype != "application/json":
        raise GlintError(415, "unsupported_media_type", "send the glint as application/json")
    data = parse_glint(request.get_data(cache=False))
    result = spiral().orchestrator.emit(data, source())
    return json_response(result.answer(), 200 if result.duplicate else 201)


@bp.get("/stream")
def stream():
    hub = spiral()
    filters = stream_filters(request.args)
    resume = last_event_id(request.headers.get("Last-Event-ID"), request.args.get("lastEventId"))
    sub = hub.hub.subscribe(filters)  # before reading history, so nothing falls between the two
    breath = hub.orchestrator.breath.state().to_dict()
    feed = listener_feed(sub, hub.store, resume, filters, hub.config.heartbeat_seconds,
                         hub.config.replay_limit)
    greeting = b"retry: %d\n\n" % hub.config.retry_ms + sse_frame("breath", orjson.dumps(breath))
    body = sse_events(feed, frame=lambda e: e.sse, greeting=greeting)
    response = Response(body, mimetype="text/event-stream", headers=SSE_HEADERS)
    response.call_on_close(sub.close)  # also when the body never runs (HEAD, early disconnect)
    return response


def sse_events(feed: Iterator[list[Event] | None], frame: Callable[[Event], bytes],
               greeting: bytes) -> Iterator[bytes]:
    """An SSE body: the greeting, then each batch of the listener's feed in one write.

    Takes plain arguments (no request): it runs after the view has returned."""
    yield greeting
    for batch in feed:
        if batch is None:
            yield b": heartbeat\n\n"
        else:
            yield b"".join(frame(e) for e in batch)

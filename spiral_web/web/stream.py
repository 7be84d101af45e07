"""`GET /stream` (Server-Sent Events, JSON data) and `POST /stream/glint` (emit)."""

from __future__ import annotations

from typing import Callable, Generator, Iterator

import orjson
from flask import Blueprint, Response, request

from ..bus import Event, Filters, SubscriberDropped, Subscription
from ..bus.memory import sse_frame
from ..engine.glints import GlintError, parse_glint
from ..store import SQLiteStore
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
    body = sse_events(
        sub, hub.store, resume, filters, frame=lambda e: e.sse,
        greeting=b"retry: %d\n\n" % hub.config.retry_ms + sse_frame("breath", orjson.dumps(breath)),
        heartbeat=hub.config.heartbeat_seconds, replay_limit=hub.config.replay_limit,
    )
    response = Response(body, mimetype="text/event-stream", headers=SSE_HEADERS)
    response.call_on_close(sub.close)  # also when the body never runs (HEAD, early disconnect)
    return response


def sse_events(
    sub: Subscription,
    store: SQLiteStore,
    resume: int | None,
    filters: Filters,
    frame: Callable[[Event], bytes],
    greeting: bytes,
    heartbeat: float,
    replay_limit: int,
) -> Iterator[bytes]:
    """An SSE body: greeting, then what was missed since `resume`, then live events.

    Takes plain arguments (no request): it runs after the view has returned. Glint events carry their
    seq as `id:`; a glint already sent by the replay is not sent again by the live feed.
    """
    try:
        yield greeting
        last = resume if resume is not None else -1
        if resume is not None:
            last = yield from _replay(store, resume, filters, frame, replay_limit)
        while True:
            try:
                events = sub.wait(heartbeat)
            except SubscriberDropped as dropped:
                yield sse_frame("dropped", orjson.dumps({"reason": dropped.reason, "last_id": last}))
                return
            if not events and not sub.closed:
                yield b": heartbeat\n\n"
                continue
            chunks = []
            for event in events:
                if event.seq is not None:
                    if event.seq <= last:
                        continue
                    last = event.seq
                chunks.append(frame(event))
            if sub.closed:
                chunks.append(sse_frame("closing", b'{"reason":"server shutting down; reconnect to resume"}'))
            if chunks:
                yield b"".join(chunks)
            if sub.closed:
                return
    finally:
        sub.close()


def _replay(store: SQLiteStore, resume: int, filters: Filters, frame: Callable[[Event], bytes],
            limit: int) -> Generator[bytes, None, int]:
    """Yield what was stored after `resume`; return the last seq looked at."""
    oldest, newest = store.seq_bounds()
    if oldest and resume + 1 < oldest:
        yield sse_frame("replay_gap", orjson.dumps(
            {"requested_after": resume, "oldest_available": oldest,
             "message": "history no longer reaches that far; replaying from the oldest glint kept"}))
    after, sent = resume, 0
    phase = next(iter(filters.phases)) if len(filters.phases) == 1 else None
    while sent < limit:
        page = store.after(after, module=filters.module, phase=phase, limit=min(500, limit - sent))
        if not page:
            return after
        chunk = []
        for g in page:
            after = g.seq
            if filters.phases and g.phase not in filters.phases:
                continue
            chunk.append(frame(Event("glint_emission", g.json, g.seq, g.module, g.phase)))
            sent += 1
        if chunk:
            yield b"".join(chunk)
    if after < newest:
        yield sse_frame("replay_truncated", orjson.dumps(
            {"replayed_upto": after, "newest": newest,
             "message": f"replay stops after {limit} glints; page the rest from /api/glints"}))
    return after


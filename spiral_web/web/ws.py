"""`/ws`: one WebSocket to subscribe (same filters and resume point as `/stream`) and emit glints.

Client → server, one JSON object per message, each with a `type`:

    {"type": "subscribe", "module": "memory.*", "phase": ["return", "hold"], "last_event_id": 12}
    {"type": "emit", "glint": {"module": ..., "context": ...}, "ref": "r1"}
    {"type": "ping", "ref": "r2"}

Server → client: events exactly as every socket gets them (`frames.ws_frame`: the whole frame is
built once per event, and the same bytes go to every socket),

    {"event": "glint_emission", "id": 12, "data": {...glint...}}

and answers to this socket alone, which carry a `type` instead: `subscribed` (followed by the
current breath as a `breath` event, then the replay, then live events), `emit_result` (the same
answer as `POST /stream/glint`), `error` (`error`, `message`, `ref`), `pong`, `heartbeat`.

A later `subscribe` replaces the subscription. A `dropped` or `closing` notice is sent as an event
and the socket is then closed (1008 / 1001); a message over the size limit closes it with 1009.

Threads: the handler (the request's greenlet under gunicorn) receives and answers; one sender
thread per subscription drives the listener feed. Every write goes through `_Connection.write`,
under one lock, with a timeout, so a stalled socket is dropped instead of holding its sender.

The hub does not write to a WebSocket itself, as it does to an SSE stream (web/stream.py): the
library's reader thread writes pings and pongs on its own, outside the connection's lock, so a
frame the hub left half-written by a send that would not block could be interleaved with one.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import orjson
from flask import Blueprint, Flask, current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from werkzeug.datastructures import MultiDict
from wsproto.connection import ConnectionState
from wsproto.utilities import LocalProtocolError

from ..bus import frames
from ..engine.breath import iso
from ..engine.events import Filters
from ..engine.feed import listener_feed, notice
from ..engine.glints import validate_glint
from ..services import Spiral
from .access import access
from .auth.identity import refusal
from .common import source, spiral
from .errors import REFUSALS, ApiError, BadRequest
from .queries import last_event_id, stream_filters
from .security import check_rate

log = logging.getLogger(__name__)

bp = Blueprint("ws", __name__)
sock = Sock()

# Defaults; a `[ws]` table in the TOML configuration can change them.
MAX_FRAME_BYTES = 16 * 1024  # a glint's context is at most 8 KiB; this leaves room for the envelope
PING_INTERVAL = 25.0  # protocol pings: a peer that misses one is closed
SEND_TIMEOUT = 10.0  # a socket that cannot take a write for this long is stalled and dropped
SEND_BUFFER = 0  # SO_SNDBUF per socket in bytes; 0 leaves it to the OS (autotuned, up to MiBs)
REF_MAX = 128

_FRAME_KEYS = {
    "subscribe": {"type", "ref", "module", "phase", "last_event_id"},
    "emit": {"type", "ref", "glint"},
    "ping": {"type", "ref"},
}
_HEARTBEAT = frames.ws_message(b'{"type":"heartbeat"}')
_CLOSE_CODES = {"dropped": 1008, "closing": 1001}  # policy violation (too slow), going away


def init_app(app: Flask) -> None:
    """Register `/ws` with its frame-size bound and ping interval."""
    options = _options(app.extensions["spiral"])
    app.config.setdefault(
        "SOCK_SERVER_OPTIONS",
        {
            "max_message_size": options["max_frame_bytes"],
            "ping_interval": options["ping_interval"],
        },
    )
    app.extensions["spiral.ws"] = options
    app.register_blueprint(bp)


def _options(hub: Spiral) -> dict[str, float]:
    table = hub.config.extra.get("ws", {}) if isinstance(hub.config.extra, dict) else {}
    defaults = {
        "max_frame_bytes": MAX_FRAME_BYTES,
        "ping_interval": PING_INTERVAL,
        "send_timeout": SEND_TIMEOUT,
        "send_buffer": SEND_BUFFER,
    }
    unknown = set(table) - set(defaults)
    if unknown:
        raise ValueError(
            f"unknown setting [ws].{min(unknown)}; expected one of {', '.join(defaults)}"
        )
    out: dict[str, float] = {}
    for name, default in defaults.items():
        value = table.get(name, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (value > 0 or name == "send_buffer" and value == 0)
        ):
            raise ValueError(f"[ws].{name} must be a positive number, got {value!r}")
        out[name] = value
    out["max_frame_bytes"] = int(out["max_frame_bytes"])
    out["send_buffer"] = int(out["send_buffer"])
    return out


@bp.before_request
def _no_compression() -> None:
    # Without permessage-deflate, writing an event costs framing only: compressing it would be
    # per-socket work on the hot path (each connection has its own deflate context).
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


@sock.route("/ws", bp=bp)
@access("read", stream="websocket")
def websocket(ws) -> None:
    options = current_app.extensions["spiral.ws"]
    if options["send_buffer"]:
        # A smaller kernel buffer bounds memory per socket and finds a stalled peer sooner.
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, options["send_buffer"])
    conn = _Connection(ws, spiral(), source(), options["send_timeout"])
    # Reading was checked before the handshake (web/auth/guard.py); emitting is settled here, once,
    # from the credentials the handshake carried (bearer, ?token= or the dashboard's session).
    conn.publish_refusal = refusal("publish")
    conn.serve()


class _Pump:
    """One subscription's sender: the listener feed, written to the socket from its own thread."""

    def __init__(self, conn: _Connection, sub: Any, feed: Any) -> None:
        self.conn = conn
        self.sub = sub
        self.feed = feed
        self.stopped = False  # set under the connection's lock: no write happens after it
        self.thread = threading.Thread(target=self._run, name="spiral-ws-send", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Called from the handler; the feed itself is closed by the sender thread that runs it."""
        with self.conn.lock:
            self.stopped = True
        self.sub.close()  # wakes the sender if it is waiting for events

    def _run(self) -> None:
        conn = self.conn
        try:
            for batch in self.feed:
                if batch is None:
                    if not conn.write(_HEARTBEAT, self):
                        return
                    continue
                if not conn.write(b"".join([frames.ws_frame(e) for e in batch]), self):
                    return
                last = batch[-1]
                if last.seq is None and last.kind in _CLOSE_CODES:
                    reason = orjson.loads(last.data).get("reason", last.kind)
                    conn.close(_CLOSE_CODES[last.kind], str(reason), self)
                    return
        except Exception:  # e.g. the store failing mid-replay: say so, leave no half-dead socket
            log.exception("websocket sender failed")
            conn.close(1011, "server error; reconnect with last_event_id to resume", self)
        finally:
            self.feed.close()  # closes the subscription: the listener count drops at once


class _Connection:
    """One socket. `lock` orders every write; `closed` is set once the socket is being torn down."""

    def __init__(self, ws: Any, hub: Spiral, source: str, send_timeout: float) -> None:
        self.ws = ws
        self.hub = hub
        self.source = source
        self.info = {"transport": "websocket", "client": source}
        self.lock = threading.Lock()
        self.closed = False
        self._closed_by_us = False
        self._pump: _Pump | None = None
        self.publish_refusal: ApiError | None = None
        # Bounds every write (see send). The reader thread only calls recv() once its selector
        # says data is there (simple-websocket does so whenever ping_interval is set), so the
        # timeout never fires on an idle but healthy connection; without pings it would.
        if ws.ping_interval:
            ws.sock.settimeout(send_timeout)

    # -- receiving (the handler's thread) ------------------------------------------------------
    def serve(self) -> None:
        try:
            while not self.closed:
                raw = self.ws.receive()
                if raw is not None:
                    self._handle(raw)
        except ConnectionClosed:
            max_size = self.ws.max_message_size
            if max_size and self.ws.incoming_message_len > max_size:  # the library sent 1009
                self.hub.breath.record_rejection(self.source, 1009, "frame_too_large")
        finally:
            self._stop_pump()
            self.closed = True
            if self._closed_by_us:
                # Let the reader thread take the peer's close reply before the server closes the
                # socket, so the peer reads our close frame rather than a reset.
                self.ws.thread.join(timeout=1.0)

    def _handle(self, raw: str | bytes) -> None:
        ref: Any = None
        kind: Any = None
        try:
            frame = _decode(raw)
            ref = frame.get("ref")
            if not _valid_ref(ref):
                ref = None
                raise BadRequest(
                    "invalid_frame",
                    f"ref must be a string (at most {REF_MAX} characters) or an integer",
                )
            given = frame.get("type")
            kind = given if isinstance(given, str) and given in _FRAME_KEYS else None
            if kind is None:
                raise BadRequest(
                    "unknown_type",
                    f"unknown frame type {str(given)[:40]!r}; expected one of "
                    f"{', '.join(_FRAME_KEYS)}",
                )
            extra = sorted(set(frame) - _FRAME_KEYS[kind])
            if extra:
                raise BadRequest(
                    "invalid_frame", f"unexpected field {extra[0]!r} in a {kind} frame"
                )
            if kind == "ping":
                self._reply({"type": "pong", "ref": ref})
            elif kind == "subscribe":
                self._subscribe(frame, ref)
            else:
                self._emit(frame, ref)
        except REFUSALS as exc:
            if kind in ("emit", None):  # as a refused POST counts; a bad filter, like a bad
                self.hub.breath.record_rejection(self.source, exc.status, exc.error)  # GET: no
            self._reply({"type": "error", "ref": ref, **exc.to_dict()})
        except Exception:
            log.exception("websocket frame failed")
            self._reply(
                {
                    "type": "error",
                    "ref": ref,
                    "error": "internal_error",
                    "message": "the server failed to handle this frame; it was logged",
                }
            )

    def _subscribe(self, frame: dict[str, Any], ref: Any) -> None:
        filters = _filters(frame)
        raw_resume = frame.get("last_event_id")
        if raw_resume is not None and (
            isinstance(raw_resume, bool) or not isinstance(raw_resume, (int, str))
        ):
            raise BadRequest(
                "invalid_last_event_id", "last_event_id must be a whole number (a glint seq)"
            )
        resume = last_event_id(None, None if raw_resume is None else str(raw_resume))
        self._stop_pump()
        hub, config = self.hub, self.hub.config
        # before reading history, so nothing falls between the two
        sub = hub.hub.subscribe(filters, {**self.info, "since": iso(hub.clock.now())})
        breath = hub.breath.state().to_dict()
        feed = listener_feed(
            sub, hub.store, resume, filters, config.heartbeat_seconds, config.replay_limit
        )
        answer = {
            "type": "subscribed",
            "ref": ref,
            "module": filters.module,
            "phase": sorted(filters.phases),
            "last_event_id": resume,
        }
        # Answered here, in frame order; events follow from the sender once the greeting is out.
        greeting = [orjson.dumps(answer).decode(), frames.ws_text(notice("breath", **breath))]
        if not self.send(greeting):
            sub.close()  # the feed never started, so its own cleanup will not run
            return
        self._pump = _Pump(self, sub, feed)
        self._pump.start()

    def _emit(self, frame: dict[str, Any], ref: Any) -> None:
        if self.publish_refusal is not None:
            raise self.publish_refusal
        check_rate(self.source)  # 429 with retry_after, as POST /stream/glint answers
        data = validate_glint(frame.get("glint"))
        result = self.hub.orchestrator.emit(data, self.source)
        self._reply({"type": "emit_result", "ref": ref, **result.answer()})

    def _stop_pump(self) -> None:
        if self._pump is not None:
            self._pump.stop()
            self._pump = None

    def _reply(self, payload: dict[str, Any]) -> None:
        self.send([orjson.dumps(payload).decode()])

    # -- writing (any thread) ------------------------------------------------------------------
    def send(self, texts: list[str], pump: _Pump | None = None) -> bool:
        """Write text messages in one go; False when this socket (or this sender) is done."""
        return self.write(b"".join(frames.ws_message(t.encode()) for t in texts), pump)

    def write(self, data: bytes, pump: _Pump | None = None) -> bool:
        """Write whole frames made already (events' frames are shared by every socket); False
        when this socket (or this sender) is done."""
        with self.lock:
            if self.closed or (pump is not None and pump.stopped) or not self.ws.connected:
                return False
            if self.ws.ws.state is not ConnectionState.OPEN:  # a close frame went out
                self._abort_locked()
                return False
            try:
                # sendall, not the library's send(): under gevent a send() can write part of a
                # large batch and return; the socket timeout bounds how long a write may take.
                self.ws.sock.sendall(data)
            except OSError:  # socket.timeout is an OSError: stalled
                self._abort_locked()
                return False
            return True

    def close(self, code: int, reason: str, pump: _Pump | None = None) -> None:
        """Send a close frame with a reason, then let the handler finish."""
        with self.lock:
            if self.closed or (pump is not None and pump.stopped):
                return
            self.closed = self._closed_by_us = True
            try:
                self.ws.close(reason=code, message=reason.encode()[:120].decode("utf-8", "ignore"))
            except (OSError, LocalProtocolError, ConnectionClosed):
                pass
            self.ws.event.set()  # the handler is waiting in receive()

    def _abort_locked(self) -> None:
        """Give up on the socket at once (stalled or broken): no close handshake."""
        if self.closed:
            return
        self.closed = True
        self.ws.connected = False
        try:
            self.ws.sock.shutdown(socket.SHUT_RDWR)  # ends the reader thread too
        except OSError:
            pass
        self.ws.event.set()


def _valid_ref(ref: Any) -> bool:
    """A ref is echoed in answers: a short string, an integer, or absent."""
    if ref is None:
        return True
    if isinstance(ref, str):
        return len(ref) <= REF_MAX
    return isinstance(ref, int) and not isinstance(ref, bool)


def _decode(raw: str | bytes) -> dict[str, Any]:
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("invalid_json", "a frame must be a JSON object") from None
    if not isinstance(frame, dict):
        raise BadRequest("invalid_frame", "a frame must be a JSON object with a type")
    return frame


def _filters(frame: dict[str, Any]) -> Filters:
    """The subscribe frame's filters, checked exactly like `/stream`'s query parameters."""
    module, phase = frame.get("module"), frame.get("phase")
    if module is not None and not isinstance(module, str):
        raise BadRequest("invalid_filter", "module must be a string such as 'memory.*'")
    phases = [phase] if isinstance(phase, str) else phase if phase is not None else []
    if not isinstance(phases, list) or not all(isinstance(p, str) for p in phases):
        raise BadRequest("invalid_filter", "phase must be a phase name or a list of them")
    args = MultiDict([("module", module or "")] + [("phase", p) for p in phases])
    return stream_filters(args)

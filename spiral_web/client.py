"""What outside modules import: `emit_glint`, a stream listener that reconnects and resumes, and
the `Agent` base class. No Flask here: this runs in other people's processes."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import requests

from .engine.rules import activation

DEFAULT_URL = os.environ.get("SPIRAL_URL", "http://127.0.0.1:5056")


class SpiralError(Exception):
    """The server refused a request; `status` and `body` say why."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body.get('error', '')}: {body.get('message', body)}")
        self.status = status
        self.body = body


def emit_glint(
    module: str,
    phase: str | None = None,
    context: dict[str, Any] | None = None,
    *,
    id: str | None = None,
    parent_id: str | None = None,
    url: str = DEFAULT_URL,
    token: str | None = None,
    timeout: float = 10.0,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """POST one glint; returns the server's answer (`status`, `id`, `seq`, `listeners`).

    `token` is a publish token (default: $SPIRAL_TOKEN); its name becomes the glint's source."""
    payload: dict[str, Any] = {"module": module, "context": context or {}}
    for key, value in (("phase", phase), ("id", id), ("parent_id", parent_id)):
        if value is not None:
            payload[key] = value
    headers = {"Content-Type": "application/json"}
    token = token if token is not None else os.environ.get("SPIRAL_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    http = session or requests
    resp = http.post(
        f"{url.rstrip('/')}/stream/glint",
        data=orjson.dumps(payload),
        headers=headers,
        timeout=timeout,
    )
    body = resp.json() if resp.content else {}
    if resp.status_code >= 400:
        raise SpiralError(resp.status_code, body)
    return body


@dataclass(frozen=True)
class StreamEvent:
    event: str
    id: str | None
    data: Any  # decoded JSON where the data is JSON, else the raw text


def parse_sse(chunks: Iterator[bytes]) -> Iterator[StreamEvent | int]:
    """Turn SSE bytes into events; a `retry:` field is yielded as an int (milliseconds)."""
    buffer = b""
    event, eid = "", None
    data: list[str] = []
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if not line:
                if data:
                    text = "\n".join(data)
                    try:
                        value: Any = orjson.loads(text)
                    except orjson.JSONDecodeError:
                        value = text
                    yield StreamEvent(event or "message", eid, value)
                event, data = "", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                eid = value
            elif name == "retry" and value.isdigit():
                yield int(value)


# What a Listener tells `on_status` while it connects: ("connecting", url), ("connected", url),
# ("retrying", why the last attempt failed or ended: the error's type and text). The CLI prints
# them; a program may log them.
StatusCallback = Callable[[str, str], None]


class Listener:
    """The stream at `GET /stream` as an iterable that reconnects with `Last-Event-ID`, so nothing
    is missed or repeated. `close()` ends it from any thread, even while it waits for data;
    `on_status` hears it connect, and why it retries."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        module: str | None = None,
        phase: str | None = None,
        last_event_id: str | int | None = None,
        token: str | None = None,
        reconnect: bool = True,
        read_timeout: float = 60.0,
        on_status: StatusCallback | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.on_status = on_status
        self.params = {k: v for k, v in (("module", module), ("phase", phase)) if v}
        self.last_event_id = None if last_event_id is None else str(last_event_id)
        self.token = token if token is not None else os.environ.get("SPIRAL_TOKEN")
        self.reconnect = reconnect
        self.read_timeout = read_timeout
        self._closed = threading.Event()
        self.worker: str | None = None
        self._response: requests.Response | None = None
        self._lock = threading.RLock()  # RLock: close() may run in a signal handler on this thread

    def __iter__(self) -> Iterator[StreamEvent]:
        delay = 1.0
        self._status("connecting", f"{self.url}/stream")
        while not self._closed.is_set():
            why = "the stream ended"
            headers = {"Accept": "text/event-stream"}
            if self.last_event_id is not None:
                headers["Last-Event-ID"] = self.last_event_id
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            try:
                with requests.get(
                    f"{self.url}/stream",
                    params=self.params,
                    headers=headers,
                    stream=True,
                    timeout=(10, self.read_timeout),
                ) as resp:
                    if resp.status_code >= 500:  # a restarting server or a proxy: try again
                        raise requests.ConnectionError(f"{resp.status_code} from {self.url}/stream")
                    if resp.status_code >= 400:
                        raise SpiralError(resp.status_code, _json_or_text(resp))
                    with self._lock:
                        self._response = resp
                    self.worker = resp.headers.get("X-Spiral-Worker")  # which server process
                    if self._closed.is_set():
                        return
                    self._status("connected", f"{self.url}/stream")
                    for item in parse_sse(resp.iter_content(chunk_size=None)):
                        if isinstance(item, int):
                            delay = item / 1000
                            continue
                        if item.id:
                            self.last_event_id = item.id
                        yield item
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                if self._closed.is_set():
                    return
                why = f"{type(exc).__name__}: {exc}"
            except Exception:
                if self._closed.is_set():  # whatever a read says when close() pulls the socket
                    return
                raise
            finally:
                with self._lock:
                    self._response = None
            if not self.reconnect:
                return
            self._status("retrying", why)
            self._closed.wait(delay)

    def _status(self, state: str, detail: str) -> None:
        if self.on_status is not None:
            self.on_status(state, detail)

    def close(self) -> None:
        """End the iteration; safe from another thread and from a signal handler's thread."""
        self._closed.set()
        with self._lock:
            resp = self._response
        if resp is not None:
            _shut(resp)


def _shut(resp: requests.Response) -> None:
    """Break a blocking read on `resp` from another thread: shut its socket down."""
    sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    else:
        resp.close()


def _json_or_text(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {"error": "http_error", "message": resp.text[:200]}
    return body if isinstance(body, dict) else {"error": "http_error", "message": str(body)[:200]}


def listen(
    url: str = DEFAULT_URL,
    *,
    module: str | None = None,
    phase: str | None = None,
    last_event_id: str | int | None = None,
    token: str | None = None,
    reconnect: bool = True,
    read_timeout: float = 60.0,
    on_status: StatusCallback | None = None,
) -> Iterator[StreamEvent]:
    """Yield events from `GET /stream` forever, reconnecting with `Last-Event-ID` so nothing is
    missed or repeated. Stop by breaking out of the loop (or use `Listener` and its `close()`).
    `on_status(state, detail)` hears "connecting", "connected" and "retrying" (with why)."""
    listener = Listener(
        url,
        module=module,
        phase=phase,
        last_event_id=last_event_id,
        token=token,
        reconnect=reconnect,
        read_timeout=read_timeout,
        on_status=on_status,
    )
    try:
        yield from listener
    finally:
        listener.close()


class Agent:
    """A background module that breathes with the hub: it listens to the stream, acts only in the
    phases it declares, responds to the glints its pattern matches, and emits its answers with the
    trigger as `parent_id`. Subclass it:

        class MemoryKeeper(Agent):
            module = "agent.memory_keeper"           # the name its own glints carry
            phases = {"return"}                      # the phases it acts in
            pattern = 'module == "memory.scroll"'    # a CEL rule, as rituals use

            def respond(self, glint):
                return {"context": {"reflection": glint["context"]}}

    The pattern sees the glint's `module`, `phase`, `context`, `id`, `parent_id`, `source` and the
    breath's `climate`, `usage` and `breath_phase` (see spiral_web.engine.rules). The current phase
    comes from the stream's `breath` events; while the hub rests (`resting: true`) the agent rests
    too unless it declares `night_hold`. It never responds to its own glints. `run()` blocks until
    `stop()`; `handle()` acts on one event and is what tests drive directly.
    """

    module: str = ""
    phases: Collection[str] = frozenset()
    pattern: str = "true"
    stream_module: str | None = None  # optional module glob the server filters glints by
    remember = 1024  # how many of its own glint ids it keeps, to never answer itself
    attempts = 3  # tries per answer when throttled (429) or the server fails; the id makes it safe

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        last_event_id: str | int | None = None,
        session: requests.Session | None = None,
    ) -> None:
        from .engine.breath import PHASES
        from .engine.glints import MODULE_PATTERN
        from .engine.rules import Rule

        name = type(self).__name__
        if not isinstance(self.module, str) or not re.match(MODULE_PATTERN, self.module):
            raise ValueError(
                f"{name}.module must be a dotted lowercase name such as "
                f"'agent.memory_keeper', got {self.module!r}"
            )
        phases = {self.phases} if isinstance(self.phases, str) else set(self.phases)
        unknown = phases - set(PHASES)
        if not phases or unknown:
            raise ValueError(
                f"{name}.phases must name the phases it acts in, from "
                f"{', '.join(PHASES)}" + (f"; unknown: {min(unknown)!r}" if unknown else "")
            )
        self.phases = frozenset(phases)
        self.rule = Rule(self.pattern)  # RuleError names the problem
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get("SPIRAL_TOKEN")
        self.breath: dict[str, Any] = {}
        self.log = logging.getLogger(f"spiral.agent.{self.module}")
        self._last_event_id = last_event_id
        self._given_session = session
        self._session = session  # during run(): one session (kept-alive connection) for answers
        self._own_ids: deque[str] = deque(maxlen=self.remember)
        self._stop = threading.Event()
        self._listener: Listener | None = None

    # -- what a subclass writes ----------------------------------------------------------------
    def respond(self, glint: dict[str, Any]) -> dict[str, Any] | None:
        """The glint to emit in answer (`context`, optionally `phase`, `module`, `id`), or None."""
        raise NotImplementedError

    def on_breath(self, breath: dict[str, Any]) -> None:
        """Called with every breath state the stream sends (phase, climate, usage, resting)."""

    # -- behaviour -----------------------------------------------------------------------------
    @property
    def awake(self) -> bool:
        """True when the current breath is one of this agent's phases (and it need not rest)."""
        if self.breath.get("phase") not in self.phases:
            return False
        return not self.breath.get("resting") or "night_hold" in self.phases

    def handle(self, event: StreamEvent) -> dict[str, Any] | None:
        """Act on one stream event; returns the server's answer when it emitted a glint."""
        if event.event == "breath" and isinstance(event.data, dict):
            self.breath = event.data
            self.on_breath(event.data)
            return None
        glint = event.data
        if event.event != "glint_emission" or not isinstance(glint, dict):
            return None
        if glint.get("module") == self.module or glint.get("id") in self._own_ids:
            return None
        if not self.awake or not self.rule.matches(activation(glint, self.breath, "glint")):
            return None
        reply = self.respond(glint)
        if reply is None:
            return None
        return self.emit(reply, parent=glint)

    def emit(self, reply: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
        """Emit `reply` as a child of `parent`. Its id is derived from the parent's unless given, so
        answering the same glint twice (a retry, a restart) is stored once. Retries a refusal that
        may pass later (429, 5xx, no connection) up to `attempts` times."""
        parent_id = str(parent["id"])
        gid = reply.get("id") or _child_id(self.module, parent_id)
        self._own_ids.append(gid)
        for attempt in range(1, self.attempts + 1):
            try:
                answer = emit_glint(
                    reply.get("module", self.module),
                    reply.get("phase"),
                    reply.get("context") or {},
                    id=gid,
                    parent_id=parent_id,
                    url=self.url,
                    token=self.token,
                    session=self._session,
                )
                break
            except SpiralError as exc:  # throttled or a server error: worth another try
                if attempt == self.attempts or not (exc.status == 429 or exc.status >= 500):
                    raise
                wait = _retry_after(exc.body)
            except (requests.ConnectionError, requests.Timeout):
                if attempt == self.attempts:
                    raise
                wait = 1.0
            if self._stop.wait(wait):  # stopping: give up on this answer
                raise SpiralError(503, {"error": "stopped", "message": "the agent is stopping"})
        self.log.info(
            "answered %s (%s) with %s: %s",
            parent_id,
            parent.get("module"),
            gid,
            answer.get("status"),
        )
        return answer

    def run(self, max_events: int | None = None) -> int:
        """Listen and act until `stop()` (or after `max_events` glints); returns how many glints it
        emitted. Reconnects and resumes by itself; a failing answer is logged, not fatal."""
        listener = Listener(
            self.url, module=self.stream_module, token=self.token, last_event_id=self._last_event_id
        )
        self._listener = listener
        self._session = self._given_session or requests.Session()
        if self._stop.is_set():
            listener.close()
        seen = emitted = 0
        try:
            for event in listener:
                try:
                    if self.handle(event) is not None:
                        emitted += 1
                except SpiralError as exc:
                    self.log.warning("answer to %s refused: %s", _event_id(event), exc)
                except requests.RequestException as exc:
                    self.log.warning("answer to %s not sent: %s", _event_id(event), exc)
                except Exception:
                    self.log.exception("failed on %s", _event_id(event))
                if event.event == "glint_emission":
                    seen += 1
                    if max_events is not None and seen >= max_events:
                        break
                if self._stop.is_set():
                    break
        finally:
            listener.close()
            self._last_event_id = listener.last_event_id  # a later run() resumes from here
            if self._session is not self._given_session:
                self._session.close()
            self._session = self._given_session
        return emitted

    def stop(self) -> None:
        """End `run()` from another thread (or a signal handler)."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()


def _child_id(module: str, parent_id: str) -> str:
    gid = f"{module}:{parent_id}"
    if len(gid) <= 128:
        return gid
    return f"{module[:80]}:{uuid.uuid5(uuid.NAMESPACE_URL, gid)}"


def _retry_after(body: dict[str, Any]) -> float:
    try:
        return min(max(float(body.get("retry_after") or 1.0), 0.1), 10.0)
    except (TypeError, ValueError):
        return 1.0


def _event_id(event: StreamEvent) -> str:
    data = event.data
    return str(data.get("id")) if isinstance(data, dict) else str(event.id)

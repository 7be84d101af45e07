"""Reading the hub's stream: the SSE parser, and `Listener`/`listen`, which reconnect with
`Last-Event-ID` so nothing is missed or repeated."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import requests

from .emit import DEFAULT_URL, SpiralError


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

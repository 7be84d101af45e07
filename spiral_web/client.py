"""What outside modules import: `emit_glint`, a stream listener that reconnects and resumes."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Iterator

import orjson
import requests

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
    """POST one glint; returns the server's answer (`status`, `id`, `seq`, `listeners`)."""
    payload: dict[str, Any] = {"module": module, "context": context or {}}
    for key, value in (("phase", phase), ("id", id), ("parent_id", parent_id)):
        if value is not None:
            payload[key] = value
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    http = session or requests
    resp = http.post(f"{url.rstrip('/')}/stream/glint", data=orjson.dumps(payload), headers=headers,
                     timeout=timeout)
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
    event, data, eid = "", [], None
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


def listen(
    url: str = DEFAULT_URL,
    *,
    module: str | None = None,
    phase: str | None = None,
    last_event_id: str | int | None = None,
    token: str | None = None,
    reconnect: bool = True,
    read_timeout: float = 60.0,
) -> Iterator[StreamEvent]:
    """Yield events from `GET /stream` forever, reconnecting with `Last-Event-ID` so nothing is
    missed or repeated. Stop by breaking out of the loop."""
    params = {k: v for k, v in (("module", module), ("phase", phase)) if v}
    last = None if last_event_id is None else str(last_event_id)
    delay = 1.0
    while True:
        headers = {"Accept": "text/event-stream"}
        if last is not None:
            headers["Last-Event-ID"] = last
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            with requests.get(f"{url.rstrip('/')}/stream", params=params, headers=headers,
                              stream=True, timeout=(10, read_timeout)) as resp:
                if resp.status_code >= 400:
                    raise SpiralError(resp.status_code, resp.json())
                for item in parse_sse(resp.iter_content(chunk_size=None)):
                    if isinstance(item, int):
                        delay = item / 1000
                        continue
                    if item.id:
                        last = item.id
                    yield item
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError):
            pass
        if not reconnect:
            return
        time.sleep(delay)

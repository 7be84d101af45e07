"""Reading event streams in tests: one parser, two readers. SSEReader pulls a Flask test client's
streaming response from the test's own thread; StreamTap reads a running server's stream on a
thread of its own. (The product's own reader, spiral_web.client.Listener, is tested as such.)"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests


@dataclass
class Frame:
    """One SSE message (or a comment-only block), as the bytes put it."""

    raw: bytes
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    data_lines: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)  # when it was read

    @property
    def data(self) -> str:
        return "\n".join(self.data_lines)

    def json(self) -> Any:
        return orjson.loads(self.data)


def parse_frame(raw: bytes) -> Frame:
    frame = Frame(raw)
    for line in raw.decode().split("\n"):
        if line.startswith(":"):
            frame.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            frame.event = value
        elif name == "id":
            frame.id = value
        elif name == "retry":
            frame.retry = int(value)
        elif name == "data":
            frame.data_lines.append(value)
    return frame


def split_frames(buffer: bytes) -> tuple[list[Frame], bytes]:
    """The complete messages in `buffer`, and what is left of it (the start of the next)."""
    *complete, rest = buffer.split(b"\n\n")
    return [parse_frame(raw) for raw in complete], rest


class SSEReader:
    """Pulls chunks from the response's body iterator (the view's generator) in this thread.

    The app under test must use a short heartbeat: each pull then returns within it, so a test
    that waits for something that never comes fails at `timeout` instead of hanging.
    """

    def __init__(self, response, timeout: float = 5.0) -> None:
        self.response = response
        self.timeout = timeout
        self._chunks = iter(response.response)
        self._buffer = b""
        self.frames: list[Frame] = []
        self.ended = False

    def _pull(self) -> bool:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self.ended = True
            return False
        self._buffer += chunk if isinstance(chunk, bytes) else chunk.encode()
        complete, self._buffer = split_frames(self._buffer)
        self.frames.extend(complete)
        return True

    def until(
        self, done: Callable[[list[Frame]], bool], timeout: float | None = None
    ) -> list[Frame]:
        """Read until `done(frames so far)`; fail if that does not happen in time or the stream
        ends first."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not done(self.frames):
            if time.monotonic() > deadline:
                raise AssertionError(f"stream did not deliver in time; got {self.frames!r}")
            if not self._pull():
                if done(self.frames):
                    break
                raise AssertionError(f"stream ended early; got {self.frames!r}")
        return self.frames

    def glints(self, count: int, timeout: float | None = None) -> list[Frame]:
        """Read until `count` glint_emission frames have arrived in total; return all of them."""
        self.until(lambda frames: len(glint_frames(frames)) >= count, timeout)
        return glint_frames(self.frames)

    def read_to_end(self) -> list[Frame]:
        deadline = time.monotonic() + self.timeout
        while self._pull():
            assert time.monotonic() < deadline, "stream did not end"
        return self.frames

    def close(self) -> None:
        self.response.close()


def glint_frames(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.event == "glint_emission"]


def seqs(frames: list[Frame]) -> list[int]:
    return [int(f.id) for f in frames]  # type: ignore[arg-type]


class StreamTap:
    """Reads a running server's event stream (`/stream` or `/dashboard/stream`) on a thread and
    keeps every message with the time it arrived. `close()` ends it at once, from any thread."""

    def __init__(self, url: str, path: str = "/stream", headers: dict[str, str] | None = None):
        self.frames: list[Frame] = []
        self.greeted = threading.Event()  # the breath, the first event every stream sends
        self._resp = requests.get(url + path, headers=headers, stream=True, timeout=(5, 30))
        self._thread = threading.Thread(target=self._read, name="stream-tap", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = b""
        try:
            for chunk in self._resp.iter_content(chunk_size=None):
                complete, buffer = split_frames(buffer + chunk)
                self.frames.extend(complete)  # list.extend is atomic: readers see whole frames
                if any(f.event == "breath" for f in complete):
                    self.greeted.set()
        except (requests.RequestException, OSError, AttributeError, ValueError):
            pass  # closed by the test

    def glints(self) -> list[Frame]:
        return glint_frames(list(self.frames))

    def seqs(self) -> list[int]:
        return seqs(self.glints())

    def wait_for(self, predicate: Callable[[Frame], bool], timeout: float = 10.0) -> Frame:
        """The first message that `predicate` accepts; fail if none comes in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in list(self.frames):
                if predicate(frame):
                    return frame
            time.sleep(0.02)
        raise AssertionError(f"no such message; got {self.frames!r}")

    def close(self) -> None:
        # Shut the socket down first: the reading thread may be waiting in recv() for the next
        # message, and closing the response alone would not wake it.
        connection = getattr(self._resp.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._resp.close()
        self._thread.join(10)

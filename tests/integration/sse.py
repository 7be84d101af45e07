"""Reading a streaming Flask test-client response frame by frame, from the test's own thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Frame:
    """One SSE message (or a comment-only block), as the bytes put it."""

    raw: bytes
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    data_lines: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

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
        *complete, self._buffer = self._buffer.split(b"\n\n")
        self.frames.extend(parse_frame(raw) for raw in complete)
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

"""Events as listeners receive them: serialized once, framed at most once per transport."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Filters:
    """What a subscriber wants: a module glob (e.g. `memory.*`) and/or a set of phases."""

    module: str | None = None
    phases: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return self.module is None and not self.phases

    def pattern(self) -> re.Pattern[str] | None:
        return re.compile(fnmatch.translate(self.module)) if self.module else None


class Event:
    """One published event. `data` is its JSON, serialized once by the publisher."""

    __slots__ = ("pos", "kind", "seq", "module", "phase", "data", "_sse", "_ws", "_html")

    def __init__(
        self,
        kind: str,
        data: bytes,
        seq: int | None = None,
        module: str | None = None,
        phase: str | None = None,
    ) -> None:
        self.pos = 0
        self.kind = kind
        self.seq = seq
        self.module = module
        self.phase = phase
        self.data = data
        self._sse: bytes | None = None
        self._ws: str | None = None
        self._html: str | None = None

    @property
    def sse(self) -> bytes:
        if self._sse is None:
            self._sse = sse_frame(self.kind, self.data, self.seq)
        return self._sse

    @property
    def ws(self) -> str:
        if self._ws is None:
            head = b'{"event":"' + self.kind.encode() + b'","id":'
            head += str(self.seq).encode() if self.seq is not None else b"null"
            self._ws = (head + b',"data":' + self.data + b"}").decode()
        return self._ws

    def html(self, render: Callable[[Event], str]) -> str:
        """The event rendered as an HTML fragment; rendered by the first caller, shared after."""
        if self._html is None:
            self._html = render(self)
        return self._html

    def matches(self, filters: Filters, pattern: re.Pattern[str] | None) -> bool:
        if self.kind != "glint_emission" or filters.empty:
            return True
        if pattern is not None and (self.module is None or not pattern.match(self.module)):
            return False
        return not filters.phases or self.phase in filters.phases


def sse_frame(kind: str, data: bytes, seq: int | None = None) -> bytes:
    head = b"id: %d\n" % seq if seq is not None else b""
    return head + b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

"""Events as listeners receive them: serialized once, and framed at most once per transport.

The engine hands out events; how a transport frames one (SSE bytes, a WebSocket message, an HTML
fragment) is the transport's business (spiral_web/bus/frames.py). Each framing is kept on the event
under the transport's own key, so every socket of a transport gets the same bytes."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


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

    __slots__ = ("pos", "kind", "seq", "module", "phase", "data", "_framed")

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
        self._framed: dict[str, Any] | None = None

    def framed(self, key: str, build: Callable[[Event], T]) -> T:
        """This event in the framing named `key`: built by the first caller, shared after."""
        cache = self._framed
        if cache is None:
            cache = self._framed = {}
        elif key in cache:
            return cache[key]  # type: ignore[no-any-return]
        value = cache[key] = build(self)
        return value

    def matches(self, filters: Filters, pattern: re.Pattern[str] | None) -> bool:
        if self.kind != "glint_emission" or filters.empty:
            return True
        if pattern is not None and (self.module is None or not pattern.match(self.module)):
            return False
        return not filters.phases or self.phase in filters.phases

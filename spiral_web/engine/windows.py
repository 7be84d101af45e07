"""Sliding-window counters bucketed by whole seconds: cheap to bump on the hot path."""

from __future__ import annotations

from collections import deque


class SecondCounter:
    """Counts events per second over the last `span` seconds."""

    def __init__(self, span: int) -> None:
        self.span = span
        self._buckets: deque[list[int]] = deque()  # [second, count], oldest first

    def add(self, now: float, n: int = 1) -> None:
        second = int(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([second, n])
        self._trim(second)

    def total(self, now: float, span: int | None = None) -> int:
        second = int(now)
        self._trim(second)
        window = self.span if span is None else min(span, self.span)
        return sum(c for s, c in self._buckets if s > second - window)

    def rate(self, now: float, span: int | None = None) -> float:
        window = self.span if span is None else min(span, self.span)
        return self.total(now, window) / window

    def series(self, now: float, points: int) -> list[int]:
        """Counts for the last `points` whole seconds, oldest first."""
        second = int(now)
        counts = {s: c for s, c in self._buckets}
        return [counts.get(s, 0) for s in range(second - points + 1, second + 1)]

    def _trim(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - self.span:
            self._buckets.popleft()

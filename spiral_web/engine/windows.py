"""Sliding-window counters bucketed by whole seconds: cheap to bump on the hot path."""

from __future__ import annotations

from collections import deque


class SecondCounter:
    """Counts events per second over the last `span` seconds.

    Keeps a running total of its buckets, so the whole window's total costs nothing to read (the
    breath reads it on every glint); a shorter window is summed from the newest bucket back."""

    def __init__(self, span: int) -> None:
        self.span = span
        self._buckets: deque[list[int]] = deque()  # [second, count], oldest first
        self._sum = 0  # of every bucket kept
        # The seconds only grow, unless a clock was set back between two adds (a fake clock, or
        # two threads reading the time in one order and adding in the other): then the buckets
        # are summed one by one, as they always were, until the window empties.
        self._ordered = True

    def add(self, now: float, n: int = 1) -> None:
        second = int(now)
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += n
        else:
            if buckets and buckets[-1][0] > second:
                self._ordered = False
            buckets.append([second, n])
        self._sum += n
        self._trim(second)

    def total(self, now: float, span: int | None = None) -> int:
        second = int(now)
        self._trim(second)
        window = self.span if span is None else min(span, self.span)
        if not self._ordered:
            return sum(c for s, c in self._buckets if s > second - window)
        if window == self.span:
            return self._sum  # every bucket left after the trim is in the window
        total = 0
        for s, c in reversed(self._buckets):
            if s <= second - window:
                break
            total += c
        return total

    def rate(self, now: float, span: int | None = None) -> float:
        window = self.span if span is None else min(span, self.span)
        return self.total(now, window) / window

    def series(self, now: float, points: int) -> list[int]:
        """Counts for the last `points` whole seconds, oldest first."""
        second = int(now)
        counts = {s: c for s, c in self._buckets}
        return [counts.get(s, 0) for s in range(second - points + 1, second + 1)]

    def _trim(self, second: int) -> None:
        buckets = self._buckets
        while buckets and buckets[0][0] <= second - self.span:
            self._sum -= buckets.popleft()[1]
        if not buckets:
            self._ordered = True

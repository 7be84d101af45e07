"""The in-process broadcast hub.

Every event is serialized once, into an `Event` whose frames (SSE bytes, WebSocket text, rendered
HTML) are built at most once and then shared by every subscriber. The hub keeps the most recent
events in one ring; a subscriber is only a cursor into it, so publishing costs the same for one
subscriber as for ten thousand, and a subscriber that lags can take its whole backlog in one write.
A subscriber that falls further behind than the ring holds is dropped with a reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson

from ..engine.events import Event, Filters


class SubscriberDropped(Exception):
    """The subscriber fell too far behind; `reason` says how far."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Subscription:
    def __init__(
        self, hub: MemoryHub, filters: Filters, cursor: int, info: Mapping[str, Any] | None = None
    ) -> None:
        self.hub = hub
        self.filters = filters
        self.cursor = cursor
        self.info = dict(info or {})  # who it is, for operators: transport, client, since…
        self._pattern = filters.pattern()
        self.closed = False

    def wait(self, timeout: float) -> list[Event]:
        """Events published since the last call (filtered), waiting up to `timeout` for one."""
        events = self.hub._take(self, timeout)
        if self.filters.empty:
            return events
        return [e for e in events if e.matches(self.filters, self._pattern)]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryHub:
    """Broadcast to subscribers in this process. Thread- and greenlet-safe."""

    def __init__(self, capacity: int = 8192) -> None:
        self.capacity = capacity
        self._ring: list[Event | None] = [None] * capacity
        self._head = 0  # position the next event will take
        # A plain lock guards the ring; waiters sleep on an Event that each publish swaps for a new
        # one and sets after releasing the lock. (A Condition hands its lock to every waiter in
        # turn: a convoy that cost 30% of a worker at 1,000 subscribers.)
        self._lock = threading.Lock()
        self._signal = threading.Event()
        self._subs: set[Subscription] = set()
        self._backlog_cache = (0.0, 0.0)
        self.dropped_total = 0
        self.published_total = 0

    # -- publishing ----------------------------------------------------------------------------
    def publish(
        self,
        kind: str,
        payload: Any = None,
        *,
        data: bytes | None = None,
        seq: int | None = None,
        module: str | None = None,
        phase: str | None = None,
    ) -> Event:
        event = Event(kind, data if data is not None else orjson.dumps(payload), seq, module, phase)
        with self._lock:
            event.pos = self._head
            self._ring[self._head % self.capacity] = event
            self._head += 1
            self.published_total += 1
            signal, self._signal = self._signal, threading.Event()
        signal.set()
        return event

    # -- subscribing ---------------------------------------------------------------------------
    def subscribe(
        self, filters: Filters | None = None, info: Mapping[str, Any] | None = None
    ) -> Subscription:
        with self._lock:
            sub = Subscription(self, filters or Filters(), self._head, info)
            self._subs.add(sub)
            return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def _take(self, sub: Subscription, timeout: float) -> list[Event]:
        if sub.cursor == self._head and not sub.closed:
            signal = self._signal  # read before the head: a publish after this line sets it
            if sub.cursor == self._head:
                signal.wait(timeout)
        with self._lock:
            head = self._head
            if sub.cursor < head - self.capacity:
                behind = head - sub.cursor
                sub.cursor = head
                self.dropped_total += 1
                raise SubscriberDropped(
                    f"fell {behind} events behind (buffer holds {self.capacity})"
                )
            events = [self._ring[p % self.capacity] for p in range(sub.cursor, head)]
            sub.cursor = head
        return events  # type: ignore[return-value]

    def subscribers(self, limit: int = 200) -> list[dict[str, Any]]:
        """This process's subscribers for operators: who, which filters, how far behind (events
        published that it has not taken yet), the furthest behind first."""
        with self._lock:
            rows = [
                {
                    **s.info,
                    "module": s.filters.module,
                    "phases": sorted(s.filters.phases),
                    "lag": self._head - s.cursor,
                }
                for s in self._subs
            ]
        rows.sort(key=lambda r: -r["lag"])
        return rows[:limit]

    @property
    def listeners(self) -> int:
        """Subscribers across the hub (one process: this one's)."""
        return len(self._subs)

    @property
    def local_listeners(self) -> int:
        """Subscribers of this process (what the per-process cap counts)."""
        return len(self._subs)

    connected = True  # in-process delivery cannot lose its connection

    def ping(self) -> bool:
        return True

    def start(self) -> None:
        """Nothing runs in the background: publishers hand events to subscribers directly."""

    BACKLOG_POPULATION = 20

    def backlog(self) -> float:
        """The share of subscribers more than half a buffer behind (0..1), refreshed once a second.

        A share, not the worst lag, and of at least BACKLOG_POPULATION subscribers: one stalled
        reader (even the only one) must not make the whole hub look loaded and throttle input."""
        now = time.monotonic()
        at, value = self._backlog_cache
        if now - at < 1.0:
            return value
        with self._lock:
            half = self.capacity // 2
            lagging = sum(1 for s in self._subs if self._head - s.cursor > half)
            value = lagging / max(len(self._subs), self.BACKLOG_POPULATION)
        self._backlog_cache = (now, value)
        return value

    def close(self) -> None:
        with self._lock:
            for sub in list(self._subs):
                sub.closed = True
            self._subs.clear()
            signal, self._signal = self._signal, threading.Event()
        signal.set()

"""The in-process broadcast hub.

Every event is serialized once, into an `Event` whose frames (bus/frames.py) are built at most
once and then shared by every subscriber. The hub keeps the most recent events in one ring; a
subscriber is only a cursor into it, so publishing costs the same for one subscriber as for ten
thousand, and a subscriber that lags can take its whole backlog in one write. A subscriber that
falls further behind than the ring holds is dropped with a reason.

Writing from the hub. A subscription whose transport gave it a `Writer` (an SSE stream served by
gunicorn's gevent worker: web/stream.py) is *parked* while its reader is caught up and nothing is
being written to its socket: its greenlet sleeps without a timeout, and the hub's own thread writes
each batch of new events to the socket itself, framed once per batch (and per filter), with a send
that never blocks. Only a subscriber whose send would block, or went out in part, is woken to
finish in its own greenlet, where the write watch and the drop rule apply as to any other. The same
thread sends heartbeats to parked sockets that have been quiet, and about once a second looks for
readers that went away (closed or reset), so their slot is freed at once instead of at the next
write. Subscriptions without a writer (the dashboard, WebSocket senders, other servers) wait on a
signal that every publish sets, with their own timeout, as before.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Mapping
from operator import itemgetter
from typing import Any, Protocol

import orjson

from ..engine.events import Event, Filters
from ..engine.ports import SubscriberDropped
from .frames import Framing

log = logging.getLogger(__name__)

# What Writer.offer did with a write.
SENT = 0  # all of it is in the kernel
PARTIAL = 1  # part of it: the writer keeps the rest (`pending`) for the subscriber's greenlet
BLOCKED = 2  # none of it (the socket's buffer is full)
GONE = 3  # the socket failed: the reader closed or reset the connection


class Writer(Protocol):
    """A subscriber's socket as the hub writes it (the transport makes one: web/stream.py)."""

    framing: Framing
    heartbeat: float  # seconds of quiet after which the hub sends `framing.heartbeat`
    seq: int  # the newest seq on this socket, whoever wrote it (the transport or the hub)
    pending: bytes  # the rest of a write the hub began; the transport sends it before anything
    last_write: float  # time.monotonic() of the hub's last write

    def offer(self, data: bytes) -> int:
        """Send without blocking: SENT, PARTIAL (the rest kept in `pending`), BLOCKED or GONE."""
        ...

    def peer_closed(self) -> bool:
        """True when the reader closed or reset the connection (looked at without blocking)."""
        ...


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
        self.gone = False  # the hub found its reader gone: the transport ends the stream quietly
        self.writer: Writer | None = None
        self._group = 0  # subscribers of one group get the same bytes (same filters and framing)
        self._group_key: tuple[Filters, Framing] | None = None
        self._wake: threading.Event | None = None

    def attach(self, writer: Writer) -> None:
        """Let the hub write to this subscriber's socket itself while it is caught up. Call it
        once the stream's opening bytes are in the kernel, from the greenlet that reads this
        subscription, and not after the stream ended."""
        self.hub._attach(self, writer)

    def wait(self, timeout: float) -> list[Event]:
        """Events published since the last call (filtered), waiting up to `timeout` for one (a
        subscription with a writer may wait longer: the hub writes its heartbeats)."""
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

    BEAT_SECONDS = 1.0  # how often the hub's thread looks for readers gone and heartbeats due

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
        self._closed = False
        # Writing from the hub (see the module's docstring); all under _lock.
        self._parked: set[Subscription] = set()
        self._fanned = 0  # events before this position were offered to the parked subscribers
        # (filters, framing) -> [group number, subscribers in it]; a group goes with its last one
        self._groups: dict[tuple[Filters, Framing], list[int]] = {}
        self._group_numbers = 0
        self._kick = threading.Event()  # set by a publish while subscribers are parked
        self._thread: threading.Thread | None = None
        self._beat = self.BEAT_SECONDS
        self.dropped_total = 0
        self.published_total = 0
        self.gone_total = 0  # readers found gone by the hub's thread

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
            parked = bool(self._parked)
        signal.set()
        if parked:
            # The hub's thread writes it, after this greenlet yields: the publisher's answer does
            # not wait for the fan-out, and what several publishers add meanwhile goes out as one
            # write per socket.
            self._kick.set()
        return event

    # -- subscribing ---------------------------------------------------------------------------
    def subscribe(
        self, filters: Filters | None = None, info: Mapping[str, Any] | None = None
    ) -> Subscription:
        """A new subscriber from now on; once the hub is closed (shutting down), one that is
        closed already, so that a stream opened meanwhile is told `closing` at once."""
        with self._lock:
            sub = Subscription(self, filters or Filters(), self._head, info)
            if self._closed:
                sub.closed = True
            else:
                self._subs.add(sub)
            return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)
            parked = sub in self._parked
            self._parked.discard(sub)
            key, sub._group_key = sub._group_key, None
            if key is not None:
                group = self._groups[key]
                group[1] -= 1
                if not group[1]:
                    del self._groups[key]
        if parked and sub._wake is not None:
            sub._wake.set()

    def _attach(self, sub: Subscription, writer: Writer) -> None:
        with self._lock:
            if sub.closed or self._closed:
                return
            key = (sub.filters, writer.framing)
            group = self._groups.get(key)
            if group is None:
                self._group_numbers += 1
                group = self._groups[key] = [self._group_numbers, 0]
            group[1] += 1
            sub._group, sub._group_key = group[0], key
            sub._wake = threading.Event()
            sub.writer = writer
            self._beat = min(self._beat, max(0.05, writer.heartbeat / 2))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="spiral-hub", daemon=True)
                self._thread.start()

    def _take(self, sub: Subscription, timeout: float) -> list[Event]:
        if sub.cursor == self._head and not sub.closed:
            wake = self._park(sub) if sub.writer is not None else None
            if wake is not None:
                wake.wait()  # no timeout: the hub's thread writes, beats, and wakes it when needed
            else:
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

    def _park(self, sub: Subscription) -> threading.Event | None:
        """Hand a caught-up subscriber's socket to the hub's thread; the event it sleeps on, or
        None when it cannot be parked now (it has bytes of its own to finish first, or is gone)."""
        writer, wake = sub.writer, sub._wake
        assert writer is not None and wake is not None
        with self._lock:
            if sub.cursor != self._head or sub.closed or sub.gone or writer.pending:
                return None
            wake.clear()
            writer.last_write = max(writer.last_write, time.monotonic() - writer.heartbeat / 2)
            self._parked.add(sub)
            return wake

    # -- the hub's thread: fan-out, heartbeats, readers gone -----------------------------------
    def _run(self) -> None:
        next_beat = time.monotonic() + self._beat
        while not self._closed:
            try:
                if self._kick.wait(max(0.0, next_beat - time.monotonic())):
                    self._kick.clear()
                    self._fan_out()
                now = time.monotonic()
                if now >= next_beat:
                    self._look(now)
                    next_beat = now + self._beat
            except Exception:  # a parked subscriber is only ever woken from here: keep going
                log.exception("the hub's writer failed")

    def _fan_out(self) -> None:
        """Write what was published since the last pass to every parked subscriber: one write per
        socket, the same bytes for every subscriber of a group."""
        woken: list[Subscription] = []
        with self._lock:
            start, head = self._fanned, self._head
            if start == head or not self._parked:
                self._fanned = head
                return
            oldest = head - self.capacity
            batches: dict[Any, tuple[bytes, int | None, int]] = {}
            now = time.monotonic()
            for sub in list(self._parked):
                cursor = sub.cursor
                if cursor == head:
                    continue  # parked after these events were taken
                if cursor < oldest:  # this thread fell a ring behind: the rule drops it
                    self._unpark(sub, woken)
                    continue
                key: Any = sub._group if cursor == start else (sub._group, cursor)
                batch = batches.get(key)
                if batch is None:
                    batch = batches[key] = self._batch(sub, cursor, head, -1)
                data, last, first = batch
                writer = sub.writer
                assert writer is not None
                if first <= writer.seq:  # seqs it has already had (read from the record)
                    data, last, first = self._batch(sub, cursor, head, writer.seq)
                sub.cursor = head
                if not data:
                    continue
                outcome = self._offer(writer, data)
                if outcome == SENT:
                    writer.last_write = now
                    if last is not None:
                        writer.seq = last
                    continue
                if outcome == PARTIAL:  # its greenlet sends the rest before anything else
                    if last is not None:
                        writer.seq = last
                elif outcome == BLOCKED:  # its greenlet takes these events the ordinary way
                    sub.cursor = cursor
                else:
                    self._gone(sub)
                self._unpark(sub, woken)
            self._fanned = head  # after the loop: a pass that failed half-way is done again
        for sub in woken:
            assert sub._wake is not None
            sub._wake.set()

    @staticmethod
    def _offer(writer: Writer, data: bytes) -> int:
        try:
            return writer.offer(data)
        except Exception:  # a writer that fails in an unforeseen way loses its subscriber only
            log.exception("a subscriber's writer failed")
            return GONE

    def _batch(
        self, sub: Subscription, cursor: int, head: int, after: int
    ) -> tuple[bytes, int | None, int]:
        """(bytes, newest seq, oldest seq) of the events from `cursor` to `head` that `sub` wants,
        leaving out seqs up to `after`. Called under the lock."""
        ring, capacity = self._ring, self.capacity
        events = [ring[p % capacity] for p in range(cursor, head)]
        if not sub.filters.empty:
            events = [e for e in events if e.matches(sub.filters, sub._pattern)]  # type: ignore[union-attr]
        if after >= 0:
            events = [e for e in events if e.seq is None or e.seq > after]  # type: ignore[union-attr]
        seqs = [e.seq for e in events if e.seq is not None]  # type: ignore[union-attr]
        if not events:
            return b"", None, 1 << 62
        assert sub.writer is not None
        data = sub.writer.framing.batch(events)  # type: ignore[arg-type]
        return data, (seqs[-1] if seqs else None), (seqs[0] if seqs else 1 << 62)

    def _look(self, now: float) -> None:
        """Free the slots of readers that went away, and send heartbeats to quiet sockets."""
        woken: list[Subscription] = []
        with self._lock:
            for sub in list(self._parked):
                writer = sub.writer
                assert writer is not None
                if writer.peer_closed():
                    self._gone(sub)
                    self._unpark(sub, woken)
                elif now - writer.last_write >= writer.heartbeat:
                    outcome = self._offer(writer, writer.framing.heartbeat)
                    if outcome == SENT:
                        writer.last_write = now
                        continue
                    if outcome == GONE:
                        self._gone(sub)
                    self._unpark(sub, woken)
        for sub in woken:
            assert sub._wake is not None
            sub._wake.set()

    def _unpark(self, sub: Subscription, woken: list[Subscription]) -> None:
        self._parked.discard(sub)
        woken.append(sub)

    def _gone(self, sub: Subscription) -> None:
        """The reader went away: stop counting it now; its greenlet ends the stream when woken."""
        sub.gone = True
        self._subs.discard(sub)
        self.gone_total += 1

    # -- operators -----------------------------------------------------------------------------
    def subscribers(self, limit: int = 200) -> list[dict[str, Any]]:
        """This process's subscribers for operators: who, which filters, how far behind (events
        published that it has not taken yet), the furthest behind first."""
        with self._lock:  # only the lags under the lock: publishing waits for it
            lags = [(self._head - s.cursor, s) for s in self._subs]
        furthest = heapq.nlargest(limit, lags, key=itemgetter(0))
        return [
            {
                **s.info,
                "module": s.filters.module,
                "phases": sorted(s.filters.phases),
                "lag": lag,
            }
            for lag, s in furthest
        ]

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
        """Nothing to start: the hub's thread starts with the first subscriber it writes to."""

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
        """Close every subscription (each stream ends with `closing`); later ones start closed."""
        with self._lock:
            self._closed = True
            for sub in list(self._subs):
                sub.closed = True
            self._subs.clear()
            parked, self._parked = self._parked, set()
            signal, self._signal = self._signal, threading.Event()
        signal.set()
        for sub in parked:
            assert sub._wake is not None
            sub._wake.set()
        self._kick.set()  # ends the hub's thread

"""Events between the workers and hosts of one hub, over Redis pub/sub (see the package's
docstring for the delivery rules)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import redis

from ...engine.events import Event, Filters
from ...engine.ports import RecordUnavailable
from ..memory import MemoryHub, Subscription
from .connection import client, worker_id

log = logging.getLogger(__name__)

CHANNEL = "events"
TOP_CHECK_SECONDS = 1.0


class RedisHub:
    """The hub interface of MemoryHub, joined to the other workers' hubs through Redis."""

    def __init__(
        self,
        url: str,
        local: MemoryHub,
        replay_after: Callable[[int, str | None, str | None, int], list[Event]],
        last_seq: int,
        top_seq: Callable[[], int] | None = None,
        on_deliver: Callable[[Event, bool], None] = lambda event, remote: None,
        listeners: Callable[[int], int] | None = None,
        prefix: str = "spiral:",
    ) -> None:
        self.local = local
        self.url = url
        self.worker_id = worker_id()
        self._replay_after = replay_after
        self._top_seq = top_seq  # the record's newest seq: a lost last message is found by it
        self._on_deliver = on_deliver  # (event, stored by another worker?) for global statistics
        self._global_listeners = listeners or (lambda local: local)
        self._channel = prefix + CHANNEL
        self._redis = client(url)
        self._last = last_seq  # highest seq delivered to local subscribers; reader thread only
        self._deliver_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.capacity = local.capacity

    # -- the hub interface ---------------------------------------------------------------------
    def publish(
        self,
        kind: str,
        payload: object = None,
        *,
        data: bytes | None = None,
        seq: int | None = None,
        module: str | None = None,
        phase: str | None = None,
    ) -> Event:
        body = data if data is not None else orjson.dumps(payload)
        if seq is None:  # the breath: every worker computes its own
            return self.local.publish(kind, data=body, module=module, phase=phase)
        event = Event(kind, body, seq, module, phase)
        head = orjson.dumps({"k": kind, "s": seq, "m": module, "p": phase, "w": self.worker_id})
        try:
            self._redis.publish(self._channel, head + b"\n" + body)
        except redis.RedisError as exc:
            # Stored already; the other workers' readers fill the gap from the record when Redis
            # is back, and this worker delivers its own event now so its listeners do not wait.
            log.warning("redis publish failed (seq %s): %s", seq, exc)
            self.connected = False
            self._fill_gap(seq)
            self._deliver(event, remote=False)
        return event

    def subscribe(
        self, filters: Filters | None = None, info: Mapping[str, Any] | None = None
    ) -> Subscription:
        return self.local.subscribe(filters, info)

    def subscribers(self, limit: int = 200) -> list[dict[str, Any]]:
        return self.local.subscribers(limit)

    @property
    def listeners(self) -> int:
        """Subscribers across every worker."""
        return self._global_listeners(self.local.listeners)

    @property
    def local_listeners(self) -> int:
        return self.local.listeners

    def backlog(self) -> float:
        return self.local.backlog()

    @property
    def published_total(self) -> int:
        return self.local.published_total

    @property
    def dropped_total(self) -> int:
        return self.local.dropped_total

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping()) and self.connected
        except redis.RedisError:
            return False

    # -- the reader ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spiral-redis", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self.local.close()

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._channel)
                self.connected = True
                delay = 0.1
                self._fill_gap(None)  # whatever was published while we were away
                next_check = time.monotonic() + TOP_CHECK_SECONDS
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None:
                        self._receive(message["data"])
                    if time.monotonic() >= next_check:
                        self._check_top()
                        next_check = time.monotonic() + TOP_CHECK_SECONDS
            except (redis.RedisError, OSError) as exc:
                if self.connected:
                    log.warning("redis connection lost: %s", exc)
                self.connected = False
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass

    def _check_top(self) -> None:
        """A worker killed between its commit and its publish leaves seqs no message announces:
        the record's top seq reveals them."""
        if self._top_seq is None:
            return
        try:
            top = self._top_seq()
            with self._deliver_lock:
                behind = top > self._last
            if behind:
                self._fill_gap(top + 1)
        except RecordUnavailable as exc:  # the record is away: the next look will do
            log.debug("could not read the record: %s", exc)

    def _receive(self, raw: bytes) -> None:
        head, _, body = raw.partition(b"\n")
        meta = orjson.loads(head)
        event = Event(meta["k"], body, meta["s"], meta["m"], meta["p"])
        try:
            self._fill_gap(event.seq)
        except RecordUnavailable as exc:
            # Order first: the event waits, with the gap, for the record to answer again (the
            # look at its top seq delivers both).
            log.warning("cannot fill a gap before seq %s from the record: %s", event.seq, exc)
            return
        self._deliver(event, remote=meta["w"] != self.worker_id)

    def _fill_gap(self, upto: int | None) -> None:
        """Deliver from the record whatever lies between the last delivered seq and `upto`."""
        while True:
            with self._deliver_lock:
                last = self._last
            if upto is not None and upto <= last + 1:
                return
            want = 500 if upto is None else min(500, upto - last - 1)
            page = self._replay_after(last, None, None, want)
            if not page:
                return
            for event in page:
                if upto is not None and event.seq is not None and event.seq >= upto:
                    return
                self._deliver(event, remote=True)

    def _deliver(self, event: Event, remote: bool) -> None:
        with self._deliver_lock:
            if event.seq is not None and event.seq <= self._last:
                return
            if event.seq is not None:
                self._last = event.seq
            self.local.publish(
                event.kind, data=event.data, seq=event.seq, module=event.module, phase=event.phase
            )
            self._on_deliver(event, remote)

"""Many workers and hosts as one hub, through Redis pub/sub.

SQLite stays the record; Redis only carries events between processes. Every worker delivers events
to its own subscribers strictly in seq order: seqs are allocated inside serialized SQLite write
transactions, so when seq N is published every seq below N is already committed, and a gap (a
message lost while Redis was away, a worker killed between commit and publish) is filled from the
store before N is delivered. Events without a seq (the breath) are computed by every worker alike
and never cross Redis.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

import orjson
import redis

from ..engine.events import Event, Filters
from .memory import MemoryHub, Subscription

log = logging.getLogger(__name__)

CHANNEL = "events"
CONTROL = "control"
LISTENERS = "listeners"
CLAIMS = "claim:"


class RedisHub:
    """The hub interface of MemoryHub, joined to the other workers' hubs through Redis."""

    def __init__(
        self,
        url: str,
        local: MemoryHub,
        replay_after: Callable[[int, str | None, str | None, int], list[Event]],
        last_seq: int,
        on_deliver: Callable[[Event, bool], None] = lambda event, remote: None,
        on_control: Callable[[str, list[object]], None] = lambda op, payload: None,
        prefix: str = "spiral:",
    ) -> None:
        self.local = local
        self.url = url
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._replay_after = replay_after
        self._on_deliver = on_deliver  # (event, stored by another worker?) for global statistics
        self._on_control = on_control  # a breath change another worker made (override, block, …)
        self._channel = prefix + CHANNEL
        self._control = prefix + CONTROL
        self._listeners_key = prefix + LISTENERS
        self._claims = prefix + CLAIMS
        self._redis = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10
        )
        self._last = last_seq  # highest seq delivered to local subscribers; reader thread only
        self._deliver_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener_cache = (0.0, 0)
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
            # Stored already; the other workers' readers fill the gap from SQLite when Redis is
            # back,
            # and this worker delivers its own event now so its listeners do not wait.
            log.warning("redis publish failed (seq %s): %s", seq, exc)
            self.connected = False
            self._fill_gap(seq)
            self._deliver(event, remote=False)
        return event

    def share(self, op: str, payload: list[object]) -> None:
        """Send a breath change (override, rejection, block…) to the other workers."""
        try:
            self._redis.publish(
                self._control, orjson.dumps({"op": op, "p": payload, "w": self.worker_id})
            )
        except redis.RedisError as exc:
            log.warning("redis: could not share %s: %s", op, exc)

    def claim(self, key: str, seconds: float = 3600.0) -> bool:
        """True for exactly one worker asking for `key` (e.g. one ritual run per phase change).

        Without Redis every worker would claim; when Redis is away this worker goes ahead."""
        try:
            return bool(
                self._redis.set(self._claims + key, self.worker_id, nx=True, ex=int(seconds))
            )
        except redis.RedisError:
            return True

    def subscribe(self, filters: Filters | None = None) -> Subscription:
        return self.local.subscribe(filters)

    @property
    def listeners(self) -> int:
        """Subscribers across every worker (each reports its own count every second)."""
        now = time.monotonic()
        at, value = self._listener_cache
        if now - at < 1.0:
            return value
        try:
            counts = self._redis.hgetall(self._listeners_key)
            cutoff = time.time() - 5
            value = 0
            for raw in counts.values():
                n, _, stamp = raw.decode().partition("@")
                if float(stamp or 0) >= cutoff:
                    value += int(n)
        except redis.RedisError:
            value = self.local.listeners
        self._listener_cache = (now, value)
        return value

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
        try:
            self._redis.hdel(self._listeners_key, self.worker_id)
        except redis.RedisError:
            pass
        self.local.close()

    def _run(self) -> None:
        delay = 0.1
        next_report = 0.0
        while not self._stop.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._channel, self._control)
                self.connected = True
                delay = 0.1
                self._fill_gap(None)  # whatever was published while we were away
                while not self._stop.is_set():
                    if time.monotonic() >= next_report:
                        self._report_listeners()
                        next_report = time.monotonic() + 1.0
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["channel"] == self._control.encode():
                        self._control_message(message["data"])
                    else:
                        self._receive(message["data"])
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

    def _report_listeners(self) -> None:
        self._redis.hset(
            self._listeners_key, self.worker_id, f"{self.local.listeners}@{time.time():.3f}"
        )

    def _control_message(self, raw: bytes) -> None:
        msg = orjson.loads(raw)
        if msg.get("w") != self.worker_id:
            try:
                self._on_control(msg["op"], msg["p"])
            except Exception:
                log.exception("redis: could not apply %s from another worker", msg.get("op"))

    def _receive(self, raw: bytes) -> None:
        head, _, body = raw.partition(b"\n")
        meta = orjson.loads(head)
        event = Event(meta["k"], body, meta["s"], meta["m"], meta["p"])
        self._fill_gap(event.seq)
        self._deliver(event, remote=meta["w"] != self.worker_id)

    def _fill_gap(self, upto: int | None) -> None:
        """Deliver from the store whatever lies between the last delivered seq and `upto`."""
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

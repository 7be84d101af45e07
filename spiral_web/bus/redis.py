"""Many workers and hosts as one hub, through Redis.

`RedisHub` carries events between processes over pub/sub; the record (SQLite or PostgreSQL) stays
the source of truth. Every worker delivers events to its own subscribers strictly in seq order:
seqs become visible in seq order (engine/ports.py), so when seq N arrives every seq below N is
already committed, and a gap (a message lost while Redis was away, a worker killed between commit
and publish) is filled from the record before N is delivered. A look at the record's top seq about
once a second bounds the delay a lost last message can cause. Events without a seq (the breath)
are computed by every worker alike and never cross Redis.

`RedisCluster` is what the workers share: listener counts, claims, cooldowns, windows and token
buckets (each one atomic in Redis, with Lua where it reads and writes), and control messages.

`RedisMark` is the joined hub's seq mark (ports.SeqMark): the highest seq any worker published,
raised before each publish, so that a record restored from a backup (or a database failover that
lost the last commits) is found out by every worker (store/marks.py explains the mark).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import redis

from ..engine.events import Event, Filters
from ..engine.ports import ControlHandler, RecordUnavailable
from .memory import MemoryHub, Subscription

log = logging.getLogger(__name__)

CHANNEL = "events"
CONTROL = "control"
LISTENERS = "listeners"
KEPT = "kept"
TOP_CHECK_SECONDS = 1.0


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10
    )


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


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
        self.worker_id = _worker_id()
        self._replay_after = replay_after
        self._top_seq = top_seq  # the record's newest seq: a lost last message is found by it
        self._on_deliver = on_deliver  # (event, stored by another worker?) for global statistics
        self._global_listeners = listeners or (lambda local: local)
        self._channel = prefix + CHANNEL
        self._redis = _client(url)
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


# Each script reads and writes one key atomically. Times are the engine clock's (ARGV), so that
# a fake clock in tests means the same to every worker; keys expire in real time, generously.
_COOLDOWN = """
local ends = tonumber(redis.call('GET', KEYS[1]) or '0')
if ends > tonumber(ARGV[1]) then return tostring(ends) end
redis.call('SET', KEYS[1], tostring(tonumber(ARGV[1]) + tonumber(ARGV[2])), 'EX', ARGV[3])
return false
"""
_HITS = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[1], ARGV[4])
return redis.call('ZCARD', KEYS[1])
"""
_TAKE = """
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = tokens >= 1
if allowed then tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], ARGV[4])
if allowed then return false end
return tostring((1 - tokens) / rate)
"""


class RedisCluster:
    """What the workers of one hub share, in Redis. When Redis is away each worker decides alone
    (claims and cooldowns go ahead, buckets allow), and `ping` says so to /readyz."""

    def __init__(self, url: str, prefix: str = "spiral:") -> None:
        self.worker_id = _worker_id()
        self._redis = _client(url)
        self._prefix = prefix
        self._control = prefix + CONTROL
        self._listeners_key = prefix + LISTENERS
        self._kept_key = prefix + KEPT
        self._cooldown = self._redis.register_script(_COOLDOWN)
        self._hits = self._redis.register_script(_HITS)
        self._take = self._redis.register_script(_TAKE)
        self._listener_cache = (0.0, 0)
        self._report: Callable[[], dict[str, Any]] = dict
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_control: ControlHandler = lambda op, payload: None
        self.connected = False

    def claim(self, key: str, seconds: float) -> bool:
        try:
            return bool(
                self._redis.set(
                    self._prefix + "claim:" + key, self.worker_id, nx=True, ex=max(1, int(seconds))
                )
            )
        except AWAY as exc:
            _away(exc)
            return True

    def cooldown(self, key: str, now: float, seconds: float) -> float | None:
        try:
            until = self._cooldown(
                keys=[self._prefix + "cooldown:" + key], args=[now, seconds, _ttl(seconds)]
            )
        except AWAY as exc:
            _away(exc)
            return None
        return float(until) if until else None

    def cooling(self, key: str, now: float) -> float | None:
        try:
            raw = self._redis.get(self._prefix + "cooldown:" + key)
        except AWAY as exc:
            _away(exc)
            return None
        until = float(raw) if raw else 0.0
        return until if until > now else None

    def release(self, key: str) -> None:
        try:
            self._redis.delete(self._prefix + "cooldown:" + key)
        except AWAY as exc:
            _away(exc)

    def hits(self, key: str, now: float, window: float) -> int:
        try:
            return int(
                self._hits(
                    keys=[self._prefix + "hits:" + key],
                    args=[now, window, f"{now}:{uuid.uuid4().hex[:8]}", _ttl(window)],
                )
            )
        except AWAY as exc:
            _away(exc)
            return 1

    def forget(self, key: str) -> None:
        try:
            self._redis.delete(self._prefix + "hits:" + key)
        except AWAY as exc:
            _away(exc)

    def deny(self, key: str, until: float) -> None:
        try:
            self._redis.set(
                self._prefix + "deny:" + key, repr(until), ex=max(1, int(until - time.time()) + 60)
            )
        except AWAY as exc:
            _away(exc)

    def denied(self, key: str, now: float) -> bool:
        try:
            raw = self._redis.get(self._prefix + "deny:" + key)
        except AWAY as exc:
            _away(exc)
            return False
        return raw is not None and float(raw) > now

    def take(self, key: str, now: float, rate: float, burst: float) -> float | None:
        try:
            wait = self._take(
                keys=[self._prefix + "bucket:" + key],
                args=[now, rate, burst, _ttl(burst / rate)],
            )
        except AWAY as exc:
            _away(exc)
            return None
        return float(wait) if wait else None

    def share(
        self, op: str, payload: list[Any], until: float | None = None, slot: str | None = None
    ) -> None:
        message = orjson.dumps({"op": op, "p": payload, "w": self.worker_id})
        try:
            if until is not None:
                kept = orjson.dumps({"op": op, "p": payload, "until": until, "at": time.time()})
                self._redis.hset(self._kept_key, slot or op, kept)
            self._redis.publish(self._control, message)
        except redis.RedisError as exc:
            log.warning("redis: could not share %s: %s", op, exc)

    def remembered(self, now: float) -> list[tuple[str, list[Any]]]:
        try:
            kept = self._redis.hgetall(self._kept_key)
        except redis.RedisError as exc:
            log.warning("redis: could not read the shared state: %s", exc)
            return []
        out = []
        for slot, raw in kept.items():
            item = orjson.loads(raw)
            if item["until"] > now:
                out.append((item.get("at", 0.0), item["op"], item["p"]))
            else:
                try:
                    self._redis.hdel(self._kept_key, slot)
                except redis.RedisError:
                    pass
        return [(op, payload) for _, op, payload in sorted(out, key=lambda x: x[0])]

    def listeners(self, local: int) -> int:
        """Subscribers across every worker (each reports its own count every second)."""
        now = time.monotonic()
        at, value = self._listener_cache
        if now - at < 1.0:
            return value
        reports = self.workers()
        value = sum(int(r.get("listeners", 0)) for r in reports.values()) if reports else local
        self._listener_cache = (now, value)
        return value

    def workers(self) -> dict[str, dict[str, Any]]:
        """Each live worker's last report (listeners, subscribers…), by worker id."""
        try:
            raw = self._redis.hgetall(self._listeners_key)
        except AWAY as exc:
            _away(exc)
            return {self.worker_id: self._report()}
        cutoff = time.time() - 5
        out = {}
        for worker, body in raw.items():
            report = orjson.loads(body)
            if report.get("at", 0) >= cutoff:
                key = worker.decode() if isinstance(worker, bytes) else worker
                out[key] = report
        return out

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping()) and self.connected
        except redis.RedisError:
            return False

    def start(self, on_control: ControlHandler, report: Callable[[], dict[str, Any]]) -> None:
        self._on_control = on_control
        self._report = report
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spiral-cluster", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        try:
            self._redis.hdel(self._listeners_key, self.worker_id)
        except AWAY as exc:
            _away(exc)

    def _run(self) -> None:
        delay = 0.1
        next_report = 0.0
        while not self._stop.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._control)
                self.connected = True
                delay = 0.1
                while not self._stop.is_set():
                    if time.monotonic() >= next_report:
                        report = {**self._report(), "at": time.time()}
                        self._redis.hset(self._listeners_key, self.worker_id, orjson.dumps(report))
                        next_report = time.monotonic() + 1.0
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None:
                        self._control_message(message["data"])
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

    def _control_message(self, raw: bytes) -> None:
        msg = orjson.loads(raw)
        if msg.get("w") != self.worker_id:
            try:
                self._on_control(msg["op"], msg["p"])
            except Exception:
                log.exception("redis: could not apply %s from another worker", msg.get("op"))


AWAY = (redis.ConnectionError, redis.TimeoutError)  # Redis is away: each worker decides alone


def _away(exc: Exception) -> None:
    log.warning("redis is away; this worker decides alone: %s", exc)


_RAISE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return false
"""


class RedisMark:
    """The seq mark of a joined hub: exact (raised before every publish), shared by all workers.

    While Redis is away the mark lags, and a restore in that time is found out only by the worker
    that published the seqs it lost."""

    def __init__(self, url: str, prefix: str = "spiral:") -> None:
        self._redis = _client(url)
        self._key = prefix + "seq_mark"
        self._raise = self._redis.register_script(_RAISE)

    def bounds(self) -> tuple[int, int]:
        """(floor, ceiling): both the highest seq any worker published."""
        try:
            value = int(self._redis.get(self._key) or 0)
        except redis.RedisError as exc:
            log.warning("redis: could not read the seq mark: %s", exc)
            value = 0
        return value, value

    def note(self, seq: int) -> None:
        try:
            self._raise(keys=[self._key], args=[seq])
        except redis.RedisError as exc:
            log.warning("redis: could not raise the seq mark to %s: %s", seq, exc)

    def close(self, top: int) -> None:
        self._redis.close()


def _ttl(seconds: float) -> int:
    """Real seconds a key outlives what it holds (engine time may be a test's fake clock)."""
    return max(60, int(seconds) + 3600)

"""What the workers of one hub share, in Redis: claims, cooldowns, windows, token buckets, the
deny list, kept changes, control messages and each worker's report."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import redis

from ...engine.ports import ControlHandler
from .connection import AWAY, away, client, ttl, worker_id

log = logging.getLogger(__name__)

CONTROL = "control"
LISTENERS = "listeners"
REPORTS = "reports"
KEPT = "kept"

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
        self.worker_id = worker_id()
        self._redis = client(url)
        self._prefix = prefix
        self._control = prefix + CONTROL
        self._listeners_key = prefix + LISTENERS  # worker: its subscriber count (read per POST)
        self._reports_key = prefix + REPORTS  # worker: its whole report (for operators)
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
            away(exc)
            return True

    def cooldown(self, key: str, now: float, seconds: float) -> float | None:
        try:
            until = self._cooldown(
                keys=[self._prefix + "cooldown:" + key], args=[now, seconds, ttl(seconds)]
            )
        except AWAY as exc:
            away(exc)
            return None
        return float(until) if until else None

    def cooling(self, key: str, now: float) -> float | None:
        try:
            raw = self._redis.get(self._prefix + "cooldown:" + key)
        except AWAY as exc:
            away(exc)
            return None
        until = float(raw) if raw else 0.0
        return until if until > now else None

    def release(self, key: str) -> None:
        try:
            self._redis.delete(self._prefix + "cooldown:" + key)
        except AWAY as exc:
            away(exc)

    def hits(self, key: str, now: float, window: float) -> int:
        try:
            return int(
                self._hits(
                    keys=[self._prefix + "hits:" + key],
                    args=[now, window, f"{now}:{uuid.uuid4().hex[:8]}", ttl(window)],
                )
            )
        except AWAY as exc:
            away(exc)
            return 1

    def forget(self, key: str) -> None:
        try:
            self._redis.delete(self._prefix + "hits:" + key)
        except AWAY as exc:
            away(exc)

    def deny(self, key: str, until: float) -> None:
        try:
            self._redis.set(
                self._prefix + "deny:" + key, repr(until), ex=max(1, int(until - time.time()) + 60)
            )
        except AWAY as exc:
            away(exc)

    def denied(self, key: str, now: float) -> bool:
        try:
            raw = self._redis.get(self._prefix + "deny:" + key)
        except AWAY as exc:
            away(exc)
            return False
        return raw is not None and float(raw) > now

    def take(self, key: str, now: float, rate: float, burst: float) -> float | None:
        try:
            wait = self._take(
                keys=[self._prefix + "bucket:" + key],
                args=[now, rate, burst, ttl(burst / rate)],
            )
        except AWAY as exc:
            away(exc)
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
        try:
            raw = self._redis.hgetall(self._listeners_key)
        except AWAY as exc:
            away(exc)
            return local
        counts = [orjson.loads(body) for body in raw.values()]
        cutoff = time.time() - 5
        fresh = [c["listeners"] for c in counts if c.get("at", 0) >= cutoff]
        value = sum(fresh) if fresh else local
        self._listener_cache = (now, value)
        return value

    def workers(self) -> dict[str, dict[str, Any]]:
        """Each live worker's last report (listeners, subscribers…), by worker id."""
        try:
            raw = self._redis.hgetall(self._reports_key)
        except AWAY as exc:
            away(exc)
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
            self._redis.hdel(self._reports_key, self.worker_id)
        except AWAY as exc:
            away(exc)

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
                        count = {"listeners": report.get("listeners", 0), "at": report["at"]}
                        self._redis.hset(self._listeners_key, self.worker_id, orjson.dumps(count))
                        self._redis.hset(self._reports_key, self.worker_id, orjson.dumps(report))
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

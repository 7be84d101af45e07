"""The cluster of one process: what workers share, when there is only this one.

Same contract as the Redis cluster (tests/unit/test_cluster.py runs both): claims, cooldowns,
windows and token buckets behave the same, so the engine has one code path for one worker and
for fifty.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from ..engine.ports import ControlHandler

MAX_KEYS = 100_000  # buckets, windows and cooldowns kept at most (least recently used go first)


class LocalCluster:
    """Thread- and greenlet-safe; state lives in this process only."""

    def __init__(self) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.Lock()
        self._claims: OrderedDict[str, float] = OrderedDict()  # key -> monotonic expiry
        self._cooldowns: OrderedDict[str, float] = OrderedDict()  # key -> until (engine time)
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._kept: dict[str, tuple[str, list[Any], float]] = {}  # slot -> op, payload, until

    def claim(self, key: str, seconds: float) -> bool:
        now = time.monotonic()
        with self._lock:
            expiry = self._claims.get(key)
            if expiry is not None and expiry > now:
                return False
            _put(self._claims, key, now + seconds)
            return True

    def cooldown(self, key: str, now: float, seconds: float) -> float | None:
        with self._lock:
            until = self._cooldowns.get(key)
            if until is not None and until > now:
                return until
            _put(self._cooldowns, key, now + seconds)
            return None

    def cooling(self, key: str, now: float) -> float | None:
        with self._lock:
            until = self._cooldowns.get(key)
        return until if until is not None and until > now else None

    def release(self, key: str) -> None:
        with self._lock:
            self._cooldowns.pop(key, None)

    def hits(self, key: str, now: float, window: float) -> int:
        with self._lock:
            times = self._hits.pop(key, None) or deque()
            times.append(now)
            while times and times[0] <= now - window:
                times.popleft()
            _put(self._hits, key, times)
            return len(times)

    def forget(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)

    def take(self, key: str, now: float, rate: float, burst: float) -> float | None:
        with self._lock:
            tokens, at = self._buckets.pop(key, (burst, now))
            tokens = min(burst, tokens + max(0.0, now - at) * rate)
            allowed = tokens >= 1.0
            _put(self._buckets, key, (tokens - 1.0 if allowed else tokens, now))
        return None if allowed else max(0.001, (1.0 - tokens) / rate)

    def share(
        self, op: str, payload: list[Any], until: float | None = None, slot: str | None = None
    ) -> None:
        if until is not None:
            with self._lock:
                self._kept[slot or op] = (op, payload, until)

    def remembered(self, now: float) -> list[tuple[str, list[Any]]]:
        with self._lock:
            self._kept = {k: v for k, v in self._kept.items() if v[2] > now}
            return [(op, payload) for op, payload, _ in self._kept.values()]

    def listeners(self, local: int) -> int:
        return local

    def start(self, on_control: ControlHandler, local_listeners: Callable[[], int]) -> None:
        """Nothing to receive: no other worker shares this process's state."""

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass


def _put(table: OrderedDict[str, Any], key: str, value: Any) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > MAX_KEYS:
        table.popitem(last=False)


def retry_seconds(wait: float) -> int:
    """A wait as the whole seconds of a Retry-After header (at least 1)."""
    return max(1, math.ceil(wait))

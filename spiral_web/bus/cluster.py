"""The cluster of one process: what workers share, when there is only this one.

Same contract as the Redis cluster (tests/multiworker/test_cluster.py runs both): claims,
cooldowns, windows, token buckets and the deny list behave the same, so the engine has one code
path for one worker and for fifty. What must outlive a restart — kept changes (overrides, blocks)
and the deny list (signed-out sessions) — is written to a small file in the data folder.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from ..datadir import private_folder
from ..engine.ports import ControlHandler

log = logging.getLogger(__name__)

MAX_KEYS = 100_000  # buckets, windows and cooldowns kept at most (least recently used go first)


class LocalCluster:
    """Thread- and greenlet-safe; state lives in this process only."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._claims: OrderedDict[str, float] = OrderedDict()  # key -> monotonic expiry
        self._cooldowns: OrderedDict[str, float] = OrderedDict()  # key -> until (engine time)
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._kept: dict[str, tuple[str, list[Any], float]] = {}  # slot -> op, payload, until
        self._denied: dict[str, float] = {}  # key -> until
        self._report: Callable[[], dict[str, Any]] = dict
        if self._path is not None:
            private_folder(self._path.parent)  # once: a save should not stat (and warn) again
        self._load()

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

    def deny(self, key: str, until: float) -> None:
        with self._lock:
            self._denied[key] = max(until, self._denied.get(key, 0.0))
            self._save()

    def denied(self, key: str, now: float) -> bool:
        with self._lock:
            until = self._denied.get(key)
        return until is not None and until > now

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
                self._kept.pop(slot or op, None)  # a replaced change moves to the end: newest
                self._kept[slot or op] = (op, payload, until)
                self._save()

    def remembered(self, now: float) -> list[tuple[str, list[Any]]]:
        with self._lock:
            self._kept = {k: v for k, v in self._kept.items() if v[2] > now}
            return [(op, payload) for op, payload, _ in self._kept.values()]

    def listeners(self, local: int) -> int:
        return local

    def workers(self) -> dict[str, dict[str, Any]]:
        return {self.worker_id: self._report()}

    def start(self, on_control: ControlHandler, report: Callable[[], dict[str, Any]]) -> None:
        self._report = report
        """Nothing to receive: no other worker shares this process's state."""

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass

    # -- what outlives a restart ------------------------------------------------------------------
    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        try:
            saved = orjson.loads(self._path.read_bytes())
            self._kept = {k: (v[0], v[1], v[2]) for k, v in saved.get("kept", {}).items()}
            self._denied = {k: float(v) for k, v in saved.get("denied", {}).items()}
        except (OSError, ValueError, TypeError, IndexError) as exc:
            log.warning("could not read %s (starting without what it kept): %s", self._path, exc)

    def _save(self) -> None:
        """Write the file whole under another name, then rename it into place (call locked)."""
        if self._path is None:
            return
        stale = time.time() - 86_400  # a day of slack: entries are in engine time (maybe a test's)
        self._denied = {k: u for k, u in self._denied.items() if u > stale}
        data = orjson.dumps({"kept": self._kept, "denied": self._denied})
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, self._path)
        except OSError as exc:
            log.warning("could not write %s: %s", self._path, exc)


def _put(table: OrderedDict[str, Any], key: str, value: Any) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > MAX_KEYS:
        table.popitem(last=False)


def retry_seconds(wait: float) -> int:
    """A wait as the whole seconds of a Retry-After header (at least 1)."""
    return max(1, math.ceil(wait))

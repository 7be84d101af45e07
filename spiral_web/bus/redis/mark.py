"""The seq mark of a joined hub, in Redis (see store/marks.py for what a mark is for)."""

from __future__ import annotations

import logging

import redis

from .connection import client

log = logging.getLogger(__name__)

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
        self._redis = client(url)
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

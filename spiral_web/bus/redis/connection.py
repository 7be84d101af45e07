"""The Redis connection every part shares the settings of, and how an outage is handled."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import redis

log = logging.getLogger(__name__)


def client(url: str) -> redis.Redis:
    """A client with bounded waits: a Redis that does not answer is an outage, not a hang."""
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10
    )


def worker_id() -> str:
    """This worker's name among the hub's: host, process, and a nonce for restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


AWAY = (redis.ConnectionError, redis.TimeoutError)  # Redis is away: each worker decides alone


def away(exc: Exception) -> None:
    log.warning("redis is away; this worker decides alone: %s", exc)


def ttl(seconds: float) -> int:
    """Real seconds a key outlives what it holds (engine time may be a test's fake clock)."""
    return max(60, int(seconds) + 3600)

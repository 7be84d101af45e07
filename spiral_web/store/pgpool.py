"""A small pool of PostgreSQL connections for one worker, safe from threads and greenlets.

Under gevent (gunicorn's gevent worker) psycopg 3 waits cooperatively when it is imported after the
monkey-patching (it picks its way of waiting at import), as services.py arranges; each greenlet then
borrows its own connection, so a slow query holds up no one else. Connections are in autocommit:
each statement is its own transaction unless the caller opens one. A server that cannot be
reached, or goes away, raises RecordUnavailable instead of hanging: libpq's connect timeout, TCP
keepalives and a statement timeout bound every wait.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg.conninfo import conninfo_to_dict

from ..engine.ports import RecordUnavailable

# libpq settings unless the URL gives its own: fail fast instead of hanging on a dead server.
CONNECT_DEFAULTS = {
    "connect_timeout": "3",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
    "application_name": "spiral",
}
STATEMENT_TIMEOUT_MS = 15_000


class Pool:
    """At most `size` connections; a caller waits up to `wait` seconds for one."""

    def __init__(self, url: str, size: int = 5, wait: float = 10.0) -> None:
        params: dict[str, Any] = {**CONNECT_DEFAULTS, **conninfo_to_dict(url)}
        # every session: durable commits, a bound on any statement, custom plans (many-hosts.md:
        # a generic plan made the write path four times slower)
        params["options"] = (
            f"{params.get('options', '')} -c synchronous_commit=on "
            f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c plan_cache_mode=force_custom_plan"
        ).strip()
        self._params = params
        self.where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
        self._idle: list[psycopg.Connection[Any]] = []
        self._idle_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._wait = wait
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; a lost or unreachable server raises RecordUnavailable."""
        if not self._slots.acquire(timeout=self._wait):
            raise RecordUnavailable("every PostgreSQL connection of this worker is busy")
        conn = None
        try:
            with self._idle_lock:
                conn = self._idle.pop() if self._idle else None
            if conn is not None and not _healthy(conn):
                conn.close()
                conn = None
            if conn is None:
                conn = psycopg.connect(autocommit=True, prepare_threshold=None, **self._params)
            yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if conn is not None:
                conn.close()
                conn = None
            self._drop_idle()  # a server that went away took every connection with it
            if isinstance(exc, pgerrors.QueryCanceled):
                raise RecordUnavailable(f"PostgreSQL did not answer in time: {exc}") from exc
            raise RecordUnavailable(f"PostgreSQL at {self.where} is unreachable: {exc}") from exc
        finally:
            if conn is not None:
                idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                if idle and not conn.closed and not self._closed:
                    with self._idle_lock:
                        self._idle.append(conn)
                else:
                    conn.close()
            self._slots.release()

    def close(self) -> None:
        self._closed = True
        self._drop_idle()

    def _drop_idle(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _healthy(conn: psycopg.Connection[Any]) -> bool:
    """An idle connection is usable unless the server said something since (a restarting server
    sends its goodbye and closes): one poll, no round trip."""
    if conn.closed or conn.broken:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable

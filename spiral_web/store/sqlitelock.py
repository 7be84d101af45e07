"""Waiting for SQLite's locks without stopping the event loop.

Workers on one host share the SQLite file, so a write often finds another process holding the
write lock for a moment. SQLite's own busy handler (`sqlite3.connect(timeout=...)`, `PRAGMA
busy_timeout`) waits by sleeping in C: in a gevent worker no greenlet runs meanwhile (no POST
answered, no stream written; `python -m bench.sqlite_busy` measures it). So the store's connections
have no busy handler (SQLite answers SQLITE_BUSY at once), and `patiently` tries again after a
short pause through `time.sleep`, which gevent patches in its workers: the other greenlets run
while this one waits. Without gevent (the dev server, tests) it is an ordinary sleep of one thread.

Only a statement that failed with SQLITE_BUSY having done nothing is tried again: BEGIN IMMEDIATE
(no transaction was opened), a read (a SELECT outside a transaction changes nothing), a PRAGMA that
sets the journal mode (it did not change it), and COMMIT while its transaction is still open.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from ..engine.ports import RecordUnavailable

T = TypeVar("T")

# The first pause after SQLITE_BUSY, doubled after each try up to the last: a write transaction of
# another worker usually holds the lock well under a millisecond, a checkpoint or an archival
# longer. Each pause is shortened by up to half at random, so that workers waiting together do not
# knock in step.
FIRST_PAUSE = 0.0005
LONGEST_PAUSE = 0.02


class RecordLocked(RecordUnavailable, sqlite3.OperationalError):
    """Another process held SQLite's lock longer than the store waits: nothing was done.

    Still the `sqlite3.OperationalError` ("database is locked") SQLite raised before, and a
    RecordUnavailable, so the entry points answer it as they answer a record that is away (ingest:
    503 with Retry-After), not as a failure of the server. It carries no SQLITE_BUSY code of its
    own: a wait that ran out is never waited for again by an enclosing one."""


def is_busy(exc: sqlite3.Error) -> bool:
    """True when SQLite answered SQLITE_BUSY (any of its extended codes): another connection
    holds a lock this statement needs."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # raised by the sqlite3 module itself, not by SQLite
        return False
    return code & 0xFF == sqlite3.SQLITE_BUSY


def patiently(attempt: Callable[[], T], wait: float, what: str) -> T:
    """`attempt()`, tried again while SQLite answers SQLITE_BUSY, for at most `wait` seconds, then
    RecordLocked; `attempt` must have done nothing when it fails with SQLITE_BUSY."""
    deadline = time.monotonic() + wait
    pause = FIRST_PAUSE
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise RecordLocked(
                    f"the SQLite record is locked by another process ({what} waited {wait:g} s): "
                    f"{exc}; nothing was stored"
                ) from exc
            # time.sleep looked up now, not imported: gevent patches the module's attribute
            time.sleep(min(pause * (0.5 + random.random() / 2), left))
            pause = min(pause * 2, LONGEST_PAUSE)


@contextmanager
def writing(conn: sqlite3.Connection, wait: float, what: str) -> Iterator[sqlite3.Connection]:
    """One write transaction on `conn` (autocommit mode): BEGIN IMMEDIATE waits for the write
    lock as `patiently` does, COMMIT at the end, ROLLBACK when the block raises."""
    patiently(lambda: conn.execute("BEGIN IMMEDIATE"), wait, what)
    try:
        yield conn
        patiently(lambda: _commit(conn), wait, what)
    except BaseException:
        if conn.in_transaction:  # a failed COMMIT may have rolled back already
            conn.execute("ROLLBACK")
        raise


def _commit(conn: sqlite3.Connection) -> None:
    """COMMIT; raises SQLITE_BUSY (to be tried again) only while the transaction is still open.

    In WAL mode a COMMIT after BEGIN IMMEDIATE does not meet SQLITE_BUSY: the transaction holds
    the write lock from its start, COMMIT only appends to the WAL, and the checkpoint that may
    follow it is PASSIVE (it never waits, and its result is not COMMIT's). Were the file not in
    WAL mode (a file system that refuses it), COMMIT needs the exclusive lock and may answer
    SQLITE_BUSY while readers hold theirs; SQLite documents that the transaction then stays open
    and COMMIT may be tried again. `in_transaction` checks that it did, so a COMMIT is never
    repeated for a transaction that SQLite rolled back."""
    try:
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if is_busy(exc) and not conn.in_transaction:
            raise sqlite3.OperationalError(f"SQLite rolled the transaction back: {exc}") from exc
        raise

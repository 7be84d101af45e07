"""`python -m bench.sqlite_busy`: does SQLite's busy handler stop a gevent worker's event loop?

Two workers share one SQLite file. When one holds the write lock, the other's `BEGIN IMMEDIATE`
waits in SQLite's busy handler, which sleeps in C: no greenlet of that worker runs meanwhile (no
POST answered, no stream written). Here another process holds the write lock for a while, and this
process, patched by gevent, ticks every 5 ms while it waits for `BEGIN IMMEDIATE`; the longest gap
between ticks is how long its event loop stood still."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def hold(path: str, seconds: float) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    print("held", flush=True)
    time.sleep(seconds)
    conn.execute("COMMIT")


def main() -> None:
    from gevent import monkey

    monkey.patch_all()
    import gevent

    path = str(Path(tempfile.mkdtemp(prefix="spiral-busy-")) / "record.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")  # as store/sqlite.py sets it
    conn.execute("CREATE TABLE t(x)")
    gaps: list[float] = []

    def ticker() -> None:
        last = time.monotonic()
        while True:
            gevent.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    gevent.spawn(ticker)
    gevent.sleep(0.1)
    for seconds in (0.05, 0.5):
        other = subprocess.Popen(
            [sys.executable, "-m", "bench.sqlite_busy", "--hold", path, str(seconds)],
            stdout=subprocess.PIPE,
        )
        assert other.stdout is not None
        other.stdout.readline()
        gaps.clear()
        started = time.monotonic()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("COMMIT")
        waited = time.monotonic() - started
        gevent.sleep(0.05)
        other.wait()
        print(
            f"another process held the write lock {seconds * 1000:.0f} ms: BEGIN IMMEDIATE "
            f"waited {waited * 1000:.0f} ms; this process's event loop stood still for "
            f"{max(gaps) * 1000:.0f} ms"
        )
    os.unlink(path)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--hold"]:
        hold(sys.argv[2], float(sys.argv[3]))
    else:
        main()

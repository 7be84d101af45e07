"""`python -m bench.sqlite_busy`: does waiting for SQLite's write lock stop a gevent worker's loop?

Workers share one SQLite file. When one holds the write lock, another's `BEGIN IMMEDIATE` waits.
SQLite's own busy handler (the store's before: `timeout=30`, `busy_timeout=30000`) waits by
sleeping in C, so no greenlet of that worker runs meanwhile (no POST answered, no stream written).
The store now has no busy handler and waits through `time.sleep` (spiral_web/store/sqlitelock.py).

1. Another process holds the write lock for a while; this process, patched by gevent, ticks every
   5 ms while a store appends; the longest gap between ticks is how long its loop stood still.
2. Several such processes append as fast as they can to one file, each ticking: appends a second
   in all, the slowest append, and the longest stand-still of any loop.
Each for the busy handler ("before") and the store's wait ("after")."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spiral_web.engine.glints import GlintDraft, GlintIn
from spiral_web.store.sqlite import SQLiteStore

WRITERS = (2, 4)
APPENDS = 1500  # per writer


class BusyHandlerStore(SQLiteStore):
    """The store as it was: SQLite's busy handler waits (in C) up to 30 s."""

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        conn.execute("PRAGMA busy_timeout=30000")
        return conn


KINDS = {"before (busy handler)": BusyHandlerStore, "after (the store's wait)": SQLiteStore}


def draft(gid: str) -> GlintDraft:
    data = GlintIn(module="bench.busy", phase="inhale", context={}, id=gid, parent_id=None)
    state = {"phase": "inhale", "climate": "clear", "usage": 0.0}
    return GlintDraft.stamp(gid, data, "inhale", "t", time.time(), state, "bench")


def hold(path: str, seconds: float) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    print("held", flush=True)
    time.sleep(seconds)
    conn.execute("COMMIT")


def _ticking() -> list[float]:
    """Start a 5 ms ticker greenlet (it stands for the worker's other greenlets: POSTs answered,
    streams written); the list it answers holds the longest gap between ticks since reset."""
    import gevent

    longest = [0.0]

    def ticker() -> None:
        last = time.monotonic()
        while True:
            gevent.sleep(0.005)
            now = time.monotonic()
            longest[0] = max(longest[0], now - last)
            last = now

    gevent.spawn(ticker)
    gevent.sleep(0.05)
    return longest


def one_wait(kind: str, path: str) -> None:
    """(patched) Append while another process holds the lock; print what the loop saw."""
    store = KINDS[kind](path)
    longest = _ticking()
    for seconds in (0.05, 0.5):
        other = subprocess.Popen(
            [sys.executable, "-m", "bench.sqlite_busy", "--hold", path, str(seconds)],
            stdout=subprocess.PIPE,
        )
        assert other.stdout is not None
        other.stdout.readline()
        longest[0] = 0.0
        started = time.monotonic()
        store.append([draft(f"wait-{seconds}")])
        waited = time.monotonic() - started
        other.wait()
        print(
            f"  another process held the write lock {seconds * 1000:.0f} ms: the append waited "
            f"{waited * 1000:.0f} ms; the event loop stood still for {longest[0] * 1000:.0f} ms",
            flush=True,
        )
    store.close()


def many(kind: str, path: str, name: str) -> None:
    """(patched) Append APPENDS glints one at a time, letting the other greenlets run between
    appends as a worker's requests do; print JSON figures."""
    import gevent

    store = KINDS[kind](path)
    longest = _ticking()
    slowest = 0.0
    started = time.monotonic()
    for i in range(APPENDS):
        t = time.monotonic()
        store.append([draft(f"{name}-{i}")])
        slowest = max(slowest, time.monotonic() - t)
        gevent.sleep(0)
    took = time.monotonic() - started
    print(json.dumps({"took": took, "slowest": slowest, "stall": longest[0]}), flush=True)
    store.close()


def _patched(function: str, *args: str) -> list[str]:
    """The command that runs `function(*args)` of this module in a gevent-patched process."""
    code = (
        "from gevent import monkey; monkey.patch_all(); import sys; "
        f"from bench.sqlite_busy import {function}; {function}(*sys.argv[1:])"
    )
    return [sys.executable, "-c", code, *args]


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="spiral-busy-"))
    try:
        for kind in KINDS:
            print(f"{kind}:")
            path = str(folder / f"wait-{len(kind)}.sqlite3")
            SQLiteStore(path).close()
            subprocess.run(_patched("one_wait", kind, path), check=True)
            for writers in WRITERS:
                path = str(folder / f"many-{len(kind)}-{writers}.sqlite3")
                SQLiteStore(path).close()
                procs = [
                    subprocess.Popen(
                        _patched("many", kind, path, f"w{n}"), stdout=subprocess.PIPE, text=True
                    )
                    for n in range(writers)
                ]
                seen = [json.loads(p.communicate()[0]) for p in procs]
                total = writers * APPENDS / max(s["took"] for s in seen)
                print(
                    f"  {writers} workers appending {APPENDS} glints each, one per transaction: "
                    f"{total:,.0f} appends/s in all; slowest append "
                    f"{max(s['slowest'] for s in seen) * 1000:.0f} ms; longest stand-still of a "
                    f"loop {max(s['stall'] for s in seen) * 1000:.0f} ms"
                )
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--hold"]:
        hold(sys.argv[2], float(sys.argv[3]))
    else:
        main()

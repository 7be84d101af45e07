"""Workers sharing the SQLite file: while another process holds the write lock, a gevent worker's
store waits for it without stopping the worker's event loop, then stores; held past the store's
wait, the write fails as a whole (503 at the door) and nothing of it is stored."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from spiral_web.engine.glints import GlintDraft, GlintIn
from spiral_web.engine.ports import RecordUnavailable
from spiral_web.store import sqlitelock
from spiral_web.store.sqlite import SQLiteStore
from spiral_web.store.sqlitelock import RecordLocked

ROOT = Path(__file__).resolve().parents[2]

# Another worker: holds the write lock from "held" until it reads a line (or 10 s pass, so that a
# store that stops the loop, and so cannot say "release", fails the test instead of hanging it).
HOLDER = """
import select, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE sequence SET value = value")
print("held", flush=True)
select.select([sys.stdin], [], [], 10)
conn.execute("COMMIT")
"""


def draft(gid: str) -> GlintDraft:
    data = GlintIn(module="busy.test", phase="inhale", context={}, id=gid, parent_id=None)
    state = {"phase": "inhale", "climate": "clear", "usage": 0.0}
    return GlintDraft.stamp(gid, data, "inhale", "t", 1000.0, state, "tester")


@contextmanager
def write_lock_held(path: Path):
    """Another process holds the file's write lock inside the block."""
    other = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline() == "held\n"
        yield
    finally:
        other.communicate("release\n", timeout=30)
    assert other.returncode == 0


def test_a_gevent_worker_keeps_running_while_another_process_holds_the_write_lock(tmp_path):
    path = tmp_path / "record.sqlite3"
    SQLiteStore(path).close()
    # As in a gunicorn gevent worker: patched, a 5 ms ticker stands for every other greenlet
    # (POSTs answered, streams written). Two greenlets append while another process holds the
    # lock; the ticker must go on, and the lock is released only after 200 ticks.
    script = textwrap.dedent(
        f"""
        from gevent import monkey
        monkey.patch_all()
        import json, subprocess, sys, time
        import gevent, gevent.event
        from tests.integration.test_sqlite_busy import HOLDER, draft
        from spiral_web.store.sqlite import SQLiteStore

        store = SQLiteStore({str(path)!r})
        ticks, gaps, enough = [0], [0.0], gevent.event.Event()

        def ticker():
            last = time.monotonic()
            while True:
                gevent.sleep(0.005)
                now = time.monotonic()
                gaps[0] = max(gaps[0], now - last)
                last = now
                ticks[0] += 1
                if ticks[0] >= 200:
                    enough.set()

        other = subprocess.Popen(
            [sys.executable, "-c", HOLDER, {str(path)!r}],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert other.stdout.readline() == "held\\n"
        writers = [gevent.spawn(store.append, [draft(gid)]) for gid in ("a", "b")]
        gevent.sleep(0)  # both are waiting for the lock now
        gevent.spawn(ticker)
        enough.wait(30)
        waiting = [not w.ready() for w in writers]
        other.communicate("release\\n", timeout=30)
        gevent.joinall(writers, timeout=30)
        print(json.dumps({{
            "ticks": ticks[0],
            "longest_gap": gaps[0],
            "were_waiting": waiting,
            "seqs": sorted(w.get() for w in writers),
            "stored": sorted(store.lookup(["a", "b"])),
        }}))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["ticks"] >= 200 and seen["were_waiting"] == [True, True]
    assert seen["longest_gap"] < 0.2  # the loop ran on while both writes waited (~1 s)
    assert seen["seqs"] == [1, 2] and seen["stored"] == ["a", "b"]  # then both were stored


def test_a_lock_held_past_the_wait_fails_the_write_and_stores_nothing(tmp_path, monkeypatch):
    path = tmp_path / "record.sqlite3"
    store = SQLiteStore(path)
    monkeypatch.setattr(store, "LOCK_WAIT", 0.3)
    try:
        with write_lock_held(path):
            assert store.seq_bounds() == (0, 0)  # reads do not wait for the writer
            with pytest.raises(RecordLocked) as failed:
                store.append([draft("late")])
        # what SQLite raised before, and what the entry points answer as "try again later"
        assert isinstance(failed.value, sqlite3.OperationalError)
        assert isinstance(failed.value, RecordUnavailable)
        assert "database is locked" in str(failed.value)
        assert store.lookup(["late"]) == {}
        assert store.append([draft("next")]) == 1  # the counter did not move either
    finally:
        store.close()


def test_opening_waits_for_the_lock_too(tmp_path, monkeypatch):
    path = tmp_path / "record.sqlite3"
    SQLiteStore(path).close()
    monkeypatch.setattr(SQLiteStore, "LOCK_WAIT", 0.3)
    with write_lock_held(path), pytest.raises(RecordLocked):
        SQLiteStore(path)  # migration and counter check take the write lock
    SQLiteStore(path).close()


def test_a_post_while_the_lock_is_held_past_the_wait_answers_503(app, client, monkeypatch):
    monkeypatch.setattr(SQLiteStore, "LOCK_WAIT", 0.3)
    path = Path(app.extensions["spiral"].config.db_path)
    with write_lock_held(path):
        refused = client.post("/stream/glint", json={"module": "busy.test", "id": "late"})
        assert refused.status_code == 503
        assert refused.json["error"] == "record_unavailable"
        assert int(refused.headers["Retry-After"]) >= 1
    assert client.get("/api/glints/late").status_code == 404
    stored = client.post("/stream/glint", json={"module": "busy.test", "id": "next"})
    assert stored.status_code == 201 and stored.json["seq"] == 1


def test_a_commit_refused_for_a_reader_is_tried_again_in_its_open_transaction(
    tmp_path, monkeypatch
):
    """Outside WAL mode (a file system that refuses it) COMMIT needs every reader gone; refused,
    its transaction stays open, and the store's wait commits it once the reader has finished."""
    path = tmp_path / "rollback.sqlite3"
    writer = sqlite3.connect(path, isolation_level=None, timeout=0)
    writer.execute("CREATE TABLE t(x)")
    reader = sqlite3.connect(path, isolation_level=None, timeout=0)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()  # a reader's lock, held
    pauses: list[float] = []

    def pause(seconds: float) -> None:  # the wait's sleep: the reader finishes meanwhile
        pauses.append(seconds)
        reader.execute("COMMIT")

    monkeypatch.setattr(sqlitelock, "time", SimpleNamespace(sleep=pause, monotonic=time.monotonic))
    with sqlitelock.writing(writer, 5.0, "a write") as w:
        w.execute("INSERT INTO t VALUES (1)")
    assert len(pauses) == 1  # COMMIT was refused once, then went through
    assert not writer.in_transaction
    assert reader.execute("SELECT x FROM t").fetchall() == [(1,)]
    writer.close()
    reader.close()

"""SQLite store in WAL mode. A glint's transaction is committed before the glint is acknowledged.

Durability: `synchronous=NORMAL` (default) in WAL mode survives a crash of the process — a committed
transaction is in the WAL file — but the last transactions may be lost on power loss or an OS crash.
`synchronous=FULL` (SPIRAL_SQLITE_SYNC=full) fsyncs every commit and survives power loss too.

Workers on one host share the file; waiting for another's lock lets the event loop run
(sqlitelock). The queries are in sqlitereads.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson

from ..datadir import private_file, private_folder
from ..engine.glints import GlintDraft
from ..engine.ports import Epoch, IdTaken, RunDraft
from .schema import migrate_sqlite
from .sqlitelock import patiently, writing
from .sqlitereads import SEQ_TABLES, SQLiteReads


class SQLiteStore(SQLiteReads):
    """One writer connection, one reader connection; both guarded, both usable from greenlets.

    The guards are `threading.Lock`s made when the store is: gevent's own when a worker has
    patched `threading`, so a greenlet waiting for one (or holding one while it waits for
    another process's lock) lets the others run."""

    CHECKPOINT_PAGES = 4000

    def __init__(self, path: str | os.PathLike[str], synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        private_folder(self.path.parent)
        private_file(self.path)  # SQLite gives its -wal and -shm files the record's mode
        for suffix in ("-wal", "-shm"):  # older ones may predate that
            older = self.path.with_name(self.path.name + suffix)
            if older.exists():
                private_file(older)
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(
                f"SQLite synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}"
            )
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._w = self._connect()
        # Copy the WAL back into the file every ~16 MiB instead of every ~4 MiB: the pages that
        # every commit rewrites (the indexes' last pages) are copied once per checkpoint, so
        # fewer checkpoints copy fewer pages (measured: 5 µs a glint). Durability is the WAL's
        # either way. The checkpoint runs after a COMMIT and is PASSIVE: it never waits for a
        # lock (it copies what it can), so it needs no patience of ours.
        self._w.execute(f"PRAGMA wal_autocheckpoint={self.CHECKPOINT_PAGES}")
        try:
            self._migrate()
            self._init_sequence()
        except BaseException:
            self._w.close()
            raise
        self._r = self._connect()

    def _connect(self) -> sqlite3.Connection:
        # timeout=0: no busy handler, SQLite answers SQLITE_BUSY at once and sqlitelock waits
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=0)
        # Switching a new file to WAL takes the exclusive lock (workers starting together); a
        # refused switch changed nothing, so it may be tried again.
        patiently(lambda: conn.execute("PRAGMA journal_mode=WAL"), self.LOCK_WAIT, "opening")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn

    def close(self) -> None:
        with self._wlock, self._rlock:
            self._w.close()
            self._r.close()

    def _writing(self, what: str) -> AbstractContextManager[sqlite3.Connection]:
        return writing(self._w, self.LOCK_WAIT, what)

    def _migrate(self) -> None:
        with self._wlock, self._writing("the migration"):
            migrate_sqlite(self._w, self.path)

    def _init_sequence(self) -> None:
        """Create the counter, or raise it to the largest stored seq (a file from before it
        existed)."""
        top = " , ".join(f"(SELECT COALESCE(MAX(seq), 0) FROM {t})" for t in SEQ_TABLES)
        with self._wlock, self._writing("opening") as w:
            w.execute(
                f"INSERT INTO sequence(id, value) VALUES (1, MAX({top})) "
                "ON CONFLICT(id) DO UPDATE SET value = MAX(value, excluded.value)"
            )

    @staticmethod
    def _seq(conn: sqlite3.Connection) -> int:
        """The last allocated seq; call inside the writing transaction."""
        return conn.execute("SELECT value FROM sequence WHERE id = 1").fetchone()[0]

    # -- writes --------------------------------------------------------------------------------
    def append(self, drafts: Sequence[GlintDraft]) -> int:
        """Store `drafts` under the next seqs in one transaction; IdTaken if an id is stored."""
        try:
            with self._wlock, self._writing("a write") as w:
                first = self._seq(w) + 1
                w.executemany(
                    "INSERT INTO glints VALUES (?,?,?,?,?,?,?,?)",
                    [
                        (
                            first + i,
                            d.id,
                            d.module,
                            d.phase,
                            d.parent_id,
                            d.received_ts,
                            d.source,
                            d.body(first + i),
                        )  # fmt: skip
                        for i, d in enumerate(drafts)
                    ],
                )
                # archived ids stay taken; an id the hub made a moment ago was never archived
                if self._archived(w, [d.id for d in drafts if d.id_given]):
                    raise IdTaken()
                w.execute("UPDATE sequence SET value = ? WHERE id = 1", (first + len(drafts) - 1,))
        except sqlite3.IntegrityError:
            raise IdTaken() from None
        return first

    @staticmethod
    def _archived(conn: sqlite3.Connection, ids: list[str]) -> bool:
        if not ids:
            return False
        marks = ",".join("?" * len(ids))
        return (
            conn.execute(f"SELECT 1 FROM archive WHERE id IN ({marks}) LIMIT 1", ids).fetchone()
            is not None
        )

    def append_run(self, run: RunDraft) -> tuple[int, bytes]:
        """Store one ritual run under the next seq; answers (seq, its JSON with the seq in it)."""
        with self._wlock, self._writing("a write") as w:
            seq = self._seq(w) + 1
            body = orjson.dumps({"seq": seq, **run.record})
            w.execute(
                "INSERT INTO ritual_runs VALUES (?,?,?,?,?)",
                (seq, run.ritual, run.status, run.at_ts, body),
            )
            w.execute("UPDATE sequence SET value = ? WHERE id = 1", (seq,))
        return seq, body

    def archive_before(self, cutoff_ts: float, now_ts: float) -> dict[str, Any]:
        """Move glints received before `cutoff_ts` into the archive, in one transaction.

        Answers a summary: what moved (counts by module and phase), and what was received since
        the previous archival (or ever, for the first). Counts over hot store plus archive do not
        change: nothing is deleted, only moved.
        """
        with self._wlock, self._writing("the archival") as w:
            last = w.execute("SELECT MAX(at_ts) FROM archivals").fetchone()[0]
            moved_by_module = dict(
                w.execute(
                    "SELECT module, COUNT(*) FROM glints WHERE received_ts < ? GROUP BY module "
                    "ORDER BY COUNT(*) DESC",
                    (cutoff_ts,),
                )
            )
            moved_by_phase = dict(
                w.execute(
                    "SELECT phase, COUNT(*) FROM glints WHERE received_ts < ? GROUP BY phase",
                    (cutoff_ts,),
                )
            )
            since = last if last is not None else float("-inf")
            recent_by_module: dict[str, int] = {}
            recent_by_phase: dict[str, int] = {}
            for table in ("glints", "archive"):
                for module, phase, n in w.execute(
                    f"SELECT module, phase, COUNT(*) FROM {table} WHERE received_ts >= ? "
                    "GROUP BY module, phase",
                    (since,),
                ):
                    recent_by_module[module] = recent_by_module.get(module, 0) + n
                    recent_by_phase[phase] = recent_by_phase.get(phase, 0) + n
            w.execute(
                "INSERT INTO archive SELECT seq, id, module, phase, parent_id, received_ts, "
                "source, body, ? FROM glints WHERE received_ts < ?",
                (now_ts, cutoff_ts),
            )
            moved = w.execute("DELETE FROM glints WHERE received_ts < ?", (cutoff_ts,)).rowcount
            summary = {
                "moved": moved,
                "archived": {"by_module": moved_by_module, "by_phase": moved_by_phase},
                "since_last": {
                    "since": last,
                    "total": sum(recent_by_module.values()),
                    "by_module": dict(sorted(recent_by_module.items(), key=lambda kv: -kv[1])),
                    "by_phase": recent_by_phase,
                },
            }
            w.execute(
                "INSERT INTO archivals VALUES (?,?,?,?)",
                (now_ts, cutoff_ts, moved, orjson.dumps(summary)),
            )
        return summary

    # -- restores ------------------------------------------------------------------------------
    def fence(self, floor: int, ceiling: int, now_ts: float) -> Epoch | None:
        """When the counter is below `floor` (clients saw seqs this file lacks: it was restored
        from a backup), advance it to `ceiling`, bump the epoch and record the skipped seqs as
        lost, in one transaction; None when the record was current."""
        if self._read("SELECT value FROM sequence WHERE id = 1")[0][0] >= floor:
            return None  # the common case, without a write transaction
        with self._wlock, self._writing("the fence") as w:
            value = self._seq(w)
            if value >= floor:
                return None
            top = max(floor, ceiling)
            w.execute("UPDATE sequence SET value = ? WHERE id = 1", (top,))
            w.execute("UPDATE meta SET value = value + 1 WHERE key = 'epoch'")
            w.execute("INSERT INTO lost VALUES (?, ?, ?)", (value + 1, top, now_ts))
        return self.epoch()

"""SQLite store in WAL mode. A glint's transaction is committed before the glint is acknowledged.

Durability: `synchronous=NORMAL` (default) in WAL mode survives a crash of the process — a committed
transaction is in the WAL file — but the last transactions may be lost on power loss or an OS crash.
`synchronous=FULL` (SPIRAL_SQLITE_SYNC=full) fsyncs every commit and survives power loss too.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import orjson

from ..datadir import private_file, private_folder
from ..engine.events import Event
from ..engine.glints import Glint, GlintDraft
from ..engine.ports import Epoch, IdTaken, RunDraft
from .schema import migrate_sqlite

# The tables that hold replayable events, each keyed by seq.
_SEQ_TABLES = ("glints", "archive", "ritual_runs")


class SQLiteStore:
    """One writer connection, one reader connection; both guarded, both usable from greenlets."""

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
        # either way.
        self._w.execute(f"PRAGMA wal_autocheckpoint={self.CHECKPOINT_PAGES}")
        try:
            self._migrate()
            self._init_sequence()
        except BaseException:
            self._w.close()
            raise
        self._r = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def close(self) -> None:
        with self._wlock, self._rlock:
            self._w.close()
            self._r.close()

    def _migrate(self) -> None:
        with self._wlock:
            migrate_sqlite(self._w, self.path)

    def _init_sequence(self) -> None:
        """Create the counter, or raise it to the largest stored seq (a file from before it
        existed)."""
        top = " , ".join(f"(SELECT COALESCE(MAX(seq), 0) FROM {t})" for t in _SEQ_TABLES)
        with self._wlock:
            self._w.execute("BEGIN IMMEDIATE")
            try:
                self._w.execute(
                    f"INSERT INTO sequence(id, value) VALUES (1, MAX({top})) "
                    "ON CONFLICT(id) DO UPDATE SET value = MAX(value, excluded.value)"
                )
                self._w.execute("COMMIT")
            except BaseException:
                self._w.execute("ROLLBACK")
                raise

    @staticmethod
    def _seq(conn: sqlite3.Connection) -> int:
        """The last allocated seq; call inside the writing transaction."""
        return conn.execute("SELECT value FROM sequence WHERE id = 1").fetchone()[0]

    # -- writes --------------------------------------------------------------------------------
    def lookup(self, ids: Collection[str]) -> dict[str, Glint]:
        """The stored glints (hot or archived) among `ids`."""
        if not ids:
            return {}
        wanted = list(ids)
        marks = ",".join("?" * len(wanted))
        # archived ids stay taken: a retried glint is still a duplicate after archival
        rows = self._read(
            f"SELECT id, body FROM glints WHERE id IN ({marks}) UNION ALL "
            f"SELECT id, body FROM archive WHERE id IN ({marks})",
            wanted + wanted,
        )
        return {gid: Glint.from_json(body) for gid, body in rows}

    def append(self, drafts: Sequence[GlintDraft]) -> int:
        """Store `drafts` under the next seqs in one transaction; IdTaken if an id is stored."""
        with self._wlock:
            w = self._w
            w.execute("BEGIN IMMEDIATE")
            try:
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
                w.execute("COMMIT")
            except sqlite3.IntegrityError:
                w.execute("ROLLBACK")
                raise IdTaken() from None
            except BaseException:
                w.execute("ROLLBACK")
                raise
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
        with self._wlock:
            w = self._w
            w.execute("BEGIN IMMEDIATE")
            try:
                seq = self._seq(w) + 1
                body = orjson.dumps({"seq": seq, **run.record})
                w.execute(
                    "INSERT INTO ritual_runs VALUES (?,?,?,?,?)",
                    (seq, run.ritual, run.status, run.at_ts, body),
                )
                w.execute("UPDATE sequence SET value = ? WHERE id = 1", (seq,))
                w.execute("COMMIT")
            except BaseException:
                w.execute("ROLLBACK")
                raise
        return seq, body

    def archive_before(self, cutoff_ts: float, now_ts: float) -> dict[str, Any]:
        """Move glints received before `cutoff_ts` into the archive, in one transaction.

        Answers a summary: what moved (counts by module and phase), and what was received since
        the previous archival (or ever, for the first). Counts over hot store plus archive do not
        change: nothing is deleted, only moved.
        """
        with self._wlock:
            w = self._w
            w.execute("BEGIN IMMEDIATE")
            try:
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
                w.execute("COMMIT")
            except BaseException:
                w.execute("ROLLBACK")
                raise
        return summary

    # -- restores ------------------------------------------------------------------------------
    def epoch(self) -> Epoch:
        """How often the record was found restored, and the seq ranges it lost then."""
        number = self._read("SELECT value FROM meta WHERE key = 'epoch'")
        lost = self._read("SELECT first, last FROM lost ORDER BY first")
        return Epoch(int(number[0][0]) if number else 0, tuple((a, b) for a, b in lost))

    def fence(self, floor: int, ceiling: int, now_ts: float) -> Epoch | None:
        """When the counter is below `floor` (clients saw seqs this file lacks: it was restored
        from a backup), advance it to `ceiling`, bump the epoch and record the skipped seqs as
        lost, in one transaction; None when the record was current."""
        if self._read("SELECT value FROM sequence WHERE id = 1")[0][0] >= floor:
            return None  # the common case, without a write transaction
        with self._wlock:
            w = self._w
            w.execute("BEGIN IMMEDIATE")
            try:
                value = self._seq(w)
                if value >= floor:
                    w.execute("COMMIT")
                    return None
                top = max(floor, ceiling)
                w.execute("UPDATE sequence SET value = ? WHERE id = 1", (top,))
                w.execute("UPDATE meta SET value = value + 1 WHERE key = 'epoch'")
                w.execute("INSERT INTO lost VALUES (?, ?, ?)", (value + 1, top, now_ts))
                w.execute("COMMIT")
            except BaseException:
                w.execute("ROLLBACK")
                raise
        return self.epoch()

    # -- reads ---------------------------------------------------------------------------------
    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._rlock:
            return self._r.execute(sql, args).fetchall()

    def get(self, gid: str) -> Glint | None:
        """The glint with this id, from the hot store or else the archive."""
        rows = self._read(
            "SELECT body FROM glints WHERE id = ?1 UNION ALL "
            "SELECT body FROM archive WHERE id = ?1 LIMIT 1",
            (gid,),
        )
        return Glint.from_json(rows[0][0]) if rows else None

    def query(
        self,
        module: str | None = None,
        phase: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[Glint]:
        """Newest first; page with `before_seq` (the smallest seq of the previous page)."""
        return self._query("glints", module, phase, since, until, before_seq, limit)

    def query_archive(
        self,
        module: str | None = None,
        phase: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[Glint]:
        """Archived glints, newest first, with the same filters and paging as `query`."""
        return self._query("archive", module, phase, since, until, before_seq, limit)

    def _query(
        self,
        table: str,
        module: str | None,
        phase: str | None,
        since: float | None,
        until: float | None,
        before_seq: int | None,
        limit: int,
    ) -> list[Glint]:
        where, args = _filters(module, phase)
        if since is not None:
            where.append("received_ts >= ?")
            args.append(since)
        if until is not None:
            where.append("received_ts < ?")
            args.append(until)
        if before_seq is not None:
            where.append("seq < ?")
            args.append(before_seq)
        sql = f"SELECT body FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        return [Glint.from_json(r[0]) for r in self._read(sql, args)]

    def replay_after(
        self, seq: int, module: str | None, phase: str | None, limit: int
    ) -> list[Event]:
        """Replayable events stored after `seq`, oldest first, as listeners receive them: glints
        (hot or archived: archival never makes a listener miss one) and ritual runs, merged in seq
        order, in one statement (one snapshot). `module` and `phase` filter glints only."""
        where, args = _filters(module, phase)
        where.append("seq > ?")
        args.append(seq)
        cond = " AND ".join(where)
        arm = "SELECT * FROM (SELECT seq, module, phase, body, {k} AS k FROM {t} WHERE {c} " \
              "ORDER BY seq LIMIT ?)"  # fmt: skip
        sql = " UNION ALL ".join(
            [
                arm.format(k=0, t="glints", c=cond),
                arm.format(k=0, t="archive", c=cond),
                "SELECT * FROM (SELECT seq, NULL, NULL, body, 1 AS k FROM ritual_runs "
                "WHERE seq > ? ORDER BY seq LIMIT ?)",
            ]
        )
        rows = self._read(
            sql + " ORDER BY seq LIMIT ?", [*args, limit, *args, limit, seq, limit, limit]
        )
        return [
            Event("ritual", body, s) if k else Event("glint_emission", body, s, m, p)
            for s, m, p, body, k in rows
        ]

    def activity(self, now: float, window: float, step: float) -> list[tuple[str, int, int]]:
        """(module, steps ago, count) for the glints received in the last `window` seconds, counted
        in buckets of `step` seconds (uses the received_ts index)."""
        return self._read(
            "SELECT module, CAST((? - received_ts) / ? AS INTEGER) AS ago, COUNT(*) FROM glints"
            " WHERE received_ts > ? AND received_ts <= ? GROUP BY module, ago",
            (now, step, now - window, now),
        )

    def seq_bounds(self) -> tuple[int, int]:
        """(smallest, largest) seq that replay_after can still return; (0, 0) when empty."""
        parts = " UNION ALL ".join(f"SELECT MIN(seq), MAX(seq) FROM {t}" for t in _SEQ_TABLES)
        rows = [r for r in self._read(parts) if r[0] is not None]
        if not rows:
            return (0, 0)
        return (min(r[0] for r in rows), max(r[1] for r in rows))

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Glints by phase and by module, archived ones included: archival keeps counts whole."""
        by_phase: dict[str, int] = {}
        by_module: dict[str, int] = {}
        for table in ("glints", "archive"):
            for phase, n in self._read(f"SELECT phase, COUNT(*) FROM {table} GROUP BY phase"):
                by_phase[phase] = by_phase.get(phase, 0) + n
            for module, n in self._read(f"SELECT module, COUNT(*) FROM {table} GROUP BY module"):
                by_module[module] = by_module.get(module, 0) + n
        return by_phase, by_module

    def runs(
        self,
        ritual: str | None = None,
        status: str | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[bytes]:
        """Ritual runs as stored JSON, newest first; page with `before_seq`."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("ritual", ritual), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if before_seq is not None:
            where.append("seq < ?")
            args.append(before_seq)
        sql = "SELECT body FROM ritual_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        return [r[0] for r in self._read(sql, args)]

    def last_runs(self, statuses: Sequence[str] = ("ok", "error")) -> dict[str, bytes]:
        """Each ritual's most recent run with one of `statuses` (its state after a restart)."""
        marks = ",".join("?" * len(statuses))
        rows = self._read(
            "SELECT ritual, body FROM ritual_runs WHERE seq IN (SELECT MAX(seq) FROM ritual_runs "
            f"WHERE status IN ({marks}) GROUP BY ritual)",
            list(statuses),
        )
        return dict(rows)

    def ancestors(self, gid: str, limit: int) -> list[Glint]:
        """The glint's parent, its parent's parent… nearest first, at most `limit` (hot store and
        archive alike: parents are often archived before their children)."""
        rows = self._read(
            """WITH RECURSIVE up(id, parent_id, body, depth) AS (
                   SELECT id, parent_id, body, 0 FROM glints WHERE id = ?1
                   UNION ALL SELECT id, parent_id, body, 0 FROM archive WHERE id = ?1
                   UNION ALL
                   SELECT g.id, g.parent_id, g.body, up.depth + 1
                   FROM up JOIN glints g ON g.id = up.parent_id WHERE up.depth < ?2
                   UNION ALL
                   SELECT g.id, g.parent_id, g.body, up.depth + 1
                   FROM up JOIN archive g ON g.id = up.parent_id WHERE up.depth < ?2
               ) SELECT body FROM up WHERE depth > 0 ORDER BY depth""",
            (gid, limit),
        )
        return [Glint.from_json(body) for (body,) in rows]

    def descendants(self, gid: str, limit: int) -> list[Glint]:
        """Glints below this one (any depth), at most `limit`, breadth first: parents before
        their children."""
        rows = self._read(
            """WITH RECURSIVE down(id, body, n) AS (
                   SELECT id, body, 0 FROM glints WHERE id = ?1
                   UNION ALL SELECT id, body, 0 FROM archive WHERE id = ?1
                   UNION ALL
                   SELECT g.id, g.body, down.n + 1 FROM down JOIN glints g ON g.parent_id = down.id
                   UNION ALL
                   SELECT g.id, g.body, down.n + 1 FROM down JOIN archive g ON g.parent_id = down.id
                   LIMIT ?2 + 1
               ) SELECT body FROM down WHERE n > 0""",
            (gid, limit),
        )
        return [Glint.from_json(body) for (body,) in rows]

    def ping(self) -> bool:
        try:
            self._read("SELECT 1")
            return True
        except sqlite3.Error:
            return False


def _filters(module: str | None, phase: str | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if module:
        where.append("module GLOB ?" if any(c in module for c in "*?[") else "module = ?")
        args.append(module)
    if phase:
        where.append("phase = ?")
        args.append(phase)
    return where, args

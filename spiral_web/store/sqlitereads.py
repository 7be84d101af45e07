"""The SQLite record's queries, on its reader connection: in WAL mode they read a snapshot and
never wait for the writer (nor the writer for them)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Sequence
from typing import Any

from ..engine.events import Event
from ..engine.glints import Glint
from ..engine.ports import Epoch
from .sqlitelock import patiently

# The tables that hold replayable events, each keyed by seq.
SEQ_TABLES = ("glints", "archive", "ritual_runs")


class SQLiteReads:
    """The read half of SQLiteStore: one reader connection, guarded, usable from greenlets."""

    # How long a statement waits for another process's lock before RecordLocked (see sqlitelock).
    LOCK_WAIT = 30.0

    _r: sqlite3.Connection
    _rlock: threading.Lock

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # WAL readers meet SQLITE_BUSY rarely (another connection recovering the WAL index);
        # a SELECT outside a transaction that failed did nothing, so it may run again.
        with self._rlock:
            return patiently(
                lambda: self._r.execute(sql, args).fetchall(), self.LOCK_WAIT, "a read"
            )

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

    def epoch(self) -> Epoch:
        """How often the record was found restored, and the seq ranges it lost then."""
        number = self._read("SELECT value FROM meta WHERE key = 'epoch'")
        lost = self._read("SELECT first, last FROM lost ORDER BY first")
        return Epoch(int(number[0][0]) if number else 0, tuple((a, b) for a, b in lost))

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
        parts = " UNION ALL ".join(f"SELECT MIN(seq), MAX(seq) FROM {t}" for t in SEQ_TABLES)
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
        """True when the file answers."""
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

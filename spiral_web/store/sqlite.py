"""SQLite store in WAL mode. A glint's transaction is committed before the glint is acknowledged.

Durability: `synchronous=NORMAL` (default) in WAL mode survives a crash of the process — a committed
transaction is in the WAL file — but the last transactions may be lost on power loss or an OS crash.
`synchronous=FULL` (SPIRAL_SQLITE_SYNC=full) fsyncs every commit and survives power loss too.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..engine.events import Event
from ..engine.glints import Glint
from ..engine.ports import StoreItem, StoreResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS glints (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    module      TEXT NOT NULL,
    phase       TEXT NOT NULL,
    parent_id   TEXT,
    received_ts REAL NOT NULL,
    source      TEXT NOT NULL,
    body        BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS glints_module ON glints(module, seq);
CREATE INDEX IF NOT EXISTS glints_phase ON glints(phase, seq);
CREATE INDEX IF NOT EXISTS glints_time ON glints(received_ts);
CREATE INDEX IF NOT EXISTS glints_parent ON glints(parent_id);
"""

LINEAGE_LIMIT = 200


class SQLiteStore:
    """One writer connection, one reader connection; both guarded, both usable from greenlets."""

    def __init__(self, path: str | os.PathLike[str], synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"SQLite synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._w = self._connect()
        self._w.executescript(SCHEMA)
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

    # -- writes --------------------------------------------------------------------------------
    def append_batch(self, items: Sequence[StoreItem]) -> list[StoreResult]:
        """Write a batch in one transaction; a duplicate id answers the stored glint instead."""
        results = [StoreResult() for _ in items]
        with self._wlock:
            w = self._w
            w.execute("BEGIN IMMEDIATE")
            try:
                ids = list({it.gid for it in items})
                existing = self._bodies_by_id(w, ids)
                parents = {it.data.parent_id for it in items if it.data.parent_id}
                known_parents = set(self._existing_ids(w, list(parents))) if parents else set()
                seq = w.execute("SELECT COALESCE(MAX(seq), 0) FROM glints").fetchone()[0]
                rows = []
                for item, result in zip(items, results):
                    if item.gid in existing:
                        result.glint, result.duplicate = Glint.from_json(existing[item.gid]), True
                        continue
                    parent = item.data.parent_id
                    if parent and parent not in known_parents:
                        result.error = f"parent_id: no glint with id {parent!r}"
                        continue
                    seq += 1
                    glint = Glint.build(seq, item.gid, item.data, item.phase, item.received_at,
                                        item.breath, item.source)
                    rows.append((seq, glint.id, glint.module, glint.phase, parent,
                                 item.received_ts, item.source, glint.json))
                    existing[item.gid] = glint.json
                    known_parents.add(item.gid)
                    result.glint = glint
                w.executemany("INSERT INTO glints VALUES (?,?,?,?,?,?,?,?)", rows)
                w.execute("COMMIT")
            except BaseException:
                w.execute("ROLLBACK")
                raise
        return results

    @staticmethod
    def _bodies_by_id(conn: sqlite3.Connection, ids: list[str]) -> dict[str, bytes]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return dict(conn.execute(f"SELECT id, body FROM glints WHERE id IN ({marks})", ids))

    @staticmethod
    def _existing_ids(conn: sqlite3.Connection, ids: list[str]) -> Iterable[str]:
        marks = ",".join("?" * len(ids))
        return [r[0] for r in conn.execute(f"SELECT id FROM glints WHERE id IN ({marks})", ids)]

    # -- reads ---------------------------------------------------------------------------------
    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._rlock:
            return self._r.execute(sql, args).fetchall()

    def get(self, gid: str) -> Glint | None:
        rows = self._read("SELECT body FROM glints WHERE id = ?", (gid,))
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
        sql = "SELECT body FROM glints"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        return [Glint.from_json(r[0]) for r in self._read(sql, args)]

    def after(
        self, seq: int, module: str | None = None, phase: str | None = None, limit: int = 500
    ) -> list[Glint]:
        """Glints with a seq above `seq`, oldest first (stream replay)."""
        where, args = _filters(module, phase)
        where.append("seq > ?")
        args.append(seq)
        sql = f"SELECT body FROM glints WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        args.append(limit)
        return [Glint.from_json(r[0]) for r in self._read(sql, args)]

    def replay_after(self, seq: int, module: str | None, phase: str | None, limit: int) -> list[Event]:
        """Replayable events stored after `seq`, oldest first, as listeners receive them."""
        return [Event("glint_emission", g.json, g.seq, g.module, g.phase)
                for g in self.after(seq, module=module, phase=phase, limit=limit)]

    def seq_bounds(self) -> tuple[int, int]:
        """(smallest, largest) stored seq; (0, 0) when empty."""
        lo, hi = self._read("SELECT MIN(seq), MAX(seq) FROM glints")[0]
        return (lo or 0, hi or 0)

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        by_phase = dict(self._read("SELECT phase, COUNT(*) FROM glints GROUP BY phase"))
        by_module = dict(self._read("SELECT module, COUNT(*) FROM glints GROUP BY module"))
        return by_phase, by_module

    def lineage(self, gid: str, limit: int = LINEAGE_LIMIT) -> dict[str, Any] | None:
        """Ancestors up to the root (nearest first) and the descendant tree, each bounded."""
        me = self.get(gid)
        if me is None:
            return None
        ancestors = self._read(
            """WITH RECURSIVE up(id, parent_id, body, depth) AS (
                   SELECT id, parent_id, body, 0 FROM glints WHERE id = ?
                   UNION ALL
                   SELECT g.id, g.parent_id, g.body, up.depth + 1
                   FROM glints g JOIN up ON g.id = up.parent_id WHERE up.depth < ?
               ) SELECT body FROM up WHERE depth > 0 ORDER BY depth""",
            (gid, limit),
        )
        descendants = self._read(
            """WITH RECURSIVE down(id, body, n) AS (
                   SELECT id, body, 0 FROM glints WHERE id = ?
                   UNION ALL
                   SELECT g.id, g.body, down.n + 1 FROM glints g JOIN down ON g.parent_id = down.id
                   LIMIT ?
               ) SELECT body FROM down WHERE n > 0""",
            (gid, limit + 1),
        )
        children: dict[str | None, list[dict[str, Any]]] = {}
        for (body,) in descendants:
            g = Glint.from_json(body).to_dict()
            g["children"] = []
            children.setdefault(g["parent_id"], []).append(g)

        def attach(node: dict[str, Any]) -> dict[str, Any]:
            node["children"] = [attach(c) for c in children.get(node["id"], [])]
            return node

        root = me.to_dict()
        tree = attach(root)
        return {
            "glint": me.to_dict(),
            "ancestors": [Glint.from_json(b).to_dict() for (b,) in ancestors],
            "descendants": tree["children"],
            "truncated": len(ancestors) >= limit or len(descendants) >= limit,
        }

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

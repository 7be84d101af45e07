"""PostgreSQL as the shared record of many hosts (SPIRAL_DATABASE_URL=postgresql://…).

The invariant (engine/ports.py): seqs become visible in seq order, without holes. A batch takes its
seqs from one counter row in the same statement that inserts it: the row's lock is held for that
one statement (never across a round trip to the client), so the next writer allocates only once
the previous batch has committed and is visible, and a failed statement leaves the counter as it
was. Hot and archived glints share one table (archival sets `archived_ts`), so one unique index
makes an id taken for ever, and a duplicate fails the whole statement: nothing stored.

Durability: `synchronous_commit` is on for every session: a glint is acknowledged once its commit
is flushed to the WAL, so it survives a crash of Spiral, of PostgreSQL and of the machine. (With
asynchronous replication, a failover may lose the last commits: restore detection, store/marks.py.)

Each call borrows a connection from a small pool (store/pgpool.py), greenlets and threads alike.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import orjson
import psycopg
from psycopg import errors as pgerrors

from ..engine.events import Event
from ..engine.glints import Glint, GlintDraft
from ..engine.ports import Epoch, IdTaken, RecordUnavailable, RunDraft
from .pgpool import Pool
from .schema import POSTGRES_MIGRATIONS

MIGRATION_LOCK = 0x5B1CA1  # advisory lock: hosts starting together migrate one at a time

_APPEND = """
WITH c AS (
    UPDATE sequence SET value = value + %(n)s WHERE id = 1 RETURNING value - %(n)s AS base
), d AS (
    SELECT * FROM unnest(%(ids)s::text[], %(modules)s::text[], %(phases)s::text[],
                         %(parents)s::text[], %(ts)s::float8[], %(sources)s::text[],
                         %(tails)s::bytea[])
        WITH ORDINALITY AS d(id, module, phase, parent_id, received_ts, source, tail, n)
), ins AS (
    INSERT INTO glints (seq, id, module, phase, parent_id, received_ts, source, body)
    SELECT c.base + d.n, d.id, d.module, d.phase, d.parent_id, d.received_ts, d.source,
           convert_to('{"seq":' || (c.base + d.n) || ',', 'UTF8') || d.tail
    FROM c CROSS JOIN d
    RETURNING 1
)
SELECT c.base + 1, (SELECT count(*) FROM ins) FROM c
"""

_APPEND_RUN = """
WITH c AS (UPDATE sequence SET value = value + 1 WHERE id = 1 RETURNING value)
INSERT INTO ritual_runs (seq, ritual, status, at_ts, body)
SELECT value, %(ritual)s, %(status)s, %(at)s,
       convert_to('{"seq":' || value || %(sep)s, 'UTF8') || %(tail)s
FROM c RETURNING seq, body
"""

# One statement, so the moved counts and the counts since the last archival share one snapshot.
_ARCHIVE = """
WITH moved AS (
    UPDATE glints SET archived_ts = %(now)s
    WHERE archived_ts IS NULL AND received_ts < %(cutoff)s RETURNING module, phase
)
SELECT true, module, phase, count(*) FROM moved GROUP BY module, phase
UNION ALL
SELECT false, module, phase, count(*) FROM glints
WHERE %(since)s::float8 IS NULL OR received_ts >= %(since)s GROUP BY module, phase
"""


class PostgresStore:
    """The record in PostgreSQL; safe to share between threads and greenlets."""

    def __init__(self, url: str, pool_size: int = 5, wait: float = 10.0) -> None:
        self._pool = Pool(url, pool_size, wait)
        self._conn = self._pool.connection
        try:
            with self._conn() as conn:
                _migrate(conn)
        except BaseException:
            self.close()
            raise

    def _read(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self._conn() as conn:
            return conn.execute(sql, args).fetchall()

    def close(self) -> None:
        self._pool.close()

    # -- writes --------------------------------------------------------------------------------
    def lookup(self, ids: Collection[str]) -> dict[str, Glint]:
        """The stored glints (hot or archived) among `ids`."""
        if not ids:
            return {}
        rows = self._read("SELECT id, body FROM glints WHERE id = ANY(%s)", (list(ids),))
        return {gid: Glint.from_json(body) for gid, body in rows}

    def append(self, drafts: Sequence[GlintDraft]) -> int:
        """Store `drafts` under the next seqs in one statement; IdTaken if an id is stored."""
        args = {
            "n": len(drafts),
            "ids": [d.id for d in drafts],
            "modules": [d.module for d in drafts],
            "phases": [d.phase for d in drafts],
            "parents": [d.parent_id for d in drafts],
            "ts": [d.received_ts for d in drafts],
            "sources": [d.source for d in drafts],
            "tails": [d.tail for d in drafts],
        }
        try:
            with self._conn() as conn:
                row = conn.execute(_APPEND, args).fetchone()
        except pgerrors.UniqueViolation as exc:
            raise IdTaken() from exc
        assert row is not None and row[1] == len(drafts)
        return row[0]

    def append_run(self, run: RunDraft) -> tuple[int, bytes]:
        """Store one ritual run under the next seq; answers (seq, its JSON with the seq in it)."""
        record = {k: v for k, v in run.record.items() if k != "seq"}
        tail = orjson.dumps(record)[1:]
        args = {
            "ritual": run.ritual,
            "status": run.status,
            "at": run.at_ts,
            "sep": "," if record else "",
            "tail": tail,
        }
        with self._conn() as conn:
            row = conn.execute(_APPEND_RUN, args).fetchone()
        assert row is not None
        return row[0], bytes(row[1])

    def archive_before(self, cutoff_ts: float, now_ts: float) -> dict[str, Any]:
        """Mark glints received before `cutoff_ts` archived, in one transaction; a summary of
        what moved and of what was received since the previous archival."""
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK + 1,))
            conn.execute("SET LOCAL statement_timeout = 0")  # a first archival may move millions
            last = conn.execute("SELECT max(at_ts) FROM archivals").fetchone()[0]  # type: ignore[index]
            rows = conn.execute(
                _ARCHIVE, {"now": now_ts, "cutoff": cutoff_ts, "since": last}
            ).fetchall()
            moved_by_module: dict[str, int] = {}
            moved_by_phase: dict[str, int] = {}
            recent_by_module: dict[str, int] = {}
            recent_by_phase: dict[str, int] = {}
            for moved, module, phase, n in rows:
                by_module, by_phase = (
                    (moved_by_module, moved_by_phase)
                    if moved
                    else (recent_by_module, recent_by_phase)
                )
                by_module[module] = by_module.get(module, 0) + n
                by_phase[phase] = by_phase.get(phase, 0) + n
            summary = {
                "moved": sum(moved_by_module.values()),
                "archived": {"by_module": _by_count(moved_by_module), "by_phase": moved_by_phase},
                "since_last": {
                    "since": last,
                    "total": sum(recent_by_module.values()),
                    "by_module": _by_count(recent_by_module),
                    "by_phase": recent_by_phase,
                },
            }
            conn.execute(
                "INSERT INTO archivals VALUES (%s, %s, %s, %s)",
                (now_ts, cutoff_ts, summary["moved"], orjson.dumps(summary)),
            )
        return summary

    # -- restores ------------------------------------------------------------------------------
    def epoch(self) -> Epoch:
        """How often the record was found restored, and the seq ranges it lost then."""
        rows = self._read(
            "SELECT (SELECT value FROM meta WHERE key = 'epoch'), first, last "
            "FROM (SELECT 1) one LEFT JOIN lost ON true ORDER BY first"
        )
        number = int(rows[0][0] or 0) if rows else 0
        return Epoch(number, tuple((f, la) for _, f, la in rows if f is not None))

    def fence(self, floor: int, ceiling: int, now_ts: float) -> Epoch | None:
        """When the counter is below `floor` (clients saw seqs this record lacks: it was restored
        from a backup), advance it to `ceiling`, bump the epoch and record the seqs skipped as
        lost, in one transaction; None when the record was current."""
        if self._read("SELECT value FROM sequence WHERE id = 1")[0][0] >= floor:
            return None  # the common case, without taking the counter's lock
        with self._conn() as conn, conn.transaction():
            row = conn.execute("SELECT value FROM sequence WHERE id = 1 FOR UPDATE").fetchone()
            value = row[0]  # type: ignore[index]
            if value >= floor:
                return None
            top = max(floor, ceiling)
            conn.execute("UPDATE sequence SET value = %s WHERE id = 1", (top,))
            conn.execute("UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'epoch'")
            conn.execute("INSERT INTO lost VALUES (%s, %s, %s)", (value + 1, top, now_ts))
        return self.epoch()

    # -- reads ---------------------------------------------------------------------------------
    def get(self, gid: str) -> Glint | None:
        """The glint with this id, hot or archived."""
        rows = self._read("SELECT body FROM glints WHERE id = %s", (gid,))
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
        """Hot glints, newest first; page with `before_seq`. `module` may be a glob."""
        return self._query(False, module, phase, since, until, before_seq, limit)

    def query_archive(
        self,
        module: str | None = None,
        phase: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[Glint]:
        """Archived glints, with the filters and paging of `query`."""
        return self._query(True, module, phase, since, until, before_seq, limit)

    def _query(
        self,
        archived: bool,
        module: str | None,
        phase: str | None,
        since: float | None,
        until: float | None,
        before_seq: int | None,
        limit: int,
    ) -> list[Glint]:
        where, args = _filters(module, phase)
        where.append("archived_ts IS NOT NULL" if archived else "archived_ts IS NULL")
        for clause, value in (
            ("received_ts >= %s", since),
            ("received_ts < %s", until),
            ("seq < %s", before_seq),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        args.append(limit)
        rows = self._read(
            f"SELECT body FROM glints WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT %s", args
        )
        return [Glint.from_json(r[0]) for r in rows]

    def replay_after(
        self, seq: int, module: str | None, phase: str | None, limit: int
    ) -> list[Event]:
        """Glints (hot or archived) and ritual runs after `seq`, oldest first, in one statement
        (one snapshot); `module` and `phase` filter glints only."""
        where, args = _filters(module, phase)
        where.append("seq > %s")
        sql = (
            "SELECT * FROM (SELECT seq, module, phase, body, false FROM glints "
            f"WHERE {' AND '.join(where)} ORDER BY seq LIMIT %s) g "
            "UNION ALL SELECT * FROM (SELECT seq, NULL, NULL, body, true FROM ritual_runs "
            "WHERE seq > %s ORDER BY seq LIMIT %s) r ORDER BY seq LIMIT %s"
        )
        rows = self._read(sql, [*args, seq, limit, seq, limit, limit])
        return [
            Event("ritual", body, s) if run else Event("glint_emission", body, s, m, p)
            for s, m, p, body, run in rows
        ]

    def seq_bounds(self) -> tuple[int, int]:
        """(smallest, largest) seq that replay_after can return; (0, 0) when empty."""
        row = self._read(
            "SELECT least((SELECT min(seq) FROM glints), (SELECT min(seq) FROM ritual_runs)), "
            "greatest((SELECT max(seq) FROM glints), (SELECT max(seq) FROM ritual_runs))"
        )[0]
        return (row[0] or 0, row[1] or 0)

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Glints by phase and by module, archived ones included."""
        by_phase: dict[str, int] = {}
        by_module: dict[str, int] = {}
        for module, phase, n in self._read(
            "SELECT module, phase, count(*) FROM glints GROUP BY module, phase"
        ):
            by_phase[phase] = by_phase.get(phase, 0) + n
            by_module[module] = by_module.get(module, 0) + n
        return by_phase, by_module

    def activity(self, now: float, window: float, step: float) -> list[tuple[str, int, int]]:
        """(module, steps ago, count) of hot glints received in the last `window` seconds."""
        return self._read(
            "SELECT module, trunc((%(now)s - received_ts) / %(step)s)::int AS ago, count(*)::int "
            "FROM glints WHERE archived_ts IS NULL AND received_ts > %(from)s "
            "AND received_ts <= %(now)s GROUP BY module, ago",
            {"now": now, "step": step, "from": now - window},
        )

    def runs(
        self,
        ritual: str | None = None,
        status: str | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[bytes]:
        """Ritual runs as stored JSON, newest first; page with `before_seq`."""
        where = ["true"]
        args: list[Any] = []
        for clause, value in (("ritual = %s", ritual), ("status = %s", status),
                              ("seq < %s", before_seq)):  # fmt: skip
            if value is not None:
                where.append(clause)
                args.append(value)
        args.append(limit)
        rows = self._read(
            f"SELECT body FROM ritual_runs WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT %s",
            args,
        )
        return [bytes(r[0]) for r in rows]

    def last_runs(self, statuses: Sequence[str] = ("ok", "error")) -> dict[str, bytes]:
        """Each ritual's most recent run with one of `statuses`."""
        rows = self._read(
            "SELECT DISTINCT ON (ritual) ritual, body FROM ritual_runs WHERE status = ANY(%s) "
            "ORDER BY ritual, seq DESC",
            (list(statuses),),
        )
        return {ritual: bytes(body) for ritual, body in rows}

    def ancestors(self, gid: str, limit: int) -> list[Glint]:
        """The glint's parent, its parent's parent… nearest first, at most `limit`."""
        rows = self._read(
            """WITH RECURSIVE up(parent_id, body, depth) AS (
                   SELECT parent_id, body, 0 FROM glints WHERE id = %(id)s
                   UNION ALL
                   SELECT g.parent_id, g.body, up.depth + 1
                   FROM up JOIN glints g ON g.id = up.parent_id WHERE up.depth < %(limit)s
               ) SELECT body FROM up WHERE depth > 0 ORDER BY depth""",
            {"id": gid, "limit": limit},
        )
        return [Glint.from_json(body) for (body,) in rows]

    def descendants(self, gid: str, limit: int) -> list[Glint]:
        """Glints below this one (any depth), at most `limit`, breadth first: parents before
        their children (the recursion stops once `limit` are found)."""
        rows = self._read(
            """WITH RECURSIVE down(id, body, depth) AS (
                   SELECT id, body, 0 FROM glints WHERE id = %(id)s
                   UNION ALL
                   SELECT g.id, g.body, down.depth + 1
                   FROM down JOIN glints g ON g.parent_id = down.id
               ) SELECT body FROM down WHERE depth > 0 LIMIT %(limit)s""",
            {"id": gid, "limit": limit},
        )
        return [Glint.from_json(body) for (body,) in rows]

    def ping(self) -> bool:
        """True when PostgreSQL answers."""
        try:
            self._read("SELECT 1")
            return True
        except RecordUnavailable:
            return False


def _migrate(conn: psycopg.Connection[Any]) -> None:
    """Bring the schema to the newest version in one transaction (hosts starting together take
    turns on an advisory lock)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > len(POSTGRES_MIGRATIONS):
            raise RuntimeError(
                f"the database has schema version {version}, newer than this Spiral knows "
                f"({len(POSTGRES_MIGRATIONS)}): upgrade Spiral"
            )
        for number, script in enumerate(POSTGRES_MIGRATIONS[version:], start=version + 1):
            conn.execute(script)
            conn.execute(
                "INSERT INTO meta VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(number),),
            )


def _by_count(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def like_pattern(glob: str) -> str:
    """A module glob (`*`, `?`) as a LIKE pattern, everything else literal."""
    out = []
    for c in glob:
        if c in "%_\\":
            out.append("\\" + c)
        elif c == "*":
            out.append("%")
        elif c == "?":
            out.append("_")
        else:
            out.append(c)
    return "".join(out)


def _filters(module: str | None, phase: str | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if module:
        if any(c in module for c in "*?"):
            where.append("module LIKE %s")
            args.append(like_pattern(module))
        else:
            where.append("module = %s")
            args.append(module)
    if phase:
        where.append("phase = %s")
        args.append(phase)
    return where, args

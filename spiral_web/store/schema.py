"""The record's schema, as forward migrations: version N is reached by running migrations 1..N.

A store opens by running the migrations its file or database lacks (SQLite keeps the version in
`PRAGMA user_version`, PostgreSQL in the `meta` table), so a data folder or database made by an
earlier release opens after an upgrade with nothing lost. Append new migrations; never edit one
that has shipped.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SQLITE_MIGRATIONS: list[str] = [
    # 1: the schema of the first release (which had no version): IF NOT EXISTS, so that a file
    # made by it passes through unchanged.
    """
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

    -- One counter for every replayable event (glints, ritual runs), so that a Last-Event-ID
    -- names exactly one of them. Bumped inside the writing transaction (BEGIN IMMEDIATE), so
    -- several processes writing the same file never hand out the same seq, and never skip one.
    CREATE TABLE IF NOT EXISTS sequence (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        value INTEGER NOT NULL
    );

    -- Glints moved out of the hot store by archival; same columns, same seq, never deleted.
    CREATE TABLE IF NOT EXISTS archive (
        seq         INTEGER PRIMARY KEY,
        id          TEXT NOT NULL UNIQUE,
        module      TEXT NOT NULL,
        phase       TEXT NOT NULL,
        parent_id   TEXT,
        received_ts REAL NOT NULL,
        source      TEXT NOT NULL,
        body        BLOB NOT NULL,
        archived_ts REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS archive_module ON archive(module, seq);
    CREATE INDEX IF NOT EXISTS archive_phase ON archive(phase, seq);
    CREATE INDEX IF NOT EXISTS archive_time ON archive(received_ts);
    CREATE INDEX IF NOT EXISTS archive_parent ON archive(parent_id);

    -- One row per archival: when, up to which receipt time, how many moved, and its summary.
    CREATE TABLE IF NOT EXISTS archivals (
        at_ts     REAL NOT NULL,
        cutoff_ts REAL NOT NULL,
        moved     INTEGER NOT NULL,
        summary   BLOB NOT NULL
    );

    -- Every ritual run (ok, error, deferred, skipped), in the same seq space as glints.
    CREATE TABLE IF NOT EXISTS ritual_runs (
        seq    INTEGER PRIMARY KEY,
        ritual TEXT NOT NULL,
        status TEXT NOT NULL,
        at_ts  REAL NOT NULL,
        body   BLOB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS ritual_runs_ritual ON ritual_runs(ritual, seq);
    """,
    # 2: restore detection: the epoch (how often the record was found restored from a backup)
    # and the seq ranges lost then, which listeners resuming inside them are told about.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta VALUES ('epoch', '0');
    CREATE TABLE lost (first INTEGER NOT NULL, last INTEGER NOT NULL, at_ts REAL NOT NULL);
    """,
]

POSTGRES_MIGRATIONS: list[str] = [
    # 1: hot and archived glints in one table (archival sets archived_ts), so one unique index
    # keeps an id taken for ever; ritual runs share the seq counter.
    """
    CREATE TABLE glints (
        seq         bigint PRIMARY KEY,
        id          text NOT NULL UNIQUE,
        module      text COLLATE "C" NOT NULL,
        phase       text NOT NULL,
        parent_id   text,
        received_ts double precision NOT NULL,
        source      text NOT NULL,
        body        bytea NOT NULL,
        archived_ts double precision
    );
    CREATE INDEX glints_module ON glints (module, seq);
    CREATE INDEX glints_phase ON glints (phase, seq);
    CREATE INDEX glints_time ON glints (received_ts);
    CREATE INDEX glints_parent ON glints (parent_id);
    CREATE INDEX glints_archived ON glints (seq) WHERE archived_ts IS NOT NULL;

    CREATE TABLE sequence (id int PRIMARY KEY CHECK (id = 1), value bigint NOT NULL);
    INSERT INTO sequence VALUES (1, 0);

    CREATE TABLE archivals (
        at_ts     double precision NOT NULL,
        cutoff_ts double precision NOT NULL,
        moved     bigint NOT NULL,
        summary   bytea NOT NULL
    );

    CREATE TABLE ritual_runs (
        seq    bigint PRIMARY KEY,
        ritual text NOT NULL,
        status text NOT NULL,
        at_ts  double precision NOT NULL,
        body   bytea NOT NULL
    );
    CREATE INDEX ritual_runs_ritual ON ritual_runs (ritual, seq);

    INSERT INTO meta VALUES ('epoch', '0');
    CREATE TABLE lost (
        first bigint NOT NULL, last bigint NOT NULL, at_ts double precision NOT NULL
    );
    """,
]


def migrate_sqlite(conn: sqlite3.Connection, path: Path) -> None:
    """Run the migrations the file lacks (`PRAGMA user_version` counts those done), inside the
    caller's write transaction: a file is at one version or the next, never in between."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(SQLITE_MIGRATIONS):
        raise RuntimeError(
            f"{path} has schema version {version}, newer than this Spiral knows "
            f"({len(SQLITE_MIGRATIONS)}): upgrade Spiral"
        )
    for script in SQLITE_MIGRATIONS[version:]:
        for statement in _statements(script):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {len(SQLITE_MIGRATIONS)}")


def _statements(script: str) -> list[str]:
    """The statements of a migration (executescript would commit the open transaction)."""
    out, part = [], ""
    for line in script.splitlines(keepends=True):
        part += line
        if sqlite3.complete_statement(part):
            out.append(part)
            part = ""
    return [s for s in out if s.strip()]

"""Versioned schemas: a record made by an earlier release opens after an upgrade, nothing lost."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from spiral_web.engine.ports import Epoch
from spiral_web.store.schema import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from spiral_web.store.sqlite import SQLiteStore

from .conftest import draft
from .records import open_record

FIXTURE = Path(__file__).parent.parent / "fixtures" / "release-3dd149d.sqlite3"


def rows(path: Path) -> dict[str, list[tuple]]:
    with closing(sqlite3.connect(path)) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in ("glints", "archive", "archivals", "ritual_runs", "sequence")
        }


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def test_a_file_from_the_release_before_schema_versions_opens_with_nothing_lost(tmp_path):
    path = tmp_path / "spiral.sqlite3"
    shutil.copy(FIXTURE, path)
    before = rows(path)
    assert user_version(path) == 0
    store = SQLiteStore(path)
    try:
        assert [g.id for g in store.query()] == ["old-last", "old-late"]
        assert [g.id for g in store.query_archive()] == ["old-child", "old-root"]
        assert [g.id for g in store.ancestors("old-late", 10)] == ["old-child", "old-root"]
        assert [e.seq for e in store.replay_after(0, None, None, 10)] == [1, 2, 3, 4, 5]
        assert store.runs()[0].startswith(b'{"seq":3,')
        assert store.counts()[1] == {"memory.scroll": 2, "breath.emitter": 1, "shrine.system": 1}
        assert store.epoch() == Epoch(0, ())
        assert store.append([draft("new")]) == 6
    finally:
        store.close()
    after = rows(path)
    for table, old in before.items():
        if table != "sequence":
            assert after[table][: len(old)] == old, f"{table} changed"
    assert user_version(path) == len(SQLITE_MIGRATIONS)


def test_a_record_opened_twice_migrates_once(where):
    first = open_record(where)
    first.append([draft("a")])
    first.close()
    second = open_record(where)
    try:
        assert second.append([draft("b")]) == 2
    finally:
        second.close()


def test_a_record_newer_than_this_release_is_refused(where):
    open_record(where).close()
    kind, target = where
    if kind == "sqlite":
        with closing(sqlite3.connect(target)) as conn:
            conn.execute(f"PRAGMA user_version = {len(SQLITE_MIGRATIONS) + 1}")
    else:
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(
                "UPDATE meta SET value = %s WHERE key = 'schema_version'",
                (str(len(POSTGRES_MIGRATIONS) + 1),),
            )
    with pytest.raises(RuntimeError, match="upgrade Spiral"):
        open_record(where)

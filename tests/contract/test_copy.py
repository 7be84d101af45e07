"""`spiral db copy --to postgresql://…`: a SQLite record moves into PostgreSQL whole."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spiral_web.cli import main
from spiral_web.engine.ports import RunDraft
from spiral_web.store.postgres import PostgresStore
from spiral_web.store.sqlite import SQLiteStore

from .conftest import draft

FIXTURE = Path(__file__).parent.parent / "fixtures" / "release-3dd149d.sqlite3"


def everything(record) -> dict:
    """What a user can see of a record, through the port."""
    return {
        "events": [
            (e.kind, e.seq, e.module, e.phase, e.data)
            for e in record.replay_after(0, None, None, 1000)
        ],  # fmt: skip
        "hot": [g.json for g in record.query(limit=1000)],
        "archived": [g.json for g in record.query_archive(limit=1000)],
        "runs": record.runs(limit=1000),
        "counts": record.counts(),
        "bounds": record.seq_bounds(),
        "epoch": record.epoch(),
        "lineage": [g.id for g in record.ancestors("leaf", 10)],
    }


@pytest.fixture
def folder(tmp_path) -> Path:
    """A data folder whose SQLite record has hot and archived glints, lineage, ritual runs, an
    archival and a lost range."""
    data = tmp_path / "data"
    store = SQLiteStore(data / "spiral.sqlite3")
    store.append([draft("root", ts=1.0), draft("mid", ts=2.0, parent="root", module="a.b")])
    store.append_run(RunDraft("bell", "ok", 3.0, {"ritual": "bell", "trigger_id": "mid"}))
    store.archive_before(2.5, 10.0)
    store.fence(10, 20, 11.0)  # once restored from a backup: 4..20 lost
    store.append([draft("leaf", ts=30.0, parent="mid", phase="hold")])
    store.append_run(RunDraft("bell", "error", 31.0, {"ritual": "bell"}))
    store.close()
    return data


def test_copy_moves_every_glint_run_archival_and_the_counter(folder, postgres_url, capsys):
    source = SQLiteStore(folder / "spiral.sqlite3")
    before = everything(source)
    source.close()
    assert main(["db", "copy", "--to", postgres_url, "--data-dir", str(folder)]) == 0
    assert "copied 3 glints (2 archived), 2 ritual runs and 1 archivals" in capsys.readouterr().out
    target = PostgresStore(postgres_url)
    try:
        assert everything(target) == before
        assert target.lookup(["root"])["root"].seq == 1  # archived ids stay taken
        assert target.append([draft("next")]) == 23  # the counter came along
        assert target.archive_before(100.0, 200.0)["since_last"]["since"] == 10.0
    finally:
        target.close()


def test_a_target_that_holds_a_record_is_refused_unless_forced(folder, postgres_url, capsys):
    held = PostgresStore(postgres_url)
    held.append([draft("theirs")])
    held.close()
    assert main(["db", "copy", "--to", postgres_url, "--data-dir", str(folder)]) == 2
    assert "already holds a record" in capsys.readouterr().err
    target = PostgresStore(postgres_url)
    assert [g.id for g in target.query()] == ["theirs"]  # untouched
    target.close()
    assert main(["db", "copy", "--to", postgres_url, "--data-dir", str(folder), "--force"]) == 0
    target = PostgresStore(postgres_url)
    try:
        assert target.get("theirs") is None and target.seq_bounds() == (1, 22)
    finally:
        target.close()


def test_a_file_from_the_release_before_schema_versions_copies_too(tmp_path, postgres_url):
    (tmp_path / "old").mkdir()
    shutil.copy(FIXTURE, tmp_path / "old" / "spiral.sqlite3")
    assert main(["db", "copy", "--to", postgres_url, "--data-dir", str(tmp_path / "old")]) == 0
    target = PostgresStore(postgres_url)
    try:
        assert [e.seq for e in target.replay_after(0, None, None, 10)] == [1, 2, 3, 4, 5]
        assert [g.id for g in target.ancestors("old-late", 10)] == ["old-child", "old-root"]
        assert target.append([draft("new")]) == 6
    finally:
        target.close()


def test_a_missing_source_is_a_clear_error(tmp_path, postgres_url, capsys):
    assert main(["db", "copy", "--to", postgres_url, "--data-dir", str(tmp_path / "none")]) == 2
    assert "no SQLite record" in capsys.readouterr().err

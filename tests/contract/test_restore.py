"""A record restored from a backup is found out: its counter skips past what clients saw, a new
epoch begins, and a listener resuming inside the lost range is told to reset, never skipped."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from spiral_web import create_app
from spiral_web.engine.glints import validate_glint
from spiral_web.engine.ports import Epoch
from spiral_web.store.marks import BLOCK

from ..sse import SSEReader, glint_frames, seqs


@pytest.fixture
def hub_at(where, tmp_path, monkeypatch):
    """Start a hub on the record `where` and the data folder (its seq mark) as often as asked."""
    kind, target = where
    data_dir = tmp_path / "data"
    if kind == "postgres":
        monkeypatch.setenv("SPIRAL_DATABASE_URL", target)
    apps = []

    def start():
        app = create_app(
            {
                "data_dir": str(data_dir),
                "fake_clock": True,
                "start_ticker": False,
                "heartbeat_seconds": 0.1,
            }  # fmt: skip
        )
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.extensions["spiral"].close()


class Backup:
    """Copy the record aside while no hub is running, and copy it back: a restore."""

    def __init__(self, where, admin_url: str | None, data_dir: Path) -> None:
        self.kind, self.target = where
        if self.kind == "sqlite":
            self.target = str(data_dir / "spiral.sqlite3")
        self.admin_url = admin_url

    def take(self) -> None:
        if self.kind == "sqlite":
            shutil.copy(self.target, self.target + ".bak")
        else:
            name = conninfo_to_dict(self.target)["dbname"]
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}_bak" TEMPLATE "{name}"')

    def restore(self) -> None:
        if self.kind == "sqlite":
            for suffix in ("-wal", "-shm"):
                Path(self.target + suffix).unlink(missing_ok=True)
            shutil.copy(self.target + ".bak", self.target)
        else:
            name = conninfo_to_dict(self.target)["dbname"]
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{name}"')
                conn.execute(f'ALTER DATABASE "{name}_bak" RENAME TO "{name}"')


@pytest.fixture
def backup(where, request, tmp_path) -> Backup:
    admin = request.getfixturevalue("postgres").url() if where[0] == "postgres" else None
    return Backup(where, admin, tmp_path / "data")


def emit(app, n: int) -> list[int]:
    spiral = app.extensions["spiral"]
    data = validate_glint({"module": "restore.test", "phase": "inhale"})
    return [spiral.orchestrator.emit(data, "test").glint.seq for _ in range(n)]


def stream(app, last_event_id: int) -> SSEReader:
    resp = app.test_client().get(
        "/stream", headers={"Last-Event-ID": str(last_event_id)}, buffered=False
    )
    assert resp.status_code == 200
    return SSEReader(resp)


def test_a_restored_record_skips_what_clients_saw_and_tells_them_to_reset(hub_at, backup):
    first = hub_at()
    assert emit(first, 5) == [1, 2, 3, 4, 5]
    first.extensions["spiral"].close()
    backup.take()
    second = hub_at()
    assert emit(second, 5) == [6, 7, 8, 9, 10]  # clients saw up to 10
    second.extensions["spiral"].close()
    backup.restore()  # the record holds 1..5 again

    third = hub_at()
    spiral = third.extensions["spiral"]
    assert spiral.store.epoch() == Epoch(1, ((6, 10),))
    behind = stream(third, 8)  # saw 8, which the record lost
    frames = behind.until(lambda fs: any(f.event == "reset" for f in fs))
    reset = next(f for f in frames if f.event == "reset").json()
    assert reset["epoch"] == 1 and reset["last_id"] == 8
    assert "6..10" in reset["message"]
    early = stream(third, 3)  # saw only what the record still holds: replayed, no reset
    assert seqs(early.glints(2)) == [4, 5]
    assert emit(third, 1) == [11]  # never one of the seqs clients saw
    assert seqs(glint_frames(behind.glints(1))) == [11]
    assert seqs(early.glints(3)) == [4, 5, 11]
    assert not any(f.event == "reset" for f in early.frames)
    beyond = stream(third, 500)  # above anything this record has
    frames = beyond.until(lambda fs: any(f.event == "reset" for f in fs))
    assert "ends at 11" in next(f for f in frames if f.event == "reset").json()["message"]
    behind.close(), early.close(), beyond.close()


def test_a_crash_without_a_restore_continues_the_seqs(hub_at):
    first = hub_at()
    emit(first, 3)
    first.extensions["spiral"].orchestrator.mark._seen = -2  # the process dies: no clean stop
    second = hub_at()
    assert second.extensions["spiral"].store.epoch() == Epoch(0, ())
    assert emit(second, 1) == [4]


def test_after_a_machine_restart_the_whole_reservation_counts_as_seen(hub_at, tmp_path):
    first = hub_at()
    emit(first, 3)
    first.extensions["spiral"].orchestrator.mark._seen = -2  # the machine dies with it
    seen = tmp_path / "data" / "seq-seen"
    seen.write_text("another-boot" + seen.read_text()[seen.read_text().index(" ") :])
    second = hub_at()
    assert second.extensions["spiral"].store.epoch() == Epoch(
        1, ((4, BLOCK),)
    )  # reserved at start-up
    listener = stream(second, 3)  # saw 3: nothing it saw was lost, so no reset
    assert emit(second, 1) == [BLOCK + 1]
    assert seqs(listener.glints(1)) == [BLOCK + 1]
    assert not any(f.event == "reset" for f in listener.frames)
    listener.close()

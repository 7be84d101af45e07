"""One fixture, two records: every contract test runs against SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from spiral_web.engine.glints import GlintDraft, GlintIn
from spiral_web.engine.ports import Record

from .records import open_record


@pytest.fixture(params=["sqlite", "postgres"])
def where(request, tmp_path) -> tuple[str, str]:
    """Where a record lives: ("sqlite", path) or ("postgres", url); picklable, for processes."""
    if request.param == "sqlite":
        return ("sqlite", str(tmp_path / "record.sqlite3"))
    return ("postgres", request.getfixturevalue("postgres_url"))


@pytest.fixture
def record(where) -> Record:
    rec = open_record(where)
    yield rec
    rec.close()


def draft(
    gid: str,
    module: str = "test.module",
    phase: str = "inhale",
    ts: float = 1000.0,
    parent: str | None = None,
    source: str = "tester",
    **context,
) -> GlintDraft:
    """A stamped glint ready to append."""
    data = GlintIn(module=module, phase=phase, context=context, id=gid, parent_id=parent)
    return GlintDraft.stamp(
        gid, data, phase, f"t{ts}", ts, {"phase": phase, "climate": "clear", "usage": 0.0}, source
    )

"""Opening a record by where it lives, in this process or another."""

from __future__ import annotations

from spiral_web.engine.ports import Record


def open_record(where: tuple[str, str]) -> Record:
    kind, target = where
    if kind == "sqlite":
        from spiral_web.store.sqlite import SQLiteStore

        return SQLiteStore(target)
    from spiral_web.store.postgres import PostgresStore

    return PostgresStore(target)

"""`spiral db copy --to postgresql://…`: move a host's SQLite record into PostgreSQL, so that a user
who outgrows one host keeps the whole history: every glint (hot and archived) under its seq with
its lineage, the archivals, the ritual runs, the lost ranges and epoch, and the counter.

The SQLite file is only read (in one read transaction: one consistent snapshot, even while a server
still writes; stop it first, or what it stores afterwards stays behind). The target gets the
schema, then everything in one transaction; a target that already holds a record is refused
unless `--force` (which replaces it).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

GLINT_COLUMNS = "seq, id, module, phase, parent_id, received_ts, source, body"


class CopyRefused(Exception):
    """The copy cannot go ahead (a non-empty target, a missing source)."""


def add_parser(sub: Any) -> None:
    """The `db` subcommand of the `spiral` command."""
    p = sub.add_parser("db", help="the record: copy a SQLite record into PostgreSQL")
    actions = p.add_subparsers(dest="action", required=True)
    c = actions.add_parser("copy", help="copy the data folder's SQLite record into PostgreSQL")
    c.add_argument("--to", required=True, metavar="postgresql://…", help="the target database")
    c.add_argument("--data-dir", default=None, help="where spiral.sqlite3 lives (as for serve)")
    c.add_argument("--config", default=None, help="TOML configuration file (for data_dir)")
    c.add_argument("--force", action="store_true", help="replace a record the target holds")


def main(args: argparse.Namespace) -> int:
    """Run `spiral db copy`; prints what was copied."""
    from ..config import Config

    overrides = {k: v for k, v in (("data_dir", args.data_dir), ("config_file", args.config)) if v}
    source = Config.load(overrides).db_path
    try:
        copied = copy_to_postgres(source, args.to, force=args.force)
    except CopyRefused as exc:
        print(f"spiral: {exc}", file=sys.stderr)
        return 2
    print(
        f"copied {copied['glints']} glints ({copied['archived']} archived), {copied['runs']} "
        f"ritual runs and {copied['archivals']} archivals from {source}; the next seq is "
        f"{copied['counter'] + 1}. Start every host with SPIRAL_DATABASE_URL set to the target."
    )
    return 0


def copy_to_postgres(source: Path, url: str, force: bool = False) -> dict[str, int]:
    """Copy the SQLite record at `source` into the PostgreSQL database at `url`."""
    import psycopg

    from .postgres import PostgresStore

    if not source.exists():
        raise CopyRefused(f"no SQLite record at {source}")
    target = PostgresStore(url)  # creates (or upgrades) the schema
    try:
        with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src:
            src.execute("BEGIN")  # one snapshot for every table
            with target._conn() as conn, conn.transaction():
                _clear_or_refuse(conn, force)
                copied = _copy(src, conn)
            src.execute("COMMIT")
    except sqlite3.Error as exc:
        raise CopyRefused(f"cannot read {source}: {exc}") from exc
    except psycopg.Error as exc:
        raise CopyRefused(f"cannot write to the target: {exc}") from exc
    finally:
        target.close()
    return copied


def _clear_or_refuse(conn: Any, force: bool) -> None:
    held = conn.execute(
        "SELECT (SELECT value FROM sequence WHERE id = 1) + (SELECT count(*) FROM archivals)"
    ).fetchone()[0]
    if held and not force:
        raise CopyRefused(
            "the target already holds a record (its counter is not zero); "
            "copy into an empty database, or pass --force to replace it"
        )
    conn.execute("TRUNCATE glints, ritual_runs, archivals, lost")
    conn.execute("UPDATE sequence SET value = 0 WHERE id = 1")
    conn.execute("UPDATE meta SET value = '0' WHERE key = 'epoch'")


def _copy(src: sqlite3.Connection, conn: Any) -> dict[str, int]:
    from .sqlitereads import SEQ_TABLES

    tables = {name for (name,) in src.execute("SELECT name FROM sqlite_master")}
    n: dict[str, int] = {}
    with conn.cursor().copy(f"COPY glints ({GLINT_COLUMNS}, archived_ts) FROM STDIN") as out:
        n["glints"] = n["archived"] = 0
        for row in src.execute(
            f"SELECT {GLINT_COLUMNS}, NULL FROM glints UNION ALL "
            f"SELECT {GLINT_COLUMNS}, archived_ts FROM archive ORDER BY seq"
        ):
            out.write_row(row)
            n["glints"] += 1
            n["archived"] += row[-1] is not None
    n["runs"] = _copy_table(src, conn, "ritual_runs", "seq, ritual, status, at_ts, body")
    n["archivals"] = _copy_table(src, conn, "archivals", "at_ts, cutoff_ts, moved, summary")
    if "lost" in tables:  # a file from before restore detection has neither
        _copy_table(src, conn, "lost", "first, last, at_ts")
        epoch = src.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        conn.execute("UPDATE meta SET value = %s WHERE key = 'epoch'", (str(epoch[0]),))
    counter = src.execute("SELECT value FROM sequence WHERE id = 1").fetchone()
    top = max(
        src.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {t}").fetchone()[0] for t in SEQ_TABLES
    )
    n["counter"] = max(counter[0] if counter else 0, top)
    conn.execute("UPDATE sequence SET value = %s WHERE id = 1", (n["counter"],))
    return n


def _copy_table(src: sqlite3.Connection, conn: Any, table: str, columns: str) -> int:
    count = 0
    with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as out:
        for row in src.execute(f"SELECT {columns} FROM {table} ORDER BY rowid"):
            out.write_row(row)
            count += 1
    return count

"""A throwaway PostgreSQL for tests: a cluster in a temporary folder on a free loopback port.

Debian's `postgresql` package keeps its programs under /usr/lib/postgresql/<version>/bin, off PATH.
PostgreSQL refuses to run as root, so when the suite runs as root (as CI does) every program runs
as the `postgres` user in a folder it owns. `initdb` runs once per session into a template folder;
each cluster is a copy of it (a fraction of a second) and is stopped when the test session ends.
Durability is off (fsync, synchronous_commit, full_page_writes): no cluster outlives its tests.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import pytest

from .support import free_port

USER = "spiral"  # the cluster's superuser; trust authentication on loopback
TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "max_connections": "200",
    "shared_buffers": "32MB",
}


def pg_bin() -> Path | None:
    """The folder with initdb/pg_ctl: on PATH, or Debian's newest under /usr/lib/postgresql."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


class PostgresCluster:
    """One running cluster; `url(dbname)` is what the store connects to."""

    _template: Path | None = None
    _template_lock = threading.Lock()
    _running: set[PostgresCluster] = set()

    def __init__(self) -> None:
        self.bin = pg_bin()
        if self.bin is None:
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        self.root = Path(tempfile.mkdtemp(prefix="spiral-pg-"))
        self.root.chmod(0o755)
        _own(self.root)
        self.data = self.root / "data"
        self.port = free_port()
        self.started = False

    def url(self, dbname: str = "postgres", **options: str) -> str:
        extra = "".join(f"&{k}={v}" for k, v in options.items())
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}?connect_timeout=5{extra}"

    @classmethod
    def _initdb(cls, bin_dir: Path) -> Path:
        """Run initdb once per session; later clusters copy its folder."""
        with cls._template_lock:
            if cls._template is None:
                root = Path(tempfile.mkdtemp(prefix="spiral-pg-template-"))
                root.chmod(0o755)
                _own(root)
                target = root / "data"
                argv = [str(bin_dir / "initdb"), "-N", "-A", "trust", "-U", USER, "-E", "UTF8"]
                argv += ["--locale=C", "-D", str(target)]
                subprocess.run(_as_owner(argv), check=True, capture_output=True)
                cls._template = target
                atexit.register(shutil.rmtree, root, True)
            return cls._template

    def start(self) -> PostgresCluster:
        """Copy the session's template folder and start a server on it."""
        assert self.bin is not None
        template = self._initdb(self.bin)
        copy = ["cp", "-a", str(template), str(self.data)]
        subprocess.run(_as_owner(copy), check=True, capture_output=True)
        self.start_again()
        return self

    def start_again(self) -> None:
        """Start the (stopped) server on its folder and port."""
        assert self.bin is not None
        options = " ".join(f"-c {k}={v or repr(v)}" for k, v in TEST_SETTINGS.items())
        argv = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "30"]
        argv += ["-l", str(self.root / "server.log"), "-o", f"-p {self.port} {options}", "start"]
        result = subprocess.run(_as_owner(argv), capture_output=True, text=True)
        if result.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")
            raise RuntimeError(f"PostgreSQL did not start: {result.stderr}\n{log}")
        self.started = True
        PostgresCluster._running.add(self)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (the folder stays, for `start_again`)."""
        if self.started and self.bin is not None:
            argv = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]
            subprocess.run(_as_owner(argv), capture_output=True)
            self.started = False
        PostgresCluster._running.discard(self)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; answers its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@atexit.register
def _stop_all() -> None:
    """Never leave a postgres running, whatever ended the session."""
    for cluster in list(PostgresCluster._running):
        cluster.destroy()

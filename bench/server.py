"""Start and watch server processes: free port, temporary data dir, readiness, CPU pinning, worker
pids, CPU time and RSS; and a throwaway redis-server."""

from __future__ import annotations

import atexit
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU, CLIENT_CPU = 0, 1  # the server on one core, the load generator on the other
_LIVE: set[Server] = set()  # servers to stop if the bench itself is stopped


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop(timeout=5)


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit, for this process and the servers it starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pinning() -> bool:
    """Whether server and client can be kept apart: two CPUs and `taskset`."""
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """`command` run on one CPU, or on all of them when `cpu` is None (whatever CPU this process
    is pinned to)."""
    if not pinning():
        return command
    cpus = str(cpu) if cpu is not None else f"0-{(os.cpu_count() or 1) - 1}"
    return ["taskset", "-c", cpus, *command]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy(seconds: float = 1.0) -> float:
    """CPU in use on the whole machine over `seconds`, in cores (call it while the bench is idle:
    anything above ~0.1 is someone else's load, and the figures that follow are not clean)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v[:8]) - idle, sum(v[:8])

    b0, t0 = sample()
    time.sleep(seconds)
    b1, t1 = sample()
    return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


_MAKE_RECORD = (
    "from spiral_web.config import Config; from spiral_web.services import open_record; "
    "open_record(Config.load()).close()"
)


class Server:
    """One server process. `via`: "gunicorn" (the production command with gunicorn.conf.py),
    "serve" (`python -m spiral_web.cli serve`), "bare" (the bare references in bench/bare.py) or
    "bare-wsgi" (the bare POST endpoint without Flask), the last two with the same gunicorn.conf.py.
    `cpu`: the CPU it runs on (`taskset`), None for any."""

    def __init__(
        self,
        via: str = "gunicorn",
        env: dict[str, str] | None = None,
        workers: int = 1,
        cpu: int | None = SERVER_CPU,
    ) -> None:
        self.via = via
        self.cpu = cpu
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="spiral-bench-"))
        self.data_dir = self.tmp / "data"
        self.log_path = self.tmp / "server.log"
        self.extra_env = env or {}
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.first_workers: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.via == "serve":
            return [
                sys.executable,
                "-m",
                "spiral_web.cli",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--workers",
                str(self.workers),
                "--log-level",
                "warning",
            ]
        app = {"bare": "bench.bare:app", "bare-wsgi": "bench.bare:wsgi"}.get(self.via, "wsgi:app")
        return [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), app]

    def start(self, timeout: float = 20.0) -> Server:
        raise_nofile()
        env = dict(os.environ)
        env.update(
            SPIRAL_DATA_DIR=str(self.data_dir),
            SPIRAL_PORT=str(self.port),
            SPIRAL_HOST="127.0.0.1",
            SPIRAL_WORKERS=str(self.workers),
            SPIRAL_LOG_LEVEL="warning",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        if self.workers > 1 and not self.via.startswith("bare"):
            # Workers that open a new SQLite file at the same moment can fail to start ("database
            # is locked" at `PRAGMA journal_mode=WAL` while the other migrates): not what the bench
            # measures, so the record is made first. (The start-up race itself is reported.)
            subprocess.run(
                [sys.executable, "-c", _MAKE_RECORD], cwd=ROOT, env=env, check=True, timeout=60
            )
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                pinned(self.command(), self.cpu),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        probe = "/ping" if self.via.startswith("bare") else "/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + probe, timeout=1) as r:
                    if r.status == 200 and len(self.worker_pids()) >= self.workers:
                        self.first_workers = set(self.worker_pids())
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready within {timeout}s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the master's children (taskset execs the master: same pid)."""
        assert self.proc is not None
        return _children(self.proc.pid)

    @property
    def worker(self) -> int:
        """The (first) gunicorn worker: a child of the master."""
        pids = self.worker_pids()
        if not pids:
            raise RuntimeError("no gunicorn worker process")
        return pids[0]

    def restarted_workers(self) -> int:
        """Workers that are not the ones it started with (gunicorn killed and replaced them, e.g.
        after a missed heartbeat: `timeout`)."""
        return len(set(self.worker_pids()) - self.first_workers)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        _LIVE.discard(self)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def cleanup(self) -> None:
        """Remove the data; keep the server's log as /tmp/spiral-bench-logs/<port>.log for a
        post-mortem."""
        keep = Path(tempfile.gettempdir()) / "spiral-bench-logs"
        keep.mkdir(exist_ok=True)
        try:
            shutil.copy(self.log_path, keep / f"{self.via}-{self.port}.log")
        except OSError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()


class RedisServer:
    """A throwaway redis-server on a free loopback port; the context gives its URL."""

    def __init__(self, cpu: int | None = None) -> None:
        self.cpu = cpu
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        port = free_port()
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        self.proc = subprocess.Popen(
            pinned([*command, "--appendonly", "no"], self.cpu), stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return f"redis://127.0.0.1:{port}/0"
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("redis-server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


class PostgresServer:
    """A throwaway PostgreSQL cluster: `initdb` into a temporary folder, started on a free loopback
    port with PostgreSQL's own defaults (fsync and synchronous_commit on: a commit is flushed
    before Spiral acknowledges the glint, the durability the ingest target asks for). Run as the
    `postgres` user when this process is root (PostgreSQL refuses root). `database()` makes a new
    empty database and answers its URL."""

    USER = "spiral"

    def __init__(self, cpu: int | None = None) -> None:
        self.cpu = cpu
        self.root: Path | None = None
        self.port = 0
        self.bin = self._bin()

    @staticmethod
    def _bin() -> Path:
        on_path = shutil.which("pg_ctl")
        if on_path:
            return Path(on_path).parent
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parts[-3])
        if not found:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        return found[-1].parent

    @staticmethod
    def _as_owner(argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def __enter__(self) -> PostgresServer:
        self.root = Path(tempfile.mkdtemp(prefix="spiral-bench-pg-"))
        self.root.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        initdb = [str(self.bin / "initdb"), "-A", "trust", "-U", self.USER, "-E", "UTF8"]
        subprocess.run(
            self._as_owner([*initdb, "--locale=C", "-D", str(data)]),
            check=True,
            capture_output=True,
        )
        self.port = free_port()
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        options += " -c max_connections=100"
        start = [str(self.bin / "pg_ctl"), "-D", str(data), "-w", "-t", "30", "-o", options]
        start += ["-l", str(self.root / "server.log"), "start"]
        result = subprocess.run(self._as_owner(start), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {result.stderr}")
        if self.cpu is not None and pinning():  # the postmaster; its backends inherit it
            pid = int((data / "postmaster.pid").read_text().split()[0])
            subprocess.run(
                ["taskset", "-a", "-p", "-c", str(self.cpu), str(pid)], capture_output=True
            )
        atexit.register(self.__exit__)
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{dbname}?connect_timeout=5"

    def database(self) -> str:
        """A new empty database; answers its URL."""
        import uuid

        import psycopg

        name = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __exit__(self, *exc: object) -> None:
        if self.root is None:
            return
        stop = [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"]
        subprocess.run(self._as_owner(stop), capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

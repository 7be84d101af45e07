"""The C load generator (`bench/ssefan.c`) and what is measured around it.

The server runs on CPU 0 and ssefan on CPU 1 (`taskset`), so the client never takes the server's
core. While ssefan publishes, the worker's own CPU time (`/proc/<pid>/stat`) and the busy share of
each CPU (`/proc/stat`, which includes the kernel's loopback work done on the server's core) are
taken over the same window. ssefan writes `ssefan: publishing` and `ssefan: draining` to stderr as
each phase starts, and `ssefan: done` when the drain ends; that is how the windows are found.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .server import CLIENT_CPU, cpu_seconds, pinned

SOURCE = Path(__file__).with_name("ssefan.c")
_BINARY: Path | None = None


def ssefan_binary() -> Path:
    """Compile ssefan.c (cc -O2) into a temporary folder, once per bench process."""
    global _BINARY
    if _BINARY is None or not _BINARY.exists():
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise RuntimeError("no C compiler (cc): the bench builds bench/ssefan.c at run time")
        out = Path(tempfile.mkdtemp(prefix="spiral-ssefan-")) / "ssefan"
        atexit.register(shutil.rmtree, out.parent, True)
        subprocess.run([cc, "-O2", "-o", str(out), str(SOURCE), "-lm"], check=True)
        _BINARY = out
    return _BINARY


def cpu_ticks() -> list[tuple[int, int]]:
    """(busy, total) jiffies of every CPU, from /proc/stat."""
    out = []
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:9]]
                idle = v[3] + v[4]  # idle + iowait
                out.append((sum(v) - idle, sum(v)))
    return out


class Window:
    """CPU use over a window: the workers' own CPU seconds, the client's, and every CPU's busy
    share."""

    def __init__(self, workers: list[int], client: int) -> None:
        self.workers, self.client = workers, client
        self.t0 = time.monotonic()
        self.ticks0 = cpu_ticks()
        self.worker0 = sum(cpu_seconds(p) for p in workers)
        self.client0 = cpu_seconds(client)

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        worker_s = sum(cpu_seconds(p) for p in self.workers) - self.worker0
        busy = [
            (b1 - b0) / max(1, t1 - t0)
            for (b0, t0), (b1, t1) in zip(self.ticks0, cpu_ticks(), strict=True)
        ]
        return {
            "wall": wall,
            "worker_s": worker_s,
            "worker_share": worker_s / wall,
            "client_share": (cpu_seconds(self.client) - self.client0) / wall,
            "busy": busy,
        }


@dataclass
class LoadRun:
    """What one ssefan run reported, and the CPU measured while it published."""

    result: dict[str, Any]  # ssefan's JSON line
    publishing: dict[str, Any]  # Window over the publishing phase
    through_drain: dict[str, Any]  # Window from publishing until the end of the drain


def run_ssefan(
    port: int,
    workers: list[int],
    subs: int,
    rate: float,
    seconds: float,
    drain: float,
    stream: str = "/stream",
    post: str = "/stream/glint",
    publishers: int = 8,
    client_cpu: int | None = CLIENT_CPU,
    on_phase: Callable[[str], None] | None = None,
) -> LoadRun:
    """Run ssefan once against a server; `on_phase("publishing")` and `on_phase("draining")` are
    called as those phases start."""
    command = [str(ssefan_binary()), str(port), str(subs), f"{rate:g}", f"{seconds:g}"]
    command += [f"{drain:g}", stream, post, str(publishers)]
    proc = subprocess.Popen(
        pinned(command, client_cpu), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    publishing = whole = None
    pub_stats: dict[str, Any] = {}
    whole_stats: dict[str, Any] | None = None
    try:
        for raw in proc.stderr:  # ends when ssefan exits; it bounds its own run
            line = raw.decode(errors="replace").strip()
            if line == "ssefan: publishing":
                publishing = Window(workers, proc.pid)  # taskset execs ssefan: same pid
                whole = Window(workers, proc.pid)
                if on_phase is not None:
                    on_phase("publishing")
            elif line == "ssefan: draining" and publishing is not None:
                pub_stats = publishing.stop()
                if on_phase is not None:
                    on_phase("draining")
            elif line == "ssefan: done" and whole is not None:
                whole_stats = whole.stop()  # before ssefan exits: its CPU is still readable
        out = proc.stdout.read()
    finally:
        proc.wait()
    if proc.returncode != 0 or whole_stats is None:
        raise RuntimeError(f"ssefan failed ({proc.returncode}): {out.decode()[:400]}")
    return LoadRun(orjson.loads(out), pub_stats, whole_stats)

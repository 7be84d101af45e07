"""py-spy profiles of a server worker, and their summary: where the worker's time goes.

`python -m bench.profile FILE... [--top N] [--merge]` prints, for each collapsed-stack file
(`py-spy record --format raw`; with --merge, for all of them together), the frames with the most
samples on top of the stack (self), the innermost Python frame of each sample (where Python code
was running or had called into C), and the frames anywhere in the stack (inclusive), as shares of
all samples. When the bench wrote a `FILE.json` beside each file (the worker's CPU per delivery or
per POST in that run), each share is also given in microseconds of that unit.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson

from .server import CLIENT_CPU, pinned

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(.*?) \((.*?)(?::(\d+))?\)$")


# Where a sample's time goes, for `--by`: the first group (in this order) with a frame anywhere in
# the sample's stack that contains one of its strings (py-spy's frames read "function
# (package/module.py:line)"). Ordered from the most specific; the package paths come last, and
# catch the frames of a stack py-spy read only in part.
GROUPS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "post": [
        ("store: SQLite write + commit (append_batch)", ("SQLiteStore.append_batch",)),
        ("rituals: CEL prepare + rules (on_glint)", ("RitualEngine.", "spiral_web/engine/rules")),
        ("breath: state, refusal, record_ingest", ("BreathEngine.", "spiral_web/engine/windows")),
        ("pydantic: parse_glint", ("parse_glint", "(pydantic")),
        ("hub publish + stats count", ("MemoryHub.publish", "Stats.count")),
        ("glint id, timestamps (new_glint_id, iso)", ("new_glint_id", "iso (spiral_web")),
        ("group commit: the rest of Orchestrator.emit", ("Orchestrator.",)),
        ("answer: json_response (orjson)", ("json_response",)),
        ("view: the rest of emit", ("emit (spiral_web/web/stream.py", "glint (bench/bare.py")),
        ("Spiral hooks before: auth guard, rate limit", ("_guard (", "_limits (")),
        (
            "Spiral hooks after: headers, write watch, worker id",
            ("_headers (spiral_web", "_watch_writes", "_served_by"),
        ),
        ("Flask sessions (open/save)", ("open_session", "save_session")),
        ("Flask + werkzeug (the rest)", ("(flask/", "(werkzeug/")),
        ("bare WSGI function", ("wsgi (bench/bare.py",)),
        ("gunicorn: parse the request", ("Parser.__next__", "(gunicorn/http/message")),
        ("gunicorn: write the response", ("Response.write (gunicorn", "Response.close (gunicorn")),
        ("gunicorn: the rest (environ, keep-alive loop)", ("(gunicorn/",)),
        ("gevent: event loop, switches, timeouts", ("(gevent/",)),
    ],
    "delivery": [
        ("hub writes: the send (SocketWriter.offer)", ("SocketWriter.offer",)),
        ("hub writes: readers gone, heartbeats (MemoryHub._look)", ("MemoryHub._look",)),
        ("hub writes: the pass (MemoryHub._fan_out)", ("MemoryHub._fan_out",)),
        ("stream finishes a write the hub began", ("SocketWriter.finish",)),
        ("socket send (the syscall)", ("SocketMixin.send (", "SocketMixin.getsockopt")),
        ("the POSTs (parse, Flask, emit, commit, answer)", ("(flask/", "Parser.__next__")),
        ("breath ticker", ("BreathTicker",)),
        ("gevent sendall + gunicorn chunk framing", ("write_chunk", "Response.write (gunicorn")),
        ("heartbeat: a gevent Timeout per wait", ("(gevent/timeout.py",)),
        ("hub: wait + take (switch into the greenlet)", ("MemoryHub._take", "Subscription.wait")),
        ("listener_feed", ("listener_feed",)),
        ("direct_sse_events (SSE body generator)", ("direct_sse_events",)),
        ("sse_events (SSE body generator)", ("sse_events",)),
        ("bare generator (wait + take)", ("fanout_stream",)),
        ("write watch", ("WriteWatch.wrap",)),
        ("werkzeug response iterators", ("(werkzeug/",)),
        ("gunicorn response loop (the switch back)", ("AsyncWorker.handle_request",)),
        ("gevent: event loop, switches", ("(gevent/",)),
    ],
}


class Recorder:
    """`py-spy record` of one process for a window (on the client's CPU, off the server's)."""

    def __init__(self, out: Path, pid: int, seconds: float, native: bool = False) -> None:
        self.out = out
        beside = Path(sys.executable).with_name("py-spy")
        binary = str(beside) if beside.exists() else shutil.which("py-spy")
        self.proc: subprocess.Popen[bytes] | None = None
        if binary is None:
            print("  (py-spy is not installed: no profile; pip install py-spy==0.4.3)")
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        command = [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
        command += ["--rate", "200", "--format", "raw", "--output", str(out)]
        # --native needs py-spy to pause the process at each sample; without it, it reads the
        # running process's memory (Python frames only, the worker is barely disturbed)
        command.append("--native" if native else "--nonblocking")
        self.proc = subprocess.Popen(
            pinned(command, CLIENT_CPU), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def finish(self, unit: str, us_per_unit: float) -> None:
        """Wait for py-spy, and note beside the profile what one unit (a delivery, a POST) cost."""
        if self.proc is None:
            return
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        meta = {"unit": unit, "us_per_unit": us_per_unit}
        self.out.with_suffix(".json").write_bytes(orjson.dumps(meta))


def _short(frame: str) -> tuple[str, bool]:
    """("function (dir/file.py)", is_python) for a py-spy frame "function (path/file.py:123)"."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), False
    func, path, _ = m.groups()
    tail = "/".join(path.split("/")[-2:])
    return f"{func} ({tail})", path.endswith(".py")


def _has_meta(path: Path) -> bool:
    return path.with_suffix(".json").exists()


def summarize(paths: list[Path], top: int = 15, by: str | None = None) -> str:
    self_c: Counter[str] = Counter()
    python_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    grouped: Counter[str] = Counter()
    total = 0
    for line in (line for path in paths for line in path.read_text().splitlines()):
        m = _LINE.match(line)
        if not m:
            continue
        count = int(m.group(2))
        raw = [f.strip() for f in m.group(1).split(";") if f.strip()]
        frames = [_short(f) for f in raw]
        frames = [f for f in frames if not f[0].startswith(("process ", "thread ", "0x"))]
        frames = frames or [("(no stack: py-spy could not read one)", False)]
        total += count
        self_c[frames[-1][0]] += count
        python = [name for name, is_py in frames if is_py]
        python_c[python[-1] if python else "(no Python frame)"] += count
        for name in {name for name, _ in frames}:
            incl[name] += count
        if by is not None:
            grouped[_group(by, raw)] += count
    name = ", ".join(p.name for p in paths)
    if not total:
        return f"{name}: no samples"
    metas = [orjson.loads(p.with_suffix(".json").read_bytes()) for p in paths if _has_meta(p)]
    # the shares are of all samples together: one unit cost, the mean of the runs'
    meta = None
    if len(metas) == len(paths) and all(m["unit"] == metas[0]["unit"] for m in metas):
        meta = {"unit": metas[0]["unit"], "us_per_unit": sum(m["us_per_unit"] for m in metas)}
        meta["us_per_unit"] /= len(metas)

    def row(count: int) -> str:
        share = count / total
        if meta is None:
            return f"    {share:6.1%}"
        return f"    {share:6.1%} {share * meta['us_per_unit']:6.1f} µs"

    unit = f"; worker CPU {meta['us_per_unit']:.1f} µs per {meta['unit']}" if meta else ""
    out = [f"{name}: {total} samples{unit}"]
    sections = [
        (f"by part ({by})", grouped, len(grouped)),
        ("self (on top of the stack)", self_c, top),
        ("innermost Python frame", python_c, top),
        ("inclusive (anywhere in the stack)", incl, top + 10),
    ]
    for title, counter, n in sections:
        if counter is python_c and python_c == self_c or not counter:
            continue  # Python-only stacks: the same list as self; no --by
        out.append(f"  {title}:")
        out += [f"{row(c)}  {f}" for f, c in counter.most_common(n)]
    return "\n".join(out)


def _group(by: str, names: list[str]) -> str:
    for group, needles in GROUPS[by]:
        if any(needle in name for name in names for needle in needles):
            return group
    return "other"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--merge", action="store_true", help="one summary of all the files together")
    p.add_argument("--by", choices=list(GROUPS), help="also sum the samples by part of the path")
    args = p.parse_args(argv)
    groups = [args.files] if args.merge else [[f] for f in args.files]
    for files in groups:
        print(summarize(files, args.top, args.by))
    return 0


if __name__ == "__main__":
    sys.exit(main())

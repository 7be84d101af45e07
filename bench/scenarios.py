"""The scenarios. Each starts its own server(s), drives load from this process, and returns rows for
the table: what was measured, the target, and whether it was met."""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import signal
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .client import Conn, Sink, SSEProtocol, subscribe, subscribe_many
from .server import Server, cpu_seconds, open_fds, rss_mb

HOST = "127.0.0.1"


@dataclass
class Row:
    scenario: str
    setup: str
    result: str
    target: str
    met: str  # "yes", "NO", "-" (reference), "not run"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Options:
    via: str = "gunicorn"
    profile_dir: Path | None = None  # py-spy record of the worker during the measured window
    scale: float = 1.0  # shrink counts and durations (smoke runs); 1.0 = the targets' figures


# -- helpers ------------------------------------------------------------------------------------
def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return orjson.loads(r.read())


class Meter:
    """CPU seconds of this client process and of the server worker over a window."""

    def __init__(self, worker: int) -> None:
        self.worker = worker
        self.t0 = time.monotonic()
        self.c0 = time.process_time()
        self.s0 = cpu_seconds(worker)

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        return {
            "wall": wall,
            "client_cpu": (time.process_time() - self.c0) / wall,
            "server_cpu": (cpu_seconds(self.worker) - self.s0) / wall,
        }


class LagMonitor:
    """How late this client's event loop runs a 5 ms timer: if it is late, the client is the
    bottleneck."""

    def __init__(self, seconds: float) -> None:
        self.worst = 0.0
        self.samples: list[float] = []
        self.task = asyncio.ensure_future(self._run(seconds))

    async def _run(self, seconds: float) -> None:
        for _ in range(int(seconds / 0.005) + 1):  # bounded
            t = time.monotonic()
            await asyncio.sleep(0.005)
            late = time.monotonic() - t - 0.005
            self.samples.append(late)
            self.worst = max(self.worst, late)

    def stop(self) -> dict[str, float]:
        self.task.cancel()
        return {"client_lag_p99": pct(self.samples, 99), "client_lag_max": self.worst}


class Profiler:
    """py-spy record of one process for a window, as collapsed stacks (if asked for and
    installed)."""

    def __init__(self, opts: Options, name: str, pid: int, seconds: float) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        if opts.profile_dir is None:
            return
        opts.profile_dir.mkdir(parents=True, exist_ok=True)
        out = opts.profile_dir / f"{name}.txt"
        try:
            self.proc = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(max(1, int(seconds))),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            print("  (py-spy not installed: no profile)")

    def wait(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def glint_body(module: str, n: int) -> bytes:
    return orjson.dumps(
        {"module": module, "phase": "inhale", "context": {"t": time.time(), "n": n}}
    )


async def bounded(aw: Awaitable[Any], seconds: float) -> Any:
    return await asyncio.wait_for(aw, seconds)


async def wait_until(cond: Callable[[], bool], seconds: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(step)
    return cond()


@dataclass
class Publish:
    acked: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


async def paced_publish(
    port: int, module: str, rate: float, seconds: float, conns: int = 8
) -> Publish:
    """`rate` glints per second for `seconds`, each sent at its own time on a free connection."""
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(conns):
        pool.put_nowait(Conn(HOST, port))
    out = Publish()
    total = int(rate * seconds)
    t0 = time.monotonic() + 0.05

    async def one(i: int) -> None:
        conn = await pool.get()
        try:
            sent = time.monotonic()
            status, _ = await conn.post("/stream/glint", glint_body(module, i), timeout=15)
            out.latencies.append(time.monotonic() - sent)
            if status == 201:
                out.acked += 1
            else:
                out.refused[status] = out.refused.get(status, 0) + 1
        except Exception:
            out.errors += 1
        finally:
            pool.put_nowait(conn)

    tasks = []
    for i in range(total):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i)))
    _, pending = await asyncio.wait(
        tasks, timeout=20
    )  # bounded: a POST still unanswered is an error
    for task in pending:
        task.cancel()
    out.errors += len(pending)
    while not pool.empty():
        pool.get_nowait().close()
    return out


async def post_one(port: int, module: str) -> tuple[int, float]:
    conn = Conn(HOST, port)
    try:
        t = time.time()
        status, _ = await conn.post(
            "/stream/glint",
            orjson.dumps({"module": module, "phase": "inhale", "context": {"t": t, "n": 0}}),
        )
        return status, t
    finally:
        conn.close()


def delivery(subs: list[SSEProtocol], expected: int) -> dict[str, int]:
    got = [s.received for s in subs]
    return {
        "complete": sum(1 for g in got if g == expected),
        "missing": sum(max(0, expected - g) for g in got),
        "extra": sum(max(0, g - expected) for g in got),
        "closed": sum(1 for s in subs if s.done.done()),
    }


# -- fan-out ------------------------------------------------------------------------------------
async def _fanout_round(
    server: Server,
    subs: list[SSEProtocol],
    sink: Sink,
    opts: Options,
    name: str,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    for s in subs:
        s.received = 0  # last_seq stays: order and exactly-once are checked across rounds too
    sink.reset()
    gc.collect()
    gc.disable()  # no client pauses in the measured window
    try:
        total0 = get_json(server.url + "/api/stats")["total"]
        meter = Meter(server.worker)
        lag = LagMonitor(seconds + 15)
        prof = Profiler(opts, name, server.worker, seconds)
        pub = await paced_publish(server.port, "bench.fanout", rate, seconds)
        await wait_until(lambda: all(s.received >= pub.acked for s in subs), 10)
        cpu = {**meter.stop(), **lag.stop()}
        stored = (
            get_json(server.url + "/api/stats")["total"] - total0
        )  # a POST that timed out may be stored
        await wait_until(lambda: all(s.received >= stored for s in subs), 5)
        prof.wait()
    finally:
        gc.enable()
    cpu["worker_restarts"] = server.restarted_workers()
    d = delivery(subs, stored)
    lat = sink.latencies
    deliveries = max(1, sum(s.received for s in subs))
    cpu["server_us_per_delivery"] = cpu["server_cpu"] * cpu["wall"] / deliveries * 1e6
    return {
        "sent": int(rate * seconds),
        "acked": pub.acked,
        "stored": stored,
        "refused": pub.refused,
        "errors": pub.errors,
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "max": max(lat) if lat else float("nan"),
        "post_p99": pct(pub.latencies, 99),
        "samples": len(lat),
        "duplicates": sink.duplicates,
        "out_of_order": sink.out_of_order,
        **d,
        **cpu,
    }


def _fanout_ok(r: dict[str, Any], n: int) -> bool:
    return (
        r["worker_restarts"] == 0
        and r["acked"] == r["sent"]
        and r["complete"] == n
        and r["missing"] == 0
        and r["extra"] == 0
        and r["duplicates"] == 0
        and r["out_of_order"] == 0
        and r["p99"] <= 0.050
    )


def _fanout_text(r: dict[str, Any], n: int) -> str:
    unanswered = f" ({r['errors']} POSTs unanswered after 15 s)" if r["errors"] else ""
    if r["worker_restarts"]:
        unanswered += (
            f" (gunicorn replaced the worker {r['worker_restarts']} time(s): missed heartbeats)"
        )
    return (
        f"{r['acked']}/{r['sent']} acked{unanswered}; "
        f"{r['complete']}/{n} subs got all {r['stored']} stored "
        f"exactly once, in order (missing {r['missing']}, dup {r['duplicates']}); "
        f"delivery p50 {ms(r['p50'])} ms, "
        f"p99 {ms(r['p99'])} ms, max {ms(r['max'])} ms; POST p99 {ms(r['post_p99'])} ms; "
        f"worker CPU {r['server_cpu']:.0%} ({r['server_us_per_delivery']:.0f} µs per delivery), "
        f"client CPU {r['client_cpu']:.0%} "
        f"(loop lag p99 {ms(r['client_lag_p99'])} ms)"
    )


async def fanout(opts: Options) -> list[Row]:
    n = max(10, int(1000 * opts.scale))
    rate, seconds = 50.0, max(2.0, 10.0 * opts.scale)
    with Server(opts.via) as server:
        sink = Sink()
        subs = await subscribe_many(HOST, server.port, sink, n)
        rss0 = rss_mb(server.worker)
        r = await _fanout_round(server, subs, sink, opts, "fanout", rate, seconds)
        r["rss"] = rss_mb(server.worker)
        for s in subs:
            s.close()
    print(f"  fan-out: {_fanout_text(r, n)}; worker RSS {rss0:.0f}→{r['rss']:.0f} MB")
    return [
        Row(
            "fan-out",
            f"{n} SSE subs, {rate:.0f} glints/s × {seconds:.0f} s, 1 gevent worker",
            _fanout_text(r, n),
            "all delivered exactly once; p99 ≤ 50 ms",
            "yes" if _fanout_ok(r, n) else "NO",
            r,
        )
    ]


# -- idle ---------------------------------------------------------------------------------------
async def idle(opts: Options) -> list[Row]:
    n = max(100, int(10_000 * opts.scale))
    hold = max(2.0, 5.0 * opts.scale)
    with Server(opts.via) as server:
        worker = server.worker
        rss0 = rss_mb(worker)
        sink = Sink()
        t = time.monotonic()
        subs = await subscribe_many(HOST, server.port, sink, n, concurrency=500, timeout=90)
        connect_s = time.monotonic() - t
        await asyncio.sleep(hold)  # hold them: heartbeats and breath events flow meanwhile
        held = sum(1 for s in subs if not s.done.done())
        listeners = get_json(server.url + "/api/stats")["listeners"]
        rss = rss_mb(worker)
        fds = open_fds(worker)
        meter = Meter(worker)
        gc.collect()
        gc.disable()
        try:
            prof = Profiler(opts, "idle-broadcast", worker, 3)
            status, _ = await post_one(server.port, "bench.idle")
            await wait_until(lambda: all(s.received >= 1 for s in subs), 10, step=0.005)
            prof.wait()
        finally:
            gc.enable()
        cpu = meter.stop()
        got = sum(1 for s in subs if s.received == 1)
        lat = sink.latencies
        last = max(lat) if lat else float("inf")
        for s in subs:
            s.close()
    r = {
        "n": n,
        "connect_s": connect_s,
        "held": held,
        "listeners": listeners,
        "rss0": rss0,
        "rss": rss,
        "fds": fds,
        "status": status,
        "got": got,
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "last": last,
        "per_conn_kb": (rss - rss0) * 1024 / n,
        **cpu,
    }
    ok = held == n and listeners == n and rss <= 400 and got == n and last <= 1.0
    text = (
        f"{held}/{n} held (connected in {connect_s:.1f} s; server says {listeners} listeners); "
        f"worker RSS "
        f"{rss:.0f} MB ({rss0:.0f} MB empty, {r['per_conn_kb']:.0f} KB/stream); one glint reached "
        f"{got}/{n}: p50 {ms(r['p50'])} ms, last {ms(last)} ms"
    )
    print(f"  idle: {text}; client CPU during the broadcast {cpu['client_cpu']:.0%}")
    return [
        Row(
            "idle",
            f"{n} SSE subs, 1 gevent worker",
            text,
            "all held; RSS ≤ 400 MB; one glint reaches all ≤ 1 s",
            "yes" if ok else "NO",
            r,
        )
    ]


# -- ingest -------------------------------------------------------------------------------------
async def _hammer(
    port: int, conns: int, seconds: float, warmup: float, module: str
) -> dict[str, Any]:
    """`conns` keep-alive publishers posting back to back; counts what is acknowledged after
    warm-up."""
    stop_at = time.monotonic() + warmup + seconds
    measure_from = time.monotonic() + warmup
    counts = {"acked": 0, "refused": 0, "errors": 0, "total": 0}
    lat: list[float] = []
    status_seen: dict[int, int] = {}

    async def worker(k: int) -> None:
        conn = Conn(HOST, port)
        i = 0
        try:
            while (now := time.monotonic()) < stop_at:
                i += 1
                try:
                    status, _ = await conn.post(
                        "/stream/glint", glint_body(module, k * 1_000_000 + i)
                    )
                except Exception:
                    counts["errors"] += 1
                    await asyncio.sleep(0.01)
                    continue
                done = time.monotonic()
                counts["total"] += 1
                if now < measure_from:
                    continue
                status_seen[status] = status_seen.get(status, 0) + 1
                if status == 201:
                    counts["acked"] += 1
                    lat.append(done - now)
                else:
                    counts["refused"] += 1
        finally:
            conn.close()

    await bounded(asyncio.gather(*(worker(k) for k in range(conns))), warmup + seconds + 30)
    return {
        **counts,
        "rate": counts["acked"] / seconds,
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "statuses": status_seen,
    }


async def ingest(opts: Options) -> list[Row]:
    seconds, warmup, conns = max(2.0, 8.0 * opts.scale), 1.0, 64
    rows = []
    # usage counts ingest against SPIRAL_CAPACITY (default 500/s); size it to the machine, as an
    # operator would, so that the measurement is of ingest and not of the throttle
    cases = [
        ("bare WSGI POST, no Flask (reference)", "bare-wsgi", {}),
        ("bare Flask POST (reference)", "bare", {}),
        ("Spiral, synchronous=NORMAL (default)", opts.via, {"SPIRAL_CAPACITY": "20000"}),
        (
            "Spiral, synchronous=FULL",
            opts.via,
            {"SPIRAL_CAPACITY": "20000", "SPIRAL_SQLITE_SYNC": "full"},
        ),
    ]
    for label, via, env in cases:
        with Server(via, env=env) as server:
            meter = Meter(server.worker)
            name = "ingest-" + (
                via if via.startswith("bare") else env.get("SPIRAL_SQLITE_SYNC", "normal")
            )
            prof = Profiler(opts, name, server.worker, seconds)
            r = await _hammer(server.port, conns, seconds, warmup, "bench.ingest")
            cpu = meter.stop()
            prof.wait()
            if not via.startswith("bare"):
                stats = get_json(server.url + "/api/stats")
                r["stored"] = stats["total"]
            r.update(cpu)
            r["server_us_per_post"] = r["server_cpu"] * r["wall"] / max(1, r["total"]) * 1e6
        text = (
            f"{r['rate']:,.0f} acked/s; POST p50 {ms(r['p50'])} ms, p99 {ms(r['p99'])} ms; "
            f"refused {r['refused']}, errors {r['errors']}; worker CPU {r['server_cpu']:.0%} "
            f"(~{r['server_us_per_post']:.0f} µs per POST), "
            f"client CPU {r['client_cpu']:.0%}"
        )
        print(f"  ingest {label}: {text}")
        if via.startswith("bare"):
            met, target = "-", "reference (the issue quotes ~5,000 req/s for bare Flask)"
        else:
            durable = env.get("SPIRAL_SQLITE_SYNC") != "full"
            met = ("yes" if r["rate"] >= 2500 and r["refused"] == 0 else "NO") if durable else "-"
            target = "≥ 2,500 acked glints/s" if durable else "(not a target: fsync per commit)"
        rows.append(
            Row(
                "ingest",
                f"{label}: {conns} keep-alive publishers, no subscribers, 1 worker",
                text,
                target,
                met,
                r,
            )
        )
    return rows


# -- slow subscriber ----------------------------------------------------------------------------
def tcp_queues(local_port: int, remote_port: int) -> tuple[int, int] | None:
    """(send queue, receive queue) in bytes of the loopback socket local_port → remote_port."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            lp = int(parts[1].rsplit(":", 1)[1], 16)
            rp = int(parts[2].rsplit(":", 1)[1], 16)
            if lp == local_port and rp == remote_port:
                tx, rx = parts[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


def sockstat_tcp_kb() -> int:
    """Kernel memory held by all TCP sockets (pages in /proc/net/sockstat), in KiB."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            parts = line.split()
            return int(parts[parts.index("mem") + 1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    return 0


async def _flood(port: int, count: int, pad: int, conns: int = 8, seconds: float = 30.0) -> int:
    """`count` glints with a `pad`-byte context, as fast as `conns` publishers go; returns acked."""
    acked = 0
    left = iter(range(count))
    filler = "x" * (pad // 2)  # two strings: a context string may hold at most 4096 characters
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal acked
        conn = Conn(HOST, port)
        try:
            for i in left:
                if time.monotonic() > stop_at:
                    return
                body = orjson.dumps(
                    {
                        "module": "bench.flood",
                        "phase": "inhale",
                        "context": {"t": time.time(), "n": i, "a": filler, "b": filler},
                    }
                )
                status, _ = await conn.post("/stream/glint", body)
                acked += status == 201
        finally:
            conn.close()

    await bounded(asyncio.gather(*(worker() for _ in range(conns))), seconds + 10)
    return acked


async def slow(opts: Options) -> list[Row]:
    n = max(10, int(1000 * opts.scale))
    rate, seconds = 50.0, max(2.0, 10.0 * opts.scale)
    capacity = 256  # small, so that a stalled reader can be a whole ring behind within the run
    flood, pad = (
        1200,
        7000,
    )  # ~8 MB: more than the kernel buffers for a stalled socket plus the ring
    # The write watch drops a stream whose write made no progress for SPIRAL_SEND_TIMEOUT (10 s by
    # default); 2 s here so that it acts within the 3 s this scenario gives the server to notice.
    env = {
        "SPIRAL_HUB_CAPACITY": str(capacity),
        "SPIRAL_CAPACITY": "20000",
        "SPIRAL_SEND_TIMEOUT": "2",
    }
    with Server(opts.via, env=env) as server:
        worker = server.worker
        sink = Sink()
        subs = await subscribe_many(HOST, server.port, sink, n)
        ref = await _fanout_round(server, subs, sink, opts, "slow-reference", rate, seconds)
        # the stalled reader: a 4 KiB receive buffer, and it stops reading after the greeting
        stall_sink = Sink()
        stalled = await subscribe(HOST, server.port, stall_sink, rcvbuf=4096)
        assert stalled.transport is not None
        stalled.transport.pause_reading()
        client_port = stalled.transport.get_extra_info("sockname")[1]
        r = await _fanout_round(server, subs, sink, opts, "slow-stalled", rate, seconds)
        sendq_after_round = (tcp_queues(server.port, client_port) or (0, 0))[0]
        # then only the stalled reader stays, and a flood of large glints pushes it past every
        # buffer
        for s in subs:
            s.close()
        # the server notices a closed stream at its next write: the heartbeat, within 15 s
        await wait_until(
            lambda: get_json(server.url + "/api/stats")["listeners"] == 1, 20, step=0.5
        )
        listeners_before_flood = get_json(server.url + "/api/stats")["listeners"]
        rss_before, kmem_before = rss_mb(worker), sockstat_tcp_kb()
        flood_started = time.monotonic()
        flooded = await _flood(server.port, flood, pad)
        flood_s = time.monotonic() - flood_started
        await asyncio.sleep(3.0)  # time for a hub or server to notice
        server_q = tcp_queues(server.port, client_port)
        client_q = tcp_queues(client_port, server.port)
        rss_after, kmem_after = rss_mb(worker), sockstat_tcp_kb()
        listeners = get_json(server.url + "/api/stats")["listeners"]
        metrics = urllib.request.urlopen(server.url + "/metrics", timeout=5).read().decode()
        dropped_metric = str(
            sum(
                float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith("spiral_subscribers_dropped_total")
            )
        )
        still_open = not stalled.done.done()
        before_resume = stalled.received
        # now read again: what does the stalled reader get, and when?
        resumed_at = time.monotonic()
        stalled.transport.resume_reading()
        stall_sink.record = False
        await wait_until(
            lambda: stalled.done.done() or any(k == "dropped" for k, _ in stalled.notices), 15
        )
        resume_wait = time.monotonic() - resumed_at
        got_after_resume = stalled.received - before_resume
        notices = [(k, d.decode()[:200]) for k, d in stalled.notices]
        ended = stalled.done.result() if stalled.done.done() else "still open"
        restarts = server.restarted_workers()
        timeouts = server.log_tail(200).count("WORKER TIMEOUT")
        stalled.close()
    drop_notice = next((d for k, d in notices if k == "dropped"), None)
    r.update(
        reference=ref,
        sendq_after_round=sendq_after_round,
        flood_acked=flooded,
        flood_s=flood_s,
        listeners_before_flood=listeners_before_flood,
        server_sendq=server_q and server_q[0],
        client_recvq=client_q and client_q[1],
        listeners_while_stalled=listeners,
        dropped_metric=dropped_metric,
        open_while_stalled=still_open,
        glints_read_after_resume=got_after_resume,
        resume_wait=resume_wait,
        notices=notices,
        ended=ended,
        rss_before=rss_before,
        rss_after=rss_after,
        kernel_tcp_kb_before=kmem_before,
        kernel_tcp_kb_after=kmem_after,
        hub_capacity=capacity,
        worker_restarts=restarts,
        worker_timeouts_logged=timeouts,
    )
    # the others: as fast as without the stalled reader (within noise), and every stored glint
    # delivered to each of them exactly once, in order (the absolute targets belong to fan-out)
    p99_ok = (
        r["p99"] <= max(ref["p99"] * 1.5, ref["p99"] + 0.005)
        and r["complete"] == n
        and r["duplicates"] == 0
        and r["out_of_order"] == 0
    )
    dropped = (not still_open) or listeners == 0
    reason_seen = drop_notice is not None or dropped_metric not in ("0.0", "0", "?")
    text = (
        f"others: p99 {ms(r['p99'])} ms with the stalled reader vs {ms(ref['p99'])} ms without, "
        f"{r['complete']}/{n} got all. Stalled reader after a flood of {flooded} × 7 KB glints "
        f"(in {flood_s:.1f} s; {listeners_before_flood} listener(s) before it): "
        f"{'dropped' if dropped else 'NOT dropped'} "
        f"({'server still holds it' if listeners else 'server closed it'}, "
        f"{listeners} listener(s), dropped metric {dropped_metric}, server send queue "
        f"{(server_q[0] / 1024) if server_q else 0:.0f} KiB, kernel TCP memory "
        f"+{(kmem_after - kmem_before) / 1024:.1f} MiB, "
        f"worker RSS {rss_before:.0f}→{rss_after:.0f} MB); "
        f"when it read again it got {got_after_resume} glints, then "
        f"{'`dropped` ' + drop_notice if drop_notice else 'no `dropped` notice'} ({ended})"
        + (
            f"; NOTE gunicorn replaced the worker {restarts} time(s) "
            f"({timeouts} WORKER TIMEOUT in the log)"
            if restarts or timeouts
            else ""
        )
    )
    print(f"  slow: {text}")
    print(f"  slow: reference round {_fanout_text(ref, n)}")
    print(f"  slow: stalled round {_fanout_text(r, n)}")
    return [
        Row(
            "slow subscriber",
            f"1 stalled reader (4 KiB rcvbuf, stops reading) among {n}; "
            f"{rate:.0f} glints/s × {seconds:.0f} s; SPIRAL_HUB_CAPACITY={capacity}",
            text,
            "others' p99 unchanged; stalled one dropped with a reason",
            "yes"
            if p99_ok and dropped and reason_seen
            else "partly: dropped, but no reason reached the client or /metrics"
            if p99_ok and dropped
            else "NO (not dropped)"
            if p99_ok
            else "NO",
            r,
        )
    ]


# -- graceful shutdown ----------------------------------------------------------------------------
async def shutdown(opts: Options) -> list[Row]:
    """SIGTERM to the master with 1,000 open streams: each should get `event: closing` at once."""
    n = max(10, int(1000 * opts.scale))
    with Server(opts.via) as server:
        sink = Sink()
        subs = await subscribe_many(HOST, server.port, sink, n)
        assert server.proc is not None
        t = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        await wait_until(lambda: all(s.done.done() for s in subs), 15, step=0.01)
        closed_in = time.monotonic() - t
        told = sum(1 for s in subs if any(k == "closing" for k, _ in s.notices))
        ended = sum(1 for s in subs if s.done.done())
        exited = await wait_until(lambda: server.proc.poll() is not None, 15, step=0.05)  # type: ignore[union-attr]
        exit_s = time.monotonic() - t
    r = {
        "n": n,
        "closed_in": closed_in,
        "told": told,
        "ended": ended,
        "exited": exited,
        "exit_s": exit_s,
    }
    ok = told == n and ended == n and closed_in <= 5 and exited
    text = (
        f"{ended}/{n} streams ended in {closed_in:.2f} s, {told}/{n} with `event: closing`; "
        f"server exited {f'in {exit_s:.1f} s' if exited else 'NOT within 15 s'}"
    )
    print(f"  shutdown: {text}")
    return [
        Row(
            "graceful shutdown",
            f"SIGTERM with {n} open streams, 1 gevent worker",
            text,
            "all told `closing` and ended within a few seconds (≤ 5 s)",
            "yes" if ok else "NO",
            r,
        )
    ]


# -- many workers -------------------------------------------------------------------------------
async def redis(opts: Options) -> list[Row]:
    """The fan-out scenario on two gevent workers joined by a real redis-server (started here)."""
    n = max(10, int(1000 * opts.scale))
    rate, seconds = 50.0, max(2.0, 10.0 * opts.scale)
    with (
        RedisServer() as redis_url,
        Server(opts.via, env={"SPIRAL_REDIS_URL": redis_url}, workers=2) as server,
    ):
        sink = Sink()
        subs = await subscribe_many(HOST, server.port, sink, n)
        await asyncio.sleep(1.5)  # every worker has reported its listeners to Redis
        listeners = get_json(server.url + "/api/stats")["listeners"]
        r = await _fanout_round(server, subs, sink, opts, "redis", rate, seconds)
        for s in subs:
            s.close()
    r["listeners"] = listeners
    text = _fanout_text(r, n) + f"; /api/stats listeners {listeners} (global)"
    print(f"  many workers: {text}")
    ok = _fanout_ok(r, n) and listeners == n
    return [
        Row(
            "many workers",
            f"{n} SSE subs over 2 gevent workers + Redis, {rate:.0f} glints/s × {seconds:.0f} s",
            text,
            "same as fan-out; zero loss",
            "yes" if ok else "NO",
            r,
        )
    ]


class RedisServer:
    """A throwaway redis-server on a free loopback port."""

    def __enter__(self) -> str:
        import shutil
        import socket
        import subprocess

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
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
        raise RuntimeError("redis-server did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


SCENARIOS: dict[str, Callable[[Options], Awaitable[list[Row]]]] = {
    "fanout": fanout,
    "idle": idle,
    "ingest": ingest,
    "slow": slow,
    "shutdown": shutdown,
    "redis": redis,
}


def client_rlimit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine() -> dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(
            line
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        ram = f"{int(mem.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        ram = "?"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout.strip()
    except OSError:
        commit, dirty = "?", ""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "ram": ram,
        "commit": commit + (" + uncommitted changes" if dirty else ""),
    }

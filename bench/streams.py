"""The scenarios that need a stream to misbehave or a server to stop, driven by the asyncio client
(bench/client.py) from this process, which `python -m bench` pins to the client's CPU: a stalled
subscriber among 1,000, and a graceful shutdown with 1,000 open streams."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .client import Conn, Sink, SSEProtocol, subscribe, subscribe_many
from .common import HOST, Options, Row, get_json, ms, pct
from .server import Server, cpu_seconds, rss_mb


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


def delivery(subs: list[SSEProtocol], expected: int) -> dict[str, int]:
    got = [s.received for s in subs]
    return {
        "complete": sum(1 for g in got if g == expected),
        "missing": sum(max(0, expected - g) for g in got),
        "extra": sum(max(0, g - expected) for g in got),
        "closed": sum(1 for s in subs if s.done.done()),
    }


async def _fanout_round(
    server: Server, subs: list[SSEProtocol], sink: Sink, rate: float, seconds: float
) -> dict[str, Any]:
    """`rate` glints/s for `seconds` to the subscribers: delivery, latency and CPU figures."""
    for s in subs:
        s.received = 0  # last_seq stays: order and exactly-once are checked across rounds too
    sink.reset()
    gc.collect()
    gc.disable()  # no client pauses in the measured window
    try:
        total0 = get_json(server.url + "/api/stats")["total"]
        meter = Meter(server.worker)
        lag = LagMonitor(seconds + 15)
        pub = await paced_publish(server.port, "bench.fanout", rate, seconds)
        await wait_until(lambda: all(s.received >= pub.acked for s in subs), 10)
        cpu = {**meter.stop(), **lag.stop()}
        stored = (
            get_json(server.url + "/api/stats")["total"] - total0
        )  # a POST that timed out may be stored
        await wait_until(lambda: all(s.received >= stored for s in subs), 5)
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
        ref = await _fanout_round(server, subs, sink, rate, seconds)
        # the stalled reader: a 4 KiB receive buffer, and it stops reading after the greeting
        stall_sink = Sink()
        stalled = await subscribe(HOST, server.port, stall_sink, rcvbuf=4096)
        assert stalled.transport is not None
        stalled.transport.pause_reading()
        client_port = stalled.transport.get_extra_info("sockname")[1]
        r = await _fanout_round(server, subs, sink, rate, seconds)
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
        f"{(kmem_after - kmem_before) / 1024:+.1f} MiB, "
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

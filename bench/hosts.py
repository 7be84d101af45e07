"""Fan-out with two hosts (issue 9): two Spiral servers, each with its own data folder, sharing one
PostgreSQL (the record) and one Redis (the fan-out), against one host on the same PostgreSQL and
Redis, in the same invocation.

Two ssefan clients hold the subscribers, half each: the first also publishes, to the first host;
the second only listens, on the second host (on the same host in the one-host reference, so that
the two setups differ only in the number of hosts). With two hosts, every glint the second
client's subscribers get has crossed from one host to the other. Each client checks its own
subscribers for gaps, duplicates and order, and writes every latency to a file
(`SSEFAN_LATENCIES`), so the overall p99 is the p99 of all deliveries, not a guess from two.

Placement: this machine has two cores, so two hosts cannot each have one and the clients one too.
Both hosts run on CPU 0, the clients, PostgreSQL and Redis on CPU 1: the servers get the same one
core as the one-host reference, and the p99 ratio says what crossing hosts costs, not what a
second machine would add."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

import orjson

from .common import Options, Row, get_json, median, pct, spread
from .loadgen import Window, ssefan_binary
from .server import CLIENT_CPU, SERVER_CPU, PostgresServer, RedisServer, Server, cpu_seconds, pinned

# every stream of the bench comes from one address (as in the other scenarios)
_ENV = {"SPIRAL_MAX_SUBSCRIBERS_PER_CLIENT": "20000"}
# the listening client starts first and must still listen when the publishing one has drained:
# its window is the publishing one plus this much for the publishing client to connect
_SLACK = 8.0


def _client(
    port: int, subs: int, rate: float, seconds: float, drain: float, publishers: int, out: Path
) -> subprocess.Popen[bytes]:
    command = [str(ssefan_binary()), str(port), str(subs), f"{rate:g}", f"{seconds:g}"]
    command += [f"{drain:g}", "/stream", "/stream/glint", str(publishers)]
    return subprocess.Popen(
        pinned(command, CLIENT_CPU),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "SSEFAN_LATENCIES": str(out)},
    )


def _wait_line(proc: subprocess.Popen[bytes], want: str) -> float | None:
    """Read the client's stderr until `want`; answers when it came (None: the client ended)."""
    assert proc.stderr is not None
    for raw in proc.stderr:  # ends when ssefan exits; it bounds its own run
        if raw.decode(errors="replace").strip() == want:
            return time.monotonic()
    return None


def _finish(proc: subprocess.Popen[bytes], latencies: Path) -> tuple[dict[str, Any], list[float]]:
    out, err = proc.communicate(timeout=120)
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"ssefan failed ({proc.returncode}): {(out + err).decode()[:400]}")
    lat = array("d")
    if latencies.exists():
        lat.frombytes(latencies.read_bytes())
    return orjson.loads(out), list(lat)


def _stats(server: Server) -> dict[str, Any]:
    try:
        return get_json(server.url + "/api/stats")
    except OSError as exc:
        return {"error": repr(exc)}


def run_hosts(opts: Options, n_hosts: int, subs: int, rate: float, seconds: float) -> dict:
    """One measurement: fresh PostgreSQL database, Redis and host(s); two clients of subs/2 each."""
    from .scenarios import postgres  # here: scenarios imports this module to register it

    drain = 5.0
    half = subs // 2
    tmp = Path(tempfile.mkdtemp(prefix="spiral-hosts-"))
    redis = RedisServer(cpu=CLIENT_CPU)
    redis_url = redis.__enter__()
    try:
        env = {
            **_ENV,
            "SPIRAL_REDIS_URL": redis_url,
            "SPIRAL_DATABASE_URL": postgres().database(),
        }
        with contextlib.ExitStack() as stack:
            hosts = [
                stack.enter_context(Server(opts.via, env=env, cpu=SERVER_CPU))
                for _ in range(n_hosts)
            ]
            pub_host, listen_host = hosts[0], hosts[-1]
            listen_window = seconds + drain + _SLACK
            listener = _client(listen_host.port, subs - half, rate, listen_window, 0, 0, tmp / "b")
            publisher = None
            try:
                listening_at = _wait_line(listener, "ssefan: publishing")
                if listening_at is None:
                    raise RuntimeError("the listening client ended before it was connected")
                publisher = _client(pub_host.port, half, rate, seconds, drain, 32, tmp / "a")
                cpu: dict[str, Any] = {}
                if _wait_line(publisher, "ssefan: publishing") is None:
                    raise RuntimeError("the publishing client ended before it published")
                windows = [Window(h.worker_pids(), publisher.pid) for h in hosts]
                through = [Window(h.worker_pids(), publisher.pid) for h in hosts]
                listener_cpu0 = cpu_seconds(listener.pid)
                if _wait_line(publisher, "ssefan: draining") is not None:
                    cpu["publishing"] = [w.stop() for w in windows]
                    cpu["listener_share"] = (cpu_seconds(listener.pid) - listener_cpu0) / cpu[
                        "publishing"
                    ][0]["wall"]
                    cpu["listeners"] = [_stats(h).get("listeners") for h in hosts]
                done_at = _wait_line(publisher, "ssefan: done")
                if done_at is not None:
                    cpu["through_drain"] = [w.stop() for w in through]
                a, lat_a = _finish(publisher, tmp / "a")
                b, lat_b = _finish(listener, tmp / "b")
            finally:
                for proc in (publisher, listener):
                    if proc is not None and proc.poll() is None:
                        proc.kill()
                        proc.wait(5)
            stored = [_stats(h).get("total") for h in hosts]
            restarts = [h.restarted_workers() for h in hosts]
    finally:
        redis.__exit__()
        shutil.rmtree(tmp, ignore_errors=True)
    if "publishing" not in cpu or "through_drain" not in cpu:
        raise RuntimeError("the publishing client did not report its phases")
    # the listening client's window must cover the publishing client's drain, or what it missed
    # would be the bench's doing
    covered = done_at is not None and listening_at + listen_window >= done_at
    return _figures(a, b, lat_a, lat_b, cpu, stored, restarts, covered, seconds)


def _client_figures(r: dict[str, Any], posted: int, lat: list[float]) -> dict[str, Any]:
    """One client's subscribers against the glints that were posted. A subscriber counts a glint
    once (ssefan keeps duplicates apart), so `missing` is exact."""
    expected = posted * r["subscribers"]
    return {
        "subs": r["subscribers"],
        "connected": r["connected"],
        "delivered": r["delivered"],
        "missing": max(0, expected - r["delivered"]),
        "dups": r["dups"],
        "disorder": r["disorder"],
        "closed": r["subs_closed"],
        "p50_ms": pct(lat, 50) if lat else r["p50_ms"],
        "p99_ms": pct(lat, 99) if lat else r["p99_ms"],
        "max_ms": lat[-1] if lat else r["max_ms"],
    }


def _figures(
    a: dict[str, Any],
    b: dict[str, Any],
    lat_a: list[float],
    lat_b: list[float],
    cpu: dict[str, Any],
    stored: list[Any],
    restarts: list[int],
    covered: bool,
    seconds: float,
) -> dict[str, Any]:
    posted = a["posted"]
    clients = [_client_figures(a, posted, lat_a), _client_figures(b, posted, lat_b)]
    every = sorted(lat_a + lat_b)
    delivered = sum(c["delivered"] for c in clients)
    per_host = []
    for i, (pub, whole) in enumerate(zip(cpu["publishing"], cpu["through_drain"], strict=True)):
        # the deliveries this host made: both clients' with one host, its own client's with two
        mine = delivered if len(stored) == 1 else clients[i]["delivered"]
        per_host.append(
            {
                "worker_share": pub["worker_share"],
                "us_per_delivery": whole["worker_s"] / max(1, mine) * 1e6,
                "listeners": cpu["listeners"][i],
                "stored": stored[i],
                "restarts": restarts[i],
            }
        )
    complete = (
        covered
        and a["post_ok"] == posted
        and all(c["connected"] == c["subs"] and c["closed"] == 0 for c in clients)
        and all(c["missing"] == 0 and c["dups"] == 0 and c["disorder"] == 0 for c in clients)
        and not any(restarts)
    )
    return {
        "posted": posted,
        "acked": a["post_ok"],
        "due": round(a["rate"] * seconds),  # ssefan sends no more once the window ends
        "post_p99_ms": a["post_p99_ms"],
        "clients": clients,
        "hosts": per_host,
        "delivered": delivered,
        "deliveries_per_s": delivered / seconds,
        "missing": sum(c["missing"] for c in clients),
        "dups": sum(c["dups"] for c in clients),
        "disorder": sum(c["disorder"] for c in clients),
        "p50_ms": pct(every, 50),
        "p99_ms": pct(every, 99),
        "max_ms": every[-1] if every else float("nan"),
        "busy": cpu["publishing"][0]["busy"],
        "client_share": cpu["publishing"][0]["client_share"] + cpu["listener_share"],
        "covered": covered,
        "complete": complete,
    }


def _run_text(r: dict[str, Any], names: list[str]) -> str:
    unsent = r["due"] - r["posted"]
    late = f" ({unsent} due not sent: every publisher awaited an answer)" if unsent > 0 else ""
    parts = [f"{r['acked']}/{r['posted']} acked{late}, POST p99 {r['post_p99_ms']:.1f} ms"]
    for name, c in zip(names, r["clients"], strict=True):
        parts.append(
            f"{name}: {c['connected']}/{c['subs']} connected, missing {c['missing']}, "
            f"dup {c['dups']}, disorder {c['disorder']}, p50 {c['p50_ms']:.1f}, "
            f"p99 {c['p99_ms']:.1f}, max {c['max_ms']:.1f} ms"
        )
    parts.append(
        f"overall p99 {r['p99_ms']:.1f} ms, {r['deliveries_per_s']:,.0f} deliveries/s, "
        f"missing {r['missing']}, dup {r['dups']}, disorder {r['disorder']}"
    )
    for i, h in enumerate(r["hosts"]):
        parts.append(
            f"host {'AB'[i]} worker {h['worker_share']:.0%} CPU, {h['us_per_delivery']:.1f} µs "
            f"per delivery, listeners {h['listeners']}, stored {h['stored']}, "
            f"restarts {h['restarts']}"
        )
    busy = " ".join(f"CPU {i} {b:.0%}" for i, b in enumerate(r["busy"]))
    parts.append(f"busy {busy}; clients {r['client_share']:.0%} CPU")
    if not r["covered"]:
        parts.append("WARNING: the listening client stopped before the publishing one drained")
    return "; ".join(parts)


def _subs_text(runs: list[dict[str, Any]], i: int) -> str:
    c = [r["clients"][i] for r in runs]
    wrong = "/".join(str(sum(x[k] for x in c)) for k in ("missing", "dups", "disorder"))
    return f"p99 {spread([x['p99_ms'] for x in c])} ms, missing/dup/disorder {wrong}"


def _host_text(runs: list[dict[str, Any]], h: int) -> str:
    share = spread([r["hosts"][h]["worker_share"] * 100 for r in runs])
    us = spread([r["hosts"][h]["us_per_delivery"] for r in runs], "{:.1f}")
    return f"host {'AB'[h]} worker {share} % CPU, {us} µs per delivery"


async def hosts(opts: Options) -> list[Row]:
    """1,000 SSE subscribers split over two hosts (PostgreSQL + Redis), glints posted to one at
    50/s: every glint to every subscriber once and in order, and p99 beside one host's."""
    try:
        PostgresServer._bin()
    except RuntimeError as exc:
        return [Row("hosts", "-", f"not run: {exc}", "-", "not run")]
    subs, rate = max(10, int(1000 * opts.scale)), 50.0
    seconds = max(2.0, 10.0 * opts.scale)
    res: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    names = {
        1: ["host A, publishing client's subs", "host A, listening client's subs"],
        2: ["host A (posted to)", "host B (every glint crossed hosts)"],
    }
    for i in range(opts.runs):
        for n in (1, 2):
            r = run_hosts(opts, n, subs, rate, seconds)
            res[n].append(r)
            label = "one host" if n == 1 else "two hosts"
            print(f"  hosts, {label}, run {i + 1}: {_run_text(r, names[n])}", flush=True)
    setup = (
        f"{subs} SSE subs ({subs // 2} per ssefan client) × {rate:.0f} glints/s for "
        f"{seconds:.0f} s, glints posted to host A; PostgreSQL + Redis; 1 gevent worker per host; "
        "pinned: every host on CPU 0, both clients, PostgreSQL and Redis on CPU 1 (2 cores: the "
        "hosts share one)"
    )
    rows = []
    for n, runs in res.items():
        text = (
            f"{sum(r['complete'] for r in runs)}/{len(runs)} runs complete; "
            f"overall p99 {spread([r['p99_ms'] for r in runs])} ms; "
            f"{spread([r['deliveries_per_s'] for r in runs], '{:,.0f}')} deliveries/s; "
            + "; ".join(f"{names[n][i]}: {_subs_text(runs, i)}" for i in range(2))
            + "; "
            + "; ".join(_host_text(runs, h) for h in range(n))
        )
        if n == 1:
            rows.append(Row("hosts", f"one host: {setup}", text, "reference", "-"))
            continue
        ratio = [x["p99_ms"] / y["p99_ms"] for x, y in zip(runs, res[1], strict=True)]
        text += f"; p99 vs one host ×{spread(ratio, '{:.2f}')}"
        ok = all(r["complete"] for r in runs)
        target = (
            "every glint to every subscriber once, in order, across hosts; p99 beside one host's"
        )
        rows.append(
            Row(
                "hosts",
                f"two hosts: {setup}",
                text,
                target,
                "yes" if ok else "NO",
                {
                    "one host": res[1],
                    "two hosts": runs,
                    "median p99": median([r["p99_ms"] for r in runs]),
                },
            )
        )
    return rows

"""The load scenarios of issue 11, driven by the C client (bench/ssefan.c) with the server on CPU 0
and the client on CPU 1. Each target is a ratio against a bare reference (bench/bare.py) measured in
the same invocation, or a latency with the client pinned apart. Every run of every variant starts
its own server; with several runs the variants take turns, so that a change in the machine's other
load falls on all of them alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .capacity import capacity_rows, find_capacity, machine_text, why_not_held
from .common import Options, Row, get_json, median, spread
from .hosts import hosts
from .loadgen import run_ssefan
from .profile import Recorder
from .server import (
    CLIENT_CPU,
    SERVER_CPU,
    PostgresServer,
    RedisServer,
    Server,
    cpu_seconds,
    rss_mb,
)
from .streams import shutdown, slow


@dataclass(frozen=True)
class Variant:
    label: str
    slug: str  # in profile file names
    via: str | None  # None: Spiral, started as --via says
    stream: str = "/stream"
    post: str = "/stream/glint"
    env: tuple[tuple[str, str], ...] = ()
    workers: int = 1
    redis: bool = False
    postgres: bool = False  # the record in PostgreSQL (a new database of one cluster per run)

    def server(
        self,
        opts: Options,
        cpu: int | None,
        redis_url: str | None = None,
        database_url: str | None = None,
    ) -> Server:
        env = dict(self.env)
        if redis_url is not None:
            env["SPIRAL_REDIS_URL"] = redis_url
        if database_url is not None:
            env["SPIRAL_DATABASE_URL"] = database_url
        return Server(self.via or opts.via, env=env, workers=self.workers, cpu=cpu)


_POSTGRES: list[PostgresServer] = []


def postgres() -> PostgresServer:
    """One PostgreSQL cluster for the whole bench, on the client's CPU (a database is another
    machine's work in production: the server's CPU stays Spiral's); stopped at exit."""
    if not _POSTGRES:
        _POSTGRES.append(PostgresServer(cpu=CLIENT_CPU).__enter__())
    return _POSTGRES[0]


BARE_FANOUT = Variant("bare fan-out (reference)", "fanout", "bare", "/fanout", "/fanout/glint")
BARE_DIRECT = Variant(
    "bare, written from the publisher", "direct", "bare", "/direct", "/direct/glint"
)
# Every stream of the bench comes from one address: the per-client share (half of
# SPIRAL_MAX_SUBSCRIBERS by default, 7,500) would refuse the idle scenario's last 2,500.
SPIRAL = Variant("Spiral", "spiral", None, env=(("SPIRAL_MAX_SUBSCRIBERS_PER_CLIENT", "20000"),))


def measure(
    opts: Options,
    variant: Variant,
    name: str,
    subs: int,
    rate: float,
    seconds: float,
    drain: float,
    publishers: int = 32,
    pinned: bool = True,
) -> dict[str, Any]:
    """One ssefan run against a fresh server: ssefan's figures plus the CPU measured around it."""
    cpu = SERVER_CPU if pinned else None
    redis = RedisServer() if variant.redis else None
    redis_url = redis.__enter__() if redis is not None else None
    database_url = postgres().database() if variant.postgres else None
    try:
        with variant.server(opts, cpu, redis_url, database_url) as server:
            at_publish: dict[str, Any] = {"rss_empty": rss_mb(server.worker)}
            recorder: Recorder | None = None

            def on_phase(phase: str) -> None:
                nonlocal recorder
                if redis is not None and redis.proc is not None:  # its CPU while publishing
                    at_publish[f"redis_s_{phase}"] = cpu_seconds(redis.proc.pid)
                if phase == "publishing":
                    at_publish["rss"] = rss_mb(server.worker)
                    if opts.profile_dir is not None:
                        out = opts.profile_dir / f"{name}.txt"
                        recorder = Recorder(out, server.worker, seconds, opts.native)
                elif variant.via is None:  # draining: every worker has reported its listeners
                    at_publish["listeners"] = get_json(server.url + "/api/stats")["listeners"]

            run = run_ssefan(
                server.port,
                server.worker_pids(),
                subs,
                rate,
                seconds,
                drain,
                variant.stream,
                variant.post,
                publishers,
                CLIENT_CPU if pinned else None,
                on_phase,
            )
            if variant.via is None:
                at_publish["stored"] = get_json(server.url + "/api/stats")["total"]
            restarts = server.restarted_workers()
    finally:
        if redis is not None:
            redis.__exit__()
    r = run.result
    for key, value in r.items():  # ssefan says -1 for a latency it has no sample of
        if key.endswith("_ms") and value < 0:
            r[key] = float("nan")
    units = r["delivered"] if subs else r["post_ok"]
    us = run.through_drain["worker_s"] / max(1, units) * 1e6
    if recorder is not None:
        recorder.finish("delivery" if subs else "POST", us)
    pub = run.publishing
    if "redis_s_draining" in at_publish:
        redis_s = at_publish.pop("redis_s_draining") - at_publish.pop("redis_s_publishing")
        at_publish["redis_share"] = redis_s / pub["wall"]
    return {
        **r,
        **at_publish,
        "worker_restarts": restarts,
        "us_per_unit": us,
        "worker_share": pub["worker_share"],
        "client_share": pub["client_share"],
        "busy": pub["busy"],
        "worker_s_through_drain": run.through_drain["worker_s"],
    }


def _complete(r: dict[str, Any], subs: int) -> bool:
    """Every glint acknowledged and delivered to every subscriber exactly once, in order."""
    return (
        r["post_ok"] == r["posted"]
        and r["connected"] == subs
        and r["subs_with_all"] == subs
        and r["dups"] == 0
        and r["disorder"] == 0
        and r["worker_restarts"] == 0
    )


def _cpu_text(r: dict[str, Any], unit: str) -> str:
    busy = " ".join(f"CPU {i} {b:.0%}" for i, b in enumerate(r["busy"]))
    return (
        f"worker(s) {r['worker_share']:.0%} CPU, {r['us_per_unit']:.1f} µs per {unit}; "
        f"busy {busy}; client {r['client_share']:.0%} CPU"
    )


def _fanout_text(r: dict[str, Any], subs: int) -> str:
    return (
        f"{r['post_ok']}/{r['posted']} acked; {r['subs_with_all']}/{subs} subs got all "
        f"(connected {r['connected']}, dup {r['dups']}, disorder {r['disorder']}); "
        f"delivery p50 {r['p50_ms']:.1f}, p99 {r['p99_ms']:.1f}, max {r['max_ms']:.1f} ms; "
        f"POST p99 {r['post_p99_ms']:.1f} ms; {_cpu_text(r, 'delivery')}"
    )


def _rounds(
    opts: Options, variants: list[Variant], one: Callable[[Variant, int], dict[str, Any]]
) -> dict[Variant, list[dict[str, Any]]]:
    """Every variant once per run, taking turns."""
    results: dict[Variant, list[dict[str, Any]]] = {v: [] for v in variants}
    for i in range(opts.runs):
        for v in variants:
            results[v].append(one(v, i))
    return results


def _ratios(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> list[float]:
    return [x[key] / y[key] if y[key] > 0 else float("nan") for x, y in zip(a, b, strict=True)]


# -- fan-out --------------------------------------------------------------------------------------
async def fanout(opts: Options) -> list[Row]:
    """1,000 SSE subscribers × 50 glints/s, one gevent worker: p99, and worker CPU per delivery
    against the bare fan-out's.

    Also at 10 glints/s: a server that falls behind writes several events per send, so at 50/s on a
    contended core its CPU per delivery falls; at 10/s nobody falls behind and the figure is the
    cost of one event to one subscriber."""
    subs, rate, calm = max(10, int(1000 * opts.scale)), 50.0, 10.0
    seconds = max(2.0, 10.0 * opts.scale)

    def one(v: Variant, i: int) -> dict[str, Any]:
        r = measure(opts, v, f"fanout-{v.slug}-{i + 1}", subs, rate, seconds, 5.0)
        print(f"  fan-out, {v.label}, run {i + 1}: {_fanout_text(r, subs)}", flush=True)
        low = measure(opts, v, f"fanout{calm:.0f}-{v.slug}-{i + 1}", subs, calm, seconds, 5.0)
        print(f"  ... at {calm:.0f} glints/s: {_fanout_text(low, subs)}", flush=True)
        r["calm"] = low
        r["us_calm"] = low["us_per_unit"]
        return r

    res = _rounds(opts, [BARE_FANOUT, BARE_DIRECT, SPIRAL], one)
    setup = f"{subs} SSE subs × {rate:.0f} glints/s for {seconds:.0f} s, 1 gevent worker"
    rows = []
    bare = res[BARE_FANOUT]
    for v, runs in res.items():
        text = (
            f"p99 {spread([r['p99_ms'] for r in runs])} ms; "
            f"{spread([r['us_per_unit'] for r in runs], '{:.1f}')} µs worker CPU per delivery "
            f"({spread([r['us_calm'] for r in runs], '{:.1f}')} µs at {calm:.0f} glints/s); "
            f"CPU 0 busy {spread([r['busy'][0] * 100 for r in runs])} %; "
            f"{sum(_complete(r, subs) and _complete(r['calm'], subs) for r in runs)}/{len(runs)} "
            "runs complete"
        )
        if v is BARE_FANOUT:
            rows.append(Row("fan-out", f"{v.label}: {setup}", text, "reference", "-"))
            continue
        p99_ratio = _ratios(runs, bare, "p99_ms")
        cpu_ratio = _ratios(runs, bare, "us_per_unit")
        text += (
            f"; vs bare fan-out: p99 ×{spread(p99_ratio, '{:.2f}')}, "
            f"CPU per delivery ×{spread(cpu_ratio, '{:.2f}')} "
            f"(at {calm:.0f} glints/s ×{spread(_ratios(runs, bare, 'us_calm'), '{:.2f}')})"
        )
        if v is BARE_DIRECT:
            rows.append(Row("fan-out", f"{v.label}: {setup}", text, "(the floor for plan a)", "-"))
            continue
        ok = (
            all(_complete(r, subs) and _complete(r["calm"], subs) for r in runs)
            and median([r["p99_ms"] for r in runs]) <= 50
            and median(cpu_ratio) <= 0.5
        )
        target = "every glint to every sub once, in order; p99 ≤ 50 ms; CPU per delivery ≤ 0.5×"
        rows.append(Row("fan-out", f"{v.label}: {setup}", text, target, _met(ok), _keep(res)))
    return rows


# -- idle -----------------------------------------------------------------------------------------
async def idle(opts: Options) -> list[Row]:
    """10,000 idle SSE subscribers on one worker, then one glint: how long until all have it."""
    subs = max(100, int(10_000 * opts.scale))

    def one(v: Variant, i: int) -> dict[str, Any]:
        r = measure(opts, v, f"idle-{v.slug}-{i + 1}", subs, 1.0, 1.0, 3.0)
        print(
            f"  idle, {v.label}, run {i + 1}: {r['connected']}/{subs} connected, "
            f"{r['subs_with_all']}/{subs} got the glint; p50 {r['p50_ms']:.0f} ms, "
            f"last {r['max_ms']:.0f} ms; worker RSS {r['rss_empty']:.0f} MB empty, "
            f"{r.get('rss', 0):.0f} MB with the streams; "
            f"worker CPU {r['worker_s_through_drain'] * 1000:.0f} ms for the broadcast",
            flush=True,
        )
        return r

    res = _rounds(opts, [BARE_FANOUT, BARE_DIRECT, SPIRAL], one)
    bare = res[BARE_FANOUT]
    rows = []
    for v, runs in res.items():
        text = (
            f"last of {subs} got it after {spread([r['max_ms'] for r in runs])} ms "
            f"(p50 {spread([r['p50_ms'] for r in runs])} ms); "
            f"{sum(_complete(r, subs) for r in runs)}/{len(runs)} runs complete; "
            f"worker RSS {spread([r.get('rss', 0) for r in runs])} MB"
        )
        setup = f"{v.label}: {subs} idle SSE subs, 1 gevent worker, one glint"
        if v is not BARE_FANOUT:
            text += f"; vs bare fan-out ×{spread(_ratios(runs, bare, 'max_ms'), '{:.2f}')}"
        if v is not SPIRAL:
            rows.append(Row("idle", setup, text, "reference", "-"))
            continue
        ok = all(_complete(r, subs) and r.get("rss", 0) <= 400 for r in runs) and (
            median([r["max_ms"] for r in runs]) <= 250
        )
        target = "all held (RSS ≤ 400 MB); one glint reaches all ≤ 250 ms"
        rows.append(Row("idle", setup, text, target, _met(ok), _keep(res)))
    return rows


# -- ingest ---------------------------------------------------------------------------------------
async def ingest(opts: Options) -> list[Row]:
    """64 keep-alive publishers in a closed loop, no subscribers, one worker; Spiral durable
    (committed before the answer, synchronous=NORMAL) against the bare Flask JSON POST."""
    seconds, publishers = max(2.0, 8.0 * opts.scale), 64
    # usage counts ingest against SPIRAL_CAPACITY (500/s by default) and the throttle answers 429
    # above 0.8 of it: size it to the machine, as an operator would, to measure ingest
    capacity = ("SPIRAL_CAPACITY", "20000")
    variants = [
        Variant("bare WSGI POST, no Flask (reference)", "wsgi", "bare-wsgi"),
        Variant("bare Flask JSON POST (reference)", "flask", "bare"),
        Variant("Spiral, synchronous=NORMAL", "spiral", None, env=(capacity,)),
        Variant(
            "Spiral, PostgreSQL (fsync, synchronous_commit on; its server on CPU 1)",
            "spiral-pg",
            None,
            env=(capacity,),
            postgres=True,
        ),
    ]
    try:
        PostgresServer._bin()
    except RuntimeError as exc:
        print(f"  ingest on PostgreSQL skipped: {exc}", flush=True)
        variants.pop()

    def one(v: Variant, i: int) -> dict[str, Any]:
        r = measure(opts, v, f"ingest-{v.slug}-{i + 1}", 0, 0, seconds, 1.0, publishers)
        r["rate"] = r["post_ok"] / seconds
        stored = f"; stored {r['stored']}" if "stored" in r else ""
        print(
            f"  ingest, {v.label}, run {i + 1}: {r['rate']:,.0f} acked/s ({r['post_ok']} acked, "
            f"{r['post_errors']} errors{stored}); POST p50 {r['post_p50_ms']:.1f}, "
            f"p99 {r['post_p99_ms']:.1f} ms; {_cpu_text(r, 'POST')}",
            flush=True,
        )
        return r

    res = _rounds(opts, variants, one)
    wsgi, flask = res[variants[0]], res[variants[1]]
    rows = []
    for v, runs in res.items():
        text = (
            f"{spread([r['rate'] for r in runs], '{:,.0f}')} acked/s; "
            f"{spread([r['us_per_unit'] for r in runs])} µs worker CPU per POST; "
            f"POST p99 {spread([r['post_p99_ms'] for r in runs])} ms"
        )
        setup = f"{v.label}: {publishers} keep-alive publishers, closed loop, 1 worker"
        if v.via is not None:
            rows.append(Row("ingest", setup, text, "reference", "-"))
            continue
        spiral = runs
        ratio = _ratios(spiral, flask, "rate")
        text += (
            f"; vs bare Flask ×{spread(ratio, '{:.2f}')} "
            f"(CPU per POST ×{spread(_ratios(spiral, flask, 'us_per_unit'), '{:.2f}')}), "
            f"vs bare WSGI ×{spread(_ratios(spiral, wsgi, 'rate'), '{:.2f}')}"
        )
        durable = all(r["stored"] >= r["post_ok"] and r["post_errors"] == 0 for r in runs)
        if v.postgres:  # issue 11 asks for SQLite's target, and for PostgreSQL's ratio reported
            target = "the ratio to bare Flask, reported; every ack stored"
            rows.append(Row("ingest", setup, text, target, _met(durable)))
            continue
        ok = durable and median(ratio) >= 1.0
        rows.append(Row("ingest", setup, text, "≥ 1.0× bare Flask; every ack stored", _met(ok)))
    rows[-1].extra = _keep(res)
    return rows


# -- many workers ---------------------------------------------------------------------------------
async def redis(opts: Options) -> list[Row]:
    """Capacity: the highest glint rate 1 gevent worker, and 2 gevent workers joined by Redis,
    each hold for the same SSE subscribers, found by stepping the rate (bench/capacity.py).
    Target: 2 workers hold ≥ 1.6× the deliveries/s. Held: every glint posted when due and
    delivered to every subscriber once, in order, and delivery p99 ≤ 50 ms, the fan-out target
    (what a user waits; and where it sits matters little: past capacity p99 jumps, measured from
    16–47 ms at the highest rate held to 62–77 ms one 5 % step above it).

    Nothing is pinned, for either configuration: two workers need both cores, so the client and
    Redis share them; the one worker gets the same whole machine instead of the placement of the
    other scenarios (server on CPU 0, client on CPU 1), which the two workers cannot have. Each
    step reports the workers', the client's and Redis's CPU and the machine's busy cores, so that
    what limits a configuration shows (and other sessions' load, as "other"). Also, below both
    capacities, the cost of a delivery and of a glint's trip through Redis at 1 and 2 workers."""
    subs = max(10, int(1000 * opts.scale))
    seconds = max(2.0, 5.0 * opts.scale)  # per step; a step also starts a server and its streams
    ceiling = max(200.0, 2000.0 * opts.scale)
    start, calm = min(300.0, ceiling / 2), 100.0
    refine = 3 if opts.scale >= 1 else 1
    env = (("SPIRAL_CAPACITY", "20000"),)  # size usage to the machine: the throttle is not measured
    one_w = Variant("1 worker", "1w", None, env=env)
    two_w = Variant("2 workers + Redis", "2w", None, env=env, workers=2, redis=True)

    def probe(v: Variant, rate: float, i: int) -> dict[str, Any]:
        name = f"redis-{v.slug}-{rate:.0f}-{i + 1}"
        r = measure(opts, v, name, subs, rate, seconds, 2.0, publishers=64, pinned=False)
        r["rate"] = rate
        r["deliveries_per_s"] = r["delivered"] / seconds
        r["why_not"] = why_not_held(r, subs, rate * seconds, _complete(r, subs))
        verdict = f"NOT held ({r['why_not']})" if r["why_not"] else "held"
        print(
            f"  many workers, {v.label} at {rate:,.0f}/s, run {i + 1}: {verdict}; "
            f"{_fanout_text(r, subs)}; {machine_text(r)}",
            flush=True,
        )
        return r

    def search(v: Variant, first: float, i: int) -> dict[str, Any]:
        steps: list[dict[str, Any]] = []

        def holds(rate: float) -> bool:
            steps.append(probe(v, rate, i))
            return not steps[-1]["why_not"]

        found = find_capacity(holds, first, refine=refine, floor=10.0, ceiling=ceiling)
        at = [r for r in steps if r["rate"] == found.held and not r["why_not"]]
        print(f"  many workers, {v.label}, run {i + 1}: {found.text()} glints/s", flush=True)
        return {"found": found, "at": at[0] if at else None, "steps": len(steps)}

    rounds = []
    for i in range(opts.runs):
        one = search(one_w, start, i)
        held = one["found"].held
        two = search(two_w, 1.6 * held if held else start, i)  # first: the rate that decides
        rounds.append(
            {"1": one, "2": two, "calm1": probe(one_w, calm, i), "calm2": probe(two_w, calm, i)}
        )
    return capacity_rows(rounds, subs, seconds, calm)


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def _keep(res: dict[Variant, list[dict[str, Any]]]) -> dict[str, Any]:
    """The raw figures, for --json."""
    return {v.label: runs for v, runs in res.items()}


SCENARIOS: dict[str, Callable[[Options], Awaitable[list[Row]]]] = {
    "fanout": fanout,
    "idle": idle,
    "ingest": ingest,
    "redis": redis,
    "slow": slow,
    "shutdown": shutdown,
    "hosts": hosts,
}

"""`python -m bench [scenario ...]`: run scenarios (all by default) and print the table.

The server runs on CPU 0 and every client on CPU 1 (taskset; this process pins itself there too),
so the figures are the server's. It exits 1 while any target is not met."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import orjson

from .common import Options, Row, load_note, machine
from .scenarios import SCENARIOS
from .server import CLIENT_CPU, machine_busy, pinning, raise_nofile


def table(rows: list[Row]) -> str:
    lines = ["| scenario | setup | result | target | met |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.scenario} | {r.setup} | {r.result} | {r.target} | {r.met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        choices=[[], *SCENARIOS],
        metavar="scenario",
        help=f"one or more of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--via",
        choices=["gunicorn", "serve"],
        default="gunicorn",
        help="start the server with `gunicorn -c gunicorn.conf.py wsgi:app` (default) "
        "or `python -m spiral_web.cli serve`",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy record Spiral's worker while the C client publishes (collapsed stacks in "
        "DIR; summarize them with `python -m bench.profile DIR/*.txt`)",
    )
    parser.add_argument(
        "--native",
        action="store_true",
        help="with --profile: native frames too (py-spy pauses the worker at each sample)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="rounds of each scenario (the variants take turns); figures per run and the median",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="shrink subscriber counts and durations, e.g. 0.1 for a smoke run",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each scenario, wait up to this long for other load on the machine to stop",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the raw results here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    names = args.scenarios or list(SCENARIOS)
    nofile = raise_nofile()
    info = machine()
    if pinning():
        os.sched_setaffinity(0, {CLIENT_CPU})
        placement = "server on CPU 0, clients on CPU 1"
    else:
        placement = "NOT pinned (needs 2 CPUs and taskset): client and server share the CPUs"
    print(
        f"Spiral benchmarks: {info['date']}; {info['cpus']} CPUs ({info['cpu']}), "
        f"{info['ram']} RAM; commit {info['commit']}; server via {args.via}; {placement}; "
        f"RLIMIT_NOFILE {nofile}; {args.runs} run(s) of each",
        flush=True,
    )
    opts = Options(
        via=args.via,
        profile_dir=args.profile,
        native=args.native,
        scale=args.scale,
        runs=args.runs,
    )
    rows: list[Row] = []
    started = time.monotonic()
    for name in names:
        t = time.monotonic()
        busy = machine_busy()
        waited = 0.0
        while busy > 0.15 and waited < args.wait_quiet:  # bounded: at most --wait-quiet seconds
            time.sleep(4.0)
            waited += 5.0
            busy = machine_busy()
        note = (
            f"; WARNING: {busy:.1f} CPUs busy before it started: other load on the machine"
            if busy > 0.15
            else ""
        )
        print(f"- {name} ({load_note()}{note})", flush=True)
        try:
            rows += asyncio.run(SCENARIOS[name](opts))
        except Exception as exc:  # one failing scenario must not hide the others' results
            rows.append(Row(name, "-", f"FAILED: {type(exc).__name__}: {exc}", "-", "NO"))
            print(f"  {name} failed: {exc!r}", flush=True)
        print(f"  ({time.monotonic() - t:.0f} s)", flush=True)
    print()
    print(table(rows))
    print(f"\n{len(names)} scenario(s) in {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {"machine": info, "via": args.via, "rows": [r.__dict__ for r in rows]},
                option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                default=str,
            )
        )
    return 0 if all(r.met in ("yes", "-", "not run") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

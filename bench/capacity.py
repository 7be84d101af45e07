"""The many-workers scenario's method: the highest rate a server configuration holds, found by
stepping the rate: geometric steps up (or down) from a first rate until one rate holds and a
neighbour does not, then bisections between the two (geometric means, rounded to whole glints per
second).

The search assumes that a configuration which holds a rate holds every lower one. Other load on a
shared machine can only make a run fail, never make it pass, so a rate counts as not held only
when every one of `tries` attempts failed: the best of the attempts is the estimate least spoiled
by the neighbours.

Also the scenario's verdict on each step and its rows (the scenario itself, which starts servers,
is `redis` in scenarios.py)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .common import Row, median, spread


@dataclass
class Capacity:
    """What a search found: the highest rate held, the lowest rate above it not held, and every
    attempt in the order made."""

    held: float | None = None  # None: not even the lowest rate tried
    failed: float | None = None  # None: the ceiling was held (the capacity is at least `held`)
    attempts: list[tuple[float, bool]] = field(default_factory=list)

    def text(self) -> str:
        """ "held 620, not 650" / "held ≥ 2000 (the ceiling)" / "none held (down to 50)"."""
        if self.held is None:
            return f"none held (down to {self.failed:,.0f})"
        if self.failed is None:
            return f"held ≥ {self.held:,.0f} (the ceiling)"
        return f"held {self.held:,.0f}, not {self.failed:,.0f}"


def find_capacity(
    holds: Callable[[float], bool],
    start: float,
    factor: float = 1.5,
    refine: int = 3,
    tries: int = 2,
    floor: float = 1.0,
    ceiling: float = math.inf,
) -> Capacity:
    """Step the rate from `start` by `factor` until held and not held are bracketed (within
    [floor, ceiling]), then bisect `refine` times. `holds(rate)` is one attempt."""
    found = Capacity()

    def held(rate: float) -> bool:
        for _ in range(tries):
            ok = holds(rate)
            found.attempts.append((rate, ok))
            if ok:
                return True
        return False

    rate = float(round(min(max(start, floor), ceiling)))
    while True:
        if held(rate):
            found.held = rate
            if found.failed is not None or rate >= ceiling:
                break
            rate = float(round(min(rate * factor, ceiling)))
        else:
            found.failed = rate
            if found.held is not None or rate <= floor:
                break
            rate = float(round(max(rate / factor, floor)))
    for _ in range(refine):
        if found.held is None or found.failed is None:
            break
        mid = float(round(math.sqrt(found.held * found.failed)))
        if not found.held < mid < found.failed:
            break
        if held(mid):
            found.held = mid
        else:
            found.failed = mid
    return found


# -- what the many-workers scenario reports -------------------------------------------------------
P99_BOUND_MS = 50.0  # a rate is held with zero loss and delivery p99 within the fan-out target


def why_not_held(r: dict[str, Any], subs: int, expected: float, complete: bool) -> str:
    """Why a step of ssefan did not hold its rate ("" when it did); `complete`: every glint
    acknowledged and delivered to every subscriber once, in order."""
    if not complete:  # by the end of the drain: unanswered POSTs and backlogs count here too
        return (
            f"incomplete: {r['post_ok']}/{r['posted']} acked, {r['subs_with_all']}/{subs} got all, "
            f"dup {r['dups']}, disorder {r['disorder']}, restarts {r['worker_restarts']}"
        )
    if r.get("listeners") != subs:
        return f"{r.get('listeners')} listeners"
    # every publisher was waiting for an answer when a glint was due: the rate was not offered
    if r["late"] or r["posted"] < 0.99 * expected:
        return f"posted late ({r['posted']} of {expected:.0f}, {r['late']} waits)"
    if not r["p99_ms"] <= P99_BOUND_MS:  # NaN too
        return f"p99 {r['p99_ms']:.0f} ms"
    return ""


def _cores(r: dict[str, Any]) -> tuple[float, float]:
    """(the machine's busy cores, those used by other processes than the bench's own)."""
    busy = sum(r["busy"])
    ours = r["worker_share"] + r["client_share"] + r.get("redis_share", 0.0)
    return busy, max(0.0, busy - ours)


def machine_text(r: dict[str, Any]) -> str:
    """The machine's busy cores and who used them, over the publishing window."""
    busy, other = _cores(r)
    return (
        f"machine {busy:.2f} of {len(r['busy'])} cores busy: worker(s) {r['worker_share']:.2f}, "
        f"client {r['client_share']:.2f}, Redis {r.get('redis_share', 0.0):.2f}, other {other:.2f}"
    )


def _per(values: list[float], units: list[float]) -> list[float]:
    return [v / u if u > 0 else math.nan for v, u in zip(values, units, strict=True)]


def capacity_rows(
    rounds: list[dict[str, Any]], subs: int, seconds: float, calm: float
) -> list[Row]:
    """The many-workers rows: each configuration's capacity and what used the machine there, then
    the cost of a delivery and of a glint at `calm` glints/s, below both capacities."""
    rows = []
    base: list[float] = []
    for key, label in (("1", "1 worker"), ("2", "2 workers + Redis")):
        found: list[Capacity] = [r[key]["found"] for r in rounds]
        at = [r[key]["at"] for r in rounds]  # the step at the rate held (None: none held)

        def fig(name: str, fmt: str = "{:.2f}", at: list[dict[str, Any] | None] = at) -> str:
            return spread([a.get(name, 0.0) if a else math.nan for a in at], fmt)

        held = [f.held * subs if f.held else math.nan for f in found]
        cores = [_cores(a) if a else (math.nan, math.nan) for a in at]
        text = (
            f"{'; '.join(f.text() for f in found)} glints/s: "
            f"{spread(held, '{:,.0f}')} deliveries/s held; there: p99 {fig('p99_ms', '{:.0f}')} "
            f"ms, worker(s) {fig('worker_share')} cores ({fig('us_per_unit', '{:.1f}')} µs per "
            f"delivery), client {fig('client_share')}, Redis {fig('redis_share')}, machine "
            f"{spread([c[0] for c in cores], '{:.2f}')} of 2 cores busy (other load "
            f"{spread([c[1] for c in cores], '{:.2f}')}); "
            f"steps run: {spread([r[key]['steps'] for r in rounds])}"
        )
        setup = (
            f"{label}: {subs} SSE subs, the glint rate stepped to the highest held (zero loss, "
            f"p99 ≤ {P99_BOUND_MS:.0f} ms; {seconds:.0f} s a step), nothing pinned"
        )
        if key == "1":
            base = held
            rows.append(Row("many workers", setup, text, "reference", "-"))
            continue
        ratio = _per(held, base)
        text += f"; deliveries/s vs 1 worker ×{spread(ratio, '{:.2f}')}"
        target = (
            f"≥ 1.6× the deliveries/s of 1 worker at the same p99 (≤ {P99_BOUND_MS:.0f} ms); "
            "zero loss"
        )
        rows.append(
            Row("many workers", setup, text, target, "yes" if median(ratio) >= 1.6 else "NO")
        )
    one, two = [r["calm1"] for r in rounds], [r["calm2"] for r in rounds]
    glints = [r["post_ok"] for r in two]
    extra = _per(
        [
            (b["worker_s_through_drain"] - a["worker_s_through_drain"]) * 1e6
            for a, b in zip(one, two, strict=True)
        ],
        glints,
    )
    redis_us = _per([r.get("redis_share", 0.0) * seconds * 1e6 for r in two], glints)
    client_us = _per(
        [r["client_share"] * seconds * 1e6 for r in one + two], [r["delivered"] for r in one + two]
    )
    us1, us2 = [r["us_per_unit"] for r in one], [r["us_per_unit"] for r in two]
    text = (
        f"worker CPU per delivery: 1 worker {spread(us1, '{:.1f}')} µs, 2 workers "
        f"{spread(us2, '{:.1f}')} µs (×{spread(_per(us2, us1), '{:.2f}')}); 2 workers spend "
        f"{spread(extra)} µs more worker CPU per glint (its trip through Redis, and the work per "
        f"event done in both); Redis {spread(redis_us)} µs per glint; client "
        f"{spread(client_us, '{:.1f}')} µs per delivery; p99 1 worker "
        f"{spread([r['p99_ms'] for r in one])} ms, 2 workers {spread([r['p99_ms'] for r in two])} "
        f"ms; {sum(not r['why_not'] for r in one + two)}/{len(one + two)} held"
    )
    setup = (
        f"below capacity: 1 worker, and 2 workers + Redis, {subs} SSE subs × {calm:.0f} glints/s"
    )
    rows.append(Row("many workers", setup, text, "-", "-", {"rounds": rounds}))
    return rows

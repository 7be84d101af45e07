"""Glint counts over the last few minutes, for the sparkline and the per-module heat strip."""

from __future__ import annotations

import math
from typing import Any

WINDOW = 600  # seconds of history behind the sparkline and the heat strip
SPARK_STEP = 10  # seconds per sparkline point
HEAT_STEP = 30  # seconds per heat-strip cell
HEAT_MODULES = 6


def activity(hub: Any) -> dict[str, Any]:
    """Glint counts over the last WINDOW seconds, from the store (so: across every worker): a
    sparkline of glints per SPARK_STEP seconds and a per-module heat strip.

    Every number is a count of glints, labelled with its span: the sparkline's points and its peak
    are per SPARK_STEP seconds (a rate scaled up to a minute read as a count: "peak 42" beside
    7 glints ever stored)."""
    now = hub.clock.now()
    rows = hub.store.activity(now, WINDOW, SPARK_STEP)
    points = WINDOW // SPARK_STEP
    cells = WINDOW // HEAT_STEP
    spark = [0] * points  # oldest first
    per_module: dict[str, list[int]] = {}
    for module, ago, n in rows:
        ago = min(int(ago), points - 1)
        spark[points - 1 - ago] += n
        cell = cells - 1 - min(ago * SPARK_STEP // HEAT_STEP, cells - 1)
        per_module.setdefault(module, [0] * cells)[cell] += n
    last_minute = sum(spark[-(60 // SPARK_STEP) :])
    top = sorted(per_module.items(), key=lambda kv: (-sum(kv[1]), kv[0]))[:HEAT_MODULES]
    peak_cell = max((max(c) for _, c in top), default=0)
    return {
        "per_step": spark,  # glints in each SPARK_STEP seconds, oldest first
        "step": SPARK_STEP,
        "peak": max(spark),  # the most glints in one step
        "rate": last_minute,  # glints in the last minute
        "level": round(min(1.0, math.log10(1 + last_minute) / math.log10(1 + 3000)), 3),
        "heat": [
            {"module": m, "total": sum(c), "cells": [_heat(n, peak_cell) for n in c], "counts": c}
            for m, c in top
        ],
        "window_minutes": WINDOW // 60,
        "heat_step": HEAT_STEP,
    }


def _heat(n: int, peak: int) -> float:
    """0..1 on a log scale, so one busy module does not wash out the rest."""
    if n <= 0 or peak <= 0:
        return 0.0
    return round(0.15 + 0.85 * math.log1p(n) / math.log1p(peak), 3)

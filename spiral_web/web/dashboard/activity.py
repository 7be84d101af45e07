"""Glint counts over the last few minutes, for the sparkline and the per-module heat strip."""

from __future__ import annotations

import math
from typing import Any

WINDOW = 600  # seconds of history behind the sparkline and the heat strip
SPARK_STEP = 10  # seconds per sparkline point
HEAT_STEP = 30  # seconds per heat-strip cell
HEAT_MODULES = 6


def activity(hub: Any) -> dict[str, Any]:
    """Glint counts over the last WINDOW seconds, from the store (so: across every worker):
    a sparkline of glints per minute and a per-module heat strip."""
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
    per_minute = [n * 60 // SPARK_STEP for n in spark]
    last_minute = sum(spark[-(60 // SPARK_STEP) :])
    top = sorted(per_module.items(), key=lambda kv: (-sum(kv[1]), kv[0]))[:HEAT_MODULES]
    peak_cell = max((max(c) for _, c in top), default=0)
    return {
        "per_minute": per_minute,
        "peak": max(per_minute),
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

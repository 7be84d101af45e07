"""What every scenario shares: options, result rows, and the small figures helpers."""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

HOST = "127.0.0.1"


@dataclass
class Row:
    scenario: str
    setup: str
    result: str
    target: str
    met: str  # "yes", "NO", "-" (a reference), "not run"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Options:
    via: str = "gunicorn"
    profile_dir: Path | None = None  # py-spy record of Spiral's worker while ssefan publishes
    native: bool = False  # py-spy --native (pauses the worker at each sample)
    scale: float = 1.0  # shrink counts and durations (smoke runs); 1.0 = the targets' figures
    runs: int = 1  # rounds of each scenario; figures are given per run and as the median


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def median(values: list[float]) -> float:
    """The median of the figures there are (NaN: a run that has none, e.g. nothing delivered)."""
    known = [v for v in values if not math.isnan(v)]
    return statistics.median(known) if known else float("nan")


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    """Each run's figure, and the median when there are several: "83 / 110 / 115 (median 110)"."""

    def one(v: float) -> str:
        return "n/a" if math.isnan(v) else fmt.format(v)

    text = " / ".join(one(v) for v in values)
    return text if len(values) < 2 else f"{text} (median {one(median(values))})"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return orjson.loads(r.read())


def load_note() -> str:
    """The machine's load average, printed with every scenario (other sessions share it)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> dict[str, str]:
    model = "?"
    ram = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            run = subprocess.run(["git", *args], capture_output=True, text=True, cwd=root)
            return run.stdout.strip()
        except OSError:
            return "?"

    dirty = " + uncommitted changes" if git("status", "--porcelain") else ""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "ram": ram,
        "commit": git("rev-parse", "--short", "HEAD") + dirty,
    }

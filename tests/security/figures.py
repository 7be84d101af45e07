"""Figures the reliability tests measure, kept for RELIABILITY.md: each test records what it saw
in test-artifacts/reliability.json (merged by key, so one test's run does not erase another's)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

ARTIFACTS = Path(
    os.environ.get("SPIRAL_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)
FILE = ARTIFACTS / "reliability.json"


def record(key: str, **figures: Any) -> None:
    """Store `figures` under `key`, with the time of the run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(FILE.read_text())
    except (OSError, ValueError):
        data = {}
    data[key] = {"at": time.strftime("%Y-%m-%d %H:%M:%S"), **figures}
    tmp = FILE.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(FILE)

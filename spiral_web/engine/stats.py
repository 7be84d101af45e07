"""Glint statistics: totals by phase and module, kept in memory and seeded from the store."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    def __init__(
        self, by_phase: dict[str, int] | None = None, by_module: dict[str, int] | None = None
    ):
        self._lock = threading.Lock()
        self.by_phase: Counter[str] = Counter(by_phase or {})
        self.by_module: Counter[str] = Counter(by_module or {})

    def count(self, module: str, phase: str) -> None:
        with self._lock:
            self.by_phase[phase] += 1
            self.by_module[module] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self.by_module.values()),
                "by_phase": dict(self.by_phase),
                "by_module": dict(self.by_module.most_common()),
            }

"""What the breath reports: its state (stamped on glints, published to listeners), the alerts and
refusals its protective state raises, and the time format they all use."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from .climate import Climate
from .phases import Phase


@dataclass(frozen=True)
class Alert:
    """Something the hub wants people to see until `until` (e.g. sources the watcher blocked)."""

    kind: str
    sources: tuple[str, ...]
    since: float
    until: float
    message: str

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "sources": list(self.sources),
            "since": iso(self.since),
            "until": iso(self.until),
            "message": self.message,
        }


@dataclass(frozen=True)
class Rejection:
    """One refused request, for the operators' log."""

    at: float
    source: str
    status: int
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"at": iso(self.at), "source": self.source, "status": self.status,
                "reason": self.reason}  # fmt: skip


@dataclass(frozen=True)
class Refusal:
    """Why input from a source is refused right now, and when to try again (whole seconds)."""

    kind: Literal["throttled", "source_blocked"]
    retry_after: int
    message: str


@dataclass(frozen=True)
class BreathState:
    phase: Phase
    phase_started_at: float
    phase_ends_at: float
    phase_reason: str
    climate: Climate
    climate_reason: str
    usage: float
    now: float
    throttled: bool = False  # the throttle ritual paused input; lifts below its release level
    caesura: bool = False  # the caesura ritual declared the soft shutdown for this night_hold
    alerts: tuple[Alert, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "phase_started_at": iso(self.phase_started_at),
            "phase_ends_at": iso(self.phase_ends_at),
            "phase_reason": self.phase_reason,
            "climate": self.climate,
            "climate_reason": self.climate_reason,
            "usage": self.usage,
            "resting": self.phase == "night_hold",
            "caesura": self.caesura,
            "throttled": self.throttled,
            "alerts": [a.to_dict() for a in self.alerts],
            "server_time": iso(self.now),
        }

    def stamp(self) -> dict[str, object]:
        """The part of the state stamped on each glint at receipt."""
        return {"phase": self.phase, "climate": self.climate, "usage": self.usage}


def iso(t: float) -> str:
    """`2027-01-15T08:00:00.000Z`: UTC, to the millisecond (as datetime rounds t to the
    microsecond, then cuts to the millisecond)."""
    frac, whole = math.modf(t)
    us = round(frac * 1e6)
    if us >= 1_000_000:
        whole, us = whole + 1, us - 1_000_000
    elif us < 0:  # before 1970: not worth a cache
        return _iso(t)
    global _iso_second
    second = int(whole)
    cached = _iso_second
    if cached[0] != second:  # the date and time are formatted once a second
        cached = _iso_second = (second, _iso(second)[:-5])
    return f"{cached[1]}.{us // 1000:03d}Z"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_iso_second: tuple[int, str] = (-1, "")  # the last second iso() formatted, without its fraction

"""The phase clock: five phases, a cycle of four, quiet hours and admin overrides.

The phase is a pure function of (time, configuration, override), so every worker that shares the
configuration and the overrides computes the same phase without talking to the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Phase = Literal["inhale", "hold", "exhale", "return", "night_hold"]

PHASES: tuple[Phase, ...] = ("inhale", "hold", "exhale", "return", "night_hold")
CYCLE: tuple[Phase, ...] = ("inhale", "hold", "exhale", "return")


@dataclass(frozen=True)
class QuietHours:
    """A daily window (local to `tz`) in which the hub rests in night_hold; may wrap midnight."""

    start: time
    end: time
    tz: str = "UTC"

    @classmethod
    def parse(cls, text: str, tz: str = "UTC") -> QuietHours:
        """Parse '22:00-06:00'."""
        try:
            a, b = text.split("-")
            start, end = time.fromisoformat(a.strip()), time.fromisoformat(b.strip())
        except ValueError as exc:
            raise ValueError(f"quiet hours must look like '22:00-06:00', got {text!r}") from exc
        ZoneInfo(tz)  # fail early on an unknown zone
        return cls(start, end, tz)

    def window_at(self, t: float) -> tuple[float, float] | None:
        """The quiet window containing t as (start, end) epoch seconds, or None."""
        zone = ZoneInfo(self.tz)
        local = datetime.fromtimestamp(t, zone)
        for day_shift in (0, -1):
            day = (local + timedelta(days=day_shift)).date()
            start = datetime.combine(day, self.start, zone)
            end = datetime.combine(day, self.end, zone)
            if end <= start:
                end += timedelta(days=1)
            if start.timestamp() <= t < end.timestamp():
                return start.timestamp(), end.timestamp()
        return None

    def next_start(self, t: float) -> float:
        """When the next quiet window after t begins (epoch seconds), reckoned as `window_at`
        reckons its windows."""
        zone = ZoneInfo(self.tz)
        local = datetime.fromtimestamp(t, zone)
        for day_shift in (0, 1, 2):
            day = (local + timedelta(days=day_shift)).date()
            start = datetime.combine(day, self.start, zone).timestamp()
            if start > t:
                return start
        return t + 86_400.0  # not reached: tomorrow's start is later than t


@dataclass(frozen=True)
class BreathConfig:
    durations: dict[str, float] = field(
        default_factory=lambda: {"inhale": 16.0, "hold": 8.0, "exhale": 16.0, "return": 8.0}
    )
    epoch: float = 0.0
    quiet_hours: QuietHours | None = None
    capacity: float = 500.0  # glints per second that count as full usage
    usage_window: int = 10
    climate_window: int = 60
    unsettled_rejections: int = 10  # rejected requests in the window ...
    unsettled_share: float = 0.2  # ... making at least this share of all requests
    suspicious_rejections: int = 30  # rejected requests from one source in the window ...
    suspicious_share: float = 0.5  # ... making at least this share of that source's requests
    calm_seconds: float = 30.0  # how long traffic must look better before the climate eases

    def __post_init__(self) -> None:
        missing = [p for p in CYCLE if p not in self.durations]
        if missing:
            raise ValueError(f"breath durations missing for: {', '.join(missing)}")
        bad = [p for p, d in self.durations.items() if p not in CYCLE or not d > 0]
        if bad:
            raise ValueError(f"breath durations must be positive seconds for cycle phases: {bad}")

    @property
    def cycle_seconds(self) -> float:
        return sum(self.durations[p] for p in CYCLE)


@dataclass(frozen=True)
class Override:
    value: str
    since: float
    until: float

    def active(self, t: float) -> bool:
        return self.since <= t < self.until


@dataclass(frozen=True)
class PhaseSpan:
    phase: Phase
    started_at: float
    ends_at: float
    reason: Literal["cycle", "quiet_hours", "override"]


def phase_at(t: float, config: BreathConfig, override: Override | None = None) -> PhaseSpan:
    """The phase at time t: an admin override wins, then quiet hours, then the cycle."""
    if override is not None and override.active(t):
        return PhaseSpan(override.value, override.since, override.until, "override")  # type: ignore[arg-type]
    if config.quiet_hours is not None:
        window = config.quiet_hours.window_at(t)
        if window is not None:
            return PhaseSpan("night_hold", window[0], window[1], "quiet_hours")
    cycle = config.cycle_seconds
    offset = (t - config.epoch) % cycle
    cycle_start = t - offset
    acc = 0.0
    for phase in CYCLE:
        dur = config.durations[phase]
        if offset < acc + dur:
            return PhaseSpan(phase, cycle_start + acc, cycle_start + acc + dur, "cycle")
        acc += dur
    return PhaseSpan(
        "return", cycle_start + cycle - config.durations["return"], cycle_start + cycle, "cycle"
    )


def span_ends(span: PhaseSpan, t: float, config: BreathConfig, override: Override | None) -> float:
    """Until when `phase_at` keeps answering `span` from t on (the same config and override): its
    end, or sooner when quiet hours begin within a cycle phase or an override starts later."""
    until = span.ends_at
    if span.reason == "cycle" and config.quiet_hours is not None:
        until = min(until, config.quiet_hours.next_start(t))
    if override is not None and override.since > t:
        until = min(until, override.since)
    return until

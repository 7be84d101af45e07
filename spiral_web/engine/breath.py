"""The breath engine: the phase clock (engine/phases.py), the climate (engine/climate.py) and the
usage level, with the protective state rituals switch on (throttle, blocks, caesura). What it
reports (BreathState, Alert, Refusal, iso) is in engine/breath_state.py, re-exported here.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .breath_state import Alert, BreathState, Refusal, Rejection, iso
from .climate import CLIMATES, Climate, ClimateTracker
from .clock import Clock
from .phases import (
    CYCLE,
    PHASES,
    BreathConfig,
    Override,
    Phase,
    PhaseSpan,
    QuietHours,
    phase_at,
    span_ends,
)
from .windows import SecondCounter

if TYPE_CHECKING:
    from .ports import Cluster

__all__ = [
    "CLIMATES",
    "CYCLE",
    "PHASES",
    "Alert",
    "BreathConfig",
    "BreathEngine",
    "BreathState",
    "Climate",
    "Phase",
    "QuietHours",
    "Refusal",
    "iso",
]


class BreathEngine:
    """The live breath: phase clock plus climate and usage, with admin overrides.

    Thread-safe; the state it reports is derived on demand from the clock, so nothing has to tick
    for the phase to be right. `changed()` tells a publisher when a breath event is due.
    """

    def __init__(
        self,
        config: BreathConfig,
        clock: Clock,
        backlog: Callable[[], float] = lambda: 0.0,
        cluster: Cluster | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self._cluster = cluster  # the other workers of the hub, told of every change made here
        self._backlog = backlog
        self._lock = threading.Lock()
        self._climate = ClimateTracker(config)
        self._ingest = SecondCounter(max(config.usage_window, 60))
        self._phase_override: Override | None = None
        # phase_at's answer, kept while it holds: (span, from, until, the override it assumed)
        self._span: tuple[PhaseSpan, float, float, Override | None] | None = None
        self._climate_override: Override | None = None
        self._last_published: tuple[object, ...] | None = None
        # Protective state that rituals switch on (the throttle, the watcher, caesura); the breath
        # reports it and the orchestrator enforces it through `refusal()`.
        self._throttle_release: float | None = None  # set while throttled: the level that lifts it
        self._blocked: dict[str, float] = {}  # source → blocked until
        self._alerts: list[Alert] = []
        self._refusals: deque[Rejection] = deque(maxlen=self.MAX_REFUSALS)
        self._caesura_until = 0.0
        self._applying = threading.local()
        if cluster is not None:  # what other workers set before this one started still holds
            for op, payload in cluster.remembered(clock.now()):
                self.apply_shared(op, payload)

    # -- signals -------------------------------------------------------------------------------
    def record_ingest(self, source: str, n: int = 1) -> None:
        self.record_ingests({source: n})

    def record_ingests(self, by_source: dict[str, int]) -> None:
        """Glints stored just now, counted by source (a commit's batch at once)."""
        if not by_source:
            return
        now = self.clock.now()
        with self._lock:
            for source, n in by_source.items():
                self._ingest.add(now, n)
                self._climate.record(source, True, now, n)

    def record_rejection(self, source: str, status: int = 0, reason: str = "") -> None:
        """A refused request (bad input, bad credentials, throttled…) from `source`: it feeds the
        climate, and the log of refusals operators read (`rejections`)."""
        now = self.clock.now()
        with self._lock:
            self._climate.record(source, False, now)
            self._refusals.append(Rejection(now, source, status, reason))
        self._share("rejection", [source, status, reason])

    def rejections(self, limit: int = 50) -> dict[str, Any]:
        """Who was refused and why: the newest refusals (newest first), and counts of the last
        climate window by source and by reason, for the hub (every worker shares its refusals)."""
        now = self.clock.now()
        window = self.config.climate_window
        with self._lock:
            recent = [r for r in self._refusals if r.at > now - window]
            newest = list(self._refusals)[-limit:][::-1]
        by_source: dict[str, int] = {}
        by_reason: dict[str, int] = {}
        for r in recent:
            by_source[r.source] = by_source.get(r.source, 0) + 1
            by_reason[r.reason or str(r.status)] = by_reason.get(r.reason or str(r.status), 0) + 1
        return {
            "window_seconds": window,
            "total": len(recent),
            "by_source": dict(sorted(by_source.items(), key=lambda kv: -kv[1])[:20]),
            "by_reason": dict(sorted(by_reason.items(), key=lambda kv: -kv[1])),
            "recent": [r.to_dict() for r in newest],
        }

    # -- overrides -----------------------------------------------------------------------------
    def override_phase(self, phase: str | None, seconds: float = 300.0) -> None:
        if phase is not None and phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        now = self.clock.now()
        with self._lock:
            self._phase_override = None if phase is None else Override(phase, now, now + seconds)
        self._share("phase_override", [phase, now, now + seconds], now + seconds)

    def override_climate(self, climate: str | None, seconds: float = 300.0) -> None:
        if climate is not None and climate not in CLIMATES:
            raise ValueError(f"unknown climate {climate!r}")
        now = self.clock.now()
        with self._lock:
            self._climate_override = (
                None if climate is None else Override(climate, now, now + seconds)
            )
        self._share("climate_override", [climate, now, now + seconds], now + seconds)

    # -- sharing with other workers ------------------------------------------------------------
    def _share(
        self, op: str, payload: list[Any], until: float | None = None, slot: str | None = None
    ) -> None:
        """Tell the other workers what changed here (kept until `until` for later workers)."""
        if self._cluster is not None and not getattr(self._applying, "remote", False):
            self._cluster.share(op, payload, until, slot)

    def apply_shared(self, op: str, payload: list[Any]) -> None:
        """Apply a change another worker made, without telling the others again."""
        self._applying.remote = True
        try:
            if op == "rejection":
                self.record_rejection(*payload[:3])
            elif op in ("phase_override", "climate_override"):
                value, since, until = payload
                override = None if value is None else Override(value, since, until)
                with self._lock:
                    setattr(self, f"_{op}", override)
            elif op == "throttle":
                self.begin_throttle(payload[0])
            elif op == "block":
                sources, since, until, message, kind = payload
                with self._lock:
                    for src in sources:
                        self._blocked[src] = max(self._blocked.get(src, 0.0), until)
                    self._alerts.append(Alert(kind, tuple(sources), since, until, message))
                    del self._alerts[: -self.MAX_ALERTS]
            elif op == "caesura":
                self.declare_caesura(payload[0])
            elif op == "unblock":
                self.unblock(payload[0])
            elif op == "throttle_end":
                self.end_throttle()
        finally:
            self._applying.remote = False

    # -- protection (switched on by rituals, lifted by an admin) ----------------------------------
    def blocks(self) -> list[dict[str, Any]]:
        """The sources refused now, soonest lifted first, with when and why."""
        now = self.clock.now()
        with self._lock:
            held = {s: u for s, u in self._blocked.items() if u > now}
            alerts = list(self._alerts)
        out = []
        for source, until in sorted(held.items(), key=lambda kv: kv[1]):
            alert = next((a for a in reversed(alerts) if source in a.sources), None)
            out.append(
                {
                    "source": source,
                    "since": iso(alert.since) if alert else None,
                    "until": iso(until),
                    "seconds_left": max(0, math.ceil(until - now)),
                    "reason": alert.message if alert else "blocked",
                }
            )
        return out

    def unblock(self, source: str) -> bool:
        """Lift the block on `source` at once (an admin decided); True when it was blocked. Its
        alert goes when it names no blocked source any more."""
        now = self.clock.now()
        with self._lock:
            until = self._blocked.pop(source, None)
            was = until is not None and until > now
            self._climate.forgive(source)
            kept: list[Alert] = []
            for alert in self._alerts:
                rest = tuple(s for s in alert.sources if s != source)
                if source in alert.sources and not rest:
                    continue
                kept.append(Alert(alert.kind, rest, alert.since, alert.until, alert.message)
                            if source in alert.sources else alert)  # fmt: skip
            self._alerts = kept
        if was:
            # kept after the block it lifts: a worker starting later applies both, in order
            self._share("unblock", [source], until, f"unblock:{source}")
        return was

    def end_throttle(self) -> bool:
        """Lift the throttle now (an admin decided); True when input was paused."""
        with self._lock:
            was = self._throttle_release is not None
            self._throttle_release = None
        if was:
            self._share("throttle_end", [])
        return was

    def begin_throttle(self, release: float) -> bool:
        """Pause input until usage falls below `release`; True when this starts a new episode."""
        with self._lock:
            started = self._throttle_release is None
            self._throttle_release = release
        self._share("throttle", [release])
        return started

    def block(
        self, sources: list[str], seconds: float, message: str, kind: str = "suspicion"
    ) -> tuple[list[str], Alert | None]:
        """Refuse input from `sources` for `seconds` and raise an alert naming them.

        Answers the sources that were not blocked already, and the new alert (None when there
        was nothing new to say)."""
        now = self.clock.now()
        until = now + seconds
        with self._lock:
            self._prune(now)
            fresh = [s for s in sources if self._blocked.get(s, 0.0) <= now]
            if not fresh and (sources or any(a.kind == kind for a in self._alerts)):
                return [], None
            for s in fresh:
                self._blocked[s] = until
            alert = Alert(kind, tuple(fresh), now, until, message)
            self._alerts.append(alert)
            del self._alerts[: -self.MAX_ALERTS]
        self._share("block", [fresh, now, until, message, kind], until, f"block:{now}:{kind}")
        return fresh, alert

    def declare_caesura(self, until: float) -> bool:
        """Mark the soft shutdown until `until` (the end of this night_hold); True when new."""
        now = self.clock.now()
        with self._lock:
            fresh = self._caesura_until <= now
            self._caesura_until = max(self._caesura_until, until)
        self._share("caesura", [until], until)
        return fresh

    def refusal(self, source: str) -> Refusal | None:
        """Why input from `source` must be refused now, or None. Cheap when nothing is on."""
        now = self.clock.now()
        with self._lock:
            until = self._blocked.get(source)
            if until is not None:
                if until > now:
                    return Refusal(
                        "source_blocked",
                        max(1, math.ceil(until - now)),
                        f"input from {source} is blocked until {iso(until)}: too many "
                        "rejected requests made the climate suspicious",
                    )
                del self._blocked[source]
            if self._throttle_release is None:
                return None
        state = self.state()  # lifts the throttle when usage has fallen far enough
        if not state.throttled:
            return None
        with self._lock:
            # The heaviest sources first: one client posting as fast as it can must not lock out
            # everyone else. A source sending less than the average active source goes through.
            if not self._climate.heavy(source, now, self.config.usage_window):
                return None
            release = self._throttle_release if self._throttle_release is not None else 0.0
            wait = self._seconds_until_usage_below(now, release)
        return Refusal(
            "throttled",
            wait,
            f"the hub is saturated (usage {state.usage:.2f}) and {source} is among its heaviest "
            f"sources: its input is paused until usage falls below {release}",
        )

    def _seconds_until_usage_below(self, now: float, level: float) -> int:
        """Whole seconds until the ingest rate alone drops below `level` (the window slides)."""
        window = self.config.usage_window
        counts = self._ingest.series(now, window)
        allowed = level * self.config.capacity * window
        remaining = sum(counts)
        for k, n in enumerate(counts):
            if remaining < allowed:
                return max(1, k)
            remaining -= n
        return max(1, window)

    def _prune(self, now: float) -> None:
        self._drop_expired_alerts(now)
        if len(self._blocked) >= self.MAX_BLOCKED:
            self._blocked = {s: u for s, u in self._blocked.items() if u > now}

    def _drop_expired_alerts(self, now: float) -> None:
        if self._alerts and any(a.until <= now for a in self._alerts):
            self._alerts = [a for a in self._alerts if a.until > now]

    MAX_ALERTS = 20
    MAX_REFUSALS = 500
    MAX_BLOCKED = 10_000

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> BreathState:
        now = self.clock.now()
        backlog = self._backlog()
        with self._lock:
            span = self._span_at(now)
            climate: Climate = self._climate.level(now)
            reason = "traffic"
            co = self._climate_override
            if co is not None and co.active(now):
                climate, reason = co.value, "override"  # type: ignore[assignment]
            rate = self._ingest.rate(now, self.config.usage_window)
            usage = round(min(1.0, max(rate / self.config.capacity, backlog)), 3)
            if self._throttle_release is not None and usage < self._throttle_release:
                self._throttle_release = None  # hysteresis: lifted only below the release level
            throttled = self._throttle_release is not None
            self._drop_expired_alerts(now)
            alerts = tuple(self._alerts)
            caesura = span.phase == "night_hold" and self._caesura_until > now
        return BreathState(
            phase=span.phase,
            phase_started_at=span.started_at,
            phase_ends_at=span.ends_at,
            phase_reason=span.reason,
            climate=climate,
            climate_reason=reason,
            usage=usage,
            now=now,
            throttled=throttled,
            caesura=caesura,
            alerts=alerts,
        )

    def _span_at(self, now: float) -> PhaseSpan:
        """phase_at(now), computed again only when the span it answered last has ended (or the
        override changed, or the clock went back): quiet hours cost a time-zone conversion."""
        kept = self._span
        override = self._phase_override
        if kept is not None and kept[1] <= now < kept[2] and kept[3] is override:
            return kept[0]
        span = phase_at(now, self.config, override)
        self._span = (span, now, span_ends(span, now, self.config, override), override)
        return span

    def suspects(self) -> dict[str, int]:
        now = self.clock.now()
        with self._lock:
            return self._climate.suspects(now)

    def ingest_rate(self, span: int) -> float:
        now = self.clock.now()
        with self._lock:
            return self._ingest.rate(now, span)

    def ingest_series(self, points: int) -> list[int]:
        now = self.clock.now()
        with self._lock:
            return self._ingest.series(now, points)

    def changed(self, state: BreathState) -> bool:
        """True when `state` differs from the last published one in a way listeners care about:
        a new phase span, a climate change, or usage moving across a tenth."""
        key = (
            state.phase,
            state.phase_started_at,
            state.climate,
            int(state.usage * 10),
            state.throttled,
            state.caesura,
            tuple((a.kind, a.since) for a in state.alerts),
        )
        with self._lock:
            if key == self._last_published:
                return False
            self._last_published = key
            return True

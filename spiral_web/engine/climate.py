"""The climate: how trustworthy recent traffic looks, from rejected requests per source."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .windows import SecondCounter

if TYPE_CHECKING:
    from .phases import BreathConfig

Climate = Literal["clear", "unsettled", "suspicious"]

CLIMATES: tuple[Climate, ...] = ("clear", "unsettled", "suspicious")
_CLIMATE_RANK = {c: i for i, c in enumerate(CLIMATES)}


class ClimateTracker:
    """Turns accepted and rejected requests per source into a climate, with hysteresis.

    Rises at once when traffic looks worse; eases one step only after it has looked better for
    `calm_seconds`. Callers serialize access (BreathEngine holds the lock).
    """

    MAX_SOURCES = 10_000

    def __init__(self, config: BreathConfig) -> None:
        self.config = config
        self._accepted = SecondCounter(config.climate_window)
        self._rejected = SecondCounter(config.climate_window)
        self._by_source: dict[str, tuple[SecondCounter, SecondCounter]] = {}
        # sources with rejections in their counter: only they can be suspects, so the climate
        # (asked at every glint) looks at them instead of at every source it knows
        self._rejecting: set[str] = set()
        self._level: Climate = "clear"
        self._better_since: float | None = None
        self._average: tuple[int, int, int] = (-1, 0, 0)  # second, accepted, active sources

    def record(self, source: str, ok: bool, now: float, n: int = 1) -> None:
        (self._accepted if ok else self._rejected).add(now, n)
        counters = self._by_source.get(source)
        if counters is None:
            if len(self._by_source) >= self.MAX_SOURCES:
                self._prune(now)
            counters = (
                SecondCounter(self.config.climate_window),
                SecondCounter(self.config.climate_window),
            )
            self._by_source[source] = counters
        counters[0 if ok else 1].add(now, n)
        if not ok:
            self._rejecting.add(source)

    def suspects(self, now: float) -> dict[str, int]:
        """Sources whose rejected requests alone make the climate suspicious, with their counts."""
        cfg = self.config
        out: dict[str, int] = {}
        if cfg.suspicious_rejections <= 0:  # then a source without rejections may be one too
            candidates = list(self._by_source)
        else:
            candidates = list(self._rejecting)
        for source in candidates:
            acc, rej = self._by_source[source]
            bad = rej.total(now)
            if bad == 0:
                self._rejecting.discard(source)  # its rejections left the window
            if (
                bad >= cfg.suspicious_rejections
                and bad / (bad + acc.total(now)) >= cfg.suspicious_share
            ):
                out[source] = bad
        return out

    def raw_level(self, now: float) -> Climate:
        bad = self._rejected.total(now)
        cfg = self.config
        if bad == 0 and cfg.suspicious_rejections > 0 and cfg.unsettled_rejections > 0:
            return "clear"  # no rejection in the window: no source can be a suspect either
        if self.suspects(now):
            return "suspicious"
        good = self._accepted.total(now)
        if (
            bad >= self.config.unsettled_rejections
            and bad / (bad + good) >= self.config.unsettled_share
        ):
            return "unsettled"
        return "clear"

    def level(self, now: float) -> Climate:
        raw = self.raw_level(now)
        if _CLIMATE_RANK[raw] >= _CLIMATE_RANK[self._level]:
            self._level = raw
            self._better_since = None
        elif self._better_since is None:
            self._better_since = now
        elif now - self._better_since >= self.config.calm_seconds:
            self._level = CLIMATES[_CLIMATE_RANK[self._level] - 1]
            self._better_since = now if raw != self._level else None
        return self._level

    def forgive(self, source: str) -> None:
        """Forget `source`'s rejected requests (an admin lifted its block: the watcher must not
        block it again at its next glint for what it already answered for)."""
        counters = self._by_source.get(source)
        if counters is not None:
            self._by_source[source] = (counters[0], SecondCounter(self.config.climate_window))
        self._rejecting.discard(source)

    def heavy(self, source: str, now: float, span: int) -> bool:
        """True when `source` sent at least the average share of the last `span` seconds'
        accepted input (the average over the sources that sent any)."""
        counters = self._by_source.get(source)
        mine = counters[0].total(now, span) if counters is not None else 0
        if mine == 0:
            return False
        at, total, active = self._average
        if int(now) != at:  # once a second: a pass over every source
            totals = [acc.total(now, span) for acc, _ in self._by_source.values()]
            total, active = sum(totals), sum(1 for t in totals if t)
            self._average = (int(now), total, active)
        return mine * max(active, 1) >= total

    def counts(self, now: float) -> dict[str, int]:
        return {"accepted": self._accepted.total(now), "rejected": self._rejected.total(now)}

    def _prune(self, now: float) -> None:
        idle = [
            s for s, (a, r) in self._by_source.items() if a.total(now) == 0 and r.total(now) == 0
        ]
        for s in idle:
            del self._by_source[s]
            self._rejecting.discard(s)
        if len(self._by_source) >= self.MAX_SOURCES:  # still full: forget the quietest half
            ranked = sorted(self._by_source, key=lambda s: self._by_source[s][1].total(now))
            for s in ranked[: len(ranked) // 2]:
                del self._by_source[s]
                self._rejecting.discard(s)

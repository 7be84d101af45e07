"""The running hub's parts, built from a Config. create_app attaches one to the app as
`app.extensions["spiral"]`; the CLI and tests can build one without Flask."""

from __future__ import annotations

from dataclasses import dataclass

from .bus import MemoryHub
from .config import Config
from .engine.breath import BreathEngine
from .engine.clock import Clock, FakeClock, SystemClock
from .engine.orchestrator import BreathTicker, Orchestrator
from .engine.rituals import RitualEngine
from .engine.stats import Stats
from .store import SQLiteStore


@dataclass
class Spiral:
    config: Config
    clock: Clock
    store: SQLiteStore
    hub: MemoryHub
    breath: BreathEngine
    orchestrator: Orchestrator
    ticker: BreathTicker
    rituals: RitualEngine

    @classmethod
    def build(cls, config: Config, clock: Clock | None = None) -> "Spiral":
        if clock is None:
            clock = FakeClock(SystemClock().now()) if config.fake_clock else SystemClock()
        store = SQLiteStore(config.db_path, synchronous=config.sqlite_sync)
        hub = MemoryHub(capacity=config.hub_capacity)
        breath = BreathEngine(config.breath(), clock, backlog=hub.backlog)
        stats = Stats(*store.counts())
        orchestrator = Orchestrator(store, hub, breath, stats)
        rituals = RitualEngine(config.rituals(), clock=clock, store=store, breath=breath,
                               orchestrator=orchestrator)
        orchestrator.rituals = rituals
        return cls(config, clock, store, hub, breath, orchestrator, BreathTicker(orchestrator), rituals)

    def shutdown(self) -> None:
        """Stop the breath and close every subscription (streams end with a `closing` event)."""
        self.ticker.stop()
        self.rituals.close()
        self.hub.close()

    def close(self) -> None:
        self.ticker.stop()
        self.rituals.close()
        self.hub.close()
        self.store.close()

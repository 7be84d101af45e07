"""The running hub's parts, built from a Config. create_app attaches one to the app as
`app.extensions["spiral"]`; the CLI and tests can build one without Flask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .bus import MemoryHub
from .config import Config
from .engine.breath import BreathEngine
from .engine.clock import Clock, FakeClock, SystemClock
from .engine.orchestrator import BreathTicker, Orchestrator
from .engine.rituals import RitualEngine
from .engine.stats import Stats
from .store import SQLiteStore

if TYPE_CHECKING:
    from .bus.redis import RedisHub


@dataclass
class Spiral:
    config: Config
    clock: Clock
    store: SQLiteStore
    hub: MemoryHub | RedisHub
    breath: BreathEngine
    orchestrator: Orchestrator
    ticker: BreathTicker
    rituals: RitualEngine

    @classmethod
    def build(cls, config: Config, clock: Clock | None = None) -> Spiral:
        if clock is None:
            clock = FakeClock(SystemClock().now()) if config.fake_clock else SystemClock()
        store = SQLiteStore(config.db_path, synchronous=config.sqlite_sync)
        local = MemoryHub(capacity=config.hub_capacity)
        breath = BreathEngine(config.breath(), clock, backlog=local.backlog)
        stats = Stats(*store.counts())
        hub: MemoryHub | RedisHub = local
        claim = None
        if config.redis_url:
            from .bus.redis import (
                RedisHub,
            )  # only now: redis imports ssl, which gevent must patch first

            hub = RedisHub(
                config.redis_url,
                local,
                store.replay_after,
                store.seq_bounds()[1],
                on_deliver=_counter(stats, breath),
                on_control=breath.apply_shared,
                prefix=config.redis_prefix,
            )
            breath.share = hub.share
            claim = hub.claim
        orchestrator = Orchestrator(
            store, hub, breath, stats, count_on_commit=config.redis_url is None
        )
        rituals = RitualEngine(
            config.rituals(),
            clock=clock,
            store=store,
            breath=breath,
            orchestrator=orchestrator,
            **({"claim": claim} if claim else {}),
        )
        orchestrator.rituals = rituals
        return cls(
            config, clock, store, hub, breath, orchestrator, BreathTicker(orchestrator), rituals
        )

    def start(self) -> None:
        """Start the background loops: the breath ticker (when configured) and the Redis reader."""
        if self.config.start_ticker:
            self.ticker.start()
        if self.config.redis_url:
            self.hub.start()  # type: ignore[union-attr]

    def ready(self) -> dict[str, bool]:
        checks = {"store": self.store.ping()}
        if self.config.redis_url:
            checks["redis"] = self.hub.ping()  # type: ignore[union-attr]
        return checks

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


def _counter(stats: Stats, breath: BreathEngine):
    """Count every glint the hub delivers (joined workers see the whole hub's traffic)."""

    def on_deliver(event, remote: bool) -> None:
        if event.kind == "glint_emission":
            stats.count(event.module, event.phase)
            if remote:
                breath.record_ingest("remote")

    return on_deliver

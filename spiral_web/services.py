"""The running hub's parts, built from a Config. create_app attaches one to the app as
`app.extensions["spiral"]`; the CLI and tests can build one without Flask."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bus import LocalCluster, MemoryHub
from .config import Config
from .engine.breath import BreathEngine
from .engine.clock import Clock, FakeClock, SystemClock
from .engine.events import Event
from .engine.lineage import lineage
from .engine.orchestrator import BreathTicker, Orchestrator
from .engine.ports import Cluster, Hub, Record, RecordUnavailable, SeqMark
from .engine.rituals import RitualEngine
from .engine.stats import Stats
from .store import SQLiteStore
from .store.marks import FileMark


@dataclass
class Spiral:
    config: Config
    clock: Clock
    store: Record
    hub: Hub
    cluster: Cluster
    breath: BreathEngine
    orchestrator: Orchestrator
    ticker: BreathTicker
    rituals: RitualEngine

    @classmethod
    def build(cls, config: Config, clock: Clock | None = None) -> Spiral:
        """Wire the parts the configuration asks for: SQLite or PostgreSQL (`database_url`), and
        Redis when `redis_url` is set."""
        if clock is None:
            clock = FakeClock(SystemClock().now()) if config.fake_clock else SystemClock()
        record = open_record(config)
        local = MemoryHub(capacity=config.hub_capacity)
        stats = Stats(*record.counts())
        cluster: Cluster = LocalCluster(Path(config.data_dir) / "shared.json")
        mark: SeqMark = FileMark(config.data_dir)
        if config.redis_url:
            # only now: redis imports ssl, which gevent must patch first
            from .bus.redis import RedisCluster, RedisHub, RedisMark

            cluster = RedisCluster(config.redis_url, prefix=config.redis_prefix)
            mark = RedisMark(config.redis_url, prefix=config.redis_prefix)
        breath = BreathEngine(config.breath(), clock, backlog=local.backlog, cluster=cluster)
        hub: Hub = local
        if config.redis_url:
            hub = RedisHub(
                config.redis_url,
                local,
                record.replay_after,
                record.seq_bounds()[1],
                top_seq=lambda: record.seq_bounds()[1],
                on_deliver=_counter(stats, breath),
                listeners=cluster.listeners,
                prefix=config.redis_prefix,
            )
        orchestrator = Orchestrator(
            record, hub, breath, stats, count_on_commit=config.redis_url is None, mark=mark
        )
        rituals = RitualEngine(
            config.rituals(),
            clock=clock,
            record=record,
            breath=breath,
            orchestrator=orchestrator,
            cluster=cluster,
        )
        orchestrator.observe(rituals.on_glint, rituals.on_breath)
        ticker = BreathTicker(orchestrator)
        return cls(config, clock, record, hub, cluster, breath, orchestrator, ticker, rituals)

    def start(self) -> None:
        """Start the background loops: the breath ticker (when configured), the cluster's and the
        hub's readers (joined through Redis)."""
        if self.config.start_ticker:
            self.ticker.start()
        self.cluster.start(self.breath.apply_shared, self.report)
        self.hub.start()

    def report(self) -> dict[str, Any]:
        """What this worker tells the others about itself, about once a second."""
        return {"listeners": self.hub.local_listeners, "subscribers": self.hub.subscribers(100)}

    def lineage(self, gid: str) -> dict[str, Any] | None:
        """A glint's ancestors and descendant tree (bounded), or None when it is unknown."""
        return lineage(self.store, gid)

    def problems(self) -> dict[str, str | None]:
        """Each dependency and why it is not ready (None when it is), for /readyz to say why."""
        out: dict[str, str | None] = {"store": None}
        try:
            self.store.seq_bounds()
        except RecordUnavailable as exc:
            out["store"] = str(exc)
        except Exception as exc:  # e.g. a SQLite file gone unreadable
            out["store"] = f"the record does not answer: {exc}"
        if self.config.redis_url:
            ok = self.hub.ping() and self.cluster.ping()
            out["redis"] = None if ok else "Redis does not answer (each worker serves alone)"
        return out

    def shutdown(self) -> None:
        """Stop the breath and close every subscription (streams end with a `closing` event);
        the seq mark learns the last seq (a clean stop)."""
        self.ticker.stop()
        self.rituals.close()
        self.hub.close()
        self.cluster.close()
        self.orchestrator.close()

    def close(self) -> None:
        self.shutdown()
        self.store.close()


def open_record(config: Config) -> Record:
    """The record the configuration names: PostgreSQL for a `postgresql://` database URL, else
    the SQLite file in the data folder."""
    url = config.database_url  # checked by Config: postgresql:// or postgres://
    if not url:
        return SQLiteStore(config.db_path, synchronous=config.sqlite_sync)
    # only now, in the worker: psycopg picks its way of waiting (gevent's or not) at import
    from .store.postgres import PostgresStore

    return PostgresStore(url)


def _counter(stats: Stats, breath: BreathEngine):
    """Count every glint the hub delivers (joined workers see the whole hub's traffic)."""

    def on_deliver(event: Event, remote: bool) -> None:
        if event.kind == "glint_emission" and event.module and event.phase:
            stats.count(event.module, event.phase)
            if remote:
                breath.record_ingest("remote")

    return on_deliver

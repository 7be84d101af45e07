"""The engine's parts wired as Spiral.build wires them, around a fake clock and a real SQLite
file, for the unit tests of rituals and protection (the `make` fixture is in conftest.py)."""

from __future__ import annotations

from types import SimpleNamespace

import orjson

from spiral_web.bus import LocalCluster, MemoryHub
from spiral_web.engine.breath import BreathConfig, BreathEngine
from spiral_web.engine.clock import FakeClock
from spiral_web.engine.glints import validate_glint
from spiral_web.engine.orchestrator import Orchestrator
from spiral_web.engine.rituals import BUILTINS, RitualEngine, load_rituals
from spiral_web.engine.stats import Stats
from spiral_web.store import SQLiteStore

CYCLE = 48.0  # inhale 16, hold 8, exhale 16, return 8
T0 = 1_800_000_000 - 1_800_000_000 % 48  # an inhale begins here (epoch 0)
ONLY_CUSTOM = {name: {"enabled": False} for name in BUILTINS}


def build(path, tables: dict | None = None, queue_size: int = 16, **breath_config):
    """A hub's engine parts around a ritual table, on the SQLite file `path`."""
    clock = FakeClock(T0)
    store = SQLiteStore(path)
    hub = MemoryHub()
    breath = BreathEngine(BreathConfig(**breath_config), clock)
    orchestrator, engine = wire(tables, clock, store, hub, breath, queue_size)
    return SimpleNamespace(
        clock=clock, store=store, hub=hub, breath=breath, orchestrator=orchestrator, engine=engine
    )


def wire(tables, clock, store, hub, breath, queue_size=16):
    """An orchestrator and the ritual scheduler watching it (what Spiral.build does)."""
    orchestrator = Orchestrator(store, hub, breath, Stats(*store.counts()))
    engine = RitualEngine(
        load_rituals(tables, "test.toml"),
        clock=clock,
        record=store,
        breath=breath,
        orchestrator=orchestrator,
        cluster=LocalCluster(),
        queue_size=queue_size,
    )
    orchestrator.observe(engine.on_glint, engine.on_breath)
    return orchestrator, engine


def emit(parts, module="a.b", phase=None, source="10.0.0.1", **extra):
    data = validate_glint({"module": module, "phase": phase, **extra})
    return parts.orchestrator.emit(data, source).glint


def runs(parts, ritual=None, status=None) -> list[dict]:
    """Runs oldest first."""
    return [
        orjson.loads(b) for b in reversed(parts.store.runs(ritual=ritual, status=status, limit=500))
    ]


def glints(parts, module=None) -> list:
    return list(reversed(parts.store.query(module=module, limit=500)))

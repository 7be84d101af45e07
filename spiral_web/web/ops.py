"""Operations: /healthz, /readyz, /metrics, and the test-only clock control."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import orjson
from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..engine.breath import CLIMATES, PHASES
from ..engine.clock import FakeClock
from ..services import Spiral
from .access import access
from .common import json_response, spiral
from .errors import BadRequest

bp = Blueprint("ops", __name__)


@bp.after_app_request
def _served_by(response):
    """Which worker answered: operators (and the multi-worker tests) can tell workers apart."""
    response.headers["X-Spiral-Worker"] = str(os.getpid())
    return response


@bp.get("/healthz")
@access("public")
def healthz():
    return json_response({"status": "ok"})


@bp.get("/readyz")
@access("public")
def readyz():
    problems = spiral().problems()
    checks = {name: problem is None for name, problem in problems.items()}
    ok = all(checks.values())
    body: dict[str, object] = {"status": "ready" if ok else "not_ready", "checks": checks}
    if not ok:  # say why: the record down, Redis away…
        body["why"] = {name: problem for name, problem in problems.items() if problem}
    return json_response(body, 200 if ok else 503)


@bp.record_once
def _register_metrics(state) -> None:
    registry = CollectorRegistry()
    registry.register(SpiralCollector(state.app.extensions["spiral"], state.app.extensions))
    state.app.extensions["spiral.metrics"] = registry


@bp.get("/metrics")
@access("public")
def metrics():
    registry = current_app.extensions["spiral.metrics"]
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class SpiralCollector:
    """Reads the hub's own counters at scrape time; nothing is counted twice."""

    def __init__(self, hub: Spiral, extensions: dict[str, Any]) -> None:
        self.hub = hub
        self.extensions = extensions  # the write watch appears there with the first stream

    def collect(self) -> Iterator[Metric]:
        snap = self.hub.orchestrator.stats.snapshot()
        glints = CounterMetricFamily("spiral_glints", "Glints stored, by phase", labels=["phase"])
        for phase in PHASES:
            glints.add_metric([phase], snap["by_phase"].get(phase, 0))
        yield glints
        yield GaugeMetricFamily(
            "spiral_listeners",
            "Subscribers connected to this process",
            value=self.hub.hub.local_listeners,
        )
        yield CounterMetricFamily(
            "spiral_events_published",
            "Events published to the hub",
            value=self.hub.hub.published_total,
        )
        dropped = CounterMetricFamily(
            "spiral_subscribers_dropped", "Subscribers dropped, by reason", labels=["reason"]
        )
        dropped.add_metric(["lagging"], self.hub.hub.dropped_total)
        watch = self.extensions.get("spiral.write_watch")
        dropped.add_metric(["stalled"], watch.dropped if watch is not None else 0)
        yield dropped
        state = self.hub.breath.state()
        yield GaugeMetricFamily("spiral_usage", "Usage level 0..1", value=state.usage)
        climate = GaugeMetricFamily(
            "spiral_climate", "1 for the current climate", labels=["climate"]
        )
        for c in CLIMATES:
            climate.add_metric([c], 1.0 if state.climate == c else 0.0)
        yield climate
        phases = GaugeMetricFamily("spiral_phase", "1 for the current phase", labels=["phase"])
        for p in PHASES:
            phases.add_metric([p], 1.0 if state.phase == p else 0.0)
        yield phases


@bp.post("/_test/clock")
@access("admin")
def move_clock():
    """Test-only: move the fake clock. Exists only when the server runs with fake_clock on, which
    only a server on loopback may (Config.exposure_problem); with tokens, only the admin."""
    hub = spiral()
    if not hub.config.fake_clock or not isinstance(hub.clock, FakeClock):
        abort(404)
    how, seconds = _clock_move(request.get_data(cache=False))
    if how == "advance":
        hub.clock.advance(seconds)
    else:
        hub.clock.set(seconds)
    state = hub.orchestrator.publish_breath()
    return json_response(state.to_dict())


MAX_CLOCK = 2.0**34  # seconds: beyond the year 2500, and far within what a float holds exactly


def _clock_move(raw: bytes) -> tuple[str, float]:
    """`{"advance": seconds}` or `{"set": epoch seconds}`, one of them, a finite number."""
    problem = BadRequest("bad_request", 'send {"advance": seconds} or {"set": epoch seconds}')
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise problem from None
    if not isinstance(body, dict) or len(body) != 1 or not body.keys() <= {"advance", "set"}:
        raise problem
    how, value = next(iter(body.items()))
    low = -MAX_CLOCK if how == "advance" else 0.0
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not low <= value <= MAX_CLOCK
    ):
        raise problem
    return how, float(value)

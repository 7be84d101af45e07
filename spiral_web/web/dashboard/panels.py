"""The statistics panels and the rituals' state, rendered once for every dashboard connection: the
figures (total, rate, listeners, sync) as they change, the detail (sparkline, phases, modules, heat
strip, glow) at most once a second."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from flask import Flask

from . import bp
from .activity import SPARK_STEP, activity
from .frames import data_lines, partial, render

FIGURES_EVERY = 0.2  # seconds one statistics snapshot serves every dashboard
DETAIL_EVERY = 1.0  # the detail reads the store: at most once a second, whatever the dashboards


class _Shared:
    """One rendered panel: what it was rendered from (`key`), its SSE data lines, and when."""

    def __init__(self) -> None:
        self.key: object = None
        self.lines = ""
        self.at = float("-inf")


class Panels:
    """Rendered again only when what they show changed, and by one caller at a time: a thousand
    dashboards asking in the same moment cost one statistics snapshot and at most one render."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        # Which server process this is, in every stream mark: a page told `closing` by one does
        # not take a reconnect to that same process, still stopping, for live (dashboard.js).
        self.instance = secrets.token_hex(4)
        self._lock = threading.Lock()
        self._figures = _Shared()
        self._detail = _Shared()
        self._rituals = _Shared()

    def figures(self) -> tuple[object, str]:
        """The figures (`#stats`) as data lines, with a key that changes when they do."""
        with self._lock:
            shared, now = self._figures, time.monotonic()
            if now - shared.at >= FIGURES_EVERY:
                shared.at = now
                stats = self._hub().orchestrator.statistics()
                key = (
                    stats["total"],
                    stats["listeners"],
                    stats["stream_sync"],
                    round(stats["rates"]["per_second_60s"] * 60),
                )
                if key != shared.key:
                    html = render(self.app, "dashboard/_stats_event.html", stats=stats)
                    shared.key, shared.lines = key, data_lines(html)
            return shared.key, shared.lines

    def detail(self) -> tuple[object, str]:
        """The sparkline, the phases, the top modules, the heat strip and the glow as data lines,
        with a key that changes when they do (new glints, listeners, or the window moving on)."""
        with self._lock:
            shared, now = self._detail, time.monotonic()
            if now - shared.at >= DETAIL_EVERY:
                shared.at = now
                hub = self._hub()
                stats = hub.orchestrator.statistics()
                key = (
                    stats["total"],
                    stats["listeners"],
                    stats["stream_sync"],
                    int(hub.clock.now() // SPARK_STEP),
                )
                if key != shared.key:
                    html = render(
                        self.app,
                        "dashboard/_panels_event.html",
                        stats=stats,
                        activity=activity(hub),
                    )
                    shared.key, shared.lines = key, data_lines(html)
            return shared.key, shared.lines

    def rituals(self, upto: int) -> str:
        """The rituals' state (`#ritual-states`) as data lines, as it is now: rendered again once
        a run newer than the last render (seq `upto`) asks for it."""
        with self._lock:
            shared = self._rituals
            if not isinstance(shared.key, int) or shared.key < upto:
                html = render(
                    self.app,
                    "dashboard/_ritual_states.html",
                    rituals=self._hub().rituals.describe(),
                )
                shared.key, shared.lines = (
                    upto,
                    partial("#ritual-states", "outerMorph", data_lines(html)),
                )
            return shared.lines

    def _hub(self) -> Any:
        return self.app.extensions["spiral"]


@bp.record_once
def _attach_panels(state) -> None:
    state.app.extensions["spiral.dashboard"] = Panels(state.app)

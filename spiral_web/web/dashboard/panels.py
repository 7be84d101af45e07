"""The statistics panels as one SSE message, shared by every dashboard connection."""

from __future__ import annotations

import threading

from flask import Flask

from . import bp
from .activity import SPARK_STEP, activity
from .frames import html_frame, render


class Panels:
    """Rendered again only when what they show changed (new glints, listeners, or the time window
    moving on), and by one caller at a time: a thousand dashboards cost one render."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._key: object = None
        self._frame = b""

    def current(self) -> tuple[object, bytes]:
        hub = self.app.extensions["spiral"]
        stats = hub.orchestrator.statistics()
        key = (
            stats["total"],
            stats["listeners"],
            stats["stream_sync"],
            int(hub.clock.now() // SPARK_STEP),
        )
        with self._lock:
            if key != self._key:
                html = render(
                    self.app, "dashboard/_panels_event.html", stats=stats, activity=activity(hub)
                )
                self._key, self._frame = key, html_frame(html)
            return self._key, self._frame


@bp.record_once
def _attach_panels(state) -> None:
    state.app.extensions["spiral.dashboard"] = Panels(state.app)

"""Run the app under gunicorn's gevent worker from Python, so that `spiral serve` and a production
`gunicorn -c gunicorn.conf.py wsgi:app` use the same server and the same code paths."""

from __future__ import annotations

import logging
import threading
from typing import Any

from gunicorn.app.base import BaseApplication


class SpiralServer(BaseApplication):
    def __init__(self, options: dict[str, Any], overrides: dict[str, Any] | None = None) -> None:
        self.options = options
        self.overrides = overrides or {}
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key.lower(), value)

    def load(self):
        # Imported here, in the worker, after gevent has patched the standard library.
        from . import create_app

        return create_app(self.overrides)


def post_worker_init(worker) -> None:
    """Make SIGTERM close open streams at once (each is told to reconnect) instead of holding the
    worker until the graceful timeout; clients resume elsewhere with Last-Event-ID."""
    # Route the package's log records (dropped subscribers, ritual failures…) to gunicorn's error
    # log.
    package_log = logging.getLogger("spiral_web")
    package_log.handlers = list(worker.log.error_log.handlers)
    package_log.setLevel(worker.log.error_log.level)
    package_log.propagate = False
    app = worker.wsgi
    spiral = getattr(app, "extensions", {}).get("spiral")
    if spiral is None:
        return
    original = worker.handle_exit

    def handle_exit(sig, frame) -> None:
        original(sig, frame)
        # Not inside the signal handler (it runs as an event-loop callback): the hub takes a lock.
        if "gevent" in type(worker).__module__:
            import gevent

            gevent.spawn(spiral.shutdown)
        else:
            threading.Thread(target=spiral.shutdown, name="spiral-shutdown", daemon=True).start()

    worker.handle_exit = handle_exit
    import signal

    signal.signal(signal.SIGTERM, handle_exit)


def serve(
    host: str,
    port: int,
    workers: int = 1,
    overrides: dict[str, Any] | None = None,
    log_level: str = "info",
) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gevent",
        "worker_connections": 20000,
        "timeout": 30,
        "graceful_timeout": 10,
        "keepalive": 2,
        "loglevel": log_level,
        "accesslog": None,
        "post_worker_init": post_worker_init,
    }
    SpiralServer(options, overrides).run()

"""Run the app under gunicorn's gevent worker from Python, so that `spiral serve` and a production
`gunicorn -c gunicorn.conf.py wsgi:app` use the same server and the same code paths."""

from __future__ import annotations

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


def serve(host: str, port: int, workers: int = 1, overrides: dict[str, Any] | None = None,
          log_level: str = "info") -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gevent",
        "worker_connections": 20000,
        "timeout": 30,
        "graceful_timeout": 10,
        "keepalive": 75,
        "loglevel": log_level,
        "accesslog": None,
    }
    SpiralServer(options, overrides).run()

"""Spiral: a real-time event hub with a breath engine and a live dashboard."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from .config import Config
from .services import Spiral

__all__ = ["create_app", "Config", "ExposureError", "Spiral"]


def _asset_dir(name: str) -> str:
    """templates/ and static/ sit at the repository root in a checkout (and an editable install);
    a wheel carries them inside the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / name, here / name):
        if candidate.is_dir():
            return str(candidate)
    raise RuntimeError(f"cannot find the {name}/ folder next to {here}")


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then SPIRAL_CONFIG's TOML, then SPIRAL_* variables, then
    test_config."""
    config = Config.load(test_config)
    problem = config.exposure_problem()
    if problem:  # here as well as in `spiral serve`, so that `gunicorn wsgi:app` is covered too
        raise ExposureError(problem)
    app = Flask(
        __name__, template_folder=_asset_dir("templates"), static_folder=_asset_dir("static")
    )
    app.config.update(MAX_CONTENT_LENGTH=config.max_body_bytes, JSON_SORT_KEYS=False)
    spiral = Spiral.build(config)
    app.extensions["spiral"] = spiral
    _configure_security(app, config)
    _configure_blueprints(app)
    spiral.start()
    return app


class ExposureError(RuntimeError):
    """The configuration would publish to the network with no tokens (Config.exposure_problem)."""


def _configure_security(app: Flask, config: Config) -> None:
    """Tokens, sessions, CSRF and the request guard (web/auth.py); headers and limits
    (web/security.py)."""
    from .web import auth, security

    auth.init_app(app, config)
    security.init_app(app, config)


def _configure_blueprints(app: Flask) -> None:
    from .web import admin, api, dashboard, errors, ops, rituals, stream, ws

    errors.init_app(app)
    for module in (stream, api, rituals, admin, ops, dashboard):
        app.register_blueprint(module.bp)
    ws.init_app(app)

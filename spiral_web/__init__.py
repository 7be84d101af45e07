"""Spiral: a real-time event hub with a breath engine and a live dashboard.

Nothing is imported here at import time, so that `spiral_web.engine` (and the configuration) can be
used without Flask, flask-sock or gevent; create_app imports the web side when it is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from .config import Config, ConfigError, ExposureError
    from .services import Spiral

__all__ = ["create_app", "Config", "ConfigError", "ExposureError", "Spiral"]


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then SPIRAL_CONFIG's TOML, then SPIRAL_* variables, then
    test_config."""
    from flask import Flask

    from .config import Config, ExposureError
    from .server import listening_addresses, refuse_when_exposed
    from .services import Spiral

    config = Config.load(test_config)
    # The addresses this process already listens on (a gunicorn worker's inherited sockets,
    # whatever -b or GUNICORN_CMD_ARGS said), as well as the host setting.
    config.note_listeners(listening_addresses())
    problem = config.exposure_problem()
    if problem:
        raise ExposureError(problem)
    app = Flask(
        __name__, template_folder=_asset_dir("templates"), static_folder=_asset_dir("static")
    )
    app.config.update(MAX_CONTENT_LENGTH=config.max_body_bytes, JSON_SORT_KEYS=False)
    spiral = Spiral.build(config)
    app.extensions["spiral"] = spiral
    _configure_security(app, config)
    _configure_blueprints(app)
    _configure_ingest(app)
    refuse_when_exposed(app, config)  # servers that bind after this point are checked then
    spiral.start()
    return app


def __getattr__(name: str) -> Any:
    """Config, ConfigError, ExposureError and Spiral, imported on first use."""
    if name in ("Config", "ConfigError", "ExposureError"):
        from . import config

        return getattr(config, name)
    if name == "Spiral":
        from .services import Spiral

        return Spiral
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _asset_dir(name: str) -> str:
    """A wheel carries templates/ and static/ inside the package; a checkout (and an editable
    install) has them at the repository root."""
    here = Path(__file__).resolve().parent
    for candidate in (here / name, here.parent / name):
        if candidate.is_dir():
            return str(candidate)
    raise RuntimeError(f"cannot find the {name}/ folder in or next to {here}")


def _configure_security(app: Flask, config: Config) -> None:
    """Tokens, sessions, CSRF and the request guard (web/auth.py); headers and limits
    (web/security.py)."""
    from .web import auth, security

    auth.init_app(app, config)
    security.init_app(app, config)


def _configure_ingest(app: Flask) -> None:
    """`POST /stream/glint` answered by the gate, in front of Flask (web/ingest.py)."""
    from .web import ingest

    ingest.mount(app, app.extensions["spiral.gate"])


def _configure_blueprints(app: Flask) -> None:
    from .web import admin, api, dashboard, errors, operators, ops, rituals, stream, ws

    errors.init_app(app)
    for module in (stream, api, rituals, admin, operators, ops, dashboard):
        app.register_blueprint(module.bp)
    ws.init_app(app)

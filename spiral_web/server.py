"""How Spiral is served: gunicorn's settings and hooks, one source for `spiral serve` (which runs
gunicorn's gevent worker from Python) and for `gunicorn -c gunicorn.conf.py wsgi:app`; and the
check that the addresses really bound are not open to the network, however the server was started.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson
from gunicorn.app.base import BaseApplication

from .config import Config, ConfigError

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)


def gunicorn_settings(config: Config) -> dict[str, Any]:
    """gunicorn's settings for Spiral, by their gunicorn.conf.py names."""
    return {
        "bind": [bind_address(config.host, config.port)],
        "workers": config.workers,
        # One greenlet per connection. Every SSE stream holds a connection for as long as it is
        # open, so the cap is the number of streams plus requests one worker may hold at once (the
        # process also needs RLIMIT_NOFILE above it: `ulimit -n`, or LimitNOFILE= in systemd).
        "worker_class": "gevent",
        "worker_connections": 20000,
        # Connections waiting to be accepted (a reconnect storm after a restart); the kernel caps
        # it at net.core.somaxconn.
        "backlog": 4096,
        # The worker heartbeat, not a request limit: the gevent worker keeps beating while streams
        # are open, so 30 s only catches a worker whose event loop is stuck.
        "timeout": 30,
        # On SIGTERM, post_worker_init makes every open stream end at once with `event: closing`
        # (clients resume elsewhere with Last-Event-ID); graceful_timeout bounds POSTs in flight.
        "graceful_timeout": 10,
        # Seconds an idle keep-alive connection waits for its next request (publishers reuse them).
        "keepalive": 2,
        # Each worker builds the app after gevent has patched the standard library, and starts its
        # own breath ticker.
        "preload_app": False,
        "accesslog": None,  # a line per glint would cost more than the glint; errors go to stderr
        "errorlog": "-",
        "loglevel": config.log_level,
        "when_ready": refuse_exposure(config),
        "post_worker_init": post_worker_init,
    }


def gunicorn_conf_settings() -> dict[str, Any]:
    """The settings gunicorn.conf.py gives gunicorn: Spiral's configuration from SPIRAL_* and
    SPIRAL_CONFIG; a bad setting stops gunicorn with the configuration's message."""
    try:
        return gunicorn_settings(Config.load())
    except ConfigError as exc:
        print(f"spiral: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def refuse_exposure(config: Config) -> Callable[[Any], None]:
    """A gunicorn `when_ready` hook: once the arbiter has bound its sockets (from the config file,
    -b, or GUNICORN_CMD_ARGS), stop before any worker starts if they reach beyond loopback with
    no publish tokens and not `open`."""

    def when_ready(arbiter: Any) -> None:
        config.note_listeners(_tcp_addresses(listener.sock for listener in arbiter.LISTENERS))
        problem = config.exposure_problem()
        if problem:
            arbiter.halt(reason=problem, exit_status=2)

    return when_ready


def listening_addresses() -> list[tuple[str, int]]:
    """The TCP addresses this process accepts connections on, whoever opened the sockets: the
    listeners a gunicorn worker inherits, a development server's, systemd's. Empty where the
    process's descriptors cannot be listed."""
    try:
        fds = [int(name) for name in os.listdir("/dev/fd")]
    except OSError:
        return []
    sockets = []
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sockets.append(socket.socket(fileno=os.dup(fd)))  # a copy: the server keeps its own
        except OSError:  # the descriptor of the listing itself, or one closed meanwhile
            continue
    try:
        return _tcp_addresses(sockets)
    finally:
        for sock in sockets:
            sock.close()


def _tcp_addresses(sockets: Iterable[socket.socket]) -> list[tuple[str, int]]:
    found = []
    for sock in sockets:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            continue  # a Unix socket reaches this machine only
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                host, port = sock.getsockname()[:2]
                found.append((host, port))
        except OSError:
            continue
    return found


def refuse_when_exposed(app: Flask, config: Config) -> None:
    """Look again at the addresses listened on before the first request: a server started some
    other way (flask run, waitress, gunicorn --preload) binds only after create_app. If they reach
    beyond loopback with no publish tokens, every request is refused (503), and that is logged."""
    serve = app.wsgi_app
    verdict: list[bytes | None] = []  # one check per process, on the first request

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not verdict:
            config.note_listeners(listening_addresses())
            problem = config.exposure_problem()
            if problem:
                log.error("spiral: %s", problem)
            body = orjson.dumps({"error": "exposed", "message": problem}) if problem else None
            verdict.append(body)
        body = verdict[0]
        if body is None:
            return serve(environ, start_response)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response("503 Service Unavailable", headers)
        return [body]

    app.wsgi_app = guarded  # type: ignore[method-assign]


class SpiralServer(BaseApplication):
    """gunicorn run from Python with Spiral's settings: what `spiral serve` starts."""

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
    worker until the graceful timeout; clients resume elsewhere with Last-Event-ID. In a gevent
    worker, let the hub write to caught-up streams' sockets itself."""
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
    gevent_worker = "gevent" in type(worker).__module__
    plain_http = not worker.cfg.is_ssl and getattr(worker.cfg, "protocol", "http") == "http"
    if gevent_worker and plain_http:
        # Sockets whose descriptor gevent keeps non-blocking, bodies framed as HTTP/1 chunks: the
        # hub may write to a caught-up stream's socket itself (web/stream.py, SocketWriter).
        app.extensions["spiral.direct_writes"] = True
    original = worker.handle_exit

    def shutdown() -> None:
        spiral.hub.close()  # first: open streams are told `closing`, new ones are told at once
        spiral.shutdown()

    def handle_exit(sig, frame) -> None:
        original(sig, frame)
        # Not inside the signal handler (it runs as an event-loop callback): the hub takes a lock.
        if gevent_worker:
            import gevent

            gevent.spawn(shutdown)
        else:
            threading.Thread(target=shutdown, name="spiral-shutdown", daemon=True).start()

    worker.handle_exit = handle_exit
    signal.signal(signal.SIGTERM, handle_exit)


def serve(
    host: str,
    port: int,
    workers: int = 1,
    overrides: dict[str, Any] | None = None,
    log_level: str = "info",
    config: Config | None = None,
) -> None:
    """Run Spiral under gunicorn's gevent worker until it is stopped."""
    settings = gunicorn_settings(config or Config.load(overrides))
    settings.update(bind=[bind_address(host, port)], workers=workers, loglevel=log_level)
    SpiralServer(settings, overrides).run()

"""Production gunicorn settings for Spiral: `gunicorn -c gunicorn.conf.py wsgi:app`.

The same options `spiral serve` passes to gunicorn (spiral_web/server.py); keep the two in step.
Environment: SPIRAL_HOST / SPIRAL_PORT (default 127.0.0.1:5056), SPIRAL_WORKERS (default 1; more
than one needs the Redis backend, SPIRAL_REDIS_URL), and every other SPIRAL_* setting the app reads.
No preload: each worker builds the app after gevent has patched the standard library, and starts its
own breath ticker.
"""

import os

from spiral_web.server import post_worker_init  # noqa: F401  (a gunicorn hook, read by name)

_host = os.environ.get("SPIRAL_HOST", "127.0.0.1")
_port = os.environ.get("SPIRAL_PORT", "5056")

bind = [f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"]
workers = int(os.environ.get("SPIRAL_WORKERS", "1"))

# One greenlet per connection. Every SSE stream holds a connection for as long as it is open, so the
# cap is the number of streams plus requests one worker may hold at once (the process also needs
# RLIMIT_NOFILE above it: `ulimit -n`, or LimitNOFILE= in a systemd unit).
worker_class = "gevent"
worker_connections = 20000
# Connections waiting to be accepted (a reconnect storm after a restart); the kernel caps it at
# net.core.somaxconn.
backlog = 4096

# `timeout` is the worker heartbeat, not a request limit: the gevent worker keeps beating while
# streams are open, so 30 s only catches a worker whose event loop is stuck.
timeout = 30
# On SIGTERM, post_worker_init makes every open stream end at once with `event: closing` (clients
# resume elsewhere with Last-Event-ID); graceful_timeout bounds the POSTs still in flight.
graceful_timeout = 10
# Seconds an idle keep-alive connection waits for its next request (publishers reuse connections).
keepalive = 2

preload_app = False
accesslog = None  # one line per glint would cost more than the glint; errors still go to stderr
errorlog = "-"
loglevel = os.environ.get("SPIRAL_LOG_LEVEL", "info")

"""Response headers (Content-Security-Policy and friends) and the limits with clear answers:
a token bucket per source (429 with Retry-After) and a cap on subscribers per process (503 with
Retry-After). Body size (413), content type (415), schema (422), WebSocket frame size and context
depth and keys are bounded where they are read (app config, web/stream.py, engine/glints.py, ws.py).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request

from ..config import Config
from ..engine.breath import Refusal
from ..engine.orchestrator import Refused
from .common import error, source, spiral

# Scripts only from this site: no inline script, no eval (htmx 4 would need 'unsafe-eval' only for
# hx-on:* attributes and trigger filters, which the templates do not use). Styles: the stylesheet
# is ours, and `style-src-elem 'self'` keeps <style> elements out; the templates set CSS custom
# properties in style="" attributes (the breath glyph's timing, bar widths), which
# `style-src-attr 'unsafe-inline'` allows. An attribute can only style, not run anything, and
# every value in one is rendered by the server from numbers, never from glint text.
# `style-src` repeats both for browsers without the -elem/-attr directives.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "style-src-elem 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # stream URLs may carry ?token=: never pass them on
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

LIMITED = frozenset({"stream.emit", "dashboard.emit", "auth.sign_in_post"})
SUBSCRIBING = frozenset({"stream.stream", "dashboard.stream", "ws.websocket"})


def init_app(app: Flask, config: Config) -> None:
    rate, burst = config.rate()
    app.extensions["spiral.limiter"] = SourceLimiter(rate, burst) if rate else None
    app.before_request(_limits)
    app.after_request(_headers)


def _headers(response: Response) -> Response:
    headers = response.headers
    if "Content-Security-Policy" not in headers:  # the usual case: one extend, no lookups
        headers.extend(HEADERS)
    else:
        for name, value in HEADERS.items():
            headers.setdefault(name, value)
    return response


def _limits() -> Any:
    endpoint = request.endpoint
    if endpoint in LIMITED and request.method == "POST":
        check_rate(source())
    elif endpoint in SUBSCRIBING:
        hub = spiral()
        cap = hub.config.max_subscribers
        if hub.hub.local_listeners >= cap:
            wait = random.randint(2, 8)  # spread the reconnects
            response = error(
                503,
                "too_many_listeners",
                f"this server already has {cap} listeners; try again in {wait} s",
                retry_after=wait,
            )
            response.headers["Retry-After"] = str(wait)
            return response
    return None


def check_rate(who: str) -> None:
    """Raise RateLimited (429, Retry-After) when `who` has used up its bucket."""
    limiter: SourceLimiter | None = current_app.extensions.get("spiral.limiter")
    if limiter is None:
        return
    wait = limiter.take(who)
    if wait is not None:
        raise RateLimited(wait, limiter.rate)


class RateLimited(Refused):
    """A source sent faster than its rate: 429 with Retry-After (answered like the throttle)."""

    def __init__(self, retry_after: int, rate: float) -> None:
        super().__init__(Refusal("throttled", retry_after, ""))
        self.error = "rate_limited"
        self.message = (
            f"this source may send {rate:g} glints a second; try again in {retry_after} s"
        )


class SourceLimiter:
    """A token bucket per source: `rate` tokens a second, at most `burst` saved up.

    Independent of the throttle ritual (which pauses everyone when the hub is loaded): this one
    keeps one source from taking the whole hub. Per process; thread- and greenlet-safe. At most
    `max_sources` buckets are kept, least recently used dropped first (a dropped bucket was idle,
    so it would be full again anyway unless the hub is flooded by that many sources)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = 100_000,
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.clock = clock
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> int | None:
        """Take one token: None when allowed, else whole seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                allowed = True
            else:
                self._buckets[key] = (tokens, now)
                allowed = False
            while len(self._buckets) > self.max_sources:
                self._buckets.popitem(last=False)
        if allowed:
            return None
        return max(1, math.ceil((1.0 - tokens) / self.rate))

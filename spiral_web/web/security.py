"""Response headers (Content-Security-Policy and friends) and the limits with clear answers:
a token bucket per source (429 with Retry-After) for views declared `rate_limited`, and a cap on
subscribers per process (503 with Retry-After) for views declared a `stream` (web/access.py).
Body size (413), content type (415), schema (422), WebSocket frame size and context depth and keys
are bounded where they are read (app config, web/access.py, engine/glints.py, ws.py).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from flask import Flask, Response, current_app, request

from ..config import Config
from .access import declared
from .common import source, spiral
from .errors import RateLimited, Unavailable

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


def _limits() -> None:
    access = declared(request.endpoint)
    if access is None:
        return
    if access.rate_limited and request.method == "POST":
        check_rate(source())
    elif access.stream is not None:
        hub = spiral()
        cap = hub.config.max_subscribers
        if hub.hub.local_listeners >= cap:
            wait = random.randint(2, 8)  # spread the reconnects
            raise Unavailable(
                "too_many_listeners",
                f"this server already has {cap} listeners; try again in {wait} s",
                retry_after=wait,
            )


def check_rate(who: str) -> None:
    """Raise RateLimited (429, Retry-After) when `who` has used up its bucket."""
    limiter: SourceLimiter | None = current_app.extensions.get("spiral.limiter")
    if limiter is None:
        return
    wait = limiter.take(who)
    if wait is not None:
        raise RateLimited(wait, limiter.rate)


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

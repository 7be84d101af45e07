"""Response headers (Content-Security-Policy and friends) and the limits with clear answers:
a token bucket per source, shared by the hub's workers (429 with Retry-After) for views declared
`rate_limited`, and a cap on subscribers per process and a share of it per client (503 with
Retry-After) for views declared a `stream` (web/access.py).
Body size (413), content type (415), schema (422), WebSocket frame size and context depth and keys
are bounded where they are read (app config, web/access.py, engine/glints.py, ws.py).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request

from ..bus.cluster import retry_seconds
from ..config import Config
from ..services import Spiral
from .access import declared
from .common import address, source, spiral
from .errors import RateLimited, Unavailable
from .gate import Gate

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

# A JSON answer is data, never a page: nothing in it may load or run, and nothing may frame it.
# Two headers say so (what OWASP's REST cheat sheet gives API answers), stricter than the page's
# policy and without the headers only a page reads (referrer, opener, the older frame header).
# gunicorn checks every header of every answer: on the ingest path the page's five cost about
# 7 µs a POST more than these two (measured: BENCHMARKS.md, ingest).
API_CSP = "default-src 'none'; frame-ancestors 'none'"
API_HEADERS = {"Content-Security-Policy": API_CSP, "X-Content-Type-Options": "nosniff"}


def init_app(app: Flask, config: Config) -> None:
    """The gate before Flask (Host names, bodies within a deadline: web/gate.py), the limits
    before each view, the headers after it."""
    gate = app.extensions["spiral.gate"] = Gate(app.wsgi_app, config)
    app.wsgi_app = gate  # type: ignore[method-assign]
    rate, burst = config.rate()
    app.extensions["spiral.limiter"] = SourceLimiter(rate, burst) if rate else None
    per_client = config.max_subscribers_per_client or max(1, config.max_subscribers // 2)
    app.extensions["spiral.stream_shares"] = StreamShares(per_client)
    app.before_request(_limits)
    app.after_request(_hand_back_share)
    app.teardown_request(_release_share)
    app.after_request(_headers)


def _headers(response: Response) -> Response:
    headers = response.headers
    chosen = API_HEADERS if response.mimetype == "application/json" else HEADERS
    if "Content-Security-Policy" not in headers:  # the usual case: one extend, no lookups
        headers.extend(chosen)
    else:
        for name, value in chosen.items():
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
        _take_share()


def _take_share() -> None:
    """One stream of this client's share (503 when it holds its share already): a token's name,
    or the address of an anonymous client. Given back when the stream ends (_hand_back_share)."""
    who = g.get("spiral_principal")
    client = f"token:{who.name}" if who is not None else f"address:{address()}"
    shares: StreamShares = current_app.extensions["spiral.stream_shares"]
    if not shares.take(client):
        wait = random.randint(2, 8)
        named = f"the token {who.name!r}" if who is not None else f"the address {address()}"
        raise Unavailable(
            "too_many_streams_for_client",
            f"{named} already holds {shares.per_client} streams on this server, as many as one "
            f"client may; close one, or try again in {wait} s",
            retry_after=wait,
        )
    g.spiral_share = client


def _hand_back_share(response: Response) -> Response:
    """A stream gives its share back when its response is closed (the reader left, or was
    dropped); a refusal or a WebSocket, whose view has ended, at once."""
    client = g.pop("spiral_share", None)
    if client is not None:
        shares: StreamShares = current_app.extensions["spiral.stream_shares"]
        if response.is_streamed:
            response.call_on_close(lambda: shares.give_back(client))
        else:
            shares.give_back(client)
    return response


def _release_share(_exc: BaseException | None) -> None:
    """Should the request end without a response passing _hand_back_share, the share is freed."""
    client = g.pop("spiral_share", None)
    if client is not None:
        current_app.extensions["spiral.stream_shares"].give_back(client)


class StreamShares:
    """How many streams each client holds in this process, and at most `per_client` each. Per
    process, like max_subscribers: with N workers a client may hold N shares."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> bool:
        with self._lock:
            held = self._held.get(client, 0)
            if held >= self.per_client:
                return False
            self._held[client] = held + 1
            return True

    def give_back(self, client: str) -> None:
        with self._lock:
            held = self._held.get(client, 0) - 1
            if held > 0:
                self._held[client] = held
            else:
                self._held.pop(client, None)


def check_rate(who: str) -> None:
    """Raise RateLimited (429, Retry-After) when `who` has used up its bucket."""
    problem = rate_refusal(current_app.extensions.get("spiral.limiter"), spiral(), who)
    if problem is not None:
        raise problem


def rate_refusal(limiter: SourceLimiter | None, hub: Spiral, who: str) -> RateLimited | None:
    """Take one token of `who`'s bucket: the 429 when it is empty, else None (and always None
    when no rate is set)."""
    if limiter is None:
        return None
    wait = limiter.take(who, hub)
    return None if wait is None else RateLimited(wait, limiter.rate)


@dataclass(frozen=True)
class SourceLimiter:
    """A token bucket per source: `rate` tokens a second, at most `burst` saved up.

    Independent of the throttle ritual (which pauses everyone when the hub is loaded): this one
    keeps one source from taking the whole hub. The buckets are the cluster's (`take`), so a
    source has one bucket across every worker and host of the hub (in Redis when joined), and
    they fill with the hub's clock."""

    rate: float
    burst: float

    def take(self, who: str, hub: Spiral) -> int | None:
        """Take one token: None when allowed, else whole seconds until one is available."""
        wait = hub.cluster.take(f"source:{who}", hub.clock.now(), self.rate, max(1.0, self.burst))
        return None if wait is None else retry_seconds(wait)

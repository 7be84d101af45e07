"""Guessing tokens is throttled: failed authentication takes from the address's bucket in the
cluster (shared by every worker and host); once it is empty, every attempt to authenticate from
that address — right token or wrong — is answered 429 until a token is back.

Refusing right tokens too is the point: were only the wrong ones refused, a guesser would still
see which guess was right. The price is that other clients at the same address (this machine, a
proxy that does not pass the client's address) cannot use a token while the guessing lasts; a
signed-in session is not affected (it carries no token to check).

Only new wrong secrets count: a client that repeats the same wrong token (one left with a rotated
token) is told 403 each time, and uses one token of the bucket per REPEAT_WINDOW. Nothing counts
on a hub with no tokens configured, where a token is never needed.

Which addresses are throttled is known per process: a worker learns it when a failure there finds
the shared bucket empty, so across N workers at most about N more guesses get through per wait.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from flask import current_app

from ...bus.cluster import retry_seconds
from ..errors import TooManyFailures

if TYPE_CHECKING:
    from ...services import Spiral

GUESS_BURST = 20  # failures from one address before it is throttled
GUESS_RATE = 0.2  # failures a second it may make after that (12 a minute)
REPEAT_WINDOW = 600  # seconds during which the same wrong secret from one address counts once
MAX_ADDRESSES = 10_000  # throttled addresses remembered per process (the oldest go first)


class GuessThrottle:
    """Addresses throttled in this process (until when, engine time); the buckets are the
    cluster's."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._until: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def refusal(self, who: str, hub: Spiral) -> TooManyFailures | None:
        """The 429 for the address `who` while it is throttled; else None."""
        now = hub.clock.now()
        with self._lock:
            until = self._until.get(who)
            if until is not None and until <= now:
                del self._until[who]
                until = None
        return None if until is None else TooManyFailures(retry_seconds(until - now))

    def failed(self, given: str, who: str, hub: Spiral) -> TooManyFailures | None:
        """Count a wrong secret from the address `who`; the 429 when that empties its bucket,
        else None."""
        digest = hmac.new(self._key, given.encode(), hashlib.sha256).hexdigest()[:24]
        if not hub.cluster.claim(f"authfail:{who}:{digest}", REPEAT_WINDOW):
            return None  # the same wrong secret again: a stale client, not a guesser
        now = hub.clock.now()
        wait = hub.cluster.take(f"authfail:{who}", now, GUESS_RATE, GUESS_BURST)
        if wait is None:
            return None
        with self._lock:
            self._until[who] = now + wait
            self._until.move_to_end(who)
            while len(self._until) > MAX_ADDRESSES:
                self._until.popitem(last=False)
        return TooManyFailures(retry_seconds(wait))


def throttle() -> GuessThrottle:
    """This app's throttle."""
    return current_app.extensions["spiral.guess_throttle"]

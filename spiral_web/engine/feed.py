"""What one listener receives, whatever the transport (SSE, dashboard SSE, WebSocket): the events it
missed since its resume point, then live events, each replayable event exactly once and in order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import orjson

from .events import Event, Filters


class Dropped(Exception):
    """Raised by a subscription that fell too far behind; `reason` says how far."""

    reason: str


class Subscription(Protocol):
    closed: bool

    def wait(self, timeout: float) -> list[Event]: ...

    def close(self) -> None: ...


class ReplayStore(Protocol):
    def seq_bounds(self) -> tuple[int, int]: ...

    def replay_after(
        self, seq: int, module: str | None, phase: str | None, limit: int
    ) -> list[Event]: ...


def notice(kind: str, **payload: object) -> Event:
    """A named control event without an id (not replayable)."""
    return Event(kind, orjson.dumps(payload))


def listener_feed(
    sub: Subscription,
    store: ReplayStore,
    resume: int | None,
    filters: Filters,
    heartbeat: float,
    replay_limit: int,
) -> Iterator[list[Event] | None]:
    """Batches of events for one listener; `None` means nothing happened for `heartbeat` seconds.

    Subscribe *before* calling this, so nothing falls between history and the live feed: an event
    with a seq at or below the last one sent is a duplicate and is skipped. Ends after a `dropped`
    or `closing` notice, and closes the subscription when the consumer stops.
    """
    try:
        last = -1
        if resume is not None:
            last = resume
            for batch, upto in _replay(store, resume, filters, replay_limit):
                last = upto
                yield batch
        while True:
            try:
                events = sub.wait(heartbeat)
            except Exception as exc:  # the hub's SubscriberDropped
                reason = getattr(exc, "reason", None)
                if reason is None:
                    raise
                yield [
                    notice(
                        "dropped",
                        reason=reason,
                        last_id=last,
                        message="reconnect with Last-Event-ID to resume",
                    )
                ]
                return
            if not events and not sub.closed:
                yield None
                continue
            batch = []
            for event in events:
                if event.seq is not None:
                    if event.seq <= last:
                        continue
                    last = event.seq
                batch.append(event)
            if sub.closed:
                batch.append(
                    notice(
                        "closing", reason="server shutting down; reconnect to resume", last_id=last
                    )
                )
            if batch:
                yield batch
            if sub.closed:
                return
    finally:
        sub.close()


def _replay(
    store: ReplayStore, resume: int, filters: Filters, limit: int
) -> Iterator[tuple[list[Event], int]]:
    """(batch, last seq looked at) pages of what was stored after `resume`."""
    oldest, newest = store.seq_bounds()
    if oldest and resume + 1 < oldest:
        yield (
            [
                notice(
                    "replay_gap",
                    requested_after=resume,
                    oldest_available=oldest,
                    message="history no longer reaches that far; replaying from the oldest kept",
                )
            ],
            resume,
        )
    after, sent = resume, 0
    phase = next(iter(filters.phases)) if len(filters.phases) == 1 else None
    pattern = filters.pattern()
    while sent < limit:
        page = store.replay_after(after, filters.module, phase, min(500, limit - sent))
        if not page:
            return
        after = page[-1].seq or after
        batch = [e for e in page if e.matches(filters, pattern)]
        sent += len(batch)
        if batch:
            yield batch, after
    if after < newest:
        yield (
            [
                notice(
                    "replay_truncated",
                    replayed_upto=after,
                    newest=newest,
                    message=f"replay stops after {limit} events; page the rest from /api/glints",
                )
            ],
            after,
        )

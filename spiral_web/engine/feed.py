"""What one listener receives, whatever the transport (SSE, dashboard SSE, WebSocket): the events it
missed since its resume point, then live events, each replayable event exactly once and in order.

A resume point the record no longer holds — inside a range lost when the record was restored from
a backup, or above anything it has — gets a `reset` notice (the listener's view holds events that
are gone: it should start afresh), never a silent skip. While the record cannot be reached, a
resuming listener is told (`unavailable`), kept open, and replayed when the record answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import orjson

from .events import Event, Filters
from .ports import Epoch, RecordUnavailable, SubscriberDropped, Subscription


class ReplayStore(Protocol):
    def seq_bounds(self) -> tuple[int, int]: ...

    def replay_after(
        self, seq: int, module: str | None, phase: str | None, limit: int
    ) -> list[Event]: ...

    def epoch(self) -> Epoch: ...


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
    written: Callable[[], int] = lambda: -1,
) -> Iterator[list[Event] | None]:
    """Batches of events for one listener; `None` means nothing happened for `heartbeat` seconds.

    Subscribe *before* calling this, so nothing falls between history and the live feed: an event
    with a seq at or below the last one sent is a duplicate and is skipped. Ends after a `dropped`
    or `closing` notice, and closes the subscription when the consumer stops. `written()` is the
    newest seq the hub wrote to the listener itself (events that never pass through here), so that
    a notice names the listener's true resume point. A subscription closed already (the hub is
    shutting down) gets `closing` at once, without a replay.
    """
    try:
        if sub.closed:
            yield [_closing(resume if resume is not None else -1)]
            return
        last = -1
        held: list[Event] = []  # live events that came while the record was away
        if resume is not None:
            last, told, checked = resume, False, False
            while True:
                try:
                    if not checked:
                        last, reset = _resume_point(store, resume)
                        checked = True
                        if reset is not None:
                            yield [reset]
                    for batch, upto in _replay(store, last, filters, replay_limit):
                        last = upto
                        yield batch
                    break
                except RecordUnavailable as exc:
                    if not told:
                        told = True
                        yield [notice("unavailable", last_id=last, message=str(exc))]
                    try:
                        held += sub.wait(min(heartbeat, exc.retry_after))
                    except SubscriberDropped as drop:
                        yield _dropped(drop, last)
                        return
                    yield None
        while True:
            try:
                events, held = held + sub.wait(0 if held else heartbeat), []
            except SubscriberDropped as exc:
                yield _dropped(exc, max(last, written()))
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
                batch.append(_closing(max(last, written())))
            if batch:
                yield batch
            if sub.closed:
                return
    finally:
        sub.close()


def _closing(last: int) -> Event:
    return notice("closing", reason="server shutting down; reconnect to resume", last_id=last)


def _dropped(exc: SubscriberDropped, last: int) -> list[Event]:
    """The `dropped` notice for a subscription the hub gave up on."""
    return [
        notice(
            "dropped",
            reason=exc.reason,
            last_id=last,
            message="reconnect with Last-Event-ID to resume",
        )
    ]


def _resume_point(store: ReplayStore, resume: int) -> tuple[int, Event | None]:
    """Where replay starts for a listener that saw up to `resume`, and a `reset` notice when the
    record no longer holds what it saw."""
    epoch = store.epoch()
    newest = store.seq_bounds()[1]
    lost = epoch.lost_range(resume)
    if lost is None and resume <= newest:
        return resume, None
    if lost is not None:
        message = (
            f"the hub's record was restored from a backup and lost events {lost[0]}..{lost[1]}, "
            "some of which you saw: discard what you hold and start afresh"
        )
        start = resume  # nothing after it exists up to the end of the lost range
    else:
        message = (
            f"the hub's record ends at {newest}, before the {resume} you resumed after (restored "
            "from a backup, or another hub): discard what you hold and start afresh"
        )
        start = newest
    return start, notice(
        "reset", last_id=resume, resumes_after=start, epoch=epoch.number, message=message
    )


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

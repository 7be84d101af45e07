"""A listener's feed (engine/feed.py), as every transport relies on it: what it missed, then live
events, each once and in seq order; a notice (never a silent skip) when its resume point is gone,
when history is cut short, when the record is away, when the hub drops or closes it.

Real SQLite record and in-process hub (the `make` fixture); a record whose oldest history was cut
away (KeptFrom) stands in where SQLite keeps everything. The feed's only clock is how long it asks
its subscription to wait, so a scripted subscription records those waits instead of sleeping.
"""

from __future__ import annotations

import itertools

import orjson
import pytest

from spiral_web.bus import MemoryHub
from spiral_web.engine.events import Event, Filters
from spiral_web.engine.feed import listener_feed
from spiral_web.engine.ports import Epoch, RecordUnavailable

from .parts import ONLY_CUSTOM, emit

HEARTBEAT = 15.0
EVERYTHING = Filters()


def take(feed, n: int = 1) -> list[list[Event] | None]:
    """The next `n` things the feed yields (a batch, or None for a quiet heartbeat)."""
    return list(itertools.islice(feed, n))


def until_quiet(feed) -> list[list[Event]]:
    """The batches the feed yields until it has nothing more (its first heartbeat)."""
    batches = []
    for batch in feed:
        if batch is None:
            return batches
        batches.append(batch)
    return batches


def seqs(batches) -> list[int | None]:
    return [e.seq for batch in batches for e in batch]


def payload(event: Event) -> dict:
    return orjson.loads(event.data)


class ScriptedSub:
    """A subscription whose waits return what the test scripted (an exception is raised), and
    that remembers each timeout it was asked to wait: the feed's clock, without sleeping."""

    def __init__(self, *script) -> None:
        self.script = list(script)
        self.waits: list[float] = []
        self.closed = False

    def wait(self, timeout: float) -> list[Event]:
        self.waits.append(timeout)
        step = self.script.pop(0) if self.script else []
        if isinstance(step, BaseException):
            raise step
        return step

    def close(self) -> None:
        self.closed = True


class AwayStore:
    """The real record, unreachable for its next `down` calls (a database restarting)."""

    def __init__(self, store, down: int) -> None:
        self.store, self.down, self.calls = store, down, 0

    def _reach(self) -> None:
        self.calls += 1
        if self.down:
            self.down -= 1
            raise RecordUnavailable("database is restarting", retry_after=1)

    def seq_bounds(self) -> tuple[int, int]:
        self._reach()
        return self.store.seq_bounds()

    def replay_after(self, seq, module, phase, limit) -> list[Event]:
        self._reach()
        return self.store.replay_after(seq, module, phase, limit)

    def epoch(self) -> Epoch:
        self._reach()
        return self.store.epoch()


class KeptFrom:
    """A record that keeps seqs from `oldest` on (older ones were cut away)."""

    def __init__(self, oldest: int, newest: int) -> None:
        self.events = [
            Event("glint_emission", b"{}", s, "a.b", "inhale") for s in range(oldest, newest + 1)
        ]

    def seq_bounds(self) -> tuple[int, int]:
        return (self.events[0].seq, self.events[-1].seq)

    def replay_after(self, seq, module, phase, limit) -> list[Event]:
        return [e for e in self.events if e.seq > seq][:limit]

    def epoch(self) -> Epoch:
        return Epoch()


@pytest.fixture
def hub(make):
    return make(ONLY_CUSTOM)


def feed_of(parts, resume, *, filters=EVERYTHING, heartbeat=0.0, limit=1000, written=lambda: -1):
    """A listener subscribed now (before its history is read, as the transports do)."""
    sub = parts.hub.subscribe(filters)
    return sub, listener_feed(sub, parts.store, resume, filters, heartbeat, limit, written)


# -- history, then live, each once and in order ------------------------------------------------


def test_a_resuming_listener_gets_what_it_missed_then_live_events_each_once_in_order(hub):
    for _ in range(3):
        emit(hub)
    sub, feed = feed_of(hub, resume=1)
    emit(hub)  # stored and published after the subscription: both in its history and live
    emit(hub)
    assert seqs(until_quiet(feed)) == [2, 3, 4, 5]
    emit(hub)
    emit(hub)
    assert seqs(until_quiet(feed)) == [6, 7]


def test_live_events_that_came_together_arrive_as_one_batch(hub):
    sub, feed = feed_of(hub, resume=None)
    for _ in range(4):
        emit(hub)
    assert [seqs([b]) for b in until_quiet(feed)] == [[1, 2, 3, 4]]


def test_a_listener_without_a_resume_point_gets_only_what_comes_after_it_subscribed(hub):
    emit(hub)
    emit(hub)
    sub, feed = feed_of(hub, resume=None)
    assert until_quiet(feed) == []
    emit(hub)
    assert seqs(until_quiet(feed)) == [3]


def test_events_without_a_seq_are_passed_on_not_taken_for_duplicates(hub):
    emit(hub)
    emit(hub)
    sub, feed = feed_of(hub, resume=0)
    hub.hub.publish("breath", {"phase": "hold"})
    batches = until_quiet(feed)
    assert [(e.kind, e.seq) for b in batches for e in b] == [
        ("glint_emission", 1),
        ("glint_emission", 2),
        ("breath", None),
    ]


def test_the_replay_honours_the_listeners_filters(hub):
    emit(hub, module="a.b")
    emit(hub, module="memory.scroll")
    emit(hub, module="c.d")
    emit(hub, module="memory.keeper")
    sub, feed = feed_of(hub, resume=0, filters=Filters(module="memory.*"))
    events = [e for b in until_quiet(feed) for e in b]
    assert [(e.seq, e.module) for e in events] == [(2, "memory.scroll"), (4, "memory.keeper")]


def test_the_replay_honours_a_filter_on_several_phases(hub):
    for phase in ("inhale", "exhale", "hold", "return"):
        emit(hub, phase=phase)
    sub, feed = feed_of(hub, resume=0, filters=Filters(phases=frozenset({"inhale", "hold"})))
    events = [e for b in until_quiet(feed) for e in b]
    assert [(e.seq, e.phase) for e in events] == [(1, "inhale"), (3, "hold")]


# -- history it cannot give in full: said, never skipped silently ------------------------------


def test_a_replay_longer_than_the_limit_stops_with_a_notice_to_page_the_rest(hub):
    for _ in range(5):
        emit(hub)
    sub, feed = feed_of(hub, resume=0, limit=2)
    batches = until_quiet(feed)
    assert seqs(batches[:1]) == [1, 2]
    (notice,) = batches[1]
    assert (notice.kind, notice.seq) == ("replay_truncated", None)  # not replayable itself
    assert payload(notice)["replayed_upto"] == 2
    assert payload(notice)["newest"] == 5
    assert len(batches) == 2


def test_a_resume_point_older_than_the_history_kept_is_told_then_replayed_from_the_oldest():
    store = KeptFrom(oldest=10, newest=12)
    sub = ScriptedSub()
    feed = listener_feed(sub, store, 3, Filters(), HEARTBEAT, 1000)
    gap, replay = take(feed, 2)
    assert [e.kind for e in gap] == ["replay_gap"]
    assert payload(gap[0])["requested_after"] == 3
    assert payload(gap[0])["oldest_available"] == 10
    assert seqs([replay]) == [10, 11, 12]


def test_a_resume_point_beyond_the_record_is_reset_and_new_events_still_arrive(hub):
    for _ in range(3):
        emit(hub)
    sub, feed = feed_of(hub, resume=99)  # e.g. the record was restored from an older backup
    (reset,) = take(feed)[0]
    assert reset.kind == "reset"
    assert payload(reset)["last_id"] == 99
    assert payload(reset)["resumes_after"] == 3
    emit(hub)  # seq 4: below the 99 the listener saw, and new to it all the same
    assert seqs(until_quiet(feed)) == [4]


def test_a_resume_point_inside_a_range_the_record_lost_is_reset(hub):
    for _ in range(3):
        emit(hub)
    hub.store.fence(10, 20, hub.clock.now())  # restored from a backup: seqs 4..20 are lost
    sub, feed = feed_of(hub, resume=7)
    (reset,) = take(feed)[0]
    assert reset.kind == "reset"
    assert payload(reset)["epoch"] == 1
    assert "lost events 4..20" in payload(reset)["message"]
    emit(hub)
    assert seqs(until_quiet(feed)) == [21]


def test_a_resume_point_the_record_holds_gets_no_reset(hub):
    for _ in range(3):
        emit(hub)
    sub, feed = feed_of(hub, resume=3)
    assert until_quiet(feed) == []


# -- waiting: heartbeats, and the record away --------------------------------------------------


def test_a_quiet_feed_yields_a_heartbeat_after_waiting_the_heartbeat(hub):
    sub = ScriptedSub([], [])
    feed = listener_feed(sub, hub.store, None, Filters(), HEARTBEAT, 1000)
    assert take(feed, 2) == [None, None]
    assert sub.waits == [HEARTBEAT, HEARTBEAT]


def test_while_the_record_is_away_a_resuming_listener_is_told_once_then_replayed(hub):
    for _ in range(4):
        emit(hub)
    # came live while the record was away: a glint it also holds, and the breath turning
    live = [Event("glint_emission", b"{}", 4, "a.b", "inhale"), Event("breath", b"{}")]
    sub = ScriptedSub([], live)
    store = AwayStore(hub.store, down=2)
    feed = listener_feed(sub, store, 1, Filters(), HEARTBEAT, 1000)
    told, quiet, still = take(feed, 3)
    assert [e.kind for e in told] == ["unavailable"]
    assert payload(told[0])["last_id"] == 1
    assert (quiet, still) == (None, None)  # open, heartbeating, not told again
    assert sub.waits == [1, 1]  # the record's retry_after, shorter than the heartbeat
    batches = until_quiet(feed)
    assert seqs(batches) == [2, 3, 4, None]  # the live copy of 4 is not sent twice
    assert batches[-1][0].kind == "breath"  # and what came meanwhile is not lost
    assert not sub.closed


# -- endings: dropped, closing, the consumer leaving -------------------------------------------


def test_a_listener_the_hub_drops_is_told_where_to_resume_and_the_feed_ends():
    small = MemoryHub(capacity=4)
    sub = small.subscribe()
    feed = listener_feed(sub, KeptFrom(1, 1), None, Filters(), 0.0, 1000, written=lambda: 7)
    for seq in range(1, 11):
        small.publish("glint_emission", {}, seq=seq)
    (dropped,) = take(feed)[0]
    assert dropped.kind == "dropped"
    assert "behind" in payload(dropped)["reason"]
    assert payload(dropped)["last_id"] == 7  # what the hub itself wrote to the listener
    assert take(feed) == []
    assert sub.closed and small.listeners == 0


def test_a_failure_that_is_not_a_drop_is_raised_not_dressed_up_as_one(hub):
    sub = ScriptedSub(RuntimeError("socket exploded"))
    feed = listener_feed(sub, hub.store, None, Filters(), HEARTBEAT, 1000)
    with pytest.raises(RuntimeError, match="socket exploded"):
        take(feed)
    assert sub.closed


def test_a_closing_hub_ends_the_feed_after_what_it_had_with_a_closing_notice(hub):
    sub, feed = feed_of(hub, resume=None)
    assert take(feed) == [None]  # the feed is running
    emit(hub)
    emit(hub)
    hub.hub.close()
    batch = take(feed)[0]
    assert [(e.kind, e.seq) for e in batch] == [
        ("glint_emission", 1),
        ("glint_emission", 2),
        ("closing", None),
    ]
    assert payload(batch[-1])["last_id"] == 2
    assert take(feed) == []


def test_a_subscription_closed_before_the_feed_starts_is_told_closing_without_a_replay(hub):
    emit(hub)
    hub.hub.close()
    store = AwayStore(hub.store, down=0)
    sub = hub.hub.subscribe()
    feed = listener_feed(sub, store, 0, Filters(), HEARTBEAT, 1000)
    assert [[(e.kind, payload(e)["last_id"]) for e in b] for b in take(feed, 2)] == [
        [("closing", 0)]
    ]
    assert store.calls == 0


def test_a_consumer_that_stops_reading_closes_its_subscription(hub):
    sub, feed = feed_of(hub, resume=None)
    assert hub.hub.listeners == 1
    take(feed)
    feed.close()
    assert sub.closed and hub.hub.listeners == 0

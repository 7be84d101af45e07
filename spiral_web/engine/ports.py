"""What the engine needs from its collaborators: the record, the hub and the cluster.

Each is a `typing.Protocol`: the engine is written against these, and every implementation keeps
the same contract (tests/contract runs the record's against SQLite and PostgreSQL alike).

- The **record** (`Record`) is the durable history: glints (hot and archived) and ritual runs, in
  one `seq` space. The domain decides what is stored (a duplicate, a conflict, a missing parent,
  the body of each glint, the order of a batch); the record persists the decision atomically.
- The **hub** (`Hub`) fans events out to this process's subscribers; joined through Redis, it
  delivers every worker's events, in `seq` order.
- The **cluster** (`Cluster`) is what the workers of one hub share: listener counts, claims (one
  worker acts), cooldowns, windows, rate limits and control messages. One process: `LocalCluster`.

The record's invariant, which every implementation keeps: **seqs become visible in seq order,
without holes.** A batch takes the next consecutive seqs in the same transaction that stores it,
and no other writer can take a seq until that transaction has committed (or rolled back, leaving
the counter where it was). A listener that has seen seq N can therefore ask for "everything after
N" and never miss a seq that commits later.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .events import Event, Filters
from .glints import Glint, GlintDraft


class IdTaken(Exception):
    """An id of the batch was stored by another writer since the domain looked: plan again."""

    def __init__(self) -> None:
        super().__init__("an id of the batch is already stored")


class SubscriberDropped(Exception):
    """A hub gave up on a subscription that fell too far behind; `reason` says how far. Part of
    the Subscription port: `wait` raises it, and a feed turns it into a `dropped` notice."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RecordUnavailable(Exception):
    """The record cannot be reached (a database down): nothing was stored; try again later.

    What each entry point does with it: ingest answers 503 with `Retry-After: retry_after` (the
    batch failed as a whole: nothing partial is stored, nothing is published); `/readyz` answers
    503 naming the record's problem; open streams stay open (heartbeats go on) and catch up from
    the record when it answers again; a stream that asks to resume while it is away is told so
    (an `unavailable` notice) and replays once it is back."""

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Epoch:
    """How many times the record was found restored from a backup (`number`), and the seq ranges
    (first, last) it lost then: seqs that clients may have seen and the record no longer has."""

    number: int = 0
    lost: tuple[tuple[int, int], ...] = ()

    def lost_range(self, seq: int) -> tuple[int, int] | None:
        """The lost range holding `seq`, if any."""
        return next(((a, b) for a, b in self.lost if a <= seq <= b), None)


@dataclass(frozen=True, slots=True)
class RunDraft:
    """A ritual run to store under the next seq: its body is `{"seq": N, **record}`."""

    ritual: str
    status: str
    at_ts: float
    record: dict[str, Any]


class Record(Protocol):
    """The durable record: glints, archive and ritual runs in one seq space."""

    # -- writes --------------------------------------------------------------------------------
    def lookup(self, ids: Collection[str]) -> dict[str, Glint]:
        """The stored glints (hot or archived) among `ids`."""
        ...

    def append(self, drafts: Sequence[GlintDraft]) -> int:
        """Store `drafts` under the next len(drafts) seqs, in order, all or nothing; answers the
        first seq. Raises IdTaken when an id is already stored (nothing is then stored)."""
        ...

    def append_run(self, run: RunDraft) -> tuple[int, bytes]:
        """Store one ritual run under the next seq; answers (seq, its JSON with the seq in it)."""
        ...

    def archive_before(self, cutoff_ts: float, now_ts: float) -> dict[str, Any]:
        """Move glints received before `cutoff_ts` to the archive in one transaction; a summary of
        what moved and of what arrived since the previous archival."""
        ...

    # -- restores ------------------------------------------------------------------------------
    def epoch(self) -> Epoch:
        """How often the record was found restored, and the seq ranges it lost then."""
        ...

    def fence(self, floor: int, ceiling: int, now_ts: float) -> Epoch | None:
        """When the counter is below `floor` (clients saw seqs the record lacks: it was restored
        from a backup), advance it to `ceiling`, bump the epoch and record the skipped seqs as
        lost, in one transaction; None when the record was current."""
        ...

    # -- reads ---------------------------------------------------------------------------------
    def get(self, gid: str) -> Glint | None:
        """The glint with this id, hot or archived."""
        ...

    def query(
        self,
        module: str | None = None,
        phase: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[Glint]:
        """Hot glints, newest first; page with `before_seq`. `module` may be a glob."""
        ...

    def query_archive(
        self,
        module: str | None = None,
        phase: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[Glint]:
        """Archived glints, with the filters and paging of `query`."""
        ...

    def ancestors(self, gid: str, limit: int) -> list[Glint]:
        """The glint's parent, its parent's parent… nearest first, at most `limit`."""
        ...

    def descendants(self, gid: str, limit: int) -> list[Glint]:
        """Glints below this one in the lineage (any depth), at most `limit`, parents before
        their children."""
        ...

    def replay_after(
        self, seq: int, module: str | None, phase: str | None, limit: int
    ) -> list[Event]:
        """Replayable events (glints hot or archived, ritual runs) after `seq`, oldest first, read
        in one snapshot; `module` (a glob) and `phase` filter glints only."""
        ...

    def seq_bounds(self) -> tuple[int, int]:
        """(smallest, largest) seq that replay_after can return; (0, 0) when empty."""
        ...

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Glints by phase and by module, archived ones included."""
        ...

    def activity(self, now: float, window: float, step: float) -> list[tuple[str, int, int]]:
        """(module, steps ago, count) of glints received in the last `window` seconds."""
        ...

    def runs(
        self,
        ritual: str | None = None,
        status: str | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[bytes]:
        """Ritual runs as stored JSON, newest first."""
        ...

    def last_runs(self, statuses: Sequence[str] = ("ok", "error")) -> dict[str, bytes]:
        """Each ritual's most recent run with one of `statuses`."""
        ...

    def ping(self) -> bool:
        """True when the record answers."""
        ...

    def close(self) -> None: ...


class SeqMark(Protocol):
    """The highest seqs clients may have seen, kept outside the record (in the data folder, or in
    Redis for a joined hub), so that a record restored from a backup, which forgot them, is found
    out before it hands the same seqs out again (`Record.fence`)."""

    def bounds(self) -> tuple[int, int]:
        """(floor, ceiling): a record whose counter is below `floor` lost seqs that clients may
        have seen; no seq published so far is above `ceiling`."""
        ...

    def note(self, seq: int) -> None:
        """Seqs up to `seq` are committed and about to be published (called before publishing)."""
        ...

    def close(self, top: int) -> None:
        """A clean stop: `top` is the last seq this process published."""
        ...


class Subscription(Protocol):
    """One subscriber's cursor into the hub."""

    @property
    def closed(self) -> bool:
        """True once the subscription ended (closed by its reader, or by the hub's shutdown)."""
        ...

    def wait(self, timeout: float) -> list[Event]:
        """Events since the last call (filtered), waiting up to `timeout` for one."""
        ...

    def close(self) -> None: ...


class Hub(Protocol):
    """Fan-out of events to subscribers; events with a seq reach them in seq order."""

    connected: bool  # False while a joined hub cannot reach the others (stream_sync)

    @property
    def published_total(self) -> int: ...

    @property
    def dropped_total(self) -> int: ...

    def publish(
        self,
        kind: str,
        payload: object = None,
        *,
        data: bytes | None = None,
        seq: int | None = None,
        module: str | None = None,
        phase: str | None = None,
    ) -> Event:
        """Publish one event; its JSON (`data`, or `payload` serialized here) is built once."""
        ...

    def subscribe(
        self, filters: Filters | None = None, info: Mapping[str, Any] | None = None
    ) -> Subscription:
        """A new subscriber; `info` says who it is (transport, client…) for operators."""
        ...

    def subscribers(self, limit: int = 200) -> list[dict[str, Any]]:
        """This process's subscribers: their info, filters and lag, the furthest behind first."""
        ...

    @property
    def listeners(self) -> int:
        """Subscribers across the whole hub."""
        ...

    @property
    def local_listeners(self) -> int:
        """Subscribers of this process."""
        ...

    def backlog(self) -> float:
        """The share of subscribers far behind (0..1), for the usage level."""
        ...

    def ping(self) -> bool: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


ControlHandler = Callable[[str, list[Any]], None]


class Cluster(Protocol):
    """What the workers of one hub share. Keys are the caller's; times are the engine clock's."""

    worker_id: str

    def claim(self, key: str, seconds: float) -> bool:
        """True for exactly one caller of `key` within `seconds` (e.g. one run per phase change)."""
        ...

    def cooldown(self, key: str, now: float, seconds: float) -> float | None:
        """Start a cooldown of `seconds` under `key` unless one runs: None when it started, else
        when the running one ends."""
        ...

    def cooling(self, key: str, now: float) -> float | None:
        """When the cooldown running under `key` ends, or None when none runs."""
        ...

    def release(self, key: str) -> None:
        """End the cooldown under `key` (it started for a run that did nothing)."""
        ...

    def hits(self, key: str, now: float, window: float) -> int:
        """Count one hit under `key`; answers the hits within the last `window` seconds."""
        ...

    def forget(self, key: str) -> None:
        """Clear `key`'s hits (a ritual that fired starts counting again)."""
        ...

    def deny(self, key: str, until: float) -> None:
        """Put `key` on the hub's deny list until `until` (a signed-out session, say)."""
        ...

    def denied(self, key: str, now: float) -> bool:
        """True while `key` is on the deny list."""
        ...

    def take(self, key: str, now: float, rate: float, burst: float) -> float | None:
        """Take one token from `key`'s bucket: None when allowed, else seconds until one is."""
        ...

    def share(
        self, op: str, payload: list[Any], until: float | None = None, slot: str | None = None
    ) -> None:
        """Tell the other workers of a change (an override, a block…). With `until`, the change is
        also kept until then in `slot` (default: `op`; a later change of the same slot replaces
        it), for workers that start later (`remembered`)."""
        ...

    def remembered(self, now: float) -> list[tuple[str, list[Any]]]:
        """Kept changes that still hold at `now`, in the order they were shared (for a starting
        worker to apply)."""
        ...

    def listeners(self, local: int) -> int:
        """Subscribers across every worker, given this worker's own count."""
        ...

    def workers(self) -> dict[str, dict[str, Any]]:
        """Each live worker's last report (`listeners`, `subscribers`…), by worker id."""
        ...

    def start(self, on_control: ControlHandler, report: Callable[[], dict[str, Any]]) -> None:
        """Start receiving the other workers' changes, and telling them this worker's `report()`
        about once a second (`{"listeners": n, "subscribers": [...]}`)."""
        ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...

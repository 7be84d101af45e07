"""The glint orchestrator: the one path every glint takes, from any entry point.

validate (GlintIn: by the caller, or by the committer for a JSON body) → stamp with the breath →
store (committed) → count → publish.
Writes are group-committed: concurrent callers queue, one of them stamps the whole queue with one
reading of the breath, commits it in one transaction and publishes it in seq order, then every
caller gets its own answer (each glint keeps the time it arrived). Work done for the whole batch
in one loop is the cheapest there is: in a worker that also parses requests, the same steps done
apart in each caller's greenlet cost two to three times as much (measured: BENCHMARKS.md, ingest).

Before a seq is published the seq mark (ports.SeqMark) hears of it; at start-up, and about once a
second before writing, the record is fenced against the mark, so that a record restored from a
backup never hands out again a seq that clients have seen. A record that cannot be reached fails
the batch as a whole (RecordUnavailable: nothing stored, nothing published).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .batch import Decision, plan_batch
from .breath import BreathEngine, BreathState, Refusal, iso
from .glints import Glint, GlintDraft, GlintError, GlintIn, new_glint_id, parse_glint
from .ports import Epoch, Hub, IdTaken, Record, RecordUnavailable, RunDraft, SeqMark
from .stats import Stats

log = logging.getLogger(__name__)

RITUAL_SOURCE = "ritual:"  # glints a ritual emits: never refused, never evaluated by rituals


class Refused(GlintError):
    """Input refused for now (throttle, blocked source): a 429 with a Retry-After."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(429, refusal.kind, refusal.message, retry_after=refusal.retry_after)


class Unavailable(GlintError):
    """The record cannot be reached: nothing was stored; a 503 with a Retry-After."""

    def __init__(self, cause: RecordUnavailable) -> None:
        super().__init__(
            503,
            "record_unavailable",
            f"{cause}; nothing was stored, retry later",
            retry_after=cause.retry_after,
        )


@dataclass(slots=True)
class EmitResult:
    glint: Glint
    duplicate: bool
    listeners: int

    def answer(self) -> dict[str, Any]:
        return {
            "status": "glint_duplicate" if self.duplicate else "glint_broadcast",
            "id": self.glint.id,
            "seq": self.glint.seq,
            "listeners": self.listeners,
        }


class _Pending:
    """A glint waiting for a commit: what was sent and by whom; the committer stamps it."""

    __slots__ = ("data", "source", "at", "state", "result", "event")

    def __init__(self, data: GlintIn | bytes, source: str, at: float) -> None:
        self.data = data  # validated, or the JSON body the committer validates
        self.source = source
        self.at = at  # received (its `received_at`)
        self.state: BreathState | None = None  # the breath it was stamped with
        self.result: Decision | BaseException | None = None  # set once: answered
        self.event = threading.Event()  # set when a commit (anyone's) answered this glint


class Orchestrator:
    """Takes a glint from any entry point: refuse or stamp it, decide, store, count, publish."""

    PLAN_ATTEMPTS = 5  # an id another writer stored meanwhile: look again and decide again
    FENCE_SECONDS = 1.0  # how often the writer compares the record with the seq mark

    def __init__(
        self,
        record: Record,
        hub: Hub,
        breath: BreathEngine,
        stats: Stats,
        count_on_commit: bool = True,
        mark: SeqMark | None = None,
    ) -> None:
        self.record = record
        self.mark = mark
        self.hub = hub
        self.breath = breath
        self.stats = stats
        self._queue: deque[_Pending] = deque()
        self._commit_lock = threading.Lock()
        self.stream_sync = True
        self.last_published_seq = record.seq_bounds()[1]
        self._observers: list[Callable[[Glint, BreathState], None]] = []
        self._breath_observers: list[Callable[[BreathState], None]] = []
        # In one process the orchestrator counts what it commits; joined through Redis, every
        # worker counts what the hub delivers instead, so each sees the whole hub's figures.
        self.count_on_commit = count_on_commit
        self._next_fence = 0.0
        if mark is not None:
            fenced = self.fence()
            floor, ceiling = mark.bounds()
            self._note(max(self.last_published_seq, ceiling if fenced else floor))

    def fence(self) -> Epoch | None:
        """Compare the record with what clients may have seen (the mark, and this worker's own
        publishes); a record behind it was restored: it skips past, and a new epoch begins."""
        self._next_fence = time.monotonic() + self.FENCE_SECONDS
        if self.mark is None:
            return None
        floor, ceiling = self.mark.bounds()
        floor = max(floor, self.last_published_seq)
        fenced = self.record.fence(floor, max(ceiling, floor), time.time())
        if fenced is not None:
            first, last = fenced.lost[-1]
            log.warning(
                "the record is behind what clients may have seen (restored from a backup, or "
                "the machine restarted without a clean stop): seqs %d..%d are skipped; "
                "epoch %d begins",
                first,
                last,
                fenced.number,
            )
        return fenced

    def _note(self, seq: int) -> None:
        """Tell the mark before publishing; a mark that cannot be written must not fail glints
        that are already stored."""
        if self.mark is not None:
            try:
                self.mark.note(seq)
            except Exception:
                log.exception("could not write the seq mark (restore detection is behind)")

    def close(self) -> None:
        """A clean stop: the mark learns the exact last seq."""
        if self.mark is not None:
            self._commit_lock.acquire()
            try:
                self.mark.close(self.last_published_seq)
            except Exception:
                log.exception("could not write the seq mark at close")
            finally:
                self._let_go()

    def observe(
        self,
        glint: Callable[[Glint, BreathState], None],
        breath: Callable[[BreathState], None],
    ) -> None:
        """Call `glint` with every new glint from outside (after its commit) and `breath` with every
        breath publish: the ritual scheduler watches the hub this way."""
        self._observers.append(glint)
        self._breath_observers.append(breath)

    def emit(self, data: GlintIn | bytes, source: str = "local") -> EmitResult:
        """Store and broadcast one glint, validated or its JSON body (validated with the rest of
        its batch); raises GlintError when it cannot be accepted (a source refused, before its
        body is read)."""
        from_ritual = source.startswith(RITUAL_SOURCE)
        if not from_ritual:
            refusal = self.breath.refusal(source)
            if refusal is not None:
                raise Refused(refusal)
        pending = _Pending(data, source, self.breath.clock.now())
        self._queue.append(pending)
        self._settle(pending)
        decision = pending.result
        if isinstance(decision, RecordUnavailable):  # every entry point answers it alike
            raise Unavailable(decision) from decision
        if isinstance(decision, BaseException):
            raise decision
        assert decision is not None
        if decision.error is not None:  # the entry point counts it for the climate, as any 4xx
            raise decision.error
        glint = decision.glint
        assert glint is not None
        if not decision.duplicate and not from_ritual:
            state = pending.state
            assert state is not None
            for observer in self._observers:
                try:  # after the commit and outside the lock; never fails the glint
                    observer(glint, state)
                except Exception:
                    log.exception("ritual evaluation failed for glint %s", glint.id)
        return EmitResult(glint, decision.duplicate, self.hub.listeners)

    def _settle(self, pending: _Pending) -> None:
        """Return once a commit answered `pending`.

        Whoever finds nobody committing commits until the queue is empty; the others wait on
        their own event, not on the lock (under gevent, new arrivals jump a lock's queue: waiters
        for an already-committed glint starved for seconds in the fan-out benchmark). A caller
        queues before it looks at the lock, and a committer looks at the queue after it lets go
        of the lock, so a glint is never left queued with nobody to commit it; the waits need no
        timeout (a gevent timer each)."""
        lock = self._commit_lock
        while pending.result is None:
            # `locked()` first: under gevent a failed non-blocking acquire also yields.
            if not lock.locked() and lock.acquire(blocking=False):
                try:
                    time.sleep(0)  # let callers that are already running join this batch
                    while self._queue:
                        self._commit()
                finally:
                    self._let_go()
            else:
                pending.event.wait()
                if pending.result is None:
                    pending.event.clear()  # woken to commit: the queue was left to it

    def _let_go(self) -> None:
        """Release the commit lock, and wake whoever is still queued (a caller of another
        thread, behind a commit that raised or a ritual run that held the lock): one of them
        commits the rest."""
        self._commit_lock.release()
        for left in tuple(self._queue):
            left.event.set()

    def publish_run(
        self, ritual: str, status: str, at_ts: float, record: dict[str, Any]
    ) -> tuple[int, bytes]:
        """Store a ritual run under the next seq and publish it as a `ritual` event.

        Under the commit lock, like glints, so that events reach the hub in seq order."""
        self._commit_lock.acquire()
        try:
            seq, data = self.record.append_run(RunDraft(ritual, status, at_ts, record))
            self._note(seq)
            self.hub.publish("ritual", data=data, seq=seq)
            self.last_published_seq = seq
        finally:
            self._let_go()
        return seq, data

    def _commit(self) -> None:
        batch: list[_Pending] = []
        while self._queue:
            batch.append(self._queue.popleft())
        try:
            if time.monotonic() >= self._next_fence:
                self.fence()
            stamped, drafts = self._stamp(batch)
            decisions = self._store(drafts) if drafts else []
        except BaseException as exc:  # the record failed: nobody in the batch is acknowledged
            self.stream_sync = False
            for p in batch:
                if p.result is None:  # not a body refused already
                    p.result = exc
                    p.event.set()
            if not isinstance(exc, Exception):
                raise
            return
        top = max(
            (d.glint.seq for d in decisions if d.glint and not d.duplicate and not d.error),
            default=0,
        )
        if top > self.last_published_seq:
            self._note(top)
        stored: dict[str, int] = {}  # glints stored, by source: the breath counts them at once
        for p, decision in zip(stamped, decisions, strict=True):
            g = decision.glint
            if g is not None and not decision.duplicate and decision.error is None:
                stored[g.source] = stored.get(g.source, 0) + 1
                if self.count_on_commit:
                    self.stats.count(g.module, g.phase)
                self.hub.publish(
                    "glint_emission", data=g.json, seq=g.seq, module=g.module, phase=g.phase
                )
                self.last_published_seq = g.seq
            p.result = decision
            p.event.set()
        self.breath.record_ingests(stored)
        self.stream_sync = True

    def _stamp(self, batch: list[_Pending]) -> tuple[list[_Pending], list[GlintDraft]]:
        """Validate the bodies of a batch and stamp it with one reading of the breath (the
        phase, unless the publisher named one, and the breath's state as it is stored), each
        glint with the time it arrived: the glints stamped, and their drafts. A body that is not
        a valid glint is answered here, with its GlintError."""
        state = self.breath.state()
        breath = state.stamp()
        stamped, drafts = [], []
        for p in batch:
            data = p.data
            if not isinstance(data, GlintIn):
                try:
                    data = parse_glint(data)
                except GlintError as exc:
                    p.result = exc
                    p.event.set()
                    continue
            p.state = state
            draft = GlintDraft.stamp(
                data.id or new_glint_id(),
                data,
                data.phase or state.phase,
                iso(p.at),
                p.at,
                breath,
                p.source,
            )
            stamped.append(p)
            drafts.append(draft)
        return stamped, drafts

    def _store(self, drafts: list[GlintDraft]) -> list[Decision]:
        """Decide the batch against the record and store what is new, in one transaction."""
        # An id the hub made up a moment ago (122 random bits) names no stored glint: only the
        # ids publishers chose, and the parents, are looked up (all of them after a clash).
        wanted = {d.id for d in drafts if d.id_given} | {d.parent_id for d in drafts if d.parent_id}
        for _ in range(self.PLAN_ATTEMPTS):
            plan = plan_batch(drafts, self.record.lookup(wanted))
            if not plan.new:
                return plan.outcomes(None)
            try:
                first = self.record.append(plan.new)
            except IdTaken:
                wanted |= {d.id for d in drafts}
                continue  # another writer stored one of these ids since the lookup
            return plan.outcomes(first)
        raise RuntimeError("the batch kept meeting ids other writers stored at the same time")

    def publish_breath(self, state: BreathState | None = None, force: bool = False) -> BreathState:
        """Publish a `breath` event when the state changed in a way listeners care about."""
        state = state or self.breath.state()
        if self.breath.changed(state) or force:
            self.hub.publish("breath", data=orjson.dumps(state.to_dict()))
        for observer in self._breath_observers:  # phase and climate changes can trigger rituals
            try:
                observer(state)
            except Exception:
                log.exception("ritual evaluation failed for a breath change")
        return state

    def statistics(self) -> dict[str, Any]:
        snap = self.stats.snapshot()
        snap.update(
            stream_sync=self.stream_sync and self.hub.connected,
            listeners=self.hub.listeners,
            last_seq=self.last_published_seq,
            rates={
                "per_second_10s": round(self.breath.ingest_rate(10), 3),
                "per_second_60s": round(self.breath.ingest_rate(60), 3),
            },
        )
        return snap


class BreathTicker:
    """Publishes breath changes on time, from a background thread (a greenlet under gevent)."""

    def __init__(self, orchestrator: Orchestrator, interval: float = 0.25) -> None:
        self.orchestrator = orchestrator
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spiral-breath", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.orchestrator.publish_breath()
            except Exception:  # a bad tick must not stop the breath
                log.exception("breath tick failed")

    def stop(self) -> None:
        self._stop.set()

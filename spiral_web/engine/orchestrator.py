"""The glint orchestrator: the one path every glint takes, from any entry point.

validate (by the caller, via GlintIn) → stamp with the breath → store (committed) → count → publish.
Writes are group-committed: concurrent callers queue, one of them commits the whole queue in one
transaction and publishes it in seq order, then every caller gets its own answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson

from .breath import BreathEngine, BreathState, Refusal, iso
from .glints import Glint, GlintError, GlintIn, new_glint_id
from .ports import StoreItem
from .stats import Stats

log = logging.getLogger(__name__)

RITUAL_SOURCE = "ritual:"  # glints a ritual emits: never refused, never evaluated by rituals


class Refused(GlintError):
    """Input refused for now (throttle, blocked source): a 429 with a Retry-After."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(429, refusal.kind, refusal.message)
        self.retry_after = refusal.retry_after

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "retry_after": self.retry_after}


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
    __slots__ = ("item", "result", "done", "event")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.result: Any = None
        self.done = False
        self.event = threading.Event()  # set when a commit (anyone's) answered this glint


class Orchestrator:
    def __init__(
        self, store, hub, breath: BreathEngine, stats: Stats, count_on_commit: bool = True
    ) -> None:
        self.store = store
        self.hub = hub
        self.breath = breath
        self.stats = stats
        self._queue: deque[_Pending] = deque()
        self._commit_lock = threading.Lock()
        self.stream_sync = True
        self.last_published_seq = store.seq_bounds()[1]
        self.rituals: Any = None  # the RitualEngine, attached once both exist
        # In one process the orchestrator counts what it commits; joined through Redis, every
        # worker counts what the hub delivers instead, so each sees the whole hub's figures.
        self.count_on_commit = count_on_commit

    def emit(self, data: GlintIn, source: str = "local") -> EmitResult:
        """Store and broadcast one glint; raises GlintError when it cannot be accepted."""
        from_ritual = source.startswith(RITUAL_SOURCE)
        if not from_ritual:
            refusal = self.breath.refusal(source)
            if refusal is not None:
                raise Refused(refusal)
        state = self.breath.state()
        now = state.now
        pending = _Pending(
            StoreItem(
                gid=data.id or new_glint_id(),
                data=data,
                phase=data.phase or state.phase,
                received_at=iso(now),
                received_ts=now,
                breath=state.stamp(),
                source=source,
            )
        )
        self._queue.append(pending)
        # Whoever gets the lock commits until the queue is empty; the others wait on their own
        # event, not on the lock (under gevent, new arrivals jump a lock's queue: waiters for an
        # already-committed glint starved for seconds in the fan-out benchmark).
        while not pending.done:
            if self._commit_lock.acquire(blocking=False):
                try:
                    time.sleep(0)  # let callers that are already running join this batch
                    while self._queue:
                        self._commit()
                finally:
                    self._commit_lock.release()
            else:
                pending.event.wait(0.05)
        result = pending.result
        if isinstance(result, Exception):
            raise result
        if result.error:  # the entry point counts the refusal for the climate, as for any 4xx
            raise GlintError(
                422,
                "invalid_glint",
                result.error,
                [{"field": "parent_id", "problem": result.error}],
            )
        if not result.duplicate:
            self.breath.record_ingest(source)
            if self.rituals is not None and not from_ritual:
                try:  # after the commit and outside the lock; never fails the glint
                    self.rituals.on_glint(result.glint, state)
                except Exception:
                    log.exception("ritual evaluation failed for glint %s", result.glint.id)
        return EmitResult(result.glint, result.duplicate, self.hub.listeners)

    def publish_run(
        self, ritual: str, status: str, at_ts: float, record: dict[str, Any]
    ) -> tuple[int, bytes]:
        """Store a ritual run under the next seq and publish it as a `ritual` event.

        Under the commit lock, like glints, so that events reach the hub in seq order."""
        with self._commit_lock:
            seq, data = self.store.append_run(ritual, status, at_ts, record)
            self.hub.publish("ritual", data=data, seq=seq)
            self.last_published_seq = seq
        return seq, data

    def _commit(self) -> None:
        batch: list[_Pending] = []
        while self._queue:
            batch.append(self._queue.popleft())
        try:
            results = self.store.append_batch([p.item for p in batch])
        except BaseException as exc:  # the store failed: nobody in the batch is acknowledged
            self.stream_sync = False
            failure = (
                exc if isinstance(exc, Exception) else RuntimeError("the commit was interrupted")
            )
            for p in batch:
                p.result, p.done = failure, True
                p.event.set()
            if not isinstance(exc, Exception):
                raise
            return
        for p, r in zip(batch, results, strict=True):
            if r.glint is not None and not r.duplicate:
                g = r.glint
                if self.count_on_commit:
                    self.stats.count(g.module, g.phase)
                self.hub.publish(
                    "glint_emission", data=g.json, seq=g.seq, module=g.module, phase=g.phase
                )
                self.last_published_seq = g.seq
            p.result, p.done = r, True
            p.event.set()
        self.stream_sync = True

    def publish_breath(self, state: BreathState | None = None, force: bool = False) -> BreathState:
        """Publish a `breath` event when the state changed in a way listeners care about."""
        state = state or self.breath.state()
        if self.breath.changed(state) or force:
            self.hub.publish("breath", data=orjson.dumps(state.to_dict()))
        if self.rituals is not None:  # phase and climate changes can trigger rituals
            try:
                self.rituals.on_breath(state)
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

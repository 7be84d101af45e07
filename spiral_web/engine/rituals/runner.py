"""Running a ritual the scheduler let through: its action, given only the capabilities it may use,
timed, and the run recorded under a seq from the glints' sequence and published as a `ritual`
event. Fast actions run in the caller's thread; slow ones (webhook, archive) go to one background
worker with a bounded queue, so ingest never waits for them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from ..breath import BreathEngine, BreathState, iso
from ..clock import Clock
from ..glints import Glint, GlintIn
from ..ports import Cluster, Record
from .actions import ACTIONS, ActionError, Capabilities, Outcome, RunContext
from .specs import RitualSpec
from .worker import Worker

log = logging.getLogger(__name__)


class Stored(Protocol):
    glint: Glint


class Host(Protocol):
    """What running rituals needs from the glint orchestrator."""

    def emit(self, data: GlintIn, source: str = ...) -> Stored: ...

    def publish_run(
        self, ritual: str, status: str, at_ts: float, record: dict[str, Any]
    ) -> tuple[int, bytes]: ...

    def publish_breath(self, state: BreathState | None = ..., force: bool = ...) -> BreathState: ...


# Told of every ok or error run once it is recorded: (ritual, status, at, seq).
RanCallback = Callable[[str, str, float, int], None]


class Runner:
    """Runs rituals' actions and records their runs; one per ritual engine."""

    def __init__(
        self,
        *,
        clock: Clock,
        record: Record,
        breath: BreathEngine,
        orchestrator: Host,
        cluster: Cluster,
        queue_size: int,
        ran: RanCallback,
    ) -> None:
        self.clock = clock
        self.orchestrator = orchestrator
        self.cluster = cluster
        self.stopping = threading.Event()  # set on close: webhook backoffs end at once
        self._ran = ran
        self._can = Capabilities(
            clock=clock,
            emit=lambda data, source: orchestrator.emit(data, source).glint,
            archive=record.archive_before,
            protection=breath,
            publish_breath=orchestrator.publish_breath,
            stopping=self.stopping,
        )
        self._local = threading.local()  # depth: >0 while this thread runs an action
        self._worker = Worker(queue_size)

    def depth(self) -> int:
        """How many actions this thread is running (more than 0: inside an action)."""
        return getattr(self._local, "depth", 0)

    def dispatch(
        self,
        spec: RitualSpec,
        event: str,
        glint: Glint | None,
        state: BreathState,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Run now, or on the background worker for a slow action (recorded as an error when its
        queue is full)."""
        if not spec.background:
            self.run(spec, event, glint, state, extra)
            return

        def job() -> None:
            self.run(spec, event, glint, state, extra)

        if not self._worker.submit(job):
            self.record(
                spec,
                event,
                glint,
                "error",
                {"error": "the ritual worker's queue is full; this run was dropped"},
                extra=extra,
            )

    def run(
        self,
        spec: RitualSpec,
        event: str,
        glint: Glint | None,
        state: BreathState,
        extra: dict[str, Any] | None = None,
        invoked: bool = False,
    ) -> dict[str, Any] | None:
        """Run the action and record the run; answers the record (None: nothing to do)."""
        started = time.perf_counter()
        self._local.depth = self.depth() + 1
        emitted = None
        try:
            context = RunContext(spec.name, spec.params, event, glint, state, self._can)
            outcome = ACTIONS[spec.action].run(context)
            if outcome is None:
                if not invoked:
                    if spec.cooldown:  # nothing happened: no run, and no cooldown from it
                        self.cluster.release(cluster_key(spec))
                    return None
                outcome = Outcome({"message": "already in effect; nothing to do"})
            status, result, emitted = "ok", outcome.result, outcome.emitted_id
        except ActionError as exc:
            status, result = "error", {"error": str(exc), **exc.result}
        except Exception as exc:
            log.exception("ritual %s: action %s failed", spec.name, spec.action)
            status, result = "error", {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            self._local.depth -= 1
        duration = (time.perf_counter() - started) * 1000
        return self.record(spec, event, glint, status, result, duration, emitted, extra)

    def record(
        self,
        spec: RitualSpec,
        event: str,
        glint: Glint | None,
        status: str,
        result: dict[str, Any],
        duration_ms: float = 0.0,
        emitted_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Store and publish one run (any status); answers it as listeners see it, or None when
        it could not be recorded (logged: a ritual must never fail what triggered it)."""
        now = self.clock.now()
        record = {
            "ritual": spec.name,
            "action": spec.action,
            "trigger_id": glint.id if glint is not None else None,
            "trigger_event": event,
            "rule": spec.rule.source,
            "status": status,
            "result": result,
            "duration_ms": round(duration_ms, 3),
            "at": iso(now),
            "emitted_id": emitted_id,
            **(extra or {}),
        }
        try:
            seq, body = self.orchestrator.publish_run(spec.name, status, now, record)
        except Exception:
            log.exception("ritual %s: could not record a %s run", spec.name, status)
            return None
        if status in ("ok", "error"):
            self._ran(spec.name, status, now, seq)
        run: dict[str, Any] = orjson.loads(body)
        return run

    def drain(self, timeout: float) -> bool:
        """Wait until the background worker has nothing queued or running."""
        return self._worker.drain(timeout)

    def close(self) -> None:
        self.stopping.set()
        self._worker.stop()


def cluster_key(spec: RitualSpec) -> str:
    """The cluster key of a ritual's cooldown and window."""
    return f"ritual:{spec.name}"

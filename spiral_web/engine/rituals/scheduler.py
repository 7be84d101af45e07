"""Rituals: named actions run when their rule matches a glint or a change of the breath.

The ritual scheduler evaluates every enabled ritual's rule in-process, after a glint is stored
(and after a breath change is published), with per-ritual phase gating, an optional count within a
window, a cooldown, and caesura deferral: a non-essential ritual that matches during night_hold is
recorded as deferred and runs at the next inhale. Every run — ok, error, deferred, skipped for its
cooldown — is stored under a seq from the glints' sequence and published as a `ritual` event.

Fast actions run where the event arrived, after the glint's commit; slow ones (webhook, archive)
go to one background worker with a bounded queue, so ingest never waits for them (running and
recording a run: runner.py). A ritual's own glints are not evaluated (no chains); breath changes
that an action causes are evaluated at the next breath publish.

Imports nothing from Flask or gevent; its collaborators come in through the constructor.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ..breath import BreathEngine, BreathState, iso
from ..clock import Clock
from ..glints import Glint
from ..ports import Cluster, Record
from ..rules import Activation, Rule, activation, glint_fields
from .dryrun import dry_run
from .runner import Host, Runner, cluster_key
from .specs import RitualSpec

log = logging.getLogger(__name__)

CLAIM_SECONDS = 3600.0  # how long a breath change's claim is kept (a change is not seen again)


@dataclass
class _Deferred:
    event: str
    trigger: Glint | None
    count: int = 1
    seq: int | None = None  # the `deferred` run's seq


@dataclass
class _State:
    """What this worker knows of one ritual (guarded by the engine's lock). Cooldowns, windows
    and claims are the cluster's: they hold for every worker of the hub."""

    last_run_at: float | None = None
    last_status: str | None = None
    last_seq: int | None = None
    skipped: int = 0
    runs: int = 0
    deferred: _Deferred | None = None


class RitualEngine:
    """Evaluates rituals on glints and breath changes, runs them, records every run."""

    QUEUE_SIZE = 256

    def __init__(
        self,
        specs: list[RitualSpec],
        *,
        clock: Clock,
        record: Record,
        breath: BreathEngine,
        orchestrator: Host,
        cluster: Cluster,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.specs = {s.name: s for s in specs}
        self.clock = clock
        self.record = record
        self.breath = breath
        self.orchestrator = orchestrator
        # A breath change is seen by every worker; a claim lets exactly one of them act on it
        # (glints need no claim: only the worker that stored a glint evaluates it).
        self.cluster = cluster
        self._runner = Runner(
            clock=clock,
            record=record,
            breath=breath,
            orchestrator=orchestrator,
            cluster=cluster,
            queue_size=queue_size,
            ran=self._ran,
        )
        self.stopping = self._runner.stopping  # set on close: webhook backoffs end at once
        self._order = [s for s in specs if s.enabled]
        # What the rules that read the context read: a context converted to CEL has these only
        # (the others answer from the few values they read: rules.Activation).
        self._names = tuple(
            sorted({n for s in self._order if "context" in s.rule.reads for n in s.rule.reads})
        )
        self._caesura = any(s.action == "caesura" for s in self._order)
        self._lock = threading.Lock()
        self._state = {s.name: _State() for s in specs}
        self._deferred_pending = False
        state = breath.state()
        self._seen = ((state.phase, state.phase_started_at), state.climate)
        self._restore()

    # -- events --------------------------------------------------------------------------------
    def on_glint(self, glint: Glint, state: BreathState) -> None:
        """Evaluate every ritual on a stored glint (called after its commit, outside the lock)."""
        if self._runner.depth():
            return
        act = Activation(activation(glint_fields(glint), glint.breath, "glint"), self._names)
        self._evaluate("glint", act, glint, state)

    def on_breath(self, state: BreathState) -> None:
        """Evaluate rituals on a phase or climate change; called on every breath publish.

        Inside an action (which may change the breath itself) it does nothing and leaves the
        change for the next publish, so a ritual reacting to a ritual is one step, not recursion."""
        if self._runner.depth():
            return
        seen = ((state.phase, state.phase_started_at), state.climate)
        with self._lock:
            before, self._seen = self._seen, seen
        events = []
        if seen[0] != before[0]:
            events.append("phase_change")
        if seen[1] != before[1]:
            events.append("climate_change")
        if not events and not self._deferred_pending:
            return
        breath = state.to_dict()
        if not events:  # nothing changed, but what the caesura deferred may be due
            self._evaluate(None, None, None, state)
        for event in events:
            self._evaluate(
                event, Activation(activation(None, breath, event), self._names), None, state
            )

    def _evaluate(
        self, event: str | None, act: Any, glint: Glint | None, state: BreathState
    ) -> None:
        if self._deferred_pending and state.phase == "inhale":
            self._run_deferred(state)
        if event is None:
            return
        for spec in self._order:
            if spec.rule.matches(act):
                try:
                    self._consider(spec, event, glint, state)
                except Exception:  # a ritual must never fail the glint that triggered it
                    log.exception("ritual %s failed to run", spec.name)

    def _consider(
        self, spec: RitualSpec, event: str, glint: Glint | None, state: BreathState
    ) -> None:
        """Gate one matching ritual (phases, window, cooldown, caesura), then run or record it.

        The window and the cooldown are the cluster's, so they mean the same with one worker or
        fifty; a breath change is claimed by one worker."""
        if glint is None and not self.cluster.claim(
            f"breath:{spec.name}:{event}:{state.phase_started_at}:{state.climate}", CLAIM_SECONDS
        ):
            return  # another worker took this breath change
        if spec.phases and state.phase not in spec.phases:
            return
        now = self.clock.now()
        key = cluster_key(spec)
        if spec.window is not None and (
            self.cluster.hits(key, now, spec.window.seconds) < spec.window.count
        ):
            return
        if spec.cooldown:
            until = self.cluster.cooling(key, now)
            if until is not None:
                self._skip(spec, event, glint, now, until)
                return
        if (
            self._caesura
            and state.phase == "night_hold"
            and not spec.essential
            and "night_hold" not in spec.phases  # naming night_hold opts in to it
        ):
            self._defer(spec, event, glint, state)
            return
        if spec.cooldown:
            until = self.cluster.cooldown(key, now, spec.cooldown)
            if until is not None:  # another worker started one since we looked
                self._skip(spec, event, glint, now, until)
                return
        if spec.window is not None:
            self.cluster.forget(key)
        self._runner.dispatch(spec, event, glint, state)

    def _skip(
        self, spec: RitualSpec, event: str, glint: Glint | None, now: float, until: float
    ) -> None:
        """A match in the cooldown: counted here, recorded once per cooldown for the hub."""
        with self._lock:
            self._state[spec.name].skipped += 1
        if not self.cluster.claim(f"skip:{cluster_key(spec)}:{until}", max(1.0, until - now) + 60):
            return
        self._runner.record(
            spec,
            event,
            glint,
            "skipped_cooldown",
            {
                "cooldown_until": iso(until),
                "message": "matched during its cooldown; "
                "further matches until then are counted, not recorded",
            },
        )

    def _defer(self, spec: RitualSpec, event: str, glint: Glint | None, state: BreathState) -> None:
        """Caesura: record the first match of this night as deferred; later ones coalesce."""
        with self._lock:
            st = self._state[spec.name]
            if st.deferred is not None:
                st.deferred.count += 1
                return
        night = state.phase_ends_at - state.phase_started_at
        if not self.cluster.claim(
            f"defer:{spec.name}:{state.phase_started_at}", max(night, 1.0) + CLAIM_SECONDS
        ):
            return  # another worker holds this night's deferral
        with self._lock:
            deferred = self._state[spec.name].deferred = _Deferred(event, glint)
            self._deferred_pending = True
        run = self._runner.record(
            spec,
            event,
            glint,
            "deferred",
            {"message": "caesura: non-essential rituals wait for the next inhale"},
        )
        deferred.seq = run.get("seq") if run else None

    def _run_deferred(self, state: BreathState) -> None:
        """At inhale: run what the caesura deferred, each deferral once for the hub (its matches
        were coalesced); the run starts the ritual's cooldown."""
        now = self.clock.now()
        with self._lock:
            if not self._deferred_pending:
                return
            self._deferred_pending = False
            due = []
            for name, st in self._state.items():
                if st.deferred is not None:
                    due.append((self.specs[name], st.deferred))
                    st.deferred = None
        for spec, d in due:
            if d.seq is not None and not self.cluster.claim(f"deferred:{d.seq}", CLAIM_SECONDS):
                continue  # another worker ran it
            if spec.cooldown:
                self.cluster.cooldown(cluster_key(spec), now, spec.cooldown)
            extra = {"deferred_from": d.seq, "coalesced": d.count}
            self._runner.dispatch(spec, d.event, d.trigger, state, extra)

    # -- runs (runner.py runs and records them) --------------------------------------------------
    def _ran(self, name: str, status: str, at: float, seq: int) -> None:
        """The runner recorded an ok or error run of `name`."""
        with self._lock:
            st = self._state[name]
            st.last_run_at, st.last_status, st.last_seq = at, status, seq
            st.runs += 1

    # -- admin ---------------------------------------------------------------------------------
    def invoke(self, name: str, trigger: Glint | None = None) -> dict[str, Any] | None:
        """Run a ritual now, whatever its rule, phases, cooldown or enabled flag (an admin asked).
        Runs in the caller's thread, slow actions included. KeyError for an unknown name."""
        spec = self.specs[name]
        if spec.cooldown:  # starts one unless one runs already
            self.cluster.cooldown(cluster_key(spec), self.clock.now(), spec.cooldown)
        return self._runner.run(spec, "invoke", trigger, self.breath.state(), invoked=True)

    def dry_run(self, name: str, glints: list[Glint], rule: Rule | None = None) -> dict[str, Any]:
        """Which of `glints` the ritual's rule (or `rule`) matches (see dryrun.py); KeyError for
        an unknown name."""
        spec = self.specs[name]
        return dry_run(name, rule or spec.rule, glints)

    def describe(self) -> list[dict[str, Any]]:
        """Every ritual's definition and state, in evaluation order."""
        now = self.clock.now()
        cooling = {
            name: self.cluster.cooling(cluster_key(spec), now)
            for name, spec in self.specs.items()
            if spec.cooldown
        }
        out = []
        with self._lock:
            for name, spec in self.specs.items():
                st = self._state[name]
                until = cooling.get(name)
                out.append(
                    {
                        **spec.to_dict(),
                        "state": {
                            "last_run_at": iso(st.last_run_at)
                            if st.last_run_at is not None
                            else None,
                            "last_status": st.last_status,
                            "last_seq": st.last_seq,
                            "cooldown_until": iso(until) if until is not None else None,
                            "deferred": st.deferred.count if st.deferred is not None else 0,
                            "runs": st.runs,
                            "skipped_cooldown": st.skipped,
                        },
                    }
                )
        return out

    # -- lifecycle -----------------------------------------------------------------------------
    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until the background worker has nothing queued or running (tests, shutdown)."""
        return self._runner.drain(timeout)

    def close(self) -> None:
        self._runner.close()

    def _restore(self) -> None:
        """Last runs, cooldowns and pending deferrals survive a restart."""
        ran = {name: orjson.loads(body) for name, body in self.record.last_runs().items()}
        for name, run in ran.items():
            if name not in self._state:
                continue
            at = datetime.fromisoformat(run["at"]).timestamp()
            st = self._state[name]
            st.last_run_at, st.last_status, st.last_seq = at, run["status"], run["seq"]
            spec = self.specs[name]
            if spec.cooldown:  # the run's cooldown, unless the hub already keeps one
                self.cluster.cooldown(cluster_key(spec), at, spec.cooldown)
        for name, body in self.record.last_runs(("deferred",)).items():
            run = orjson.loads(body)
            if name not in self._state or run["seq"] < ran.get(name, {}).get("seq", 0):
                continue  # a later run completed it
            trigger = self.record.get(run["trigger_id"]) if run["trigger_id"] else None
            self._state[name].deferred = _Deferred(run["trigger_event"], trigger, 1, run["seq"])
            self._deferred_pending = True

"""Rituals: named actions run when their rule matches a glint or a change of the breath.

The ritual scheduler evaluates every enabled ritual's rule in-process, after a glint is stored
(and after a breath change is published), with per-ritual phase gating, an optional count within a
window, a cooldown, and caesura deferral: a non-essential ritual that matches during night_hold is
recorded as deferred and runs at the next inhale. Every run — ok, error, deferred, skipped for its
cooldown — is stored under a seq from the glints' sequence and published as a `ritual` event.

Fast actions run where the event arrived, after the glint's commit; slow ones (webhook, archive)
go to one background worker with a bounded queue, so ingest never waits for them. A ritual's own
glints are not evaluated (no chains); breath changes that an action causes are evaluated at the
next breath publish.

Imports nothing from Flask or gevent; its collaborators come in through the constructor.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from .actions import ACTIONS, CROSS_CHECKS, ActionError, Outcome, RunContext
from .breath import PHASES, BreathEngine, BreathState, iso
from .clock import Clock
from .glints import Glint
from .ports import Cluster, Record
from .rules import Rule, RuleError, activation, prepare

if TYPE_CHECKING:
    from .orchestrator import Orchestrator

log = logging.getLogger(__name__)

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
TRIGGER_EVENTS = ("glint", "phase_change", "climate_change", "invoke")
STATUSES = ("ok", "error", "deferred", "skipped_cooldown")

# The four rituals from the seed's table. Each can be tuned or disabled by a [rituals.<name>]
# table of the same name in the configuration file.
BUILTINS: dict[str, dict[str, Any]] = {
    "archival": {
        "description": "memory.scroll in return: archive glints past retention, record a summary",
        "rule": 'module == "memory.scroll" && phase == "return"',
        "action": "archive",
        "cooldown": 60.0,
        "essential": False,
    },
    "throttle": {
        "description": "usage above 0.8: pause input (429) until usage falls below the release",
        "rule": "usage > 0.8",
        "action": "throttle",
        "essential": True,
    },
    "suspicion_watcher": {
        "description": "suspicious climate: block the sources that caused it, raise an alert",
        "rule": 'climate == "suspicious"',
        "action": "watch",
        "essential": True,
    },
    "caesura": {
        "description": "night_hold: agents rest, non-essential rituals wait for the next inhale",
        "rule": 'breath_phase == "night_hold"',
        "action": "caesura",
        "essential": True,
    },
}

_SETTINGS = (
    "description",
    "rule",
    "action",
    "phases",
    "cooldown",
    "window",
    "essential",
    "enabled",
)


class RitualConfigError(ValueError):
    """A ritual definition that cannot be used; the message names the file, ritual and problem."""


@dataclass(frozen=True)
class Window:
    """Fire only when `count` matching events arrived within `seconds` (this one included)."""

    count: int
    seconds: float


@dataclass(frozen=True)
class RitualSpec:
    name: str
    rule: Rule
    action: str
    params: Mapping[str, Any]
    phases: frozenset[str] = frozenset()  # the breath phases it may run in; empty: all
    cooldown: float = 0.0
    window: Window | None = None
    essential: bool = False  # essential rituals are not deferred by the caesura
    enabled: bool = True
    builtin: bool = False
    description: str = ""

    @property
    def background(self) -> bool:
        return ACTIONS[self.action].background

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "builtin": self.builtin,
            "rule": self.rule.source,
            "action": self.action,
            "params": dict(self.params),
            "phases": [p for p in PHASES if p in self.phases] if self.phases else list(PHASES),
            "cooldown": self.cooldown,
            "window": {"count": self.window.count, "seconds": self.window.seconds}
            if self.window
            else None,
            "essential": self.essential,
            "enabled": self.enabled,
            "background": self.background,
        }


def load_rituals(tables: Any, origin: str) -> list[RitualSpec]:
    """The built-ins merged with the `[rituals.<name>]` tables of a configuration, each checked and
    its rule compiled; RitualConfigError names `origin` (the file), the ritual and the problem."""
    if tables is None:
        tables = {}
    if not isinstance(tables, Mapping):
        raise RitualConfigError(
            f"{origin}: [rituals] must hold one table per ritual, e.g. [rituals.bell]"
        )
    names = list(BUILTINS) + [n for n in tables if n not in BUILTINS]
    specs = []
    for name in names:
        given = tables.get(name, {})
        try:
            if not isinstance(given, Mapping):
                raise ValueError(
                    'must be a table of settings, e.g. [rituals.bell] with rule = "..."'
                )
            specs.append(_spec(name, {**BUILTINS.get(name, {}), **given}, builtin=name in BUILTINS))
        except ValueError as exc:
            raise RitualConfigError(f"{origin}: ritual {name!r}: {exc}") from None
    return specs


def _spec(name: str, raw: dict[str, Any], builtin: bool) -> RitualSpec:
    if not re.match(NAME_PATTERN, name):
        raise ValueError("the name must be lowercase letters, digits and '_' (at most 64)")
    text = raw.get("rule")
    if not isinstance(text, str):
        raise ValueError("rule: required, a CEL expression such as 'module == \"bell.tower\"'")
    try:
        rule = Rule(text)
    except RuleError as exc:
        raise ValueError(f"rule {text!r}: {exc}") from None
    action = raw.get("action")
    if action not in ACTIONS:
        raise ValueError(f"action: must be one of {', '.join(ACTIONS)}, got {action!r}")
    phases = raw.get("phases", [])
    if not isinstance(phases, list) or any(p not in PHASES for p in phases):
        raise ValueError(f"phases: a list of {', '.join(PHASES)}, got {phases!r}")
    cooldown = raw.get("cooldown", 0.0)
    if (
        isinstance(cooldown, bool)
        or not isinstance(cooldown, (int, float))
        or not 0 <= cooldown <= 10**7
    ):
        raise ValueError(f"cooldown: seconds, 0 or more, got {cooldown!r}")
    window = None
    if "window" in raw:
        w = raw["window"]
        if not isinstance(w, Mapping) or set(w) != {"count", "seconds"}:
            raise ValueError("window: a table { count = N, seconds = S }")
        count, seconds = w["count"], w["seconds"]
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100_000:
            raise ValueError(f"window.count: a whole number from 1 to 100000, got {count!r}")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not 0 < seconds <= 86400
        ):
            raise ValueError(f"window.seconds: above 0 and at most 86400, got {seconds!r}")
        window = Window(count, float(seconds))
    flags = {}
    for flag, default in (("essential", False), ("enabled", True)):
        flags[flag] = raw.get(flag, default)
        if not isinstance(flags[flag], bool):
            raise ValueError(f"{flag}: true or false, got {flags[flag]!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ValueError("description: a string")
    params = ACTIONS[action].check_params({k: v for k, v in raw.items() if k not in _SETTINGS})
    if action in CROSS_CHECKS:
        CROSS_CHECKS[action](params)
    return RitualSpec(
        name,
        rule,
        action,
        params,
        frozenset(phases),
        float(cooldown),
        window,
        flags["essential"],
        flags["enabled"],
        builtin,
        description,
    )


# -- the engine ---------------------------------------------------------------------------------


@dataclass
class _Deferred:
    event: str
    trigger: Glint | None
    count: int = 1
    seq: int | None = None  # the `deferred` run's seq


@dataclass
class _State:
    """What the engine remembers about one ritual (guarded by the engine's lock)."""

    last_run_at: float | None = None
    last_status: str | None = None
    last_seq: int | None = None
    cooldown_until: float = 0.0
    skip_noted: bool = False  # a skipped_cooldown run is recorded once per cooldown period
    skipped: int = 0
    runs: int = 0
    hits: deque[float] = field(default_factory=deque)
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
        orchestrator: Orchestrator,
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
        self.stopping = threading.Event()  # set on close: webhook backoffs end at once
        self._order = [s for s in specs if s.enabled]
        self._caesura = any(s.action == "caesura" for s in self._order)
        self._lock = threading.Lock()
        self._state = {s.name: _State() for s in specs}
        self._deferred_pending = False
        self._local = threading.local()  # depth: >0 while this thread runs an action
        self._worker = _Worker(queue_size)
        state = breath.state()
        self._seen = ((state.phase, state.phase_started_at), state.climate)
        self._restore()

    # -- events --------------------------------------------------------------------------------
    def on_glint(self, glint: Glint, state: BreathState) -> None:
        """Evaluate every ritual on a stored glint (called after its commit, outside the lock)."""
        if self._depth():
            return
        fields = {
            "module": glint.module,
            "phase": glint.phase,
            "context": glint.context,
            "id": glint.id,
            "parent_id": glint.parent_id,
            "source": glint.source,
        }
        self._evaluate("glint", prepare(activation(fields, glint.breath, "glint")), glint, state)

    def on_breath(self, state: BreathState) -> None:
        """Evaluate rituals on a phase or climate change; called on every breath publish.

        Inside an action (which may change the breath itself) it does nothing and leaves the
        change for the next publish, so a ritual reacting to a ritual is one step, not recursion."""
        if self._depth():
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
            self._evaluate(event, prepare(activation(None, breath, event)), None, state)

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
        """Gate one matching ritual (phases, window, cooldown, caesura), then run or record it."""
        if glint is None and not self.cluster.claim(
            f"breath:{spec.name}:{event}:{state.phase_started_at}:{state.climate}", 3600.0
        ):
            return  # another worker took this breath change
        now = self.clock.now()
        with self._lock:
            st = self._state[spec.name]
            if spec.phases and state.phase not in spec.phases:
                return
            if spec.window is not None:
                st.hits.append(now)
                while st.hits and st.hits[0] <= now - spec.window.seconds:
                    st.hits.popleft()
                if len(st.hits) < spec.window.count:
                    return
            if now < st.cooldown_until:
                st.skipped += 1
                if st.skip_noted:
                    return
                st.skip_noted = True
                until = st.cooldown_until
                decision = "skip"
            elif (
                self._caesura
                and state.phase == "night_hold"
                and not spec.essential
                and "night_hold" not in spec.phases
            ):  # naming night_hold opts in to it
                if st.deferred is not None:
                    st.deferred.count += 1
                    return
                deferred = st.deferred = _Deferred(event, glint)
                self._deferred_pending = True
                decision = "defer"
            else:
                previous = st.cooldown_until
                st.cooldown_until = now + spec.cooldown
                st.skip_noted = False
                st.hits.clear()
                decision = "run"
        if decision == "skip":
            self._record(
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
        elif decision == "defer":
            run = self._record(
                spec,
                event,
                glint,
                "deferred",
                {"message": "caesura: non-essential rituals wait for the next inhale"},
            )
            deferred.seq = run.get("seq") if run else None
        else:
            self._dispatch(spec, event, glint, state, previous)

    def _dispatch(
        self,
        spec: RitualSpec,
        event: str,
        glint: Glint | None,
        state: BreathState,
        previous_cooldown: float,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if not spec.background:
            self._run(spec, event, glint, state, previous_cooldown, extra)
            return

        def job() -> None:
            self._run(spec, event, glint, state, previous_cooldown, extra)

        if not self._worker.submit(job):
            self._record(
                spec,
                event,
                glint,
                "error",
                {"error": "the ritual worker's queue is full; this run was dropped"},
                extra=extra,
            )

    def _run_deferred(self, state: BreathState) -> None:
        """At inhale: run what the caesura deferred, each ritual once (matches were coalesced)."""
        now = self.clock.now()
        with self._lock:
            if not self._deferred_pending:
                return
            self._deferred_pending = False
            due = []
            for name, st in self._state.items():
                if st.deferred is not None:
                    due.append((self.specs[name], st.deferred, st.cooldown_until))
                    st.deferred = None
                    st.cooldown_until = now + self.specs[name].cooldown
                    st.skip_noted = False
        for spec, d, previous in due:
            self._dispatch(
                spec,
                d.event,
                d.trigger,
                state,
                previous,
                {"deferred_from": d.seq, "coalesced": d.count},
            )

    # -- running -------------------------------------------------------------------------------
    def _run(
        self,
        spec: RitualSpec,
        event: str,
        glint: Glint | None,
        state: BreathState,
        previous_cooldown: float | None,
        extra: dict[str, Any] | None = None,
        invoked: bool = False,
    ) -> dict[str, Any] | None:
        """Run the action and record the run; answers the record (None: nothing to do)."""
        started = time.perf_counter()
        self._local.depth = self._depth() + 1
        emitted = None
        try:
            outcome = ACTIONS[spec.action].run(RunContext(spec, event, glint, state, self))
            if outcome is None:
                if not invoked:
                    with self._lock:  # nothing happened: no run, and no cooldown from it
                        if previous_cooldown is not None:
                            self._state[spec.name].cooldown_until = previous_cooldown
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
        return self._record(spec, event, glint, status, result, duration, emitted, extra)

    def _record(
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
            with self._lock:
                st = self._state[spec.name]
                st.last_run_at, st.last_status, st.last_seq = now, status, seq
                st.runs += 1
        return orjson.loads(body)

    # -- admin ---------------------------------------------------------------------------------
    def invoke(self, name: str, trigger: Glint | None = None) -> dict[str, Any] | None:
        """Run a ritual now, whatever its rule, phases, cooldown or enabled flag (an admin asked).
        Runs in the caller's thread, slow actions included. KeyError for an unknown name."""
        spec = self.specs[name]
        with self._lock:
            st = self._state[name]
            st.cooldown_until = self.clock.now() + spec.cooldown
            st.skip_noted = False
        return self._run(spec, "invoke", trigger, self.breath.state(), None, invoked=True)

    def dry_run(self, name: str, glints: list[Glint], rule: Rule | None = None) -> dict[str, Any]:
        """Which of `glints` the ritual's rule (or `rule`) matches, as each was received: the
        glint and the breath it was stamped with. No gate, no action, nothing recorded."""
        spec = self.specs[name]
        rule = rule or spec.rule
        matched = []
        for g in glints:
            fields = {
                "module": g.module,
                "phase": g.phase,
                "context": g.context,
                "id": g.id,
                "parent_id": g.parent_id,
                "source": g.source,
            }
            if rule.matches(activation(fields, g.breath, "glint")):
                matched.append(
                    {
                        "id": g.id,
                        "seq": g.seq,
                        "module": g.module,
                        "phase": g.phase,
                        "received_at": g.received_at,
                    }
                )
        return {
            "ritual": name,
            "rule": rule.source,
            "examined": len(glints),
            "matched_count": len(matched),
            "matched": matched,
        }

    def describe(self) -> list[dict[str, Any]]:
        """Every ritual's definition and state, in evaluation order."""
        now = self.clock.now()
        out = []
        with self._lock:
            for name, spec in self.specs.items():
                st = self._state[name]
                out.append(
                    {
                        **spec.to_dict(),
                        "state": {
                            "last_run_at": iso(st.last_run_at)
                            if st.last_run_at is not None
                            else None,
                            "last_status": st.last_status,
                            "last_seq": st.last_seq,
                            "cooldown_until": iso(st.cooldown_until)
                            if st.cooldown_until > now
                            else None,
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
        return self._worker.drain(timeout)

    def close(self) -> None:
        self.stopping.set()
        self._worker.stop()

    def _depth(self) -> int:
        return getattr(self._local, "depth", 0)

    def _restore(self) -> None:
        """Last runs, cooldowns and pending deferrals survive a restart."""
        ran = {name: orjson.loads(body) for name, body in self.record.last_runs().items()}
        for name, run in ran.items():
            if name not in self._state:
                continue
            at = datetime.fromisoformat(run["at"]).timestamp()
            st = self._state[name]
            st.last_run_at, st.last_status, st.last_seq = at, run["status"], run["seq"]
            st.cooldown_until = at + self.specs[name].cooldown
        for name, body in self.record.last_runs(("deferred",)).items():
            run = orjson.loads(body)
            if name not in self._state or run["seq"] < ran.get(name, {}).get("seq", 0):
                continue  # a later run completed it
            trigger = self.record.get(run["trigger_id"]) if run["trigger_id"] else None
            self._state[name].deferred = _Deferred(run["trigger_event"], trigger, 1, run["seq"])
            self._deferred_pending = True


class _Worker:
    """One background thread (a greenlet under gevent's patched threading) for slow actions.

    Started on first use, never at import; its queue is bounded: a full queue refuses the job."""

    def __init__(self, size: int) -> None:
        self._jobs: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=size)
        self._cond = threading.Condition()
        self._unfinished = 0
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, job: Callable[[], object]) -> bool:
        with self._cond:
            if self._stopped:
                return False
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="spiral-rituals", daemon=True
                )
                self._thread.start()
            self._unfinished += 1
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self._done()
            return False
        return True

    def _loop(self) -> None:
        while not self._stopped:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                log.exception("ritual job failed")
            finally:
                self._done()

    def _done(self) -> None:
        with self._cond:
            self._unfinished -= 1
            self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._unfinished:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            running = self._thread is not None
        if running:
            try:
                self._jobs.put_nowait(None)
            except queue.Full:
                pass  # the loop sees _stopped after its current job

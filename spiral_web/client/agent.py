"""The `Agent` base class: a module that listens to the stream and answers the glints its pattern
matches, in the phases it declares."""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from collections import deque
from collections.abc import Collection
from typing import Any

import requests

from ..engine.rules import activation
from .emit import DEFAULT_URL, SpiralError, emit_glint
from .stream import Listener, StreamEvent


class Agent:
    """A background module that breathes with the hub: it listens to the stream, acts only in the
    phases it declares, responds to the glints its pattern matches, and emits its answers with the
    trigger as `parent_id`. Subclass it:

        class MemoryKeeper(Agent):
            module = "agent.memory_keeper"           # the name its own glints carry
            phases = {"return"}                      # the phases it acts in
            pattern = 'module == "memory.scroll"'    # a CEL rule, as rituals use

            def respond(self, glint):
                return {"context": {"reflection": glint["context"]}}

    The pattern sees the glint's `module`, `phase`, `context`, `id`, `parent_id`, `source` and the
    breath's `climate`, `usage` and `breath_phase` (see spiral_web.engine.rules). The current phase
    comes from the stream's `breath` events; while the hub rests (`resting: true`) the agent rests
    too unless it declares `night_hold`. It never responds to its own glints. `run()` blocks until
    `stop()`; `handle()` acts on one event and is what tests drive directly.
    """

    module: str = ""
    phases: Collection[str] = frozenset()
    pattern: str = "true"
    stream_module: str | None = None  # optional module glob the server filters glints by
    remember = 1024  # how many of its own glint ids it keeps, to never answer itself
    attempts = 3  # tries per answer when throttled (429) or the server fails; the id makes it safe

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        last_event_id: str | int | None = None,
        session: requests.Session | None = None,
    ) -> None:
        from ..engine.breath import PHASES
        from ..engine.glints import MODULE_PATTERN
        from ..engine.rules import Rule

        name = type(self).__name__
        if not isinstance(self.module, str) or not re.match(MODULE_PATTERN, self.module):
            raise ValueError(
                f"{name}.module must be a dotted lowercase name such as "
                f"'agent.memory_keeper', got {self.module!r}"
            )
        phases = {self.phases} if isinstance(self.phases, str) else set(self.phases)
        unknown = phases - set(PHASES)
        if not phases or unknown:
            raise ValueError(
                f"{name}.phases must name the phases it acts in, from "
                f"{', '.join(PHASES)}" + (f"; unknown: {min(unknown)!r}" if unknown else "")
            )
        self.phases = frozenset(phases)
        self.rule = Rule(self.pattern)  # RuleError names the problem
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get("SPIRAL_TOKEN")
        self.breath: dict[str, Any] = {}
        self.log = logging.getLogger(f"spiral.agent.{self.module}")
        self._last_event_id = last_event_id
        self._given_session = session
        self._session = session  # during run(): one session (kept-alive connection) for answers
        self._own_ids: deque[str] = deque(maxlen=self.remember)
        self._stop = threading.Event()
        self._listener: Listener | None = None

    # -- what a subclass writes ----------------------------------------------------------------
    def respond(self, glint: dict[str, Any]) -> dict[str, Any] | None:
        """The glint to emit in answer (`context`, optionally `phase`, `module`, `id`), or None."""
        raise NotImplementedError

    def on_breath(self, breath: dict[str, Any]) -> None:
        """Called with every breath state the stream sends (phase, climate, usage, resting)."""

    # -- behaviour -----------------------------------------------------------------------------
    @property
    def awake(self) -> bool:
        """True when the current breath is one of this agent's phases (and it need not rest)."""
        if self.breath.get("phase") not in self.phases:
            return False
        return not self.breath.get("resting") or "night_hold" in self.phases

    def handle(self, event: StreamEvent) -> dict[str, Any] | None:
        """Act on one stream event; returns the server's answer when it emitted a glint."""
        if event.event == "breath" and isinstance(event.data, dict):
            self.breath = event.data
            self.on_breath(event.data)
            return None
        glint = event.data
        if event.event != "glint_emission" or not isinstance(glint, dict):
            return None
        if glint.get("module") == self.module or glint.get("id") in self._own_ids:
            return None
        if not self.awake or not self.rule.matches(activation(glint, self.breath, "glint")):
            return None
        reply = self.respond(glint)
        if reply is None:
            return None
        return self.emit(reply, parent=glint)

    def emit(self, reply: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
        """Emit `reply` as a child of `parent`. Its id is derived from the parent's unless given, so
        answering the same glint twice (a retry, a restart) is stored once. Retries a refusal that
        may pass later (429, 5xx, no connection) up to `attempts` times."""
        parent_id = str(parent["id"])
        gid = reply.get("id") or _child_id(self.module, parent_id)
        self._own_ids.append(gid)
        for attempt in range(1, self.attempts + 1):
            try:
                answer = emit_glint(
                    reply.get("module", self.module),
                    reply.get("phase"),
                    reply.get("context") or {},
                    id=gid,
                    parent_id=parent_id,
                    url=self.url,
                    token=self.token,
                    session=self._session,
                )
                break
            except SpiralError as exc:  # throttled or a server error: worth another try
                if attempt == self.attempts or not (exc.status == 429 or exc.status >= 500):
                    raise
                wait = _retry_after(exc.body)
            except (requests.ConnectionError, requests.Timeout):
                if attempt == self.attempts:
                    raise
                wait = 1.0
            if self._stop.wait(wait):  # stopping: give up on this answer
                raise SpiralError(503, {"error": "stopped", "message": "the agent is stopping"})
        self.log.info(
            "answered %s (%s) with %s: %s",
            parent_id,
            parent.get("module"),
            gid,
            answer.get("status"),
        )
        return answer

    def run(self, max_events: int | None = None) -> int:
        """Listen and act until `stop()` (or after `max_events` glints); returns how many glints it
        emitted. Reconnects and resumes by itself; a failing answer is logged, not fatal."""
        listener = Listener(
            self.url, module=self.stream_module, token=self.token, last_event_id=self._last_event_id
        )
        self._listener = listener
        self._session = self._given_session or requests.Session()
        if self._stop.is_set():
            listener.close()
        seen = emitted = 0
        try:
            for event in listener:
                try:
                    if self.handle(event) is not None:
                        emitted += 1
                except SpiralError as exc:
                    self.log.warning("answer to %s refused: %s", _event_id(event), exc)
                except requests.RequestException as exc:
                    self.log.warning("answer to %s not sent: %s", _event_id(event), exc)
                except Exception:
                    self.log.exception("failed on %s", _event_id(event))
                if event.event == "glint_emission":
                    seen += 1
                    if max_events is not None and seen >= max_events:
                        break
                if self._stop.is_set():
                    break
        finally:
            listener.close()
            self._last_event_id = listener.last_event_id  # a later run() resumes from here
            if self._session is not self._given_session:
                self._session.close()
            self._session = self._given_session
        return emitted

    def stop(self) -> None:
        """End `run()` from another thread (or a signal handler)."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()


def _child_id(module: str, parent_id: str) -> str:
    gid = f"{module}:{parent_id}"
    if len(gid) <= 128:
        return gid
    return f"{module[:80]}:{uuid.uuid5(uuid.NAMESPACE_URL, gid)}"


def _retry_after(body: dict[str, Any]) -> float:
    try:
        return min(max(float(body.get("retry_after") or 1.0), 0.1), 10.0)
    except (TypeError, ValueError):
        return 1.0


def _event_id(event: StreamEvent) -> str:
    data = event.data
    return str(data.get("id")) if isinstance(data, dict) else str(event.id)

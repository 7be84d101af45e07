"""What a ritual can do: the built-in actions, and how each one runs.

An action gets a `RunContext` — the ritual's name and parameters, the event that triggered it,
the breath, and a narrow set of `Capabilities` (emit a glint, archive, protect the hub through the
breath, read the clock, publish the breath) — and answers an `Outcome` (a JSON-able result and the
id of a glint it emitted), or None when its effect is already in place (the throttle is already
on, the sources are already blocked, the caesura is already declared): then nothing happened, and
the scheduler records no run. An action that fails raises; `ActionError` carries a result to record.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..breath import CLIMATES, PHASES, Alert, BreathState, iso
from ..clock import Clock
from ..glints import Glint, GlintError, GlintIn, validate_glint
from .params import NUMBER, REQUIRED, ActionType, Param, between, http_url, module_name, one_of

SUMMARY_KEYS = 20  # how many modules an archival glint's context names (the run keeps them all)


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]
    emitted_id: str | None = None


class ActionError(Exception):
    """An action failed in a way it can describe; `result` is recorded with the error."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}


class Protection(Protocol):
    """The breath's protective switches, which the built-in actions turn on."""

    def state(self) -> BreathState: ...

    def begin_throttle(self, release: float) -> bool: ...

    def suspects(self) -> dict[str, int]: ...

    def block(
        self, sources: list[str], seconds: float, message: str, kind: str = ...
    ) -> tuple[list[str], Alert | None]: ...

    def declare_caesura(self, until: float) -> bool: ...

    def override_phase(self, phase: str | None, seconds: float = ...) -> None: ...

    def override_climate(self, climate: str | None, seconds: float = ...) -> None: ...


@dataclass(frozen=True)
class Capabilities:
    """Everything an action may reach, and nothing more."""

    clock: Clock
    emit: Callable[[GlintIn, str], Glint]  # (glint, source) -> the stored glint
    archive: Callable[[float, float], dict[str, Any]]  # (cutoff, now) -> summary
    protection: Protection
    publish_breath: Callable[[], object]
    stopping: threading.Event  # set when the hub shuts down: waits (webhook backoff) end


@dataclass
class RunContext:
    ritual: str
    params: Mapping[str, Any]
    event: str  # glint | phase_change | climate_change | invoke
    trigger: Glint | None
    state: BreathState
    can: Capabilities

    def emit(self, module: str, context: dict[str, Any], phase: str | None = None) -> str:
        """Emit a child glint: the trigger is its parent, its context names the ritual."""
        data = validate_glint(
            {
                "module": module,
                "phase": phase,
                "context": {**context, "ritual": self.ritual, "trigger_event": self.event},
                "parent_id": self.trigger.id if self.trigger is not None else None,
            }
        )
        return self.can.emit(data, ritual_source(self.ritual)).id


def is_loopback(source: str) -> bool:
    """True for a source that is this machine's own address (every local client shares it)."""
    try:
        return ipaddress.ip_address(source.strip("[]")).is_loopback
    except ValueError:
        return source == "localhost"


def ritual_source(name: str) -> str:
    """The `source` of glints a ritual emits; rituals are not evaluated on them (no chains)."""
    return f"ritual:{name}"


# -- the actions --------------------------------------------------------------------------------


def archive(ctx: RunContext) -> Outcome:
    """Move glints older than the retention window into the archive, and say what moved."""
    days = float(ctx.params["retention_days"])
    now = ctx.can.clock.now()
    cutoff = now - days * 86400.0
    summary = ctx.can.archive(cutoff, now)
    since = summary["since_last"]["since"]
    result = {
        "moved": summary["moved"],
        "cutoff": iso(cutoff),
        "retention_days": days,
        "archived": summary["archived"],
        "since_last": {**summary["since_last"], "since": iso(since) if since is not None else None},
    }
    emitted = None
    if summary["moved"]:  # nothing moved: the run record says so; no glint to clutter the stream
        by_module = summary["archived"]["by_module"]
        emitted = ctx.emit(
            "ritual.archival",
            {
                "moved": summary["moved"],
                "cutoff": iso(cutoff),
                "by_module": dict(list(by_module.items())[:SUMMARY_KEYS]),
                "by_phase": summary["archived"]["by_phase"],
                "modules_total": len(by_module),
            },
        )
    return Outcome(result, emitted)


def throttle(ctx: RunContext) -> Outcome | None:
    """Pause input until usage falls below the release level; one warning glint per episode."""
    release = float(ctx.params["release"])
    breath = ctx.can.protection
    now = breath.state().usage
    if now < release:  # it would lift at once: say so rather than claim a pause
        return Outcome(
            {
                "episode": "none",
                "usage": now,
                "release_below": release,
                "message": f"usage is {now:.0%}, already below the release level "
                f"{release:.0%}: input was not paused",
            }
        )
    if not breath.begin_throttle(release):
        return None
    usage = ctx.state.usage
    emitted = ctx.emit(
        "ritual.throttle",
        {
            "warning": "input paused: the hub is saturated",
            "usage": usage,
            "release_below": release,
        },
    )
    ctx.can.publish_breath()
    return Outcome({"episode": "started", "usage": usage, "release_below": release}, emitted)


def watch(ctx: RunContext) -> Outcome | None:
    """Name the sources that made the climate suspicious, block them for a while, raise an alert."""
    seconds = float(ctx.params["block_seconds"])
    breath = ctx.can.protection
    suspects = breath.suspects()
    ranked = sorted(suspects, key=lambda s: -suspects[s])[:50]
    # This machine is one address for every local client: blocking it would let one of them
    # (or a web page) lock all the others out. It is named in the alert, never blocked.
    sources = [s for s in ranked if not is_loopback(s)]
    spared = [s for s in ranked if is_loopback(s)]
    state = breath.state()
    if not ranked and state.climate != "suspicious":
        return Outcome(
            {
                "sources": [],
                "message": f"the climate is {state.climate} and no source stands out: "
                "nothing to block",
            }
        )
    if sources:
        message = (
            f"{len(sources)} source(s) sent too many rejected requests; their input is "
            f"refused for {seconds:g} s"
        )
    elif spared:
        message = (
            f"too many rejected requests from this machine ({', '.join(spared)}); local "
            "clients share its address, so none is blocked"
        )
    else:
        message = "the climate is suspicious, but no single source stands out"
    fresh, alert = breath.block(sources, seconds, message)
    if alert is None:
        return None
    rejected = {s: suspects[s] for s in fresh}
    result = {
        "sources": fresh,
        "rejected": rejected,
        "spared": spared,
        "until": iso(alert.until),
        "message": message,
    }
    emitted = ctx.emit("ritual.suspicion_watcher", result)
    ctx.can.publish_breath()
    return Outcome(result, emitted)


def caesura(ctx: RunContext) -> Outcome | None:
    """The soft shutdown: declared for this night_hold (invoking it starts a night_hold)."""
    breath = ctx.can.protection
    state = breath.state()
    if state.phase != "night_hold":
        if ctx.event != "invoke":
            return None  # the night ended before the ritual ran
        breath.override_phase("night_hold", float(ctx.params["seconds"]))
        state = breath.state()
    if not breath.declare_caesura(state.phase_ends_at):
        return None
    result = {
        "message": "the hub rests: agents pause, non-essential rituals wait for the next inhale; "
        "glints are still accepted and stored",
        "until": iso(state.phase_ends_at),
        "phase_reason": state.phase_reason,
    }
    emitted = ctx.emit("ritual.caesura", result)
    ctx.can.publish_breath()
    return Outcome(result, emitted)


def emit(ctx: RunContext) -> Outcome:
    """Emit a glint from the ritual's template."""
    p = ctx.params
    emitted = ctx.emit(p["module"], dict(p["context"]), p["phase"])
    return Outcome({"module": p["module"], "phase": p["phase"]}, emitted)


def webhook(ctx: RunContext) -> Outcome:
    """POST the run as JSON; retry with backoff a bounded number of times; never from ingest."""
    # here, not at import: `spiral serve` must not import ssl before gevent patches it
    import requests

    p = ctx.params
    payload: dict[str, Any] = {
        "ritual": ctx.ritual,
        "trigger_event": ctx.event,
        "trigger": ctx.trigger.to_dict() if ctx.trigger is not None else None,
        "breath": ctx.state.to_dict(),
        "at": iso(ctx.can.clock.now()),
    }
    attempts, problem = 0, ""
    for attempt in range(1 + int(p["retries"])):
        if attempt and ctx.can.stopping.wait(float(p["backoff"]) * 2 ** (attempt - 1)):
            problem += " (stopped: the server is shutting down)"
            break
        attempts += 1
        try:
            resp = requests.post(p["url"], json=payload, timeout=float(p["timeout"]))
        except requests.RequestException as exc:
            problem = f"{type(exc).__name__}: {_first_line(exc)}"
            continue
        if 200 <= resp.status_code < 300:
            return Outcome({"url": p["url"], "status_code": resp.status_code, "attempts": attempts})
        problem = f"HTTP {resp.status_code}"
        if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
            break  # the target refuses this request; asking again will not help
    raise ActionError(
        f"webhook failed after {attempts} attempt(s): {problem}",
        {"url": p["url"], "attempts": attempts},
    )


def set_climate(ctx: RunContext) -> Outcome:
    """Set the climate for a while (an override, as an admin would)."""
    climate, seconds = ctx.params["climate"], float(ctx.params["seconds"])
    ctx.can.protection.override_climate(climate, seconds)
    ctx.can.publish_breath()
    return Outcome({"climate": climate, "until": iso(ctx.can.clock.now() + seconds)})


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def _check_emit(params: dict[str, Any]) -> None:
    try:
        validate_glint(
            {"module": params["module"], "phase": params["phase"], "context": params["context"]}
        )
    except GlintError as exc:
        raise ValueError(exc.message) from None


ACTIONS: dict[str, ActionType] = {
    "archive": ActionType(
        archive,
        {
            "retention_days": Param(NUMBER, 7.0, between(0, 36500, lo_open=True)),
        },
        background=True,
        description="move glints older than the retention window into the archive",
    ),
    "throttle": ActionType(
        throttle,
        {
            "release": Param(NUMBER, 0.6, between(0, 1, lo_open=True)),
        },
        description="answer 429 to new glints until usage falls below `release`",
    ),
    "watch": ActionType(
        watch,
        {
            "block_seconds": Param(NUMBER, 300.0, between(0, 86400, lo_open=True)),
        },
        description="block the sources that made the climate suspicious, raise an alert",
    ),
    "caesura": ActionType(
        caesura,
        {
            "seconds": Param(NUMBER, 1800.0, between(0, 86400, lo_open=True)),
        },
        description="soft shutdown for this night_hold (invoked: start a night_hold of `seconds`)",
    ),
    "emit": ActionType(
        emit,
        {
            "module": Param(str, REQUIRED, module_name),
            "phase": Param(str, None, one_of(PHASES)),
            "context": Param(dict, {}),
        },
        description="emit a glint from a template",
    ),
    "webhook": ActionType(
        webhook,
        {
            "url": Param(str, REQUIRED, http_url),
            "timeout": Param(NUMBER, 5.0, between(0, 60, lo_open=True)),
            "retries": Param(int, 2, between(0, 10)),
            "backoff": Param(NUMBER, 0.5, between(0, 60)),
        },
        background=True,
        description="POST the run as JSON to a URL, with bounded retries",
    ),
    "set_climate": ActionType(
        set_climate,
        {
            "climate": Param(str, REQUIRED, one_of(CLIMATES)),
            "seconds": Param(NUMBER, 300.0, between(0, 86400, lo_open=True)),
        },
        description="set the climate for a while",
    ),
}

# Checks across parameters, run at load after each parameter passed its own.
CROSS_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {"emit": _check_emit}

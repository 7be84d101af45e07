"""Invoking a ritual from the admin panel: which invocations ask to be confirmed first (those that
block, pause or set the climate to something other than clear), what the confirmation says they
will do, and what the page says after one ran."""

from __future__ import annotations

from typing import Any

from ...engine.rituals import RitualSpec
from .filters import seconds_in_words

# Actions that keep input or agents out for a while.
DISRUPTIVE_ACTIONS = frozenset({"throttle", "watch", "caesura"})


def asks_first(spec: RitualSpec) -> bool:
    """Whether invoking `spec` asks to be confirmed: it blocks, pauses, or darkens the climate."""
    if spec.action in DISRUPTIVE_ACTIONS:
        return True
    return spec.action == "set_climate" and spec.params.get("climate") != "clear"


def risk(spec: RitualSpec, breath: Any) -> str:
    """What invoking `spec` now will do, in a sentence or two, for the confirmation."""
    p = spec.params
    if spec.action == "caesura":
        return (
            f"The hub rests in a night hold {seconds_in_words(float(p['seconds']))}: agents "
            "pause and non-essential rituals wait for the next inhale. Glints are still stored."
        )
    if spec.action == "throttle":
        release = float(p["release"])
        now = f"Usage is {breath.usage:.0%} now"
        if breath.usage < release:
            return (
                f"It pauses input only while usage is at or above {release:.0%}. {now}, so it "
                "will pause nothing."
            )
        return (
            f"Input from the heaviest sources is refused (429) until usage falls below "
            f"{release:.0%}. {now}."
        )
    if spec.action == "watch":
        return (
            "The sources that made the climate suspicious are blocked "
            f"{seconds_in_words(float(p['block_seconds']))} and an alert is raised (this "
            f"machine's own address is never blocked). The climate is {breath.climate} now."
        )
    if spec.action == "set_climate":
        return (
            f"The climate is set to {p['climate']} {seconds_in_words(float(p['seconds']))}; "
            "rituals that watch the climate may act on it."
        )
    return f"It runs its action ({spec.action.replace('_', ' ')}) now."


def aftermath(run: dict[str, Any] | None) -> str | None:
    """What is in effect after a run, and where the way out is, when the run left something on."""
    if not run or run.get("status") != "ok":
        return None
    raw = run.get("result")
    result: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if run.get("action") == "throttle" and result.get("episode") == "started":
        return "Input is paused now; “End the throttle” above lifts it."
    if run.get("action") == "watch" and result.get("sources"):
        return "Blocked now; each source has an “Unblock” button above."
    return None

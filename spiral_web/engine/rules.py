"""Rule expressions (rituals and agents) in CEL, the Common Expression Language, compiled once.

A rule sees one activation per event: the glint's fields (`module`, `phase`, `context`, `id`,
`parent_id`, `source`), the breath (`climate`, `usage`, `breath_phase`), and `event` — `"glint"` for
a glint, `"phase_change"` or `"climate_change"` for a change of the breath itself. Examples:

    module == "memory.scroll" && phase == "return"
    usage > 0.8
    event == "phase_change" && phase == "return"
    has(context.depth) && context.depth == "contemplative"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cel

VARIABLES = (
    "module",
    "phase",
    "context",
    "id",
    "parent_id",
    "source",
    "climate",
    "usage",
    "breath_phase",
    "event",
)


class RuleError(ValueError):
    """A rule that does not compile, or uses a name a rule cannot see."""


class Rule:
    __slots__ = ("source", "_program")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise RuleError("the rule is empty")
        try:
            self._program = cel.compile(source)
        except ValueError as exc:
            raise RuleError(str(exc)) from None
        unknown = sorted(set(self._program.variables()) - set(VARIABLES))
        if unknown:
            raise RuleError(f"unknown name {unknown[0]!r}; a rule can use {', '.join(VARIABLES)}")
        self.source = source

    def matches(self, activation: Mapping[str, Any] | cel.Context) -> bool:
        """True only when the rule evaluates to true; a missing key or a type error is a no-match.

        Pass `prepare(activation)` when several rules see the same event: converting the
        activation to CEL values is most of the cost, and a prepared one is converted once."""
        try:
            if isinstance(activation, cel.Context):
                return self._program.execute(activation) is True
            return self._program.execute(dict(activation)) is True
        except (KeyError, TypeError, ValueError, RuntimeError):
            return False

    def __repr__(self) -> str:
        return f"Rule({self.source!r})"


def activation(
    glint: Mapping[str, Any] | None, breath: Mapping[str, Any], event: str = "glint"
) -> dict[str, Any]:
    """The names a rule can see, for one glint (or a breath change when `glint` is None)."""
    g = glint or {}
    return {
        "module": g.get("module", ""),
        "phase": g.get("phase", breath.get("phase", "")),
        "context": g.get("context", {}),
        "id": g.get("id", ""),
        "parent_id": g.get("parent_id") or "",
        "source": g.get("source", ""),
        "climate": breath.get("climate", "clear"),
        "usage": float(breath.get("usage", 0.0)),
        "breath_phase": breath.get("phase", ""),
        "event": event,
    }


def prepare(activation: Mapping[str, Any]) -> cel.Context:
    """The activation converted to CEL once, for evaluating many rules on the same event.

    Not thread-safe (a cel.Context is not): prepare one per event, in the thread evaluating it."""
    return cel.Context(variables=dict(activation))

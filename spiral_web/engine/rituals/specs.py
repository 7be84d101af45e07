"""Ritual definitions: the four built-ins from the seed's table, and `[rituals.<name>]` tables from
the configuration file, each checked and its rule compiled once at load. A bad definition stops
start-up with a RitualConfigError naming the file, the ritual and the problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..breath import PHASES
from ..rules import Rule, RuleError
from .actions import ACTIONS, CROSS_CHECKS

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

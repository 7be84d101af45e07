"""Rituals: named actions run when their rule matches a glint or a change of the breath.

- `specs`: the definitions (built-ins and the configuration's tables), checked at load;
- `scheduler`: the engine that evaluates and gates them (phases, window, cooldown, caesura);
- `runner`: runs what the scheduler lets through and records every run;
- `actions` and `params`: what a ritual can do, and its parameters;
- `worker`: the background thread slow actions run on.
"""

from .scheduler import RitualEngine
from .specs import (
    BUILTINS,
    NAME_PATTERN,
    STATUSES,
    TRIGGER_EVENTS,
    RitualConfigError,
    RitualSpec,
    Window,
    load_rituals,
)

__all__ = [
    "BUILTINS",
    "NAME_PATTERN",
    "STATUSES",
    "TRIGGER_EVENTS",
    "RitualConfigError",
    "RitualEngine",
    "RitualSpec",
    "Window",
    "load_rituals",
]

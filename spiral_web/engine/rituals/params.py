"""Parameters of ritual actions: their types, defaults and checks, validated once at load."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..glints import MODULE_PATTERN

if TYPE_CHECKING:
    from .actions import Outcome, RunContext

REQUIRED = object()
NUMBER = (int, float)


@dataclass(frozen=True)
class Param:
    kind: type | tuple[type, ...]
    default: Any = REQUIRED
    check: Callable[[Any], str | None] | None = None  # answers the problem, or None when fine


def between(lo: float, hi: float, lo_open: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not math.isfinite(v) or v > hi or v < lo or (lo_open and v == lo):
            return f"must be {'above' if lo_open else 'at least'} {lo:g} and at most {hi:g}"
        return None

    return check


def one_of(values: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in values else f"must be one of {', '.join(values)}"


def module_name(v: str) -> str | None:
    return (
        None
        if re.match(MODULE_PATTERN, v) and len(v) <= 100
        else "must be a dotted lowercase module name, e.g. ritual.bell"
    )


def http_url(v: str) -> str | None:
    return None if re.match(r"^https?://[^\s/]+", v) else "must be an http:// or https:// URL"


@dataclass(frozen=True)
class ActionType:
    run: Callable[[RunContext], Outcome | None]
    params: dict[str, Param] = field(default_factory=dict)
    background: bool = False  # slow (I/O, big transactions): runs on the ritual worker, not ingest
    description: str = ""

    def check_params(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validated parameters with defaults filled in; ValueError names the problem."""
        unknown = sorted(set(raw) - set(self.params))
        if unknown:
            allowed = ", ".join(self.params) or "none"
            raise ValueError(f"unknown setting {unknown[0]!r} (this action takes: {allowed})")
        out: dict[str, Any] = {}
        for name, param in self.params.items():
            if name not in raw:
                if param.default is REQUIRED:
                    raise ValueError(f"{name}: required")
                out[name] = param.default
                continue
            value = raw[name]
            if value is None and param.default is None:
                out[name] = None
                continue
            if isinstance(value, bool) or not isinstance(value, param.kind):
                raise ValueError(f"{name}: expected {_kind_name(param.kind)}, got {value!r}")
            problem = param.check(value) if param.check else None
            if problem:
                raise ValueError(f"{name}: {problem}")
            out[name] = value
        return out


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if kind == NUMBER:
        return "a number"
    names: dict[object, str] = {str: "a string", int: "a whole number", dict: "a table"}
    return names.get(kind, str(kind))

"""What the engine needs from its collaborators, as plain data and protocols."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .glints import Glint, GlintIn


@dataclass(slots=True)
class StoreItem:
    """A validated glint waiting to be stamped with a seq and written."""

    gid: str
    data: GlintIn
    phase: str
    received_at: str
    received_ts: float
    breath: dict[str, Any]
    source: str


@dataclass(slots=True)
class StoreResult:
    glint: Glint | None = None
    duplicate: bool = False
    error: str | None = None  # a refusal found only at write time (e.g. unknown parent)

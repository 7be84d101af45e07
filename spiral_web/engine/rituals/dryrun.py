"""A dry run: which glints a rule matches, as each was received. No gate, no action, nothing
recorded; admins use it to test a rule before they trust it."""

from __future__ import annotations

import time
from typing import Any

from ..glints import Glint
from ..rules import Rule, activation, glint_fields

SLICE = 25  # glints a dry run examines before it lets other requests run


def dry_run(name: str, rule: Rule, glints: list[Glint]) -> dict[str, Any]:
    """Which of `glints` `rule` matches, each with the breath it was stamped with.

    Each evaluation is bounded (engine/rules.py); between slices the worker is handed to the
    other requests (a sleep of 0 is a yield under gevent), so a long dry run stalls nobody."""
    matched = []
    for i, g in enumerate(glints):
        if i % SLICE == SLICE - 1:
            time.sleep(0)
        if rule.matches(activation(glint_fields(g), g.breath, "glint")):
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

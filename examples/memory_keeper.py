"""Memory keeper: answers every `memory.scroll` glint that arrives in `return` with a reflection.

Run it from a checkout, next to a running hub:

    spiral serve &
    spiral agent examples.memory_keeper:MemoryKeeper --url http://127.0.0.1:5056

Then emit a scroll (`GET /api/breath` says when the hub is in `return`):

    spiral emit memory.scroll --context '{"action": "reflection", "depth": "contemplative"}'

In `return` the keeper answers with an `agent.memory_keeper` glint whose `parent_id` is the scroll
(`GET /api/glints/<scroll id>/lineage` shows both); in any other phase it lets the scroll pass.
"""

from __future__ import annotations

from typing import Any

from spiral_web.client import Agent


class MemoryKeeper(Agent):
    module = "agent.memory_keeper"
    phases = {"return"}
    pattern = 'module == "memory.scroll"'
    stream_module = "memory.*"  # the server sends it scrolls (and the breath), nothing else

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kept = 0

    def respond(self, glint: dict[str, Any]) -> dict[str, Any]:
        self.kept += 1
        context = glint.get("context") or {}
        reflection: dict[str, Any] = {
            "reflection": "the scroll is kept",
            "scroll_fields": len(context),
            "kept_since_start": self.kept,
            "climate": self.breath.get("climate"),
        }
        for key in ("action", "depth"):  # echo the scroll's intent, bounded
            value = context.get(key)
            if isinstance(value, str) and len(value) <= 200:
                reflection[key] = value
        return {"context": reflection}

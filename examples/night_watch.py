"""Night watch: awake only in `night_hold`, it notes every glint that arrives while the hub rests.

Run it from a checkout, next to a running hub that has quiet hours (or an admin-invoked night):

    SPIRAL_QUIET_HOURS=22:00-06:00 spiral serve &
    spiral agent examples.night_watch:NightWatch --url http://127.0.0.1:5056

During the day it only listens. At night, each glint from outside (not a ritual's, not an
agent's) gets an `agent.night_watch` answer (its `parent_id` is the glint) saying who was active
during the rest; when the night ends it logs how many it saw.
"""

from __future__ import annotations

from typing import Any

from spiral_web.client import Agent


class NightWatch(Agent):
    module = "agent.night_watch"
    phases = {"night_hold"}  # declaring night_hold is what lets it act while the hub rests
    # outside activity only: the hub's own ritual glints and other agents' answers are not news
    pattern = '!module.startsWith("ritual.") && !module.startsWith("agent.")'

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen_tonight = 0

    def on_breath(self, breath: dict[str, Any]) -> None:
        if breath.get("phase") != "night_hold" and self.seen_tonight:
            self.log.info("night over: %d glints arrived during the rest", self.seen_tonight)
            self.seen_tonight = 0

    def respond(self, glint: dict[str, Any]) -> dict[str, Any]:
        self.seen_tonight += 1
        return {
            "context": {
                "watch": "activity during rest",
                "observed_module": glint.get("module"),
                "observed_source": glint.get("source"),
                "seen_tonight": self.seen_tonight,
            }
        }

"""Ritual actions on their own: each reaches the hub only through the capabilities it is given
(here, recording fakes), and its parameters are checked at load with messages that name the
problem."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from spiral_web.engine.breath import BreathConfig, BreathEngine
from spiral_web.engine.clock import FakeClock
from spiral_web.engine.rituals.actions import ACTIONS, Capabilities, RunContext

from .parts import T0


class Recorder:
    """The capabilities an action gets, recording what it asked for."""

    def __init__(self, summary: dict | None = None) -> None:
        self.clock = FakeClock(T0)
        self.breath = BreathEngine(BreathConfig(capacity=1.0), self.clock)
        self.emitted: list = []
        self.archived: list = []
        self.breaths = 0
        self.summary = summary or {
            "moved": 0,
            "archived": {"by_module": {}, "by_phase": {}},
            "since_last": {"since": None, "total": 0, "by_module": {}, "by_phase": {}},
        }

    def capabilities(self) -> Capabilities:
        def emit(data, source):
            self.emitted.append((data, source))
            return SimpleNamespace(id=f"g{len(self.emitted)}")

        def archive(cutoff, now):
            self.archived.append((cutoff, now))
            return self.summary

        def publish_breath():
            self.breaths += 1

        return Capabilities(
            self.clock, emit, archive, self.breath, publish_breath, threading.Event()
        )


def run(action: str, can: Recorder, params: dict | None = None, event: str = "glint", trigger=None):
    checked = ACTIONS[action].check_params(params or {})
    context = RunContext(action, checked, event, trigger, can.breath.state(), can.capabilities())
    return ACTIONS[action].run(context)


def test_emit_makes_a_child_of_the_trigger_that_names_the_ritual():
    can = Recorder()
    trigger = SimpleNamespace(id="parent-1")
    outcome = run(
        "emit", can, {"module": "ritual.bell", "context": {"rang": True}}, trigger=trigger
    )
    [(data, source)] = can.emitted
    assert (data.module, data.parent_id, source) == ("ritual.bell", "parent-1", "ritual:emit")
    assert data.context == {"rang": True, "ritual": "emit", "trigger_event": "glint"}
    assert outcome.emitted_id == "g1"


def test_archive_asks_for_the_retention_window_and_emits_only_when_something_moved():
    can = Recorder()
    outcome = run("archive", can, {"retention_days": 2})
    assert can.archived == [(T0 - 2 * 86400, T0)]
    assert outcome.result["moved"] == 0 and outcome.emitted_id is None and can.emitted == []
    can.summary = {
        **can.summary,
        "moved": 3,
        "archived": {"by_module": {"a.b": 3}, "by_phase": {"hold": 3}},
    }
    outcome = run("archive", can)
    assert outcome.emitted_id == "g1" and can.emitted[0][0].context["moved"] == 3


def test_set_climate_overrides_and_publishes_the_breath():
    can = Recorder()
    outcome = run("set_climate", can, {"climate": "unsettled", "seconds": 60})
    assert can.breath.state().climate == "unsettled" and can.breaths == 1
    assert outcome.result["climate"] == "unsettled"


def test_a_throttle_at_low_usage_says_input_was_not_paused():
    can = Recorder()
    outcome = run("throttle", can)
    assert "not paused" in outcome.result["message"] and can.breath.state().throttled is False
    assert can.emitted == [] and can.breaths == 0


@pytest.mark.parametrize(
    ("action", "params", "problem"),
    [
        pytest.param("emit", {}, "module: required", id="missing"),
        pytest.param("emit", {"module": "Bad"}, "dotted lowercase", id="bad-module"),
        pytest.param("archive", {"retention_days": 0}, "above 0", id="out-of-range"),
        pytest.param("archive", {"retention_days": "7"}, "expected a number", id="wrong-type"),
        pytest.param("webhook", {"url": "ftp://x"}, "http:// or https://", id="bad-url"),
        pytest.param("throttle", {"speed": 1}, "unknown setting 'speed'", id="unknown"),
        pytest.param("set_climate", {"climate": "stormy"}, "one of clear", id="not-one-of"),
    ],
)
def test_parameters_are_checked_at_load_with_the_problem_named(action, params, problem):
    with pytest.raises(ValueError, match=".*") as refused:
        ACTIONS[action].check_params(params)
    assert problem in str(refused.value)

"""The hub's protection as an operator sees it: who is blocked and why, lifting a block or the
throttle, the log of refusals, and rituals that say what they actually did when invoked."""

from __future__ import annotations

from spiral_web.bus import LocalCluster
from spiral_web.engine.breath import BreathConfig, BreathEngine
from spiral_web.engine.clock import FakeClock

from .parts import T0, runs


def test_blocks_are_listed_and_an_admin_can_lift_one():
    clock = FakeClock(T0)
    breath = BreathEngine(BreathConfig(), clock)
    breath.block(["10.0.0.9", "10.0.0.8"], 300, "too many rejected requests")
    clock.advance(60)
    listed = breath.blocks()
    assert [b["source"] for b in listed] == ["10.0.0.9", "10.0.0.8"]
    assert listed[0]["seconds_left"] == 240 and listed[0]["reason"] == "too many rejected requests"
    assert breath.unblock("10.0.0.9") is True
    assert breath.refusal("10.0.0.9") is None
    assert breath.refusal("10.0.0.8").kind == "source_blocked"
    assert breath.state().alerts[0].sources == ("10.0.0.8",)  # the alert names who is left
    assert breath.unblock("10.0.0.8") is True
    assert breath.state().alerts == ()
    assert breath.unblock("10.0.0.8") is False


def test_a_lifted_block_stays_lifted_for_a_worker_that_starts_later(tmp_path):
    clock = FakeClock(T0)
    cluster = LocalCluster(tmp_path / "shared.json")
    breath = BreathEngine(BreathConfig(), clock, cluster=cluster)
    breath.block(["10.0.0.9", "10.0.0.8"], 300, "too many")
    breath.unblock("10.0.0.9")
    later = BreathEngine(BreathConfig(), clock, cluster=LocalCluster(tmp_path / "shared.json"))
    assert later.refusal("10.0.0.9") is None
    assert later.refusal("10.0.0.8").kind == "source_blocked"


def test_an_admin_can_end_the_throttle():
    breath = BreathEngine(BreathConfig(capacity=1.0), FakeClock(T0))
    breath.record_ingest("a", n=20)
    breath.begin_throttle(0.6)
    assert breath.refusal("a").kind == "throttled"
    assert breath.end_throttle() is True
    assert breath.refusal("a") is None and breath.state().throttled is False
    assert breath.end_throttle() is False


def test_refusals_are_logged_with_who_and_why():
    clock = FakeClock(T0)
    breath = BreathEngine(BreathConfig(climate_window=60), clock)
    breath.record_rejection("10.0.0.9", 422, "invalid_glint")
    breath.record_rejection("10.0.0.9", 401, "unauthorized")
    clock.advance(1)
    breath.record_rejection("sensor", 429, "rate_limited")
    log = breath.rejections()
    assert log["total"] == 3
    assert log["by_source"] == {"10.0.0.9": 2, "sensor": 1}
    assert log["by_reason"] == {"invalid_glint": 1, "unauthorized": 1, "rate_limited": 1}
    assert [(r["source"], r["status"]) for r in log["recent"]][0] == ("sensor", 429)  # newest
    clock.advance(59.5)
    assert breath.rejections()["total"] == 1  # the window moved on; the log keeps the rows
    assert len(breath.rejections()["recent"]) == 3


def test_the_watcher_never_blocks_this_machines_address(make):
    hub = make()
    for _ in range(40):  # local clients all share 127.0.0.1
        hub.breath.record_rejection("127.0.0.1", 403, "cross_origin")
    assert hub.breath.state().climate == "suspicious"
    run = hub.engine.invoke("suspicion_watcher")
    assert run["status"] == "ok"
    assert run["result"]["sources"] == [] and run["result"]["spared"] == ["127.0.0.1"]
    assert hub.breath.refusal("127.0.0.1") is None


def test_invoked_rituals_say_what_they_did(make):
    hub = make()
    throttle = hub.engine.invoke("throttle")  # usage 0: a pause would lift at once
    assert "not paused" in throttle["result"]["message"]
    assert hub.breath.state().throttled is False
    watcher = hub.engine.invoke("suspicion_watcher")  # a clear climate: nothing to block
    assert watcher["result"]["message"].startswith("the climate is clear")
    assert hub.breath.state().alerts == ()
    assert [r["status"] for r in runs(hub, "suspicion_watcher")] == ["ok"]


def test_a_lifted_source_is_not_blocked_again_for_what_it_already_answered_for(make):
    hub = make()
    for _ in range(40):
        hub.breath.record_rejection("10.0.0.9", 422, "invalid_glint")
    assert hub.engine.invoke("suspicion_watcher")["result"]["sources"] == ["10.0.0.9"]
    assert hub.breath.unblock("10.0.0.9") is True
    assert hub.breath.suspects() == {}  # its refusals are forgiven with the block
    assert hub.breath.refusal("10.0.0.9") is None

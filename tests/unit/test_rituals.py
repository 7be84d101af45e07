"""The ritual engine without Flask: definitions, gating (phases, window, cooldown, caesura),
breath-change events, failures, the worker, the one sequence, and the breath's protection state.
Time is a FakeClock; nothing sleeps to wait for a phase."""

from __future__ import annotations

import threading

import pytest

from spiral_web.engine.breath import BreathConfig, BreathEngine
from spiral_web.engine.clock import FakeClock
from spiral_web.engine.glints import GlintDraft, validate_glint
from spiral_web.engine.orchestrator import Refused
from spiral_web.engine.ports import RunDraft
from spiral_web.engine.rituals import (
    BUILTINS,
    RitualConfigError,
    actions,
    load_rituals,
)
from spiral_web.engine.rules import Rule, activation, prepare
from spiral_web.store import SQLiteStore

from .parts import CYCLE, ONLY_CUSTOM, T0, emit, glints, runs, wire

# -- definitions ---------------------------------------------------------------------------------


def test_the_four_builtins_exist_without_a_file():
    specs = {s.name: s for s in load_rituals(None, "defaults")}
    assert list(specs) == ["archival", "throttle", "suspicion_watcher", "caesura"]
    assert specs["archival"].rule.source == 'module == "memory.scroll" && phase == "return"'
    assert specs["throttle"].rule.source == "usage > 0.8"
    assert specs["suspicion_watcher"].rule.source == 'climate == "suspicious"'
    assert specs["caesura"].rule.source == 'breath_phase == "night_hold"'
    assert [s.essential for s in specs.values()] == [False, True, True, True]
    assert specs["archival"].params == {"retention_days": 7.0}
    assert specs["archival"].background and not specs["throttle"].background


def test_a_table_tunes_or_disables_a_builtin_and_adds_custom_ones():
    specs = {
        s.name: s
        for s in load_rituals(
            {
                "archival": {"retention_days": 2, "cooldown": 0},
                "caesura": {"enabled": False},
                "bell": {
                    "rule": 'module == "bell.tower"',
                    "action": "emit",
                    "module": "ritual.bell",
                    "phases": ["inhale"],
                    "window": {"count": 3, "seconds": 60},
                },
            },
            "spiral.toml",
        )
    }
    assert specs["archival"].params == {"retention_days": 2} and specs["archival"].cooldown == 0
    assert specs["archival"].rule.source == BUILTINS["archival"]["rule"]  # untouched settings stay
    assert specs["caesura"].enabled is False
    bell = specs["bell"]
    assert (bell.builtin, bell.essential, bell.phases, bell.window.count) == (
        False,
        False,
        {"inhale"},
        3,
    )
    assert bell.params == {"module": "ritual.bell", "phase": None, "context": {}}


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        pytest.param(
            {"rule": "module ==", "action": "emit", "module": "x.y"},
            "Syntax error",
            id="rule-syntax",
        ),
        pytest.param(
            {"rule": 'modul == "x"', "action": "emit", "module": "x.y"},
            "unknown name 'modul'",
            id="rule-unknown-name",
        ),
        pytest.param({"action": "emit", "module": "x.y"}, "rule: required", id="rule-missing"),
        pytest.param({"rule": "true", "action": "explode"}, "action: must be one of", id="action"),
        pytest.param({"rule": "true", "action": "emit"}, "module: required", id="emit-module"),
        pytest.param(
            {"rule": "true", "action": "emit", "module": "Bad Name"},
            "module: must be a dotted lowercase",
            id="emit-module-shape",
        ),
        pytest.param(
            {"rule": "true", "action": "emit", "module": "x.y", "colour": "red"},
            "unknown setting 'colour'",
            id="unknown-setting",
        ),
        pytest.param(
            {"rule": "true", "action": "webhook", "url": "ftp://x"},
            "url: must be an http",
            id="webhook-url",
        ),
        pytest.param(
            {"rule": "true", "action": "webhook", "url": "http://x", "retries": 99},
            "retries: must be",
            id="webhook-retries",
        ),
        pytest.param(
            {"rule": "true", "action": "set_climate", "climate": "stormy"},
            "climate: must be one of",
            id="climate",
        ),
        pytest.param(
            {"rule": "true", "action": "emit", "module": "x.y", "phases": ["dusk"]},
            "phases:",
            id="phases",
        ),
        pytest.param(
            {"rule": "true", "action": "emit", "module": "x.y", "cooldown": -1},
            "cooldown:",
            id="cooldown",
        ),
        pytest.param(
            {
                "rule": "true",
                "action": "emit",
                "module": "x.y",
                "window": {"count": 0, "seconds": 5},
            },
            "window.count",
            id="window-count",
        ),
        pytest.param(
            {"rule": "true", "action": "emit", "module": "x.y", "enabled": "yes"},
            "enabled: true or false",
            id="enabled",
        ),
        pytest.param(
            {"rule": "true", "action": "emit", "module": "x.y", "context": {"k": "\u0007"}},
            "control characters",
            id="emit-template-context",
        ),
    ],
)
def test_a_bad_definition_names_the_file_the_ritual_and_the_problem(table, problem):
    with pytest.raises(RitualConfigError) as caught:
        load_rituals({"bell": table}, "/etc/spiral.toml")
    message = str(caught.value)
    assert message.startswith("/etc/spiral.toml: ritual 'bell': ")
    assert problem in message


def test_a_bad_builtin_override_and_a_bad_name_are_refused():
    with pytest.raises(RitualConfigError, match="ritual 'throttle': release"):
        load_rituals({"throttle": {"release": 1.5}}, "f.toml")
    with pytest.raises(RitualConfigError, match="ritual 'Bell': the name"):
        load_rituals({"Bell": {"rule": "true", "action": "emit", "module": "x.y"}}, "f.toml")
    with pytest.raises(RitualConfigError, match=r"\[rituals\] must hold one table"):
        load_rituals(["bell"], "f.toml")


def test_a_prepared_activation_matches_as_the_plain_one():
    act = activation(
        {"module": "memory.scroll", "phase": "return", "context": {"depth": "deep"}},
        {"phase": "night_hold", "climate": "clear", "usage": 0.9},
    )
    rules = [
        'module == "memory.scroll" && phase == "return"',
        "usage > 0.8",
        'breath_phase == "night_hold"',
        'context.depth == "deep"',
        "context.missing == 1",
        'climate == "suspicious"',
    ]
    prepared = prepare(act)
    assert (
        [Rule(r).matches(prepared) for r in rules]
        == [Rule(r).matches(act) for r in rules]
        == [True, True, True, True, False, False]
    )


# -- gating --------------------------------------------------------------------------------------

BELL = {
    "rule": 'module == "bell.tower"',
    "action": "emit",
    "module": "ritual.bell",
    "context": {"rang": True},
}


def test_a_custom_ritual_emits_a_child_of_its_trigger_that_names_it(make):
    hub = make({**ONLY_CUSTOM, "bell": BELL})
    trigger = emit(hub, "bell.tower")
    [child] = glints(hub, "ritual.bell")
    assert child.parent_id == trigger.id
    assert child.context == {"rang": True, "ritual": "bell", "trigger_event": "glint"}
    assert child.source == "ritual:bell"
    [run] = runs(hub, "bell")
    assert run["seq"] == child.seq + 1  # one sequence: glint, child glint, then the run
    assert (run["status"], run["trigger_id"], run["emitted_id"], run["trigger_event"]) == (
        "ok",
        trigger.id,
        child.id,
        "glint",
    )
    assert run["rule"] == BELL["rule"] and run["duration_ms"] >= 0


def test_glints_a_ritual_emits_do_not_trigger_rituals(make):
    hub = make({**ONLY_CUSTOM, "echo": {"rule": "true", "action": "emit", "module": "ritual.echo"}})
    emit(hub, "a.b")
    assert [g.module for g in glints(hub)] == ["a.b", "ritual.echo"]  # not an endless echo
    assert len(runs(hub, "echo")) == 1


def test_cooldown_skips_matches_and_records_the_first_skip_only(make):
    hub = make({**ONLY_CUSTOM, "bell": {**BELL, "cooldown": 30}})
    for _ in range(4):
        emit(hub, "bell.tower")
    assert [r["status"] for r in runs(hub, "bell")] == ["ok", "skipped_cooldown"]
    [state] = [r["state"] for r in hub.engine.describe() if r["name"] == "bell"]
    assert state["skipped_cooldown"] == 3 and state["cooldown_until"] is not None
    hub.clock.advance(30)
    emit(hub, "bell.tower")
    emit(hub, "bell.tower")
    assert [r["status"] for r in runs(hub, "bell")] == [
        "ok",
        "skipped_cooldown",
        "ok",
        "skipped_cooldown",
    ]
    assert len(glints(hub, "ritual.bell")) == 2


def test_phases_gate_a_ritual_by_the_breath_phase(make):
    hub = make({**ONLY_CUSTOM, "bell": {**BELL, "phases": ["hold", "return"]}})
    emit(hub, "bell.tower")  # inhale
    hub.clock.advance(16)  # hold
    emit(hub, "bell.tower")
    hub.clock.advance(8)  # exhale
    emit(hub, "bell.tower")
    assert [g.breath["phase"] for g in glints(hub, "ritual.bell")] == ["hold"]
    assert len(runs(hub, "bell")) == 1  # a gated match is not a run


def test_a_count_within_a_window_fires_on_the_nth_match(make):
    hub = make({**ONLY_CUSTOM, "storm": {**BELL, "window": {"count": 3, "seconds": 60}}})
    emit(hub, "bell.tower")
    hub.clock.advance(30)
    emit(hub, "bell.tower")
    hub.clock.advance(31)  # the first match has left the window
    emit(hub, "bell.tower")
    assert runs(hub, "storm") == []
    emit(hub, "bell.tower")  # three within 60 s
    assert len(runs(hub, "storm")) == 1
    emit(hub, "bell.tower")
    emit(hub, "bell.tower")  # the window starts over after firing
    assert len(runs(hub, "storm")) == 1
    emit(hub, "bell.tower")
    assert len(runs(hub, "storm")) == 2


def test_a_failing_action_is_recorded_and_the_glint_is_kept(make, monkeypatch):
    def boom(ctx):
        raise RuntimeError("the bell cracked")

    monkeypatch.setitem(
        actions.ACTIONS, "emit", actions.ActionType(boom, actions.ACTIONS["emit"].params)
    )
    hub = make({**ONLY_CUSTOM, "bell": BELL})
    trigger = emit(hub, "bell.tower")
    assert hub.store.get(trigger.id) is not None
    [run] = runs(hub, "bell")
    assert (run["status"], run["result"]) == ("error", {"error": "RuntimeError: the bell cracked"})


# -- breath changes ------------------------------------------------------------------------------


def test_phase_and_climate_changes_are_events_rules_can_match(make):
    hub = make(
        {
            **ONLY_CUSTOM,
            "turn": {
                "rule": 'event == "phase_change" && breath_phase == "return"',
                "action": "emit",
                "module": "ritual.turn",
            },
            "weather": {
                "rule": 'event == "climate_change"',
                "action": "emit",
                "module": "ritual.weather",
            },
        }
    )
    publish = hub.orchestrator.publish_breath
    publish()
    hub.clock.advance(16)  # hold: a change, but not to return
    publish()
    hub.clock.advance(24)  # return
    publish()
    publish()  # the same phase again: not a change
    hub.breath.override_climate("unsettled", 60)
    publish()
    assert [g.module for g in glints(hub)] == ["ritual.turn", "ritual.weather"]
    turn, weather = runs(hub)
    assert (turn["trigger_event"], turn["trigger_id"]) == ("phase_change", None)
    assert weather["trigger_event"] == "climate_change"
    assert glints(hub)[0].parent_id is None


def test_a_breath_change_an_action_causes_is_evaluated_at_the_next_publish(make):
    hub = make(
        {
            **ONLY_CUSTOM,
            "alarm": {
                "rule": 'module == "alarm.bell"',
                "action": "set_climate",
                "climate": "unsettled",
                "seconds": 60,
            },
            "weather": {
                "rule": 'event == "climate_change" && climate == "unsettled"',
                "action": "emit",
                "module": "ritual.weather",
            },
        }
    )
    emit(hub, "alarm.bell")
    assert hub.breath.state().climate == "unsettled"
    # set_climate published the breath itself; its change is left for the next publish
    assert glints(hub, "ritual.weather") == []
    hub.orchestrator.publish_breath()
    assert len(glints(hub, "ritual.weather")) == 1


# -- caesura -------------------------------------------------------------------------------------


def test_caesura_defers_non_essential_rituals_to_the_next_inhale(make):
    hub = make({"archival": {"cooldown": 0}, "bell": {**BELL, "essential": True}})
    hub.breath.override_phase("night_hold", seconds=130)
    hub.orchestrator.publish_breath()  # the phase change: caesura declares the rest
    assert hub.breath.state().caesura is True
    [caesura_run] = runs(hub, "caesura")
    assert caesura_run["trigger_event"] == "phase_change"
    assert len(glints(hub, "ritual.caesura")) == 1

    first = emit(hub, "memory.scroll", "return")
    emit(hub, "memory.scroll", "return")
    emit(hub, "bell.tower")  # essential: runs at once
    assert len(glints(hub, "memory.scroll")) == 2  # glints are still accepted and stored
    assert len(glints(hub, "ritual.bell")) == 1
    [deferred] = runs(hub, "archival")
    assert (deferred["status"], deferred["trigger_id"]) == ("deferred", first.id)
    [state] = [r["state"] for r in hub.engine.describe() if r["name"] == "archival"]
    assert state["deferred"] == 2
    assert len(runs(hub, "caesura")) == 1  # declared once per night, not once per glint

    hub.clock.advance(130)  # the override ends inside exhale: not yet
    assert hub.breath.state().phase == "exhale"
    hub.orchestrator.publish_breath()
    assert len(runs(hub, "archival")) == 1
    hub.clock.set(T0 + 3 * CYCLE)  # the next inhale
    hub.orchestrator.publish_breath()
    assert hub.engine.drain(5)
    done = runs(hub, "archival")[-1]
    assert (done["status"], done["deferred_from"], done["coalesced"]) == ("ok", deferred["seq"], 2)
    assert done["trigger_id"] == first.id
    assert hub.breath.state().caesura is False


def test_a_deferral_and_a_cooldown_survive_a_restart(make):
    tables = {"archival": {"cooldown": 600}, "bell": {**BELL, "cooldown": 600, "essential": True}}
    hub = make(tables)
    hub.breath.override_phase("night_hold", seconds=30)
    emit(hub, "bell.tower")
    trigger = emit(hub, "memory.scroll", "return")
    assert [r["status"] for r in runs(hub, "archival")] == ["deferred"]
    hub.engine.close()
    hub.orchestrator, restarted = wire(tables, hub.clock, hub.store, hub.hub, hub.breath)
    hub.engine = restarted
    states = {r["name"]: r["state"] for r in restarted.describe()}
    assert states["archival"]["deferred"] == 1
    assert states["bell"]["last_status"] == "ok" and states["bell"]["cooldown_until"] is not None
    hub.clock.set(T0 + 2 * CYCLE)
    hub.orchestrator.publish_breath()
    assert restarted.drain(5)
    done = runs(hub, "archival")[-1]
    assert (done["status"], done["trigger_id"]) == ("ok", trigger.id)


def test_a_ritual_that_names_night_hold_among_its_phases_is_not_deferred(make):
    hub = make({"bell": {**BELL, "phases": ["night_hold"]}})
    hub.breath.override_phase("night_hold", seconds=30)
    emit(hub, "bell.tower")
    assert [r["status"] for r in runs(hub, "bell")] == ["ok"]


def test_without_the_caesura_ritual_nothing_is_deferred(make):
    hub = make({"archival": {"cooldown": 0}, "caesura": {"enabled": False}})
    hub.breath.override_phase("night_hold", seconds=100)
    emit(hub, "memory.scroll", "return")
    assert hub.engine.drain(5)
    assert [r["status"] for r in runs(hub, "archival")] == ["ok"]


# -- the worker ----------------------------------------------------------------------------------


def test_a_full_worker_queue_records_the_dropped_run(make, monkeypatch):
    started, release = threading.Event(), threading.Event()

    def slow(ctx):
        started.set()
        release.wait(10)
        return actions.Outcome({"slow": True})

    monkeypatch.setitem(
        actions.ACTIONS,
        "archive",
        actions.ActionType(slow, actions.ACTIONS["archive"].params, background=True),
    )
    hub = make({"archival": {"cooldown": 0}}, queue_size=1)
    emit(hub, "memory.scroll", "return")
    assert started.wait(5)  # the worker holds the first run
    for _ in range(3):  # one waits in the queue, the rest find it full
        emit(hub, "memory.scroll", "return")
    assert hub.engine.drain(0.05) is False
    release.set()
    assert hub.engine.drain(5)
    statuses = [r["status"] for r in runs(hub, "archival")]
    assert sorted(statuses) == ["error", "error", "ok", "ok"]
    assert "queue is full" in runs(hub, "archival", "error")[0]["result"]["error"]


# -- one sequence --------------------------------------------------------------------------------


def _draft(gid: str, ts: float) -> GlintDraft:
    return GlintDraft.stamp(gid, validate_glint({"module": "a.b"}), "inhale", "t", ts, {}, "s")


def _run(ritual: str, at: float, record: dict | None = None) -> RunDraft:
    return RunDraft(ritual, "ok", at, record or {"ritual": ritual})


def test_glints_runs_and_the_archive_share_one_sequence(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    try:
        assert store.append([_draft("a", 1.0), _draft("b", 2.0)]) == 1
        assert store.append_run(_run("bell", 3.0))[0] == 3
        assert store.append([_draft("c", 100.0)]) == 4
        assert store.archive_before(50.0, 200.0)["moved"] == 2
        assert store.seq_bounds() == (1, 4)
        replay = store.replay_after(0, None, None, 10)
        assert [(e.kind, e.seq) for e in replay] == [
            ("glint_emission", 1),
            ("glint_emission", 2),
            ("ritual", 3),
            ("glint_emission", 4),
        ]
        assert [(e.kind, e.seq) for e in store.replay_after(1, "a.*", None, 2)] == [
            ("glint_emission", 2),
            ("ritual", 3),
        ]  # filters apply to glints; limits to all
        assert store.counts() == ({"inhale": 3}, {"a.b": 3})
    finally:
        store.close()
    reopened = SQLiteStore(tmp_path / "s.sqlite3")
    try:
        assert reopened.append_run(_run("bell", 4.0))[0] == 5  # the counter survives
    finally:
        reopened.close()


def test_two_connections_writing_one_file_never_share_a_seq(tmp_path):
    """Two stores on one file behave as two processes would: BEGIN IMMEDIATE serializes them."""
    a, b = SQLiteStore(tmp_path / "s.sqlite3"), SQLiteStore(tmp_path / "s.sqlite3")
    seqs: list[int] = []
    lock = threading.Lock()

    def write(store: SQLiteStore, prefix: str) -> None:
        for i in range(60):
            if i % 3:
                got = [store.append([_draft(f"{prefix}{i}", 1.0)])]
            else:
                got = [store.append_run(_run("r", 1.0))[0]]
            with lock:
                seqs.extend(got)

    try:
        threads = [threading.Thread(target=write, args=(s, p)) for s, p in ((a, "a"), (b, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(seqs) == list(range(1, 121))  # no duplicate, no gap
        assert [e.seq for e in a.replay_after(0, None, None, 500)] == list(range(1, 121))
    finally:
        a.close()
        b.close()


# -- the breath's protection state ---------------------------------------------------------------


def test_throttle_lifts_only_below_its_release_level():
    clock = FakeClock(T0)
    breath = BreathEngine(BreathConfig(capacity=1.0, usage_window=10), clock)
    breath.record_ingest("a", n=4)
    clock.advance(1)
    breath.record_ingest("a", n=5)
    assert breath.begin_throttle(0.6) is True
    assert breath.begin_throttle(0.6) is False  # one episode
    refusal = breath.refusal("a")
    assert (refusal.kind, refusal.retry_after) == ("throttled", 9)  # the 4 must leave the window
    clock.advance(9)  # usage 0.5
    assert breath.refusal("a") is None
    assert breath.state().throttled is False
    assert breath.begin_throttle(0.6) is True  # a new episode


def test_blocked_sources_are_refused_until_their_time_and_the_alert_shows():
    clock = FakeClock(T0)
    breath = BreathEngine(BreathConfig(), clock)
    fresh, alert = breath.block(["10.0.0.9"], 120, "too many rejections")
    assert fresh == ["10.0.0.9"] and alert is not None
    assert breath.block(["10.0.0.9"], 120, "again") == ([], None)  # already blocked: nothing new
    refusal = breath.refusal("10.0.0.9")
    assert (refusal.kind, refusal.retry_after) == ("source_blocked", 120)
    assert breath.refusal("10.0.0.1") is None
    assert breath.state().to_dict()["alerts"][0]["sources"] == ["10.0.0.9"]
    clock.advance(120)
    assert breath.refusal("10.0.0.9") is None
    assert breath.state().alerts == ()


def test_the_orchestrator_refuses_but_lets_ritual_glints_through(make):
    hub = make(ONLY_CUSTOM)
    hub.breath.block(["10.0.0.9"], 60, "blocked")
    with pytest.raises(Refused) as caught:
        emit(hub, source="10.0.0.9")
    assert (caught.value.status, caught.value.error, caught.value.retry_after) == (
        429,
        "source_blocked",
        60,
    )
    assert emit(hub, source="ritual:watch").seq == 1


def test_a_throttle_refuses_the_heaviest_sources_first():
    """One client posting as fast as it can must not lock everyone else out: while the hub is
    throttled, a source sending less than the average active source still gets through."""
    clock = FakeClock(T0)
    breath = BreathEngine(BreathConfig(capacity=1.0, usage_window=10), clock)
    breath.record_ingest("flood", n=30)
    breath.record_ingest("sensor", n=2)
    breath.record_ingest("probe", n=1)
    assert breath.begin_throttle(0.6) is True
    assert breath.refusal("flood").kind == "throttled"  # 30 of 33: far above the average of 11
    assert breath.refusal("sensor") is None
    assert breath.refusal("newcomer") is None  # sent nothing yet
    breath.record_ingest("sensor", n=20)  # now the heavier
    clock.advance(1)
    assert breath.refusal("sensor").kind == "throttled"

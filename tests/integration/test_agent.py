"""Agents: the base class's decisions (driven event by event, no server), then the example agents
as processes (`spiral agent module:Class`) against a real server whose clock the test moves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from examples.memory_keeper import MemoryKeeper
from examples.night_watch import NightWatch
from spiral_web.client import Agent, StreamEvent
from spiral_web.client import agent as agent_module  # the tests stand in for what it calls
from spiral_web.engine.rules import RuleError
from tests.support import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 15.0


# -- the base class, one event at a time ------------------------------------------------------


@pytest.fixture
def emitted(monkeypatch) -> list[dict[str, Any]]:
    """What agents would POST, instead of posting it."""
    calls: list[dict[str, Any]] = []

    def fake_emit(module, phase=None, context=None, **kwargs):
        calls.append({"module": module, "phase": phase, "context": context, **kwargs})
        return {
            "status": "glint_broadcast",
            "id": kwargs.get("id"),
            "seq": len(calls),
            "listeners": 1,
        }

    monkeypatch.setattr(agent_module, "emit_glint", fake_emit)
    return calls


def breath(phase: str, **extra: Any) -> StreamEvent:
    return StreamEvent(
        "breath",
        None,
        {
            "phase": phase,
            "climate": "clear",
            "usage": 0.0,
            "resting": phase == "night_hold",
            **extra,
        },
    )


def glint(module: str, gid: str = "g1", **context: Any) -> StreamEvent:
    return StreamEvent(
        "glint_emission",
        "1",
        {
            "id": gid,
            "seq": 1,
            "module": module,
            "phase": "hold",
            "context": context,
            "parent_id": None,
            "source": "test",
        },
    )


def test_acts_only_in_its_phases(emitted):
    keeper = MemoryKeeper("http://hub.invalid")
    assert keeper.handle(glint("memory.scroll", "before-any-breath")) is None  # phase unknown yet
    keeper.handle(breath("hold"))
    assert keeper.handle(glint("memory.scroll", "in-hold")) is None
    keeper.handle(breath("return"))
    answer = keeper.handle(glint("memory.scroll", "in-return", action="reflection", depth="deep"))
    assert answer is not None and answer["status"] == "glint_broadcast"
    keeper.handle(breath("inhale"))
    assert keeper.handle(glint("memory.scroll", "in-inhale")) is None
    assert len(emitted) == 1
    sent = emitted[0]
    assert sent["module"] == "agent.memory_keeper"
    assert sent["parent_id"] == "in-return"
    assert sent["id"] == "agent.memory_keeper:in-return"  # derived: a repeat is stored once
    assert sent["context"]["action"] == "reflection" and sent["context"]["depth"] == "deep"
    assert sent["url"] == "http://hub.invalid"


def test_responds_only_to_what_its_pattern_matches(emitted):
    keeper = MemoryKeeper("http://hub.invalid")
    keeper.handle(breath("return"))
    assert keeper.handle(glint("memory.other")) is None
    assert keeper.handle(glint("breath.emitter")) is None
    assert emitted == []


def test_the_pattern_sees_context_and_breath(emitted):
    class Picky(Agent):
        module = "agent.picky"
        phases = frozenset({"exhale"})
        pattern = (
            'has(context.depth) && context.depth == "deep" && climate == "clear" && usage < 0.5'
        )

        def respond(self, glint):
            return {"context": {"seen": glint["id"]}, "phase": "exhale"}

    picky = Picky("http://hub.invalid")
    picky.handle(breath("exhale"))
    picky.handle(glint("memory.scroll", "shallow", depth="shallow"))
    picky.handle(glint("memory.scroll", "no-depth"))
    picky.handle(glint("memory.scroll", "deep", depth="deep"))
    picky.handle(breath("exhale", climate="suspicious"))
    picky.handle(glint("memory.scroll", "deep-but-suspicious", depth="deep"))
    assert [c["parent_id"] for c in emitted] == ["deep"]
    assert emitted[0]["phase"] == "exhale"


def test_never_answers_itself(emitted):
    class Echo(Agent):
        module = "agent.echo"
        phases = frozenset({"inhale"})

        def respond(self, glint):
            return {"module": "echo.reply", "context": {}}  # under another module name

    echo = Echo("http://hub.invalid")
    echo.handle(breath("inhale"))
    echo.handle(glint("memory.scroll", "trigger"))
    assert len(emitted) == 1
    echo.handle(glint("agent.echo", "own-module"))
    echo.handle(glint("echo.reply", emitted[0]["id"]))  # its own answer coming back on the stream
    assert len(emitted) == 1


def test_rests_while_the_hub_rests_unless_it_keeps_the_night(emitted):
    class Always(Agent):
        module = "agent.always"
        phases = frozenset({"inhale", "hold", "exhale", "return"})

        def respond(self, glint):
            return {"context": {}}

    always, watch = Always("http://hub.invalid"), NightWatch("http://hub.invalid")
    for agent in (always, watch):
        agent.handle(breath("hold", resting=True))  # a caesura: the hub says rest
        agent.handle(glint("memory.scroll", "during-caesura"))
        agent.handle(breath("night_hold"))
        agent.handle(glint("memory.scroll", "at-night"))
        agent.handle(glint("agent.memory_keeper", "another-agent"))
        agent.handle(glint("ritual.caesura", "the-hubs-own"))
    assert [(c["module"], c["parent_id"]) for c in emitted] == [("agent.night_watch", "at-night")]
    assert emitted[0]["context"]["observed_module"] == "memory.scroll"


@pytest.mark.parametrize(
    ("attrs", "problem"),
    [
        pytest.param({"phases": frozenset()}, "phases", id="no-phases"),
        pytest.param({"phases": frozenset({"dusk"})}, "dusk", id="unknown-phase"),
        pytest.param({"module": "Not Dotted"}, "module", id="bad-module"),
        pytest.param({"module": ""}, "module", id="no-module"),
    ],
)
def test_a_badly_declared_agent_fails_at_construction(attrs, problem):
    cls = type("Bad", (Agent,), {"module": "agent.bad", "phases": frozenset({"hold"}), **attrs})
    with pytest.raises(ValueError, match=problem):
        cls("http://hub.invalid")


def test_a_bad_pattern_is_a_rule_error():
    cls = type(
        "Bad",
        (Agent,),
        {"module": "agent.bad", "phases": frozenset({"hold"}), "pattern": "module ==="},
    )
    with pytest.raises(RuleError):
        cls("http://hub.invalid")


def test_run_survives_a_failing_respond_and_stops_after_max_events(monkeypatch, emitted):
    class Fragile(Agent):
        module = "agent.fragile"
        phases = frozenset({"inhale", "hold", "exhale", "return"})

        def respond(self, glint):
            if glint["context"].get("boom"):
                raise RuntimeError("boom")
            return {"context": {}}

    stream = [
        breath("hold"),
        glint("memory.scroll", "boom", boom=True),
        glint("memory.scroll", "after-boom"),
        glint("memory.scroll", "beyond-max-events"),
    ]

    class FakeListener:
        def __init__(self, url, **kwargs):
            self.last_event_id = None

        def __iter__(self):
            return iter(stream)

        def close(self):
            pass

    monkeypatch.setattr(agent_module, "Listener", FakeListener)
    assert Fragile("http://hub.invalid").run(max_events=2) == 1
    assert [c["parent_id"] for c in emitted] == ["after-boom"]


def test_a_throttled_answer_is_retried_with_the_same_id(monkeypatch):
    tries: list[str] = []

    def throttled_once(module, phase=None, context=None, **kwargs):
        tries.append(kwargs["id"])
        if len(tries) == 1:
            raise agent_module.SpiralError(429, {"error": "throttled", "retry_after": 0})
        return {"status": "glint_broadcast", "id": kwargs["id"]}

    monkeypatch.setattr(agent_module, "emit_glint", throttled_once)
    keeper = MemoryKeeper("http://hub.invalid")
    keeper.handle(breath("return"))
    assert keeper.handle(glint("memory.scroll", "busy"))["status"] == "glint_broadcast"
    assert tries == ["agent.memory_keeper:busy"] * 2


def test_a_refused_answer_is_not_retried(monkeypatch):
    tries: list[str] = []

    def refuse(module, phase=None, context=None, **kwargs):
        tries.append(kwargs["id"])
        raise agent_module.SpiralError(422, {"error": "invalid_glint"})

    monkeypatch.setattr(agent_module, "emit_glint", refuse)
    keeper = MemoryKeeper("http://hub.invalid")
    keeper.handle(breath("return"))
    with pytest.raises(agent_module.SpiralError):
        keeper.handle(glint("memory.scroll", "bad"))
    assert len(tries) == 1


def test_stop_ends_run_promptly(server):
    agent = MemoryKeeper(server.url)
    runner = threading.Thread(target=agent.run)
    runner.start()
    wait_for_listeners(server.url, 1)
    started = time.monotonic()
    agent.stop()
    runner.join(TIMEOUT)
    assert not runner.is_alive() and time.monotonic() - started < 2


# -- example agents as processes against a real server ----------------------------------------


def client_post(
    url: str,
    module: str,
    gid: str | None = None,
    phase: str | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"module": module, "context": context or {}}
    if gid:
        body["id"] = gid
    if phase:
        body["phase"] = phase
    resp = requests.post(f"{url}/stream/glint", json=body, timeout=5)
    assert resp.status_code == 201, resp.text
    return resp.json()


def wait_for_listeners(url: str, count: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while (now := requests.get(f"{url}/api/stats", timeout=5).json()["listeners"]) != count:
        assert time.monotonic() < deadline, f"{now} listeners, expected {count}"
        time.sleep(0.02)


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def move_to(url: str, phase: str) -> None:
    """Advance the server's fake clock to the start of the next `phase` (no-op if already there)."""
    for _ in range(6):
        state = requests.get(f"{url}/api/breath", timeout=5).json()
        if state["phase"] == phase:
            return
        step = _ts(state["phase_ends_at"]) - _ts(state["server_time"]) + 0.001
        requests.post(f"{url}/_test/clock", json={"advance": step}, timeout=5).raise_for_status()
    raise AssertionError(f"never reached {phase}")


def move_past(url: str, phase: str) -> None:
    state = requests.get(f"{url}/api/breath", timeout=5).json()
    if state["phase"] == phase:
        step = _ts(state["phase_ends_at"]) - _ts(state["server_time"]) + 0.001
        requests.post(f"{url}/_test/clock", json={"advance": step}, timeout=5).raise_for_status()


def wait_for_glint(url: str, gid: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        resp = requests.get(f"{url}/api/glints/{gid}", timeout=5)
        if resp.status_code == 200:
            return resp.json()
        assert time.monotonic() < deadline, f"glint {gid} never appeared"
        time.sleep(0.05)


def children(url: str, gid: str) -> list[str]:
    """The agents' answers to a glint (rituals may answer it too; they are not under test here)."""
    lineage = requests.get(f"{url}/api/glints/{gid}/lineage", timeout=5).json()
    return [c["id"] for c in lineage["descendants"] if c["module"].startswith("agent.")]


class AgentProcess:
    """`spiral agent module:Class` run from the repository root, as from a checkout."""

    def __init__(self, target: str, url: str, log: Path) -> None:
        self.log_path = log
        self._log = open(log, "wb")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # it finds examples by cwd
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spiral_web.cli", "agent", target, "--url", url],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def run_agent(tmp_path):
    """Start an agent process against a server and wait until the server counts it listening."""
    started: list[AgentProcess] = []

    def start(target: str, url: str) -> AgentProcess:
        agent = AgentProcess(target, url, tmp_path / f"agent-{len(started)}.log")
        started.append(agent)
        wait_for_listeners(url, len(started))
        return agent

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture
def night_server(tmp_path):
    """A server whose quiet hours (00:00-01:00 UTC) the fake clock can be set into."""
    proc = ServerProcess(
        tmp_path / "night", env={"SPIRAL_FAKE_CLOCK": "1", "SPIRAL_QUIET_HOURS": "00:00-01:00"}
    ).start()
    yield proc
    proc.stop()


def test_memory_keeper_answers_scrolls_only_in_return(server, run_agent):
    url = server.url
    move_past(url, "return")
    keeper = run_agent("examples.memory_keeper:MemoryKeeper", url)

    client_post(url, "memory.scroll", "scroll-early", context={"action": "reflection"})
    move_to(url, "return")
    client_post(url, "memory.other", "other-in-return")
    client_post(url, "memory.scroll", "scroll-in-return", context={"depth": "contemplative"})

    answer = wait_for_glint(url, "agent.memory_keeper:scroll-in-return")
    assert answer["module"] == "agent.memory_keeper"
    assert answer["parent_id"] == "scroll-in-return"
    assert answer["context"]["depth"] == "contemplative"
    assert answer["breath"]["phase"] == "return"
    lineage = requests.get(f"{url}/api/glints/{answer['id']}/lineage", timeout=5).json()
    assert [a["id"] for a in lineage["ancestors"]] == ["scroll-in-return"]
    # the stream is in order: by the time this answer exists, the earlier glints were passed over
    assert children(url, "scroll-early") == [] and children(url, "other-in-return") == []

    move_past(url, "return")
    client_post(url, "memory.scroll", "scroll-after-return")
    move_to(url, "return")
    client_post(url, "memory.scroll", "scroll-next-return")
    wait_for_glint(url, "agent.memory_keeper:scroll-next-return")
    assert children(url, "scroll-after-return") == []
    assert children(url, "scroll-in-return") == ["agent.memory_keeper:scroll-in-return"]

    assert keeper.stop() == 0, keeper.output()
    assert "answered scroll-in-return" in keeper.output()


def test_night_watch_acts_only_at_night(night_server, run_agent):
    url = night_server.url
    noon = datetime(2030, 1, 1, 12, 0, tzinfo=UTC).timestamp()
    assert set_clock(url, noon)["phase"] != "night_hold"
    watch = run_agent("examples.night_watch:NightWatch", url)
    client_post(url, "memory.scroll", "by-day")
    assert set_clock(url, noon + 12.5 * 3600)["phase"] == "night_hold"  # 00:30 the next day
    client_post(url, "memory.scroll", "at-night")
    answer = wait_for_glint(url, "agent.night_watch:at-night")
    assert answer["parent_id"] == "at-night"
    assert answer["context"]["observed_module"] == "memory.scroll"
    assert answer["breath"]["phase"] == "night_hold"
    assert set_clock(url, noon + 13.5 * 3600)["phase"] != "night_hold"  # 01:30: morning
    client_post(url, "memory.scroll", "next-morning")
    set_clock(url, noon + 36.5 * 3600)  # the next night
    client_post(url, "memory.scroll", "next-night")
    wait_for_glint(url, "agent.night_watch:next-night")
    assert children(url, "by-day") == [] and children(url, "next-morning") == []
    assert watch.stop() == 0, watch.output()
    assert "night over: 1 glints arrived during the rest" in watch.output(), watch.output()


def set_clock(url: str, when: float) -> dict[str, Any]:
    resp = requests.post(f"{url}/_test/clock", json={"set": when}, timeout=5)
    resp.raise_for_status()
    return resp.json()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        pytest.param("examples.memory_keeper", "module:Class", id="no-class"),
        pytest.param("examples.nowhere:Thing", "cannot import", id="no-module"),
        pytest.param("examples.memory_keeper:Any", "not a subclass", id="not-an-agent"),
    ],
)
def test_agent_command_rejects_what_is_not_an_agent(monkeypatch, capsys, target, message):
    from spiral_web.cli import main

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command adds the working directory
    assert main(["agent", target, "--url", "http://hub.invalid"]) == 2
    assert message in capsys.readouterr().err

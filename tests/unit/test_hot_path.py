"""What the ingest path keeps or remembers to be cheap answers exactly as it did when it worked
everything out each time: the counters' running sums, the breath's phase span, the timestamp, the
glint id, and the rules' remembered answers. No Flask, no sleeping."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime

import pytest

from spiral_web.engine.breath import BreathConfig, BreathEngine, QuietHours, iso, phase_at
from spiral_web.engine.clock import FakeClock
from spiral_web.engine.glints import new_glint_id
from spiral_web.engine.rules import Activation, Rule, activation
from spiral_web.engine.windows import SecondCounter


class NaiveCounter:
    """SecondCounter as it was: every total summed from the buckets."""

    def __init__(self, span: int) -> None:
        self.span, self.buckets = span, []

    def add(self, now: float, n: int = 1) -> None:
        second = int(now)
        if self.buckets and self.buckets[-1][0] == second:
            self.buckets[-1][1] += n
        else:
            self.buckets.append([second, n])
        self._trim(second)

    def total(self, now: float, span: int | None = None) -> int:
        second = int(now)
        self._trim(second)
        window = self.span if span is None else min(span, self.span)
        return sum(c for s, c in self.buckets if s > second - window)

    def _trim(self, second: int) -> None:
        while self.buckets and self.buckets[0][0] <= second - self.span:
            self.buckets.pop(0)


@pytest.mark.parametrize("backwards", [0.0, 0.05], ids=["forward", "clock-set-back-at-times"])
def test_running_sums_match_summing_every_bucket(backwards):
    rng = random.Random(7)
    fast, slow = SecondCounter(60), NaiveCounter(60)
    now = 1_800_000_000.0
    for _ in range(20_000):
        step = rng.choice([0.0, 0.01, 0.3, 1.0, 7.5, 61.0]) * rng.random()
        now += -rng.uniform(0, 90) if rng.random() < backwards else step
        if rng.random() < 0.6:
            n = rng.randint(1, 3)
            fast.add(now, n)
            slow.add(now, n)
        span = rng.choice([None, 1, 10, 60, 300])
        assert fast.total(now, span) == slow.total(now, span)


def test_the_phase_span_kept_ends_where_quiet_hours_begin():
    """A cycle phase cut short by quiet hours beginning within it: the kept span is not used past
    their start (nor before the moment it was worked out, should the clock go back)."""
    quiet = QuietHours.parse("22:00:05-06:00")  # 5 s into a 16-s inhale that starts at 22:00
    config = BreathConfig(epoch=0.0, quiet_hours=quiet)
    start = datetime(2027, 1, 15, 22, 0, tzinfo=UTC).timestamp()
    clock = FakeClock(start)
    breath = BreathEngine(config, clock)
    for t in [start, start + 4.999, start + 5.0, start + 20, start + 3.0, start + 8 * 3600.0]:
        clock.set(t)
        state = breath.state()
        span = phase_at(t, config)
        assert (state.phase, state.phase_started_at, state.phase_ends_at) == (
            span.phase,
            span.started_at,
            span.ends_at,
        ), t


def test_the_phase_span_kept_follows_overrides_and_the_cycle():
    clock = FakeClock(1_800_000_000.0)
    config = BreathConfig()
    breath = BreathEngine(config, clock)
    seen = []
    for step in range(400):
        if step == 100:
            breath.override_phase("return", seconds=30)
        if step == 150:
            breath.override_phase(None)
        clock.advance(0.7)
        state = breath.state()
        seen.append(state.phase)
        if not 100 <= step < 150:
            span = phase_at(clock.now(), config)
            assert (state.phase, state.phase_started_at) == (span.phase, span.started_at)
        elif step < 142:  # 30 s of override at 0.7 s a step
            assert state.phase == "return" and state.phase_reason == "override"
    assert set(seen) == {"inhale", "hold", "exhale", "return"}


def test_iso_is_datetimes_to_the_millisecond():
    rng = random.Random(3)
    values = [0.0, 1.0, 1_800_000_000.9995, 1_800_000_000.9999995, 1e9 + 0.0005, -0.5, -1.5]
    values += [rng.uniform(0, 4e9) for _ in range(20_000)]
    values += [1_800_000_000 + rng.randint(0, 10**9) / 1e6 for _ in range(20_000)]
    for t in values:
        expected = datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
        assert iso(t) == expected.replace("+00:00", "Z"), t


def test_glint_ids_are_distinct_version_7_uuids_in_the_order_made():
    before = time.time_ns() // 1_000_000
    ids = [new_glint_id() for _ in range(5_000)]  # past the end of several random buffers
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 and str(uuid.UUID(i)) == i for i in ids)
    stamps = [int(i.replace("-", "")[:12], 16) for i in ids]  # the milliseconds they were made
    assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after
    assert len({i[15:] for i in ids}) == len(ids)  # the random part alone tells them apart


GLINT = {
    "module": "memory.scroll",
    "phase": "return",
    "context": {"depth": "contemplative", "readings": [12, 44]},
    "id": "g-1",
    "parent_id": None,
    "source": "127.0.0.1",
}


@pytest.mark.parametrize(
    "source",
    [
        'module == "memory.scroll" && phase == "return"',
        "usage > 0.8",
        'breath_phase == "night_hold"',
        'climate == "suspicious"',
        'has(context.depth) && context.depth == "contemplative"',
        "context.readings.exists(r, r > 40) && usage < 0.5",
        'event == "phase_change" && phase == "return"',
        "context.missing > 3",  # an error: never a match
        'id == "g-1" && parent_id == "" && source.startsWith("127.")',
    ],
)
def test_a_rule_answers_the_same_from_an_activation_as_from_the_whole(source):
    rule, fresh = Rule(source), Rule(source)
    rng = random.Random(source)
    for _ in range(200):
        breath = {
            "phase": rng.choice(["inhale", "return", "night_hold"]),
            "climate": rng.choice(["clear", "suspicious"]),
            "usage": rng.choice([0.0, 0.3, 0.81, 0.9]),
        }
        glint = {**GLINT, "phase": rng.choice(["hold", "return"])}
        event = rng.choice(["glint", "phase_change"])
        values = activation(glint if event == "glint" else None, breath, event)
        whole = fresh.matches(values)
        assert rule.matches(Activation(values)) is whole
        assert rule.matches(Activation(values, rule.reads)) is whole  # as the ritual engine does


def test_a_rule_reads_only_the_names_it_uses():
    assert Rule('module == "a.b" && usage > 0.8').reads == ("module", "usage")
    assert Rule("context.readings.exists(r, r > 40)").reads == ("context",)

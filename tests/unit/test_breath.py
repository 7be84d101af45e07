"""The breath engine: phase clock, quiet hours, overrides, climate, usage. No Flask, no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfoNotFoundError

import pytest

from spiral_web.engine.breath import (
    BreathConfig,
    BreathEngine,
    Override,
    QuietHours,
    phase_at,
)
from spiral_web.engine.clock import FakeClock

DURATIONS = {"inhale": 4.0, "hold": 2.0, "exhale": 3.0, "return": 1.0}
EPOCH = 1_000.0


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def engine(clock: FakeClock, **config) -> BreathEngine:
    config.setdefault("durations", DURATIONS)
    config.setdefault("epoch", EPOCH)
    return BreathEngine(BreathConfig(**config), clock)


# -- the phase clock ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "phase", "start", "end"),
    [
        pytest.param(1000.0, "inhale", 1000.0, 1004.0, id="cycle-start"),
        pytest.param(1003.999, "inhale", 1000.0, 1004.0, id="just-before-hold"),
        pytest.param(1004.0, "hold", 1004.0, 1006.0, id="hold"),
        pytest.param(1006.0, "exhale", 1006.0, 1009.0, id="exhale"),
        pytest.param(1008.5, "exhale", 1006.0, 1009.0, id="mid-exhale"),
        pytest.param(1009.0, "return", 1009.0, 1010.0, id="return"),
        pytest.param(1010.0, "inhale", 1010.0, 1014.0, id="next-cycle"),
        pytest.param(1_000_000.0 + 5.0, "hold", 1_000_004.0, 1_000_006.0, id="far-future"),
        pytest.param(995.0, "hold", 994.0, 996.0, id="before-epoch"),
    ],
)
def test_phase_at_follows_configured_durations(t, phase, start, end):
    span = phase_at(t, BreathConfig(durations=DURATIONS, epoch=EPOCH))
    assert (span.phase, span.started_at, span.ends_at, span.reason) == (phase, start, end, "cycle")


def test_engine_walks_the_cycle_as_the_clock_moves():
    clock = FakeClock(EPOCH)
    breath = engine(clock)
    seen = []
    for _ in range(5):
        state = breath.state()
        seen.append((state.phase, state.phase_started_at, state.phase_ends_at))
        clock.set(state.phase_ends_at)
    assert seen == [
        ("inhale", 1000.0, 1004.0),
        ("hold", 1004.0, 1006.0),
        ("exhale", 1006.0, 1009.0),
        ("return", 1009.0, 1010.0),
        ("inhale", 1010.0, 1014.0),
    ]
    as_json = breath.state().to_dict()  # the clock now stands at 1014: hold again
    assert (as_json["phase"], as_json["phase_started_at"], as_json["phase_ends_at"]) == (
        "hold",
        "1970-01-01T00:16:54.000Z",
        "1970-01-01T00:16:56.000Z",
    )


@pytest.mark.parametrize(
    "durations",
    [
        pytest.param({"inhale": 1.0, "hold": 1.0, "exhale": 1.0}, id="missing-return"),
        pytest.param({**DURATIONS, "hold": 0.0}, id="zero"),
        pytest.param({**DURATIONS, "night_hold": 5.0}, id="night-hold-is-not-a-cycle-phase"),
    ],
)
def test_bad_durations_are_refused(durations):
    with pytest.raises(ValueError, match="durations"):
        BreathConfig(durations=durations)


# -- quiet hours -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "tz", "t", "expected"),
    [
        pytest.param("22:00-06:00", "UTC", "2026-01-15T21:59:59", None, id="wrap-before"),
        pytest.param(
            "22:00-06:00",
            "UTC",
            "2026-01-15T22:00:00",
            ("2026-01-15T22:00:00", "2026-01-16T06:00:00"),
            id="wrap-start",
        ),
        pytest.param(
            "22:00-06:00",
            "UTC",
            "2026-01-15T23:30:00",
            ("2026-01-15T22:00:00", "2026-01-16T06:00:00"),
            id="wrap-evening",
        ),
        pytest.param(
            "22:00-06:00",
            "UTC",
            "2026-01-16T03:00:00",
            ("2026-01-15T22:00:00", "2026-01-16T06:00:00"),
            id="wrap-after-midnight",
        ),
        pytest.param("22:00-06:00", "UTC", "2026-01-16T06:00:00", None, id="wrap-end-is-open"),
        pytest.param("01:00-05:00", "UTC", "2026-01-16T00:59:00", None, id="same-day-before"),
        pytest.param(
            "01:00-05:00",
            "UTC",
            "2026-01-16T01:00:00",
            ("2026-01-16T01:00:00", "2026-01-16T05:00:00"),
            id="same-day-inside",
        ),
        # New York in January is UTC-5: 22:00-06:00 local is 03:00-11:00 UTC
        pytest.param(
            "22:00-06:00", "America/New_York", "2026-01-15T23:00:00", None, id="new-york-18h-local"
        ),
        pytest.param(
            "22:00-06:00",
            "America/New_York",
            "2026-01-16T03:00:00",
            ("2026-01-16T03:00:00", "2026-01-16T11:00:00"),
            id="new-york-22h-local",
        ),
        pytest.param(
            "22:00-06:00",
            "America/New_York",
            "2026-01-16T10:59:00",
            ("2026-01-16T03:00:00", "2026-01-16T11:00:00"),
            id="new-york-05h59-local",
        ),
        # the night DST starts (2026-03-08): 22:00 EST to 06:00 EDT is seven hours
        pytest.param(
            "22:00-06:00",
            "America/New_York",
            "2026-03-08T05:00:00",
            ("2026-03-08T03:00:00", "2026-03-08T10:00:00"),
            id="new-york-dst-night",
        ),
        # Kolkata is UTC+5:30: 01:00-05:00 local is 19:30-23:30 UTC the day before
        pytest.param(
            "01:00-05:00",
            "Asia/Kolkata",
            "2026-01-15T19:30:00",
            ("2026-01-15T19:30:00", "2026-01-15T23:30:00"),
            id="kolkata-inside",
        ),
        pytest.param(
            "01:00-05:00",
            "Asia/Kolkata",
            "2026-01-16T01:00:00",
            None,
            id="kolkata-utc-01h-is-not-quiet",
        ),
    ],
)
def test_quiet_hours_give_night_hold(window, tz, t, expected):
    config = BreathConfig(durations=DURATIONS, quiet_hours=QuietHours.parse(window, tz))
    span = phase_at(utc(t), config)
    if expected is None:
        assert span.phase != "night_hold"
        assert span.reason == "cycle"
    else:
        assert (span.phase, span.reason) == ("night_hold", "quiet_hours")
        assert (span.started_at, span.ends_at) == (utc(expected[0]), utc(expected[1]))


def test_engine_enters_and_leaves_quiet_hours_with_the_clock():
    clock = FakeClock(utc("2026-01-15T21:59:00"))
    breath = engine(clock, quiet_hours=QuietHours.parse("22:00-06:00", "UTC"))
    assert breath.state().phase != "night_hold"
    clock.advance(60)
    state = breath.state()
    assert state.phase == "night_hold" and state.to_dict()["resting"] is True
    assert state.to_dict()["phase_ends_at"] == "2026-01-16T06:00:00.000Z"
    clock.set(utc("2026-01-16T06:00:00"))
    assert breath.state().phase in ("inhale", "hold", "exhale", "return")


@pytest.mark.parametrize(
    ("text", "tz"),
    [
        pytest.param("22:00", "UTC", id="no-end"),
        pytest.param("25:00-06:00", "UTC", id="bad-hour"),
        pytest.param("22:00-06:00-07:00", "UTC", id="three-parts"),
    ],
)
def test_bad_quiet_hours_are_refused(text, tz):
    with pytest.raises(ValueError, match="quiet hours"):
        QuietHours.parse(text, tz)


def test_unknown_quiet_hours_zone_is_refused():
    with pytest.raises(ZoneInfoNotFoundError):
        QuietHours.parse("22:00-06:00", "Mars/Olympus_Mons")


# -- overrides ---------------------------------------------------------------------------------


def test_phase_override_wins_and_expires():
    clock = FakeClock(EPOCH)
    breath = engine(clock)
    breath.override_phase("night_hold", seconds=60)
    state = breath.state()
    assert (state.phase, state.phase_reason) == ("night_hold", "override")
    assert (state.phase_started_at, state.phase_ends_at) == (EPOCH, EPOCH + 60)
    clock.advance(59.9)
    assert breath.state().phase == "night_hold"
    clock.advance(0.1)
    state = breath.state()
    assert (state.phase, state.phase_reason) == ("inhale", "cycle")  # 1060 is a cycle start


def test_phase_override_beats_quiet_hours_and_can_be_cleared():
    clock = FakeClock(utc("2026-01-15T23:00:00"))
    breath = engine(clock, quiet_hours=QuietHours.parse("22:00-06:00", "UTC"))
    assert breath.state().phase == "night_hold"
    breath.override_phase("exhale", seconds=30)
    assert (breath.state().phase, breath.state().phase_reason) == ("exhale", "override")
    breath.override_phase(None)
    assert breath.state().phase_reason == "quiet_hours"


def test_override_outside_its_window_is_inactive():
    config = BreathConfig(durations=DURATIONS, epoch=EPOCH)
    later = Override("night_hold", since=2000.0, until=2100.0)
    assert phase_at(1000.0, config, later).phase == "inhale"
    assert phase_at(2000.0, config, later).phase == "night_hold"


def test_climate_override_wins_and_expires():
    clock = FakeClock(EPOCH)
    breath = engine(clock)
    breath.override_climate("suspicious", seconds=30)
    state = breath.state()
    assert (state.climate, state.climate_reason) == ("suspicious", "override")
    clock.advance(30)
    state = breath.state()
    assert (state.climate, state.climate_reason) == ("clear", "traffic")


@pytest.mark.parametrize(
    ("method", "value"),
    [
        pytest.param("override_phase", "dusk", id="phase"),
        pytest.param("override_climate", "stormy", id="climate"),
    ],
)
def test_unknown_override_values_are_refused(method, value):
    breath = engine(FakeClock(EPOCH))
    with pytest.raises(ValueError, match=value):
        getattr(breath, method)(value)


# -- climate -----------------------------------------------------------------------------------


def test_climate_is_clear_without_rejections():
    clock = FakeClock(EPOCH)
    breath = engine(clock)
    for _ in range(100):
        breath.record_ingest("10.0.0.1")
    assert breath.state().climate == "clear"
    assert breath.suspects() == {}


@pytest.mark.parametrize(
    ("rejected", "accepted", "expected"),
    [
        pytest.param(9, 0, "clear", id="too-few-rejections"),
        pytest.param(10, 0, "unsettled", id="ten-rejections"),
        pytest.param(10, 40, "unsettled", id="share-exactly-a-fifth"),
        pytest.param(10, 41, "clear", id="share-below-a-fifth"),
    ],
)
def test_rejections_spread_over_sources_unsettle(rejected, accepted, expected):
    clock = FakeClock(EPOCH)
    breath = engine(clock)
    for i in range(rejected):
        breath.record_rejection(f"10.0.1.{i}")  # no single source stands out
    for i in range(accepted):
        breath.record_ingest(f"10.0.2.{i}")
    assert breath.state().climate == expected
    assert breath.suspects() == {}


def test_one_bad_source_makes_it_suspicious_and_is_named():
    clock = FakeClock(EPOCH)
    breath = engine(clock)
    for _ in range(50):
        breath.record_ingest("10.0.0.1")
    for _ in range(29):
        breath.record_rejection("10.6.6.6")
    assert breath.state().climate == "unsettled"
    assert breath.suspects() == {}
    breath.record_rejection("10.6.6.6")
    assert breath.state().climate == "suspicious"
    assert breath.suspects() == {"10.6.6.6": 30}


def test_a_source_with_mostly_good_traffic_is_not_a_suspect():
    clock = FakeClock(EPOCH)
    breath = engine(clock)
    for _ in range(31):
        breath.record_ingest("10.0.0.7")
    for _ in range(30):
        breath.record_rejection("10.0.0.7")
    assert breath.suspects() == {}
    assert breath.state().climate == "unsettled"


def test_climate_rises_at_once_and_eases_one_step_per_calm_period():
    clock = FakeClock(EPOCH)
    breath = engine(clock, climate_window=60, calm_seconds=30)
    for _ in range(30):
        breath.record_rejection("10.6.6.6")
    assert breath.state().climate == "suspicious"

    clock.advance(60)  # the rejections have left the window: traffic looks clear from now on
    assert breath.suspects() == {}
    assert breath.state().climate == "suspicious"
    clock.advance(29.9)
    assert breath.state().climate == "suspicious"
    clock.advance(0.1)
    assert breath.state().climate == "unsettled"
    clock.advance(29.9)
    assert breath.state().climate == "unsettled"
    clock.advance(0.1)
    assert breath.state().climate == "clear"


def test_bad_traffic_during_the_calm_period_holds_the_climate():
    clock = FakeClock(EPOCH)
    breath = engine(clock, climate_window=60, calm_seconds=30)
    for i in range(10):
        breath.record_rejection(f"10.0.1.{i}")
    assert breath.state().climate == "unsettled"
    clock.advance(60)
    assert breath.state().climate == "unsettled"  # calm starts now
    clock.advance(20)
    for i in range(10):
        breath.record_rejection(f"10.0.3.{i}")
    assert breath.state().climate == "unsettled"  # worse again: the calm period restarts
    clock.advance(20)
    assert breath.state().climate == "unsettled"  # 40 s after the first calm began, but not calm
    clock.advance(40)  # the second burst has left the window
    assert breath.state().climate == "unsettled"
    clock.advance(30)
    assert breath.state().climate == "clear"


# -- usage -------------------------------------------------------------------------------------


def test_usage_is_ingest_rate_against_capacity():
    clock = FakeClock(EPOCH)
    breath = engine(clock, capacity=10.0, usage_window=10)
    assert breath.state().usage == 0.0
    breath.record_ingest("a", n=50)  # 50 glints in a 10 s window: 5 per second of 10
    assert breath.state().usage == 0.5
    assert breath.ingest_rate(10) == 5.0
    breath.record_ingest("a", n=500)
    assert breath.state().usage == 1.0  # capped
    clock.advance(10)
    assert breath.state().usage == 0.0
    assert breath.ingest_rate(60) == pytest.approx(550 / 60)


def test_usage_counts_subscriber_backlog():
    clock = FakeClock(EPOCH)
    backlog = [0.0]
    breath = BreathEngine(
        BreathConfig(durations=DURATIONS, capacity=10.0), clock, backlog=lambda: backlog[0]
    )
    breath.record_ingest("a", n=20)
    assert breath.state().usage == 0.2
    backlog[0] = 0.9
    assert breath.state().usage == 0.9


def test_ingest_series_is_per_second_oldest_first():
    clock = FakeClock(EPOCH)
    breath = engine(clock)
    breath.record_ingest("a", n=3)
    clock.advance(2)
    breath.record_ingest("a")
    assert breath.ingest_series(4) == [0, 3, 0, 1]


# -- changed() ---------------------------------------------------------------------------------


def test_changed_reports_what_listeners_care_about():
    clock = FakeClock(EPOCH + 0.5)
    breath = engine(clock, capacity=10.0, usage_window=10)
    assert breath.changed(breath.state()) is True  # nothing published yet
    assert breath.changed(breath.state()) is False
    clock.advance(1.0)  # time passes inside the same phase
    assert breath.changed(breath.state()) is False
    clock.set(EPOCH + 4)  # hold begins
    assert breath.changed(breath.state()) is True
    assert breath.changed(breath.state()) is False
    clock.set(EPOCH + 14)  # hold again, one cycle later: same name, new span
    assert breath.changed(breath.state()) is True
    breath.record_ingest("a", n=5)  # usage 0.05: still the same tenth
    assert breath.changed(breath.state()) is False
    breath.record_ingest("a", n=10)  # usage 0.15: a new tenth
    assert breath.changed(breath.state()) is True
    breath.override_climate("unsettled")
    assert breath.changed(breath.state()) is True
    assert breath.changed(breath.state()) is False


def test_state_stamp_is_phase_climate_usage():
    breath = engine(FakeClock(EPOCH))
    assert breath.state().stamp() == {"phase": "inhale", "climate": "clear", "usage": 0.0}

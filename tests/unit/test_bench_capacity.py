"""The many-workers benchmark's capacity search (bench/capacity.py): it brackets the highest rate
a configuration holds and narrows it, whether the first rate is above or below it, and a run
spoiled by other load does not lower the answer."""

from __future__ import annotations

from bench.capacity import find_capacity


def machine(capacity: float, spoiled: set[int] = frozenset()):
    """A configuration that holds every rate up to `capacity`; the attempts numbered in `spoiled`
    fail whatever the rate (another session took the CPU)."""
    tried: list[float] = []

    def holds(rate: float) -> bool:
        tried.append(rate)
        return len(tried) - 1 not in spoiled and rate <= capacity

    return holds, tried


def test_steps_up_from_a_rate_held_then_narrows_to_within_the_refinement():
    holds, _ = machine(640)
    found = find_capacity(holds, 200, factor=1.5, refine=3, tries=1)
    assert found.held is not None and found.failed is not None
    assert found.held <= 640 < found.failed
    # three bisections of a 1.5x bracket leave 1.5 ** (1/8), about 5 %, plus rounding
    assert found.failed / found.held <= 1.06


def test_steps_down_from_a_rate_not_held():
    holds, _ = machine(300)
    found = find_capacity(holds, 1000, factor=1.5, refine=3, tries=1)
    assert found.held is not None and found.failed is not None
    assert found.held <= 300 < found.failed <= found.held * 1.06
    assert found.attempts[0] == (1000, False)


def test_a_spoiled_attempt_is_tried_again_before_the_rate_counts_as_not_held():
    # the second attempt (at 300) is spoiled; the retry holds it, so the search goes on up
    holds, tried = machine(640, spoiled={1})
    found = find_capacity(holds, 200, factor=1.5, refine=3, tries=2)
    assert tried[1:3] == [300, 300]
    assert found.held is not None and found.held >= 600
    assert (300, False) in found.attempts and (300, True) in found.attempts


def test_a_rate_not_held_is_tried_as_often_as_asked():
    holds, tried = machine(250)
    find_capacity(holds, 200, factor=1.5, refine=0, tries=2)
    assert tried == [200, 300, 300]


def test_stops_at_the_ceiling_and_says_the_capacity_is_at_least_that():
    holds, tried = machine(10_000)
    found = find_capacity(holds, 100, factor=2, refine=3, tries=1, ceiling=300)
    assert tried == [100, 200, 300]
    assert found.held == 300 and found.failed is None
    assert found.text() == "held ≥ 300 (the ceiling)"


def test_stops_at_the_floor_when_nothing_holds():
    holds, tried = machine(0)
    found = find_capacity(holds, 100, factor=2, refine=3, tries=1, floor=30)
    assert tried == [100, 50, 30]
    assert found.held is None and found.failed == 30
    assert found.text() == "none held (down to 30)"

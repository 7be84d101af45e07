"""The record's contract (engine/ports.py `Record`), the same for SQLite and PostgreSQL."""

from __future__ import annotations

import orjson
import pytest

from spiral_web.engine.glints import Glint, seq_prefix
from spiral_web.engine.ports import Epoch, IdTaken, RunDraft

from .conftest import draft
from .records import open_record


def seqs(glints: list[Glint]) -> list[int]:
    return [g.seq for g in glints]


def test_a_batch_takes_the_next_seqs_in_order_and_its_bodies_start_with_them(record):
    first = record.append([draft("a"), draft("b", parent="a"), draft("c")])
    assert first == 1
    assert record.append([draft("d")]) == 4
    stored = record.lookup(["a", "b", "c", "d", "nope"])
    assert {gid: g.seq for gid, g in stored.items()} == {"a": 1, "b": 2, "c": 3, "d": 4}
    b = draft("b", parent="a")
    assert stored["b"].json == seq_prefix(2) + b.tail
    assert stored["b"].parent_id == "a" and stored["b"].source == "tester"
    assert record.get("c") == stored["c"]
    assert record.get("nope") is None
    assert record.lookup([]) == {}


def test_an_id_already_stored_fails_the_whole_batch_and_leaves_the_counter(record):
    record.append([draft("a"), draft("b")])
    with pytest.raises(IdTaken):
        record.append([draft("c"), draft("a"), draft("d")])
    assert record.lookup(["c", "d"]) == {}
    assert record.seq_bounds() == (1, 2)
    assert record.append([draft("c")]) == 3  # no hole where the failed batch was


def test_ritual_runs_share_the_sequence_with_glints(record):
    record.append([draft("a")])
    seq, body = record.append_run(RunDraft("bell", "ok", 1001.0, {"ritual": "bell", "n": 1}))
    assert seq == 2
    assert orjson.loads(body) == {"seq": 2, "ritual": "bell", "n": 1}
    assert body.startswith(b'{"seq":2,')
    assert record.append([draft("b")]) == 3
    assert record.runs() == [body]
    events = record.replay_after(0, None, None, 10)
    assert [(e.kind, e.seq) for e in events] == [
        ("glint_emission", 1),
        ("ritual", 2),
        ("glint_emission", 3),
    ]
    assert events[1].data == body


def test_archival_moves_old_glints_keeps_counts_whole_and_ids_taken(record):
    record.append([draft("old1", ts=10.0), draft("old2", ts=20.0, module="x.y", phase="hold")])
    record.append([draft("new", ts=500.0, parent="old1")])
    before = record.counts()
    summary = record.archive_before(100.0, 600.0)
    assert summary["moved"] == 2
    assert summary["archived"] == {
        "by_module": {"test.module": 1, "x.y": 1},
        "by_phase": {"inhale": 1, "hold": 1},
    }
    assert summary["since_last"]["since"] is None and summary["since_last"]["total"] == 3
    assert record.counts() == before
    assert seqs(record.query()) == [3]
    assert seqs(record.query_archive()) == [2, 1]
    assert record.get("old1").seq == 1 and set(record.lookup(["old1", "old2"])) == {
        "old1",
        "old2",
    }
    with pytest.raises(IdTaken):
        record.append([draft("old2", ts=700.0)])
    assert [e.seq for e in record.replay_after(0, None, None, 10)] == [1, 2, 3]
    assert record.seq_bounds() == (1, 3)
    assert seqs(record.ancestors("new", 10)) == [1]
    again = record.archive_before(1000.0, 1100.0)
    assert again["moved"] == 1 and again["since_last"]["since"] == 600.0
    assert again["since_last"]["total"] == 0  # nothing received since the previous archival


def test_queries_filter_by_module_glob_phase_time_and_page_newest_first(record):
    record.append(
        [
            draft("m1", module="memory.scroll", phase="return", ts=1.0),
            draft("m2", module="memory.a_b", phase="hold", ts=2.0),
            draft("m3", module="memory.axb", phase="return", ts=3.0),
            draft("b1", module="breath.emitter", phase="inhale", ts=4.0),
            draft("m4", module="memory.scroll", phase="hold", ts=5.0),
        ]
    )
    assert seqs(record.query()) == [5, 4, 3, 2, 1]
    assert seqs(record.query(module="memory.scroll")) == [5, 1]
    assert seqs(record.query(module="memory.*")) == [5, 3, 2, 1]
    assert seqs(record.query(module="memory.a_b")) == [2]  # `_` is no wildcard
    assert seqs(record.query(module="memory.a?b")) == [3, 2]
    assert seqs(record.query(module="*.emitter")) == [4]
    assert seqs(record.query(phase="return")) == [3, 1]
    assert seqs(record.query(module="memory.*", phase="hold")) == [5, 2]
    assert seqs(record.query(since=2.0, until=4.0)) == [3, 2]
    assert seqs(record.query(limit=2)) == [5, 4]
    assert seqs(record.query(before_seq=4, limit=2)) == [3, 2]
    assert record.query(module="nothing.*") == []


def test_lineage_ancestors_nearest_first_and_descendants_parents_first(record):
    record.append([draft("root", ts=1.0), draft("a", parent="root"), draft("b", parent="root")])
    record.append([draft("a1", parent="a"), draft("a1x", parent="a1"), draft("b1", parent="b")])
    record.archive_before(2.0, 10.0)  # the root is archived: lineage still reaches it
    assert [g.id for g in record.ancestors("a1x", 10)] == ["a1", "a", "root"]
    assert [g.id for g in record.ancestors("a1x", 2)] == ["a1", "a"]
    assert record.ancestors("root", 10) == []
    below = [g.id for g in record.descendants("root", 10)]
    assert sorted(below) == ["a", "a1", "a1x", "b", "b1"]
    for child, parent in (("a1", "a"), ("a1x", "a1"), ("b1", "b")):
        assert below.index(parent) < below.index(child)
    assert len(record.descendants("root", 3)) == 3
    assert record.descendants("a1x", 10) == []


def test_replay_after_is_in_seq_order_filters_glints_only_and_stops_at_limit(record):
    record.append([draft("a", module="memory.scroll"), draft("b", module="breath.x")])
    record.append_run(RunDraft("bell", "ok", 1.0, {"ritual": "bell"}))
    record.append([draft("c", module="memory.scroll", phase="return")])
    every = record.replay_after(0, None, None, 100)
    assert [e.seq for e in every] == [1, 2, 3, 4]
    assert every[0].module == "memory.scroll" and every[0].phase == "inhale"
    assert every[0].data == record.get("a").json
    assert [e.seq for e in record.replay_after(1, None, None, 100)] == [2, 3, 4]
    assert [e.seq for e in record.replay_after(0, "memory.*", None, 100)] == [1, 3, 4]
    assert [e.seq for e in record.replay_after(0, None, "return", 100)] == [3, 4]
    assert [e.seq for e in record.replay_after(0, None, None, 2)] == [1, 2]
    assert record.replay_after(4, None, None, 100) == []


def test_seq_bounds_counts_and_activity(record):
    assert record.seq_bounds() == (0, 0)
    assert record.counts() == ({}, {})
    record.append(
        [
            draft("a", module="x.a", phase="inhale", ts=95.0),
            draft("b", module="x.a", phase="hold", ts=99.5),
            draft("c", module="x.b", phase="hold", ts=50.0),
        ]
    )
    record.append_run(RunDraft("bell", "ok", 1.0, {}))
    assert record.seq_bounds() == (1, 4)
    assert record.counts() == ({"inhale": 1, "hold": 2}, {"x.a": 2, "x.b": 1})
    assert sorted(record.activity(100.0, 10.0, 1.0)) == [("x.a", 0, 1), ("x.a", 5, 1)]


def test_runs_filter_and_page_and_the_last_run_of_each_ritual(record):
    bodies = []
    for ritual, status in (("a", "ok"), ("b", "error"), ("a", "deferred"), ("a", "ok")):
        bodies.append(record.append_run(RunDraft(ritual, status, 1.0, {"ritual": ritual}))[1])
    assert record.runs() == bodies[::-1]
    assert record.runs(ritual="a") == [bodies[3], bodies[2], bodies[0]]
    assert record.runs(status="ok") == [bodies[3], bodies[0]]
    assert record.runs(before_seq=3, limit=1) == [bodies[1]]
    assert record.last_runs() == {"a": bodies[3], "b": bodies[1]}
    assert record.last_runs(("deferred",)) == {"a": bodies[2]}


def test_the_record_answers_ping_and_keeps_everything_across_reopening(record, where):
    assert record.ping()
    record.append([draft("a"), draft("b")])
    record.append_run(RunDraft("bell", "ok", 1.0, {}))
    record.close()
    again = open_record(where)
    try:
        assert again.seq_bounds() == (1, 3)
        assert again.append([draft("c")]) == 4
    finally:
        again.close()


def test_a_fence_below_the_counter_changes_nothing(record):
    record.append([draft("a"), draft("b")])
    assert record.epoch() == Epoch(0, ())
    assert record.fence(2, 10_000, 5.0) is None
    assert record.append([draft("c")]) == 3


def test_a_fence_above_the_counter_skips_to_the_ceiling_and_records_the_loss(record):
    record.append([draft("a"), draft("b")])
    epoch = record.fence(5, 100, 5.0)
    assert epoch == Epoch(1, ((3, 100),))
    assert record.epoch() == epoch and epoch.lost_range(50) == (3, 100)
    assert epoch.lost_range(2) is None
    assert record.append([draft("c")]) == 101
    assert record.fence(200, 300, 6.0) == Epoch(2, ((3, 100), (102, 300)))

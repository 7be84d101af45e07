"""The in-process broadcast hub: shared events, filters, order, bounded lag, backlog."""

from __future__ import annotations

import threading

import orjson
import pytest

from spiral_web.bus import Filters, MemoryHub, SubscriberDropped, frames


def glint(hub: MemoryHub, seq: int, module: str = "breath.emitter", phase: str = "inhale"):
    data = orjson.dumps({"id": f"g{seq}", "seq": seq, "module": module, "phase": phase})
    return hub.publish("glint_emission", data=data, seq=seq, module=module, phase=phase)


def test_every_subscriber_gets_the_same_event_and_bytes():
    hub = MemoryHub()
    subs = [hub.subscribe() for _ in range(3)]
    published = glint(hub, 1)
    received = [s.wait(0) for s in subs]
    assert all(len(r) == 1 and r[0] is published for r in received)
    sse = [frames.sse(r[0]) for r in received]
    assert sse[0] is sse[1] is sse[2]  # serialized once, shared
    assert sse[0] == b"id: 1\nevent: glint_emission\ndata: " + published.data + b"\n\n"
    assert frames.ws_text(received[0][0]) is frames.ws_text(received[1][0])
    assert frames.ws_frame(received[0][0]) is frames.ws_frame(received[2][0])


def test_publish_serializes_a_payload_once():
    hub = MemoryHub()
    event = hub.publish("breath", {"phase": "hold"})
    assert event.data == b'{"phase":"hold"}'
    # no id: not replayable
    assert frames.sse(event) == b'event: breath\ndata: {"phase":"hold"}\n\n'


def test_events_arrive_in_publish_order():
    hub = MemoryHub()
    sub = hub.subscribe()
    for seq in range(1, 101):
        glint(hub, seq)
    assert [e.seq for e in sub.wait(0)] == list(range(1, 101))
    assert sub.wait(0) == []


def test_a_subscriber_sees_only_what_was_published_after_it_subscribed():
    hub = MemoryHub()
    glint(hub, 1)
    sub = hub.subscribe()
    glint(hub, 2)
    assert [e.seq for e in sub.wait(0)] == [2]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param(Filters(), [1, 2, 3, 4, 5, 6], id="none"),
        pytest.param(Filters(module="memory.*"), [1, 2, 3], id="module-glob"),
        pytest.param(Filters(module="memory.scroll"), [1, 2], id="module-exact"),
        pytest.param(Filters(module="memory.scrol?"), [1, 2], id="module-question-mark"),
        pytest.param(Filters(phases=frozenset({"return"})), [1, 3, 5], id="phase"),
        pytest.param(Filters(phases=frozenset({"return", "hold"})), [1, 2, 3, 5], id="phases"),
        pytest.param(
            Filters(module="memory.*", phases=frozenset({"return"})), [1, 3], id="module-and-phase"
        ),
    ],
)
def test_filters_by_module_glob_and_phase(filters, expected):
    hub = MemoryHub()
    sub = hub.subscribe(filters)
    glint(hub, 1, "memory.scroll", "return")
    glint(hub, 2, "memory.scroll", "hold")
    glint(hub, 3, "memory.deep.archive", "return")
    glint(hub, 4, "memoryx.scroll", "inhale")
    glint(hub, 5, "breath.emitter", "return")
    glint(hub, 6, "shrine.system", "exhale")
    hub.publish("breath", {"phase": "return"})
    events = sub.wait(0)
    assert [e.seq for e in events if e.kind == "glint_emission"] == expected
    assert [e.kind for e in events if e.kind != "glint_emission"] == ["breath"]  # never filtered


def test_a_subscriber_exactly_capacity_behind_keeps_up():
    hub = MemoryHub(capacity=8)
    sub = hub.subscribe()
    for seq in range(1, 9):
        glint(hub, seq)
    assert [e.seq for e in sub.wait(0)] == list(range(1, 9))


def test_a_subscriber_more_than_capacity_behind_is_dropped_with_a_reason():
    hub = MemoryHub(capacity=8)
    slow, fast = hub.subscribe(), hub.subscribe()
    for seq in range(1, 10):
        glint(hub, seq)
        fast.wait(0)
    with pytest.raises(SubscriberDropped) as dropped:
        slow.wait(0)
    assert dropped.value.reason == "fell 9 events behind (buffer holds 8)"
    assert hub.dropped_total == 1
    glint(hub, 10)
    assert [e.seq for e in fast.wait(0)] == [10]  # the others never noticed


def test_wait_blocks_until_an_event_or_the_timeout():
    hub = MemoryHub()
    sub = hub.subscribe()
    assert sub.wait(0.01) == []
    got: list[int] = []
    started = threading.Event()

    def reader() -> None:
        started.set()
        got.extend(e.seq for e in sub.wait(10))

    thread = threading.Thread(target=reader)
    thread.start()
    started.wait()
    glint(hub, 1)
    thread.join(5)
    assert got == [1]


def test_listeners_count_and_close():
    hub = MemoryHub()
    a = hub.subscribe()
    with hub.subscribe() as b:
        assert hub.listeners == 2
    assert b.closed and hub.listeners == 1
    a.close()
    a.close()  # idempotent
    assert hub.listeners == 0


def test_closing_the_hub_closes_every_subscription():
    hub = MemoryHub()
    subs = [hub.subscribe() for _ in range(3)]
    hub.close()
    assert all(s.closed for s in subs)
    assert hub.listeners == 0
    assert subs[0].wait(5) == []  # returns at once instead of waiting


def test_backlog_is_the_share_of_lagging_subscribers():
    assert MemoryHub(capacity=8).backlog() == 0.0  # nobody listening
    hub = MemoryHub(capacity=8)
    subs = [hub.subscribe() for _ in range(40)]
    for seq in range(1, 6):  # 5 > half the buffer
        glint(hub, seq)
    for sub in subs[:30]:
        sub.wait(0)
    assert hub.backlog() == 0.25  # 10 of 40 behind
    for sub in subs[30:]:
        sub.wait(0)
    assert hub.backlog() == 0.25  # cached for a second: cheap to ask on every glint


def test_one_stalled_listener_alone_does_not_make_the_hub_look_loaded():
    hub = MemoryHub(capacity=8)
    hub.subscribe()  # the only listener, and it never reads
    for seq in range(1, 8):
        glint(hub, seq)
    assert hub.backlog() == 1 / MemoryHub.BACKLOG_POPULATION


def test_backlog_ignores_a_lag_of_half_the_buffer():
    hub = MemoryHub(capacity=8)
    hub.subscribe()
    for seq in range(1, 5):  # exactly half
        glint(hub, seq)
    assert hub.backlog() == 0.0

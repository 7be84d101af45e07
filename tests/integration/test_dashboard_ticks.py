"""The dashboard's stream a tick at a time: a burst is one message (one htmx swap) of rows, more
rows than the page keeps replace its list, state panels carry only their newest state, every
message ends with a stream mark, and the subscription is read once a tick."""

from __future__ import annotations

import re
import time

import pytest

from spiral_web.bus.memory import MemoryHub
from spiral_web.web.dashboard.stream import Ticked

from ..sse import SSEReader
from ..support import emit


@pytest.fixture
def app(make_app):
    return make_app(heartbeat_seconds=0.1)


def rows(data: str) -> list[int]:
    return [int(n) for n in re.findall(r'<li id="glint-(\d+)"', data)]


def with_rows(frames) -> list:
    return [f for f in frames if 'hx-target="#timeline"' in f.data]


def test_a_burst_is_one_message_of_rows_newest_first(app):
    client = app.test_client()
    stream = SSEReader(client.get("/dashboard/stream", buffered=False))
    try:
        stream.until(lambda f: any("stream-mark" in fr.data for fr in f))  # the greeting
        for i in range(30):
            emit(client, module="burst.in", context={"i": i})
        frames = stream.until(lambda f: any(fr.id == "30" for fr in f))
    finally:
        stream.close()
    [message] = with_rows(frames)
    assert message.id == "30" and message.event is None
    assert message.data.count('<hx-partial hx-target="#timeline"') == 1
    assert 'hx-target="#timeline" hx-swap="afterbegin"' in message.data
    assert rows(message.data) == list(range(30, 0, -1))


def test_more_rows_than_the_page_keeps_replace_its_list(app):
    client = app.test_client()
    stream = SSEReader(client.get("/dashboard/stream", buffered=False))
    try:
        stream.until(lambda f: any("stream-mark" in fr.data for fr in f))
        for i in range(250):
            emit(client, module="burst.in", context={"i": i})
        frames = stream.until(lambda f: any(fr.id == "250" for fr in f))
    finally:
        stream.close()
    [message] = with_rows(frames)
    assert 'hx-target="#timeline" hx-swap="innerHTML"' in message.data
    assert rows(message.data) == list(range(250, 50, -1))  # the 200 the page keeps


def test_rows_over_several_ticks_arrive_once_each_in_order(app):
    client = app.test_client()
    stream = SSEReader(client.get("/dashboard/stream", buffered=False))
    seen: list[int] = []
    try:
        for tick in range(4):
            for i in range(5):
                emit(client, module="burst.in", context={"tick": tick, "i": i})
            frames = stream.until(lambda f, n=5 * (tick + 1): any(fr.id == str(n) for fr in f))
    finally:
        stream.close()
    ids = [int(f.id) for f in with_rows(frames)]
    assert ids == sorted(set(ids))  # each message resumes after the one before
    for message in with_rows(frames):
        seen.extend(reversed(rows(message.data)))
    assert seen == list(range(1, 21))


def test_only_the_newest_breath_of_a_tick_is_sent(app):
    spiral = app.extensions["spiral"]
    client = app.test_client()
    stream = SSEReader(client.get("/dashboard/stream", buffered=False))
    try:
        greeting = len(stream.until(lambda f: any("stream-mark" in fr.data for fr in f)))
        phases = []
        for _ in range(3):  # three phase changes before the stream next reads
            state = spiral.breath.state()
            spiral.clock.advance(state.phase_ends_at - state.now + 0.01)
            phases.append(spiral.orchestrator.publish_breath().phase)
        frames = stream.until(
            lambda f: any(f'data-phase="{phases[-1]}"' in fr.data for fr in f[greeting:])
        )
    finally:
        stream.close()
    later = frames[greeting:]
    breaths = [fr for fr in later if 'hx-target="#breath"' in fr.data]
    assert len(breaths) == 1 and breaths[0].data.count('hx-target="#breath"') == 1
    assert f'data-phase="{phases[-1]}"' in breaths[0].data


def test_every_message_ends_with_a_stream_mark_from_this_server(app):
    client = app.test_client()
    head = client.head("/dashboard/stream")
    assert head.status_code == 200 and head.data == b""
    server = head.headers["X-Spiral-Server"]
    stream = SSEReader(client.get("/dashboard/stream", buffered=False))
    try:
        emit(client, module="a.b")
        frames = stream.until(lambda f: any(fr.id == "1" for fr in f))
    finally:
        stream.close()
    messages = [f for f in frames if f.data and f.event is None][1:]  # after the greeting's breath
    ages = []
    for message in messages:
        mark = re.search(
            r'<i id="stream-mark" hidden data-age="(\d+)" data-server="(\w+)"></i>\n</hx-partial>$',
            message.data,
        )
        assert mark, message.data[-200:]
        ages.append(int(mark.group(1)))
        assert mark.group(2) == server
    assert ages == sorted(ages)  # milliseconds since this stream opened, not a clock's time


def test_a_subscription_is_read_once_a_tick_and_looked_at_again_when_asked():
    hub = MemoryHub()
    asked = {"again": False}
    ticked = Ticked(hub.subscribe(), 0.2, again=lambda: asked["again"])
    for i in range(3):
        hub.publish("glint_emission", {"i": i}, seq=i + 1)
    assert [e.seq for e in ticked.wait(5)] == [1, 2, 3]  # after a quiet spell: at once
    hub.publish("glint_emission", {"i": 3}, seq=4)
    hub.publish("glint_emission", {"i": 4}, seq=5)
    start = time.monotonic()
    assert [e.seq for e in ticked.wait(5)] == [4, 5]  # the next read waits for its tick
    assert time.monotonic() - start >= 0.19
    # Nothing new: the caller's timeout, unless the writer asks to look again a tick later.
    start = time.monotonic()
    assert ticked.wait(0.5) == [] and time.monotonic() - start >= 0.49
    asked["again"] = True
    start = time.monotonic()
    assert ticked.wait(30) == [] and time.monotonic() - start < 10

"""The hub writing to caught-up subscribers' sockets itself: one write per socket per batch, the
same bytes for all; partial and blocked writes finished by the subscriber's own thread; readers
gone found without a write; a subscriber the hub could not keep up dropped with a reason; the
heartbeat from one timer. Each reader is a thread doing what web/stream.py's body does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import pytest

from spiral_web.bus import Filters, MemoryHub, SubscriberDropped, frames
from spiral_web.bus.memory import BLOCKED, GONE, PARTIAL, SENT
from tests.support import wait_for


def glint(hub: MemoryHub, seq: int, module: str = "a.b"):
    data = orjson.dumps({"seq": seq, "module": module})
    return hub.publish("glint_emission", data=data, seq=seq, module=module, phase="inhale")


class Socket:
    """A fake socket as the hub sees it (bus.memory.Writer). `room` lists how many bytes each
    offer may put in the kernel (None: all of it); past the list, everything fits."""

    def __init__(self, room: list[int | None] | None = None, heartbeat: float = 60.0) -> None:
        self.framing = frames.SSE_PLAIN
        self.heartbeat = heartbeat
        self.seq = -1
        self.pending = b""
        self.last_write = time.monotonic()
        self.wire = bytearray()  # what the reader would read, in order
        self.offers: list[bytes] = []
        self.room = list(room or [])
        self.closed_by_peer = False
        self.broken = False

    def offer(self, data: bytes) -> int:
        self.offers.append(data)
        if self.broken:
            return GONE
        room = self.room.pop(0) if self.room else None
        n = len(data) if room is None else min(room, len(data))
        self.wire += data[:n]
        if n == len(data):
            return SENT
        if n == 0:
            return BLOCKED
        self.pending = data[n:]
        return PARTIAL

    def peer_closed(self) -> bool:
        return self.closed_by_peer

    def ids(self) -> list[int]:
        return [
            int(line[4:])
            for line in bytes(self.wire).split(b"\n")
            if line.startswith(b"id: ")  # heartbeats are comments: no id
        ]


class Reader(threading.Thread):
    """A stream's own thread: attach, then wait; when woken, finish what the hub left half-written,
    then write what it was handed itself."""

    def __init__(self, hub: MemoryHub, sock: Socket, filters: Filters | None = None) -> None:
        super().__init__(daemon=True)
        self.sub = hub.subscribe(filters)
        self.sock = sock
        self.wakes = 0
        self.dropped: str | None = None
        self.attached = threading.Event()

    def run(self) -> None:
        self.sub.attach(self.sock)
        self.attached.set()
        try:
            while not self.sub.closed:
                events = self.sub.wait(30)
                self.wakes += 1
                if self.sub.gone:
                    return
                self.sock.wire += self.sock.pending
                self.sock.pending = b""
                seqs = [e.seq for e in events if e.seq is not None]
                if seqs:
                    self.sock.seq = seqs[-1]
                self.sock.wire += b"".join(frames.sse(e) for e in events)
        except SubscriberDropped as exc:
            self.dropped = exc.reason
        finally:
            self.sub.close()

    def parked(self, hub: MemoryHub) -> bool:
        return self.sub in hub._parked


class _Unheard(threading.Event):
    def set(self) -> None:
        pass


@contextmanager
def held(hub: MemoryHub) -> Iterator[None]:
    """Publishes inside do not reach the hub's thread until the block ends (as when the thread is
    slower than the publishers)."""
    kick, hub._kick = hub._kick, _Unheard()
    try:
        yield
    finally:
        hub._kick = kick
        kick.set()


def start(hub: MemoryHub, sock: Socket, filters: Filters | None = None) -> Reader:
    reader = Reader(hub, sock, filters)
    reader.start()
    assert wait_for(lambda: reader.parked(hub))
    return reader


@pytest.fixture
def hub():
    hub = MemoryHub(capacity=8)
    yield hub
    hub.close()


def test_a_caught_up_subscriber_is_written_by_the_hub_without_waking(hub):
    readers = [start(hub, Socket()) for _ in range(3)]
    for seq in range(1, 6):
        glint(hub, seq)
        assert wait_for(lambda s=seq: all(r.sock.ids()[-1:] == [s] for r in readers))
    for r in readers:
        assert r.sock.ids() == [1, 2, 3, 4, 5]  # each once, in order
        assert r.wakes == 0 and r.parked(hub)  # its own thread never ran
        assert r.sock.seq == 5


def test_one_batch_is_one_write_with_the_same_bytes_for_every_socket(hub):
    readers = [start(hub, Socket()) for _ in range(3)]
    with held(hub):  # a group commit's three glints, published before the hub's thread runs
        for seq in range(1, 4):
            glint(hub, seq)
    assert wait_for(lambda: all(r.sock.ids() == [1, 2, 3] for r in readers))
    offers = [r.sock.offers for r in readers]
    assert all(len(o) == 1 for o in offers)  # one write per socket for the three events
    assert offers[0][0] is offers[1][0] is offers[2][0]  # built once, shared


def test_filters_decide_what_the_hub_writes(hub):
    mine = start(hub, Socket(), Filters(module="memory.*"))
    glint(hub, 1, "breath.emitter")
    glint(hub, 2, "memory.scroll")
    glint(hub, 3, "shrine.system")
    assert wait_for(lambda: mine.sock.ids() == [2])
    assert wait_for(lambda: mine.sub.cursor == hub._head)  # moved past what it does not want
    glint(hub, 4, "memory.deep")
    assert wait_for(lambda: mine.sock.ids() == [2, 4])
    assert mine.wakes == 0


def test_a_partial_write_is_finished_by_the_subscribers_own_thread(hub):
    reader = start(hub, Socket(room=[10]))
    glint(hub, 1)
    assert wait_for(lambda: reader.wakes == 1 and reader.parked(hub))
    assert reader.sock.ids() == [1]  # the first 10 bytes from the hub, the rest from its thread
    glint(hub, 2)  # caught up again: written by the hub
    assert wait_for(lambda: reader.sock.ids() == [1, 2])
    assert reader.wakes == 1


def test_a_write_that_would_block_is_left_to_the_subscriber(hub):
    reader = start(hub, Socket(room=[0]))
    glint(hub, 1)
    assert wait_for(lambda: reader.wakes == 1 and reader.parked(hub))
    assert reader.sock.ids() == [1]  # taken and written by its own thread, once
    glint(hub, 2)
    assert wait_for(lambda: reader.sock.ids() == [1, 2])
    assert reader.wakes == 1


def test_seqs_the_subscriber_already_has_are_not_written_again(hub):
    reader = start(hub, Socket())
    reader.sock.seq = 3  # replayed up to 3 from the record before these were published
    for seq in range(2, 6):
        glint(hub, seq)
    assert wait_for(lambda: reader.sock.ids() == [4, 5])


def test_a_reader_gone_is_found_and_released_without_a_write(hub):
    stays, leaves = start(hub, Socket()), start(hub, Socket())
    assert hub.listeners == 2
    leaves.sock.closed_by_peer = True  # the reader closed the connection; nothing is published
    assert wait_for(lambda: hub.listeners == 1 and not leaves.is_alive(), timeout=3)
    assert leaves.sub.gone and leaves.sock.offers == []
    assert stays.parked(hub) and stays.wakes == 0
    assert hub.gone_total == 1


def test_a_failed_write_releases_the_subscriber(hub):
    reader = start(hub, Socket())
    reader.sock.broken = True  # reset by the peer
    glint(hub, 1)
    assert wait_for(lambda: hub.listeners == 0 and not reader.is_alive())
    assert reader.sub.gone


def test_a_parked_subscriber_the_hub_fell_a_ring_behind_for_is_dropped_with_a_reason(hub):
    reader = start(hub, Socket())
    with held(hub):  # the hub's thread is held up meanwhile
        for seq in range(1, 10):  # 9 > the 8 the ring holds
            glint(hub, seq)
    assert wait_for(lambda: not reader.is_alive())
    assert reader.dropped == "fell 9 events behind (buffer holds 8)"
    assert reader.sock.ids() == [] and hub.listeners == 0


def test_quiet_sockets_get_a_heartbeat_from_the_hub(hub):
    reader = start(hub, Socket(heartbeat=0.1))
    assert wait_for(lambda: frames.HEARTBEAT in reader.sock.offers)
    assert reader.wakes == 0  # sent by the hub's thread; the subscriber slept on


def test_closing_the_hub_wakes_parked_subscribers_and_refuses_new_ones(hub):
    reader = start(hub, Socket())
    hub.close()
    assert wait_for(lambda: not reader.is_alive())
    assert reader.sub.closed
    late = hub.subscribe()
    assert late.closed and hub.listeners == 0
    assert late.wait(5) == []  # at once


def test_what_the_hub_keeps_per_filter_goes_with_the_last_subscriber(hub):
    readers = [start(hub, Socket(), Filters(module=f"m{i}.*")) for i in range(50)]
    assert len(hub._groups) == 50
    for r in readers:
        r.sub.close()
    assert wait_for(lambda: not any(r.is_alive() for r in readers))
    assert hub._groups == {} and hub._parked == set()

"""One commit stores a batch of glints sent together; a body in it that is not a glint is refused
on its own, and the others are stored as if it had not been sent (engine/orchestrator.py)."""

from __future__ import annotations

import threading
import time

import orjson

from spiral_web.engine.breath import iso
from spiral_web.engine.glints import GlintError

from .parts import ONLY_CUSTOM, T0


def test_a_body_that_is_not_a_glint_is_refused_alone_and_its_batch_is_stored(make):
    parts = make(ONLY_CUSTOM)
    orchestrator, store = parts.orchestrator, parts.store
    released, first_in = threading.Event(), threading.Event()
    append = store.append

    def first_batch_waits(drafts):  # the others queue meanwhile: they commit as one batch
        if not released.is_set():
            first_in.set()
            released.wait(10)
        return append(drafts)

    store.append = first_batch_waits
    answers: dict[str, object] = {}

    def send(name: str, body: bytes) -> None:
        try:
            answers[name] = orchestrator.emit(body, "10.0.0.1").glint.seq
        except GlintError as exc:
            answers[name] = (exc.status, exc.error)

    def start(name: str, body: bytes) -> threading.Thread:
        thread = threading.Thread(target=send, args=(name, body))
        thread.start()
        return thread

    threads = [start("first", b'{"module": "a.first"}')]
    assert first_in.wait(10)
    bodies = {
        "one": b'{"module": "a.one"}',
        "cut_short": b'{"module": ',
        "bad_module": b'{"module": "Not A Module"}',
        "two": b'{"module": "a.two", "context": {"n": 2}}',
    }
    threads += [start(name, body) for name, body in bodies.items()]
    deadline = time.monotonic() + 10
    while len(orchestrator._queue) < len(bodies) and time.monotonic() < deadline:
        time.sleep(0.001)  # until all four wait behind the first commit
    assert len(orchestrator._queue) == len(bodies)  # they go as one batch
    released.set()
    for thread in threads:
        thread.join(10)

    assert answers["first"] == 1
    assert {answers["one"], answers["two"]} == {2, 3}
    assert answers["cut_short"] == (400, "invalid_json")
    assert answers["bad_module"] == (422, "invalid_glint")
    stored = [orjson.loads(g.json) for g in reversed(store.query(limit=10))]
    assert [g["seq"] for g in stored] == [1, 2, 3]
    assert {g["module"] for g in stored} == {"a.first", "a.one", "a.two"}
    # each keeps the time it arrived; the refused ones were not counted as ingest
    assert all(g["received_at"] == iso(T0) for g in stored)
    assert parts.breath.ingest_rate(10) * 10 == 3
    assert orchestrator.statistics()["total"] == 3


def test_a_blocked_source_is_refused_before_its_body_is_read(make):
    parts = make(ONLY_CUSTOM)
    parts.breath.block(["10.0.0.9"], 60, "too many rejected requests")
    answers = []
    for body in (b'{"module": "a.fine"}', b'{"module": ', b"not json at all"):
        try:
            parts.orchestrator.emit(body, "10.0.0.9")
        except GlintError as exc:
            answers.append((exc.status, exc.error, exc.retry_after))
    assert answers == [(429, "source_blocked", 60)] * 3  # never a 400 that tells it more
    assert parts.orchestrator.emit(b'{"module": "a.fine"}', "10.0.0.1").glint.seq == 1

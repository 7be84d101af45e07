"""The record's invariant under concurrent writers in separate processes: seqs become visible in
seq order, without holes, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import multiprocessing
import random

from spiral_web.engine.ports import IdTaken, RunDraft

from .conftest import draft
from .records import open_record

WRITERS = 4
BATCHES = 40  # per writer
SHARED_EVERY = 5  # every fifth batch also carries an id all writers race for


def writer(where, name: str, start, out) -> None:
    """Append batches (some with an id every writer wants) and ritual runs; report what it
    stored as (first seq, count) pairs."""
    rng = random.Random(name)
    record = open_record(where)
    stored: list[tuple[int, int]] = []
    start.wait(30)
    try:
        for k in range(BATCHES):
            batch = [draft(f"{name}-{k}-{i}", ts=float(k)) for i in range(rng.randint(1, 8))]
            if k % SHARED_EVERY == 0:
                batch.append(draft(f"shared-{k}", ts=float(k)))
            try:
                stored.append((record.append(batch), len(batch)))
            except IdTaken:  # another writer stored the shared id first: nothing of ours was
                stored.append((record.append(batch[:-1]), len(batch) - 1))
            if k % 7 == 3:
                seq, _ = record.append_run(RunDraft("tick", "ok", float(k), {"by": name}))
                stored.append((seq, 1))
    finally:
        record.close()
        out.put((name, stored))


def test_concurrent_writers_in_processes_leave_every_seq_once_visible_in_order(where):
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=writer, args=(where, f"w{n}", start, out)) for n in range(WRITERS)]
    for p in procs:
        p.start()
    reader = open_record(where)
    seen: list[int] = []  # every seq the poller saw, in the order it saw them
    try:
        start.set()
        reports = []
        while len(reports) < WRITERS:
            page = reader.replay_after(seen[-1] if seen else 0, None, None, 500)
            seen.extend(e.seq for e in page)
            while not out.empty():
                reports.append(out.get())
            if not any(p.is_alive() for p in procs) and out.empty() and len(reports) < WRITERS:
                raise AssertionError(f"a writer died: {[p.exitcode for p in procs]}")
        for p in procs:
            p.join(30)
        seen.extend(e.seq for e in reader.replay_after(seen[-1] if seen else 0, None, None, 10**6))
        allocated = sorted(
            seq for _, stored in reports for first, n in stored for seq in range(first, first + n)
        )
        total = len(allocated)
        assert allocated == list(range(1, total + 1)), "every seq handed out exactly once"
        # The poller never saw N+1 before N: what it saw, in order, is exactly 1..N.
        assert seen == list(range(1, total + 1))
        shared = reader.lookup([f"shared-{k}" for k in range(0, BATCHES, SHARED_EVERY)])
        assert len(shared) == len(range(0, BATCHES, SHARED_EVERY))  # each stored once
        assert reader.seq_bounds() == (1, total)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        reader.close()

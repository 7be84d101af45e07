"""Several processes as one hub through Redis: delivery, resume, global figures, Redis outages."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import requests

from spiral_web.client import Listener, emit_glint
from spiral_web.engine.glints import GlintDraft, validate_glint
from spiral_web.store import SQLiteStore

from ..support import ServerProcess


class StreamCollector:
    """Reads one stream with the client's Listener in a thread and keeps the glints it sees."""

    def __init__(self, url: str, last_event_id: int | None = None, reconnect: bool = False) -> None:
        self.listener = Listener(
            url, last_event_id=last_event_id, reconnect=reconnect, read_timeout=30
        )
        self.events: list = []
        self.notices: list = []
        self.greetings = 0
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.connected.wait(5), "stream did not greet"

    def _read(self) -> None:
        try:
            for item in self.listener:
                if item.event == "breath":
                    self.greetings += 1
                    self.connected.set()
                elif item.event == "glint_emission":
                    self.events.append(item)
                else:
                    self.notices.append(item)
        finally:
            self.connected.set()

    def seqs(self) -> list[int]:
        return [int(e.id) for e in self.events]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.seqs()

    def close(self) -> None:
        self.listener.close()
        self._thread.join(5)


def test_a_glint_posted_to_either_process_reaches_listeners_on_both(hub_pair):
    a, b = hub_pair
    on_a, on_b = StreamCollector(a.url), StreamCollector(b.url)
    try:
        sent = []
        for i in range(20):
            target = a if i % 2 else b
            sent.append(emit_glint("sync.test", "inhale", {"i": i}, url=target.url)["seq"])
        assert on_a.wait_for(20) == sorted(sent)
        assert on_b.wait_for(20) == sorted(sent)
    finally:
        on_a.close()
        on_b.close()


def test_concurrent_posts_on_both_arrive_in_seq_order_exactly_once(hub_pair):
    a, b = hub_pair
    listeners = [StreamCollector(a.url), StreamCollector(b.url)]
    acked: list[int] = []
    lock = threading.Lock()

    def post(server, n):
        with requests.Session() as session:
            for i in range(n):
                seq = emit_glint("burst.test", None, {"i": i}, url=server.url, session=session)[
                    "seq"
                ]
                with lock:
                    acked.append(seq)

    threads = [threading.Thread(target=post, args=(s, 40)) for s in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        for listener in listeners:
            got = listener.wait_for(len(acked))
            assert got == sorted(acked), "every listener gets every glint once, in seq order"
    finally:
        for listener in listeners:
            listener.close()


def test_resume_on_the_other_process_misses_nothing(hub_pair):
    a, b = hub_pair
    first = StreamCollector(a.url)
    seqs = [emit_glint("resume.test", "hold", {"i": i}, url=a.url)["seq"] for i in range(5)]
    assert first.wait_for(5) == seqs
    first.close()
    missed = [emit_glint("resume.test", "hold", {"i": i}, url=b.url)["seq"] for i in range(5, 9)]
    again = StreamCollector(b.url, last_event_id=seqs[-1])
    try:
        later = emit_glint("resume.test", "hold", {"i": 9}, url=a.url)["seq"]
        assert again.wait_for(5) == missed + [later]
    finally:
        again.close()


def test_listeners_and_statistics_are_global(hub_pair):
    a, b = hub_pair
    streams = [StreamCollector(a.url), StreamCollector(a.url), StreamCollector(b.url)]
    try:
        emit_glint("stats.a", "inhale", url=a.url)
        emit_glint("stats.b", "exhale", url=b.url)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sa = requests.get(a.url + "/api/stats").json()
            sb = requests.get(b.url + "/api/stats").json()
            if sa["listeners"] == sb["listeners"] == 3 and sa["total"] == sb["total"] == 2:
                break
            time.sleep(0.1)
        assert sa["listeners"] == sb["listeners"] == 3
        assert sa["total"] == sb["total"] == 2
        assert sa["by_module"] == sb["by_module"] == {"stats.a": 1, "stats.b": 1}
        answer = emit_glint("stats.c", "hold", url=b.url)
        assert answer["listeners"] == 3
    finally:
        for s in streams:
            s.close()


def test_redis_restart_loses_nothing_and_readiness_says_so(hub_pair, redis_server):
    a, b = hub_pair
    on_b = StreamCollector(b.url)
    try:
        before = emit_glint("outage.test", None, {"n": 0}, url=a.url)["seq"]
        assert on_b.wait_for(1) == [before]
        redis_server.stop()
        deadline = time.monotonic() + 10
        while requests.get(a.url + "/readyz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        ready = requests.get(a.url + "/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] is False
        during = [emit_glint("outage.test", None, {"n": i}, url=a.url)["seq"] for i in range(1, 4)]
        redis_server.start_on_same_port()
        deadline = time.monotonic() + 15
        while requests.get(a.url + "/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert requests.get(a.url + "/readyz").status_code == 200
        after = emit_glint("outage.test", None, {"n": 4}, url=a.url)["seq"]
        assert on_b.wait_for(5, timeout=15) == [before, *during, after]
    finally:
        on_b.close()


def test_each_ritual_fires_once_for_the_whole_hub(tmp_path, redis_server):
    """A breath change is seen by both processes; the ritual it triggers runs once. A
    glint-triggered ritual runs once per glint, whichever process stored the glint."""
    config = tmp_path / "spiral.toml"
    config.write_text(
        '[rituals.turn]\nrule = \'event == "phase_change"\'\naction = "emit"\n'
        'module = "ritual.turn"\n'
        "essential = true\n\n"
        '[rituals.bell]\nrule = \'module == "bell.tower"\'\naction = "emit"\n'
        'module = "ritual.bell"\n'
        "essential = true\n"
    )
    env = {
        "SPIRAL_REDIS_URL": redis_server.url,
        "SPIRAL_FAKE_CLOCK": "1",
        "SPIRAL_CONFIG": str(config),
    }
    a = ServerProcess(tmp_path / "shared", env=env, log_path=tmp_path / "a.log").start()
    b = ServerProcess(tmp_path / "shared", env=env, log_path=tmp_path / "b.log").start()
    try:
        state = requests.get(a.url + "/api/breath").json()
        ends = datetime.fromisoformat(state["phase_ends_at"].replace("Z", "+00:00")).timestamp()
        for server in (a, b):  # both clocks to the same instant, just past the phase's end
            requests.post(server.url + "/_test/clock", json={"set": ends + 0.5}).raise_for_status()
        for i in range(3):
            emit_glint("bell.tower", None, {"i": i}, url=(a, b)[i % 2].url)

        def runs(name):
            history = requests.get(a.url + "/api/rituals/history", params={"ritual": name}).json()
            return [r for r in history["runs"] if r["status"] == "ok"]

        deadline = time.monotonic() + 10
        while (len(runs("bell")) < 3 or not runs("turn")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(runs("turn")) == 1
        assert len(runs("bell")) == 3
    finally:
        a.stop()
        b.stop()


def test_cooldowns_and_windows_are_the_hubs_not_a_processs(tmp_path, redis_server):
    """A ritual with a cooldown runs once however its matches are spread over two processes, and
    one that needs 4 matches within a window fires on 2 + 2 of them."""
    config = tmp_path / "spiral.toml"
    config.write_text(
        '[rituals.bell]\nrule = \'module == "bell.tower"\'\naction = "emit"\n'
        'module = "ritual.bell"\nessential = true\ncooldown = 600\n\n'
        '[rituals.burst]\nrule = \'module == "burst.probe"\'\naction = "emit"\n'
        'module = "ritual.burst"\nessential = true\nwindow = { count = 4, seconds = 60 }\n'
    )
    env = {
        "SPIRAL_REDIS_URL": redis_server.url,
        "SPIRAL_FAKE_CLOCK": "1",
        "SPIRAL_CONFIG": str(config),
    }
    a = ServerProcess(tmp_path / "shared", env=env, log_path=tmp_path / "a.log").start()
    b = ServerProcess(tmp_path / "shared", env=env, log_path=tmp_path / "b.log").start()
    try:
        for i in range(6):
            emit_glint("bell.tower", None, {"i": i}, url=(a, b)[i % 2].url)
        for i in range(4):
            emit_glint("burst.probe", None, {"i": i}, url=(a, b)[i // 2].url)

        def runs(name):
            history = requests.get(a.url + "/api/rituals/history", params={"ritual": name}).json()
            return [r["status"] for r in history["runs"]]

        assert sorted(runs("bell")) == ["ok", "skipped_cooldown"]  # once, and one note of it
        assert runs("burst") == ["ok"]
    finally:
        a.stop()
        b.stop()


def test_a_glint_whose_writer_died_before_publishing_still_reaches_every_listener(
    tmp_path, hub_pair
):
    """A worker killed between its commit and its publish leaves a stored glint no message
    announces; the others find it by looking at the record's top (about once a second), not only
    when the next glint arrives."""
    a, b = hub_pair
    on_a, on_b = StreamCollector(a.url), StreamCollector(b.url)
    try:
        first = emit_glint("died.before", None, {"n": 0}, url=a.url)["seq"]
        assert on_a.wait_for(1) == on_b.wait_for(1) == [first]
        record = SQLiteStore(a.data_dir / "spiral.sqlite3")  # the dying worker's commit
        try:
            draft = GlintDraft.stamp(
                "orphan-1",
                validate_glint({"module": "died.before", "context": {"n": 1}}),
                "inhale",
                "2026-12-01T00:00:00.000Z",
                time.time(),
                {"phase": "inhale", "climate": "clear", "usage": 0.0},
                "ghost",
            )
            orphan = record.append([draft])
        finally:
            record.close()
        assert on_a.wait_for(2) == on_b.wait_for(2) == [first, orphan]
    finally:
        on_a.close()
        on_b.close()

"""Two hosts sharing PostgreSQL and Redis behave as one hub: one seq order, exactly once, resume on
either host, nothing acknowledged lost when one is killed mid-burst, global figures."""

from __future__ import annotations

import threading
import time

import requests

from spiral_web.client import emit_glint

from ..support import post_glint
from .conftest import Collector


def stored(url: str) -> list[dict]:
    """Every glint the shared record holds, oldest first."""
    out, before = [], ""
    while True:
        page = requests.get(f"{url}/api/glints?limit=500{before}", timeout=10).json()
        out += page["glints"]
        if page["next_before_seq"] is None:
            return out[::-1]
        before = f"&before_seq={page['next_before_seq']}"


def test_glints_posted_to_both_hosts_reach_every_listener_once_in_seq_order(hosts):
    a, b = hosts
    listeners = [Collector(a.url), Collector(b.url)]
    acked: list[int] = []
    lock = threading.Lock()

    def post(url: str, n: int) -> None:
        with requests.Session() as session:
            for i in range(n):
                seq = emit_glint("hosts.test", None, {"i": i}, url=url, session=session)["seq"]
                with lock:
                    acked.append(seq)

    threads = [threading.Thread(target=post, args=(h.url, 30)) for h in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sorted(acked) == list(range(1, 121))  # one seq space, no holes
        for listener in listeners:
            assert listener.wait_for(120) == sorted(acked)
        assert [g["seq"] for g in stored(b.url)] == sorted(acked)
    finally:
        for listener in listeners:
            listener.close()


def test_a_host_killed_mid_burst_loses_nothing_and_its_listeners_resume_on_the_other(hosts):
    a, b = hosts
    on_a, on_b = Collector(a.url), Collector(b.url)
    acked: list[str] = []
    stop = threading.Event()

    def post(url: str, name: str) -> None:
        with requests.Session() as session:
            n = 0
            while not stop.is_set():
                gid = f"{name}-{n}"
                n += 1
                try:
                    emit_glint("kill.test", None, {"n": n}, id=gid, url=url, session=session)
                except Exception:  # the killed host: this post was in flight, unanswered
                    return
                acked.append(gid)

    threads = [
        threading.Thread(target=post, args=(h.url, f"{name}{i}"))
        for i, (h, name) in enumerate([(a, "a"), (b, "b"), (a, "a"), (b, "b")])
    ]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while len(acked) < 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        a.kill()  # mid-burst: posts to a are in flight, b goes on
        at_kill = len(acked)
        while len(acked) < at_kill + 40 and time.monotonic() < deadline + 30:
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    got_on_a = list(on_a.seqs)
    assert got_on_a, "the listener on a received glints before the kill"
    resumed = Collector(b.url, last_event_id=got_on_a[-1])  # as the client does: same stream
    try:
        glints = stored(b.url)
        ids = {g["id"] for g in glints}
        assert set(acked) <= ids, "every acknowledged glint is in the record"
        every = [g["seq"] for g in glints]
        after = [s for s in every if s > got_on_a[-1]]
        assert resumed.wait_for(len(after)) == after  # nothing missed, nothing repeated
        assert got_on_a + resumed.seqs == every
        assert on_b.wait_for(len(every)) == every  # b's own listener, gaps filled
    finally:
        for c in (on_a, on_b, resumed):
            c.close()


def test_listeners_and_statistics_are_the_whole_hubs(hosts):
    a, b = hosts
    streams = [Collector(a.url), Collector(a.url), Collector(b.url)]
    try:
        emit_glint("stats.a", "inhale", url=a.url)
        emit_glint("stats.b", "exhale", url=b.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sa = requests.get(a.url + "/api/stats", timeout=5).json()
            sb = requests.get(b.url + "/api/stats", timeout=5).json()
            if sa["listeners"] == sb["listeners"] == 3 and sa["total"] == sb["total"] == 2:
                break
            time.sleep(0.1)
        assert sa["listeners"] == sb["listeners"] == 3
        assert sa["by_module"] == sb["by_module"] == {"stats.a": 1, "stats.b": 1}
        assert emit_glint("stats.c", "hold", url=b.url)["listeners"] == 3
    finally:
        for s in streams:
            s.close()


def test_a_cooldown_ritual_fires_once_across_hosts(tmp_path, start_hosts):
    config = tmp_path / "rituals.toml"
    config.write_text(
        '[rituals.bell]\nrule = \'module == "bell.tower"\'\naction = "emit"\n'
        'module = "ritual.bell"\nessential = true\ncooldown = 600\n'
    )
    a, b = start_hosts({"SPIRAL_CONFIG": str(config)})
    for i in range(6):
        assert post_glint((a, b)[i % 2].url, "bell.tower", context={"i": i}).status_code == 201
    history = requests.get(b.url + "/api/rituals/history", params={"ritual": "bell"}, timeout=10)
    assert sorted(r["status"] for r in history.json()["runs"]) == ["ok", "skipped_cooldown"]


def test_a_per_source_limit_holds_across_hosts(start_hosts):
    """Eight glints from one source, half to each host, against a burst of four: with a bucket per
    process each host would take its four; the hub's one bucket takes four (five if a second
    passes) and refuses the rest."""
    a, b = start_hosts({"SPIRAL_SOURCE_RATE": "1", "SPIRAL_SOURCE_BURST": "4"})
    with requests.Session() as http:
        codes = [
            post_glint((a, b)[i % 2].url, "limit.probe", context={"i": i}, http=http).status_code
            for i in range(8)
        ]
    assert codes.count(201) in (4, 5), codes
    assert set(codes) == {201, 429}

"""The cluster contract: what workers share behaves the same in one process (LocalCluster) and
across processes through a real redis-server (RedisCluster), and two RedisClusters on one Redis
(two workers) see one state."""

from __future__ import annotations

import threading
import time

import pytest

from spiral_web.bus import LocalCluster
from spiral_web.bus.redis import RedisCluster

T = 1_800_000_000.0


@pytest.fixture(params=["local", "redis"])
def pair(request):
    """Two handles on one cluster: the same LocalCluster twice, or two RedisClusters (two
    workers) on one redis-server."""
    if request.param == "local":
        one = LocalCluster()
        yield one, one
        return
    server = request.getfixturevalue("redis_server")
    a, b = RedisCluster(server.url, prefix="t:"), RedisCluster(server.url, prefix="t:")
    yield a, b
    a.close()
    b.close()


def test_a_claim_goes_to_one_caller(pair):
    a, b = pair
    assert a.claim("phase_change:1", 60) is True
    assert b.claim("phase_change:1", 60) is False
    assert a.claim("phase_change:1", 60) is False
    assert b.claim("phase_change:2", 60) is True


def test_one_cooldown_for_every_worker(pair):
    a, b = pair
    assert a.cooling("ritual:bell", T) is None
    assert a.cooldown("ritual:bell", T, 60) is None  # started
    assert b.cooldown("ritual:bell", T + 1, 60) == T + 60  # the other worker sees it running
    assert b.cooling("ritual:bell", T + 59) == T + 60
    assert b.cooling("ritual:bell", T + 60) is None  # ended
    assert b.cooldown("ritual:bell", T + 60, 60) is None
    b.release("ritual:bell")
    assert a.cooling("ritual:bell", T + 61) is None


def test_hits_within_a_window_are_counted_across_workers(pair):
    a, b = pair
    assert a.hits("ritual:burst", T, 10) == 1
    assert b.hits("ritual:burst", T + 1, 10) == 2
    assert a.hits("ritual:burst", T + 2, 10) == 3
    assert b.hits("ritual:burst", T + 11.5, 10) == 2  # the first two left the window
    a.forget("ritual:burst")
    assert b.hits("ritual:burst", T + 12, 10) == 1


def test_a_token_bucket_is_shared(pair):
    a, b = pair
    allowed = [a.take("source:x", T, 1.0, 3) is None for _ in range(2)]
    allowed += [b.take("source:x", T, 1.0, 3) is None for _ in range(2)]
    assert allowed == [True, True, True, False]  # a burst of 3, whoever asks
    assert b.take("source:x", T, 1.0, 3) == pytest.approx(1.0)  # a token a second
    assert a.take("source:x", T + 1.0, 1.0, 3) is None
    assert a.take("source:y", T, 1.0, 3) is None  # another source has its own bucket


def test_kept_changes_reach_a_worker_that_starts_later(pair):
    a, b = pair
    a.share("phase_override", ["night_hold", T, T + 300], T + 300)
    a.share("phase_override", ["hold", T, T + 200], T + 200)  # the same slot: replaced
    a.share("block", [["10.0.0.9"], T, T + 100, "m", "suspicion"], T + 100, "block:1")
    a.share("rejection", ["10.0.0.9"])  # not kept
    assert sorted(b.remembered(T + 50)) == [
        ("block", [["10.0.0.9"], T, T + 100, "m", "suspicion"]),
        ("phase_override", ["hold", T, T + 200]),
    ]
    assert b.remembered(T + 150) == [("phase_override", ["hold", T, T + 200])]


def test_control_messages_and_listener_counts_reach_the_other_worker(redis_server):
    a, b = RedisCluster(redis_server.url, prefix="c:"), RedisCluster(redis_server.url, prefix="c:")
    got: list[tuple[str, list]] = []
    arrived = threading.Event()

    def on_control(op, payload):
        got.append((op, payload))
        arrived.set()

    try:
        b.start(on_control, lambda: {"listeners": 3})
        a.start(lambda op, payload: None, lambda: {"listeners": 2})
        for _ in range(50):  # b is listening once it receives one
            a.share("rejection", ["10.0.0.1"])
            if arrived.wait(0.1):
                break
        assert got[0] == ("rejection", ["10.0.0.1"])
        total = 0
        for _ in range(50):  # each worker reports its own count about once a second
            total = a.listeners(2)
            if total == 5:
                break
            time.sleep(0.1)
        assert total == 5
    finally:
        a.close()
        b.close()


def test_a_deny_list_holds_until_its_time(pair):
    a, b = pair
    a.deny("session:abc", T + 60)
    assert b.denied("session:abc", T + 59) is True
    assert b.denied("session:abc", T + 60) is False
    assert b.denied("session:other", T) is False


def test_one_process_keeps_its_kept_changes_and_denials_across_a_restart(tmp_path):
    path = tmp_path / "shared.json"
    before = LocalCluster(path)
    before.share("phase_override", ["hold", T, T + 300], T + 300)
    before.deny("session:abc", 4_000_000_000.0)
    after = LocalCluster(path)
    assert after.remembered(T) == [("phase_override", ["hold", T, T + 300])]
    assert after.denied("session:abc", T) is True
    assert oct(path.stat().st_mode & 0o777) == "0o600"

"""A fast publisher for browser tests under load: glints POSTed open loop at a fixed rate from a
few threads, each on its own keep-alive connection (http.client: requests costs too much CPU to
reach thousands a second on a small machine)."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson


@dataclass
class Burst:
    """What a burst did: each stored glint's seq with when its answer came (time.time())."""

    started: float = 0.0
    ended: float = 0.0  # the last answer
    stored: list[tuple[float, int]] = field(default_factory=list)
    refused: dict[int, int] = field(default_factory=dict)  # status -> count

    @property
    def newest(self) -> int:
        return max(seq for _, seq in self.stored)

    @property
    def rate(self) -> float:
        """Glints stored per second over the burst."""
        return len(self.stored) / max(self.ended - self.started, 1e-9)


def burst(
    base_url: str, rate: float, seconds: float, threads: int = 16, module: str = "burst"
) -> Burst:
    """POST glints at `rate` a second for `seconds` (open loop: a slow answer does not slow the
    schedule; what the server cannot take in time is not sent after the end)."""
    url = urlsplit(base_url)
    result = Burst(started=time.time())
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    start = time.monotonic()

    def publish(k: int) -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        stored, refused = [], {}
        i = k
        try:
            while True:
                due = start + i / rate
                now = time.monotonic()
                if due >= deadline or now >= deadline:
                    break
                if due > now:
                    time.sleep(due - now)
                body = orjson.dumps({"module": f"{module}.m{i % 7}", "context": {"i": i}})
                conn.request("POST", "/stream/glint", body, headers)
                resp = conn.getresponse()
                answer = resp.read()
                if resp.status == 201:
                    stored.append((time.time(), orjson.loads(answer)["seq"]))
                else:
                    refused[resp.status] = refused.get(resp.status, 0) + 1
                i += threads
        finally:
            conn.close()
            with lock:
                result.stored.extend(stored)
                for status, n in refused.items():
                    result.refused[status] = result.refused.get(status, 0) + n

    workers = [threading.Thread(target=publish, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    result.stored.sort()
    result.ended = result.stored[-1][0] if result.stored else time.time()
    return result

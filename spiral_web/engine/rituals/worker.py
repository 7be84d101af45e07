"""The ritual worker: one background thread (a greenlet under gevent) for slow actions."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Worker:
    """One background thread (a greenlet under gevent's patched threading) for slow actions.

    Started on first use, never at import; its queue is bounded: a full queue refuses the job."""

    def __init__(self, size: int) -> None:
        self._jobs: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=size)
        self._cond = threading.Condition()
        self._unfinished = 0
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, job: Callable[[], object]) -> bool:
        with self._cond:
            if self._stopped:
                return False
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="spiral-rituals", daemon=True
                )
                self._thread.start()
            self._unfinished += 1
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self._done()
            return False
        return True

    def _loop(self) -> None:
        while not self._stopped:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                log.exception("ritual job failed")
            finally:
                self._done()

    def _done(self) -> None:
        with self._cond:
            self._unfinished -= 1
            self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._unfinished:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            running = self._thread is not None
        if running:
            try:
                self._jobs.put_nowait(None)
            except queue.Full:
                pass  # the loop sees _stopped after its current job

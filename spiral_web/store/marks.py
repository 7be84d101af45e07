"""Restore detection for one host: the seq mark, two small files in the data folder.

A record restored from a backup has forgotten seqs that clients may have seen; were it to hand them
out again, a listener resuming after one of them would silently skip the new glints. So the highest
seq published is also kept outside the record:

- `seq-seen`: the last seq published, rewritten in place before every publish (half a microsecond,
  no fsync: it survives a crash of the process, not of the machine), with the machine's boot id;
- `seq-mark.json`: `reserved`, no seq above it has been published (reserved ahead in blocks, one
  durable write per few thousand seqs), and `clean`, the exact last seq after a clean stop.

At start-up the floor is `clean` after a clean stop, else the `seq-seen` of this same boot, else
(the machine restarted: unsynced writes may be gone) the whole reservation. A record whose counter
is below the floor was restored: `Record.fence` moves its counter past the floor, bumps the epoch
and records the range, and listeners resuming inside it get a `reset` notice (engine/feed.py). After
a machine crash without a clean stop, seqs therefore jump by less than a block: nobody holds one of
the skipped seqs unless the record lost it, and then that listener is told to reset.

One process writes a folder's mark; the workers of a joined hub keep theirs in Redis
(bus/redis/mark.py).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import orjson

from ..datadir import private_file, private_folder

log = logging.getLogger(__name__)

BLOCK = 10_000
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot of the machine (a restart of the machine changes it)."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return "unknown"


class FileMark:
    """The seq mark of one host's data folder."""

    def __init__(self, folder: str | os.PathLike[str], block: int = BLOCK) -> None:
        self.folder = Path(folder)
        private_folder(self.folder)
        self.mark_path = self.folder / "seq-mark.json"
        self.seen_path = self.folder / "seq-seen"
        self.block = block
        self._boot = boot_id()
        self._lock = threading.Lock()
        self._bounds = self._read_bounds()
        self._reserved: int | None = None
        self._seen = os.open(private_file(self.seen_path), os.O_RDWR)

    def bounds(self) -> tuple[int, int]:
        """(floor, ceiling) as the folder said at start-up."""
        return self._bounds

    def note(self, seq: int) -> None:
        """Record `seq` as published; reserve the next block once it passes half of this one."""
        with self._lock:
            if self._seen < 0:  # published after a clean stop: the stop was not clean after all
                self._replace(
                    {"reserved": max(self._reserved or 0, seq) + self.block, "clean": None}
                )
                return
            os.pwrite(self._seen, b"%s %020d\n" % (self._boot.encode(), seq), 0)
            reserved = self._reserved
            if reserved is None or seq > reserved - self.block // 2:
                self._reserved = seq + self.block
                self._replace({"reserved": self._reserved, "clean": None})

    def close(self, top: int) -> None:
        """A clean stop: the next start compares the record with `top` exactly."""
        with self._lock:
            if self._seen >= 0:
                os.close(self._seen)
                self._seen = -1
            self._replace({"reserved": max(self._reserved or 0, top), "clean": top})

    def _read_bounds(self) -> tuple[int, int]:
        try:
            mark = orjson.loads(self.mark_path.read_bytes())
            reserved, clean = int(mark["reserved"]), mark.get("clean")
        except FileNotFoundError:
            return (0, 0)  # a new folder, or one from before marks: nothing to compare with
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable seq mark %s (%s): restore detection starts afresh",
                        self.mark_path, exc)  # fmt: skip
            return (0, 0)
        if clean is not None:
            return (int(clean), int(clean))
        try:
            boot, _, seen = self.seen_path.read_text().partition(" ")
            if boot == self._boot:
                return (int(seen), int(seen))
        except (OSError, ValueError):
            pass
        return (reserved, reserved)  # the machine restarted: whatever was reserved may be out

    def _replace(self, state: dict) -> None:
        """Write the mark file atomically and durably."""
        tmp = self.mark_path.with_name(self.mark_path.name + ".tmp")
        with open(private_file(tmp), "wb") as f:
            f.write(orjson.dumps(state))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.mark_path)
        directory = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

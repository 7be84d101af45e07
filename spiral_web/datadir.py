"""The data folder is the service's own: created private (0700), and every file Spiral keeps in it
(the SQLite record and its WAL, the signing key, the seq mark, shared state) readable by the
service's user only (0600), older files included."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def private_folder(path: str | os.PathLike[str]) -> Path:
    """Create the folder (and its parents) as 0700 if missing; warn when an existing one is open
    to others (it may be a folder the operator chose and shares on purpose: not changed)."""
    folder = Path(path)
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "the data folder %s is open to other users (mode %o); Spiral keeps its files 0600, "
            "but `chmod 700 %s` keeps their names private too",
            folder,
            mode,
            folder,
        )
    return folder


def private_file(path: str | os.PathLike[str]) -> Path:
    """Create the file as 0600 if missing, or take group and other access away if it has any."""
    file = Path(path)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        if stat.S_IMODE(file.stat().st_mode) & 0o077:
            os.chmod(file, 0o600)
    except OSError as exc:
        log.warning("could not make %s private: %s", file, exc)
    return file

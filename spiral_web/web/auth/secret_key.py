"""The key that signs sessions: configured, or made once and kept in the data folder."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ...config import Config
from ...datadir import private_folder


def secret_key(config: Config) -> bytes:
    """SPIRAL_SECRET_KEY, else a random key kept in the data folder (shared by every worker on this
    host; several hosts must be given the same SPIRAL_SECRET_KEY)."""
    if config.secret_key:
        return config.secret_key.encode()
    path = Path(config.data_dir) / "secret_key"
    private_folder(path.parent)
    if not path.exists():
        # Written whole under another name, then linked into place: workers starting together
        # all end up reading the one key that won, never a half-written file.
        tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} is damaged (too short): delete it to make a new key")
    return key.encode()

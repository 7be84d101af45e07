from __future__ import annotations

import pytest

from .parts import build


@pytest.fixture
def make(tmp_path):
    """Build a hub's engine parts around a ritual table; close them afterwards."""
    built = []

    def make_(tables: dict | None = None, queue_size: int = 16, **breath_config):
        parts = build(tmp_path / f"hub{len(built)}.sqlite3", tables, queue_size, **breath_config)
        built.append(parts)
        return parts

    yield make_
    for p in built:
        p.engine.close()
        p.store.close()

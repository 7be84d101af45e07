from __future__ import annotations

from typing import Any

import pytest

from spiral_web import create_app
from spiral_web.engine.clock import FakeClock

from .pg import PostgresCluster
from .support import ServerProcess


def pytest_configure(config):
    """Browser assertions wait for their condition up to 15 s, not Playwright's 5: on a busy
    two-core machine a page (and the server behind it) can take longer to get there."""
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)


@pytest.fixture
def app(tmp_path):
    """An app on a real SQLite file in a temporary folder, with a fake clock and no ticker."""
    app = create_app(
        {"data_dir": str(tmp_path / "data"), "fake_clock": True, "start_ticker": False}
    )
    yield app
    app.extensions["spiral"].close()


@pytest.fixture
def make_app(tmp_path):
    """create_app with a mapping; every app made is closed after the test."""
    made = []

    def make(**config: Any):
        config.setdefault("data_dir", str(tmp_path / f"data{len(made)}"))
        config.setdefault("fake_clock", True)
        config.setdefault("start_ticker", False)
        app = create_app(config)
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["spiral"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def spiral(app):
    return app.extensions["spiral"]


@pytest.fixture
def clock(spiral) -> FakeClock:
    assert isinstance(spiral.clock, FakeClock)
    return spiral.clock


@pytest.fixture
def server(tmp_path):
    """A real `spiral serve` process (gunicorn + gevent) with the test-only clock control on."""
    proc = ServerProcess(tmp_path / "server", env={"SPIRAL_FAKE_CLOCK": "1"}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL for the session (tests/pg.py), stopped at its end."""
    cluster = PostgresCluster().start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def postgres_url(postgres) -> str:
    """The URL of a new, empty database on the session's PostgreSQL (about 30 ms)."""
    return postgres.create_database()

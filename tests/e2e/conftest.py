"""Browser tests: real Chromium (Debian's package, found on PATH) driven by Playwright, against a
real `spiral serve` process. Never downloads a browser."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ..support import ServerProcess

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(
    os.environ.get("SPIRAL_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is not installed (apt-get install chromium); browser tests need it")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "dialog",
        lambda dialog: errors.append(f"dialog opened: {dialog.message}") or dialog.dismiss(),
    )
    page.js_errors = errors  # type: ignore[attr-defined]
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed and not page.is_closed():
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def live_server(tmp_path):
    """A real server with the test-only clock control; one per test, so tests never share state."""
    proc = ServerProcess(tmp_path / "server", env={"SPIRAL_FAKE_CLOCK": "1"}).start()
    yield proc
    proc.kill()  # a graceful stop waits ~2 s for nothing here; the data dir is thrown away

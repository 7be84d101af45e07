"""In Chromium: the nasty corpus, sent through every entry point, never runs in the dashboard (no
dialog, no `window.__pwned`, no page error), and the dashboard works under its
Content-Security-Policy (no violation while it signs in, streams, swaps and opens details)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import requests
import websocket
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.conftest import ARTIFACTS, CHROMIUM_ARGS, _chromium
from tests.e2e.pages import Dashboard
from tests.support import ServerProcess

from .conftest import ADMIN, PUBLISH, bearer
from .figures import record
from .test_hostile import NASTY

pytestmark = pytest.mark.e2e

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
    e => window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline")));
"""


@pytest.fixture
def guarded_server(tmp_path):
    env = {
        "SPIRAL_FAKE_CLOCK": "1",
        "SPIRAL_ADMIN_TOKEN": ADMIN,
        "SPIRAL_CAPACITY": "1000000",
        "SPIRAL_PUBLISH_TOKENS": ",".join(f"{n}:{s}" for n, s in PUBLISH.items()),
    }
    server = ServerProcess(tmp_path / "server", env=env).start()
    yield server
    server.kill()


def in_chromium(scenario: Callable[[Page], Any], name: str) -> Any:
    """Run `scenario` with a fresh page of Debian's Chromium, as tests/e2e's fixtures set it up
    (same binary, flags, viewport, page errors and dialogs collected in `page.js_errors`), in a
    thread of its own: Playwright's sync API allows one instance per thread, and in a full run
    tests/e2e's session-wide browser is still open in the main thread."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on(
                    "dialog", lambda d: errors.append(f"dialog opened: {d.message}") or d.dismiss()
                )
                page.js_errors = errors  # type: ignore[attr-defined]
                try:
                    outcome["value"] = scenario(page)
                except BaseException:
                    ARTIFACTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(ARTIFACTS / f"failed-{name}.png"), full_page=True)
                    raise
                finally:
                    context.close()
                    browser.close()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the test's thread)
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="spiral-browser-test")
    thread.start()
    thread.join(100)
    assert not thread.is_alive(), "the browser scenario did not finish"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def test_nothing_hostile_runs_and_the_dashboard_works_under_its_csp(guarded_server):
    in_chromium(lambda page: _scenario(guarded_server, page), "security-browser")


def _scenario(guarded_server: ServerProcess, page: Page) -> None:
    url = guarded_server.url
    page.add_init_script(WATCH)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    posts: list[dict[str, str]] = []
    page.on("request", lambda r: posts.append(r.headers) if r.method == "POST" else None)

    # signing in (the page and its form work under the policy)
    page.goto(url + "/auth/sign-in?next=/")
    page.fill("#sign-in-token", ADMIN)
    page.click("#sign-in button[type=submit]")
    board = Dashboard(page, url)
    board.expect_live()
    expect(page.locator("#session")).to_contain_text("Signed in as admin")

    # the corpus, live: through the API (a publish token), the WebSocket, and the dashboard's form
    sent = 0
    http = requests.Session()
    for text in NASTY:
        if text.encode("utf-8", "surrogatepass") != text.encode("utf-8", "ignore"):
            continue
        for glint in (
            {"module": "nasty.api", "context": {"note": text[:4000]}},
            {"module": "nasty.api", "context": {text[:200]: "key"}},
            {"module": text[:100], "context": {}},
        ):
            resp = http.post(
                url + "/stream/glint", json=glint, headers=bearer(PUBLISH["alpha"]), timeout=5
            )
            assert resp.status_code < 500
            sent += 1
    ws = websocket.create_connection(
        url.replace("http", "ws") + "/ws",
        timeout=5,
        header=[f"Authorization: Bearer {PUBLISH['beta']}"],
    )
    try:
        for text in NASTY[:12]:
            ws.send(
                json.dumps(
                    {"type": "emit", "glint": {"module": "nasty.ws", "context": {"t": text}}}
                )
            )
            while json.loads(ws.recv()).get("type") not in ("emit_result", "error"):
                pass
            sent += 1
    finally:
        ws.close()
    # the board is open: its emit waits for each answer and its swap
    for text in NASTY[:8]:
        board.emit("nasty.form", json.dumps({"t": text}))
        expect(page.locator("#emit-form .notice.ok, #emit-form .field-error").first).to_be_visible()
        board.emit(text)  # refused, and echoed back as the field's value
        expect(page.locator("#err-module")).to_be_visible()
        sent += 2

    # they arrive live (htmx swaps the stream's fragments under the policy) and stay text
    stats = http.get(url + "/api/stats", timeout=5).json()
    newest = stats["last_seq"]
    expect(board.glint(newest)).to_be_attached(timeout=10_000)
    assert page.locator("#timeline script, #timeline img, #timeline iframe").count() == 0
    rows = page.locator("#timeline > li", has_text="__pwned")
    assert rows.count() > 0
    sheet = board.open_glint(int(rows.first.get_attribute("data-seq") or newest))
    expect(sheet).to_contain_text("__pwned")  # shown, as text
    page.keyboard.press("Escape")
    # after a reload (first render) and on every page the corpus can reach by URL
    page.reload()
    board.expect_live()
    for path in (
        "/?module=" + quote(NASTY[0]),
        "/dashboard/glints/" + quote(NASTY[1], safe=""),
        "/auth/sign-in?next=" + quote("javascript:window.__pwned=1"),
        "/?phase=" + quote(NASTY[2]),
    ):
        page.goto(url + path)
    page.goto(url + "/")
    board.expect_live()

    assert page.evaluate("window.__pwned") is None
    assert page.js_errors == []  # no page error, no dialog
    htmx_posts = [h for h in posts if h.get("hx-request")]
    assert htmx_posts and all(h.get("x-csrf-token") for h in htmx_posts)  # base.html's hx-headers
    violations = page.evaluate("window.__csp")
    assert violations == [], violations
    assert [c for c in console if "Content Security Policy" in c] == []

    # and the policy is really there: an injected inline script is refused
    page.evaluate("""() => { const s = document.createElement("script");
                              s.textContent = "window.__pwned = 1"; document.body.append(s); }""")
    assert page.evaluate("window.__pwned") is None
    assert any(v.startswith("script-src") for v in page.evaluate("window.__csp"))
    record(
        "browser",
        inputs_sent=sent,
        stored=stats["total"],
        pwned=False,
        page_errors=0,
        csp_violations_while_working=len(violations),
    )

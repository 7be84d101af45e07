"""The dashboard in a real browser against a real server."""

from __future__ import annotations

import requests
from playwright.sync_api import expect

from .conftest import ARTIFACTS
from .pages import Dashboard


def _post(server, **glint):
    resp = requests.post(server.url + "/stream/glint", json=glint, timeout=5)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_dashboard_loads_complete_and_goes_live(live_server, page):
    _post(live_server, module="breath.emitter", phase="inhale", context={"intention": "morning_emergence"})
    board = Dashboard(page, live_server.url).open()
    expect(board.timeline.locator("li")).to_have_count(1)
    expect(page.locator("#stat-total")).to_have_text("1")
    expect(board.breath).to_have_attribute("data-phase", requests.get(live_server.url + "/api/breath").json()["phase"])
    assert page.js_errors == []


def test_glint_posted_from_outside_appears_live(live_server, page):
    board = Dashboard(page, live_server.url).open()
    answer = _post(live_server, module="memory.scroll", phase="hold", context={"depth": "contemplative"})
    row = board.glint(answer["seq"])
    expect(row).to_be_visible()
    expect(row.locator(".module")).to_have_text("memory.scroll")
    expect(page.locator("#stat-total")).to_have_text("1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    board.screenshot(str(ARTIFACTS / "dashboard-live.png"))


def test_glint_emitted_through_the_form_appears_in_timeline(live_server, page):
    board = Dashboard(page, live_server.url).open()
    board.emit("shrine.system", '{"glow": "steady"}', phase="return")
    expect(page.locator("#emit-form .notice.ok")).to_contain_text("broadcast")
    row = board.timeline.locator("li").first
    expect(row.locator(".module")).to_have_text("shrine.system")
    expect(row.locator(".phase-badge")).to_have_text("return")
    assert requests.get(live_server.url + "/api/stats").json()["total"] == 1


def test_form_shows_server_validation_errors_inline(live_server, page):
    board = Dashboard(page, live_server.url).open()
    board.emit("Not A Module", "{}")
    expect(page.locator("#err-module")).to_be_visible()
    expect(page.locator("#emit-module")).to_have_attribute("aria-invalid", "true")
    board.emit("fine.module", "{not json")
    expect(page.locator("#err-context")).to_contain_text("JSON")
    assert requests.get(live_server.url + "/api/stats").json()["total"] == 0


def test_hostile_context_is_shown_as_text(live_server, page):
    board = Dashboard(page, live_server.url).open()
    hostile = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"
    answer = _post(live_server, module="shrine.system", context={"note": hostile})
    row = board.glint(answer["seq"])
    expect(row.locator(".context")).to_contain_text("<script>window.__pwned = 1</script>")
    assert row.locator("script, img").count() == 0
    page.reload()
    expect(board.glint(answer["seq"]).locator(".context")).to_contain_text("<img src=x")
    assert page.evaluate("window.__pwned") is None
    assert page.js_errors == []


def test_glyph_follows_the_server_phase(live_server, page):
    board = Dashboard(page, live_server.url).open()
    before = board.breath.get_attribute("data-phase")
    state = requests.get(live_server.url + "/api/breath").json()
    # Move the server's fake clock to just past the end of the current phase.
    from datetime import datetime

    ends = datetime.fromisoformat(state["phase_ends_at"].replace("Z", "+00:00")).timestamp()
    now = datetime.fromisoformat(state["server_time"].replace("Z", "+00:00")).timestamp()
    moved = requests.post(live_server.url + "/_test/clock", json={"advance": ends - now + 0.01}).json()
    assert moved["phase"] != before
    expect(board.breath).to_have_attribute("data-phase", moved["phase"])
    expect(page.locator(f"#breath .ring-{moved['phase']}")).to_have_class("ring ring-" + moved["phase"] + " active")

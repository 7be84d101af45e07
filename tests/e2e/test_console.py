"""The operator's console in a real browser (Debian's Chromium) against a real `spiral serve`:
forms that keep their place when refused (issue 13, item 2), blocks with a way out (5), ritual
invocations that ask first and say what happened (6), the rule tester, the ritual history and HTML
error pages (7), form errors for people (9), keyboard and screen readers (11), the layout (12), and
the operators' views (history, refusals, clients, a glint's copy/share/publish-again).

Each test waits for what it checks (never a fixed sleep) and takes the pictures of the views it
opens, at 1440×900 and on a phone, into test-artifacts/console-*.png."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime

import pytest
import requests
from playwright.sync_api import Page, expect

from ..support import ServerProcess, emit, post_glint
from .conftest import ARTIFACTS
from .pages import Dashboard

ADMIN = "admin-secret-token-0123456789abcdef"
SENSOR = "sensor-secret-token-0123456789abcdef"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def guarded_server(tmp_path):
    """A server with an admin token and one publish token (`garden-sensor`): reading stays open,
    so the dashboard shows "Sign in"; the sensor's refusals can get it blocked (loopback is
    never blocked)."""
    proc = ServerProcess(
        tmp_path / "guarded",
        env={
            "SPIRAL_FAKE_CLOCK": "1",
            "SPIRAL_ADMIN_TOKEN": ADMIN,
            "SPIRAL_PUBLISH_TOKENS": f"garden-sensor:{SENSOR}",
        },
    ).start()
    yield proc
    proc.kill()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def advance(server, seconds: float) -> dict:
    """Move the server's fake clock (on a hub with tokens, only the admin may)."""
    headers = bearer(ADMIN) if "SPIRAL_ADMIN_TOKEN" in server.env else {}
    resp = requests.post(
        server.url + "/_test/clock", json={"advance": seconds}, headers=headers, timeout=10
    )
    resp.raise_for_status()
    return resp.json()


def sign_in(page: Page, server, token: str = ADMIN) -> None:
    page.goto(server.url + "/auth/sign-in")
    page.fill("#sign-in-token", token)
    page.click("#sign-in button[type=submit]")
    expect(page.locator("#session")).to_contain_text("Signed in as")


def block_the_sensor(server) -> None:
    """Forty refused glints from the sensor's token make the climate suspicious; the next breath
    (the clock moved by a hair) runs the watcher, which blocks the sensor for 300 s."""
    http = requests.Session()
    for _ in range(40):
        resp = post_glint(server, "Not A Module", http=http, headers=bearer(SENSOR))
        assert resp.status_code in (422, 429)
    advance(server, 0.01)
    blocks = requests.get(server.url + "/api/operators/protection", timeout=10).json()["blocks"]
    assert [b["source"] for b in blocks] == ["garden-sensor"]


def picture(page: Page, name: str, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.fonts.ready")
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=full_page)


def tab_until(page: Page, selector: str, limit: int = 80) -> list[str]:
    """Press Tab until `selector` has focus; the stops on the way (id or text)."""
    stops: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"document.activeElement.matches({json.dumps(selector)})"):
            return stops
        stops.append(
            page.evaluate(
                "(() => { const e = document.activeElement;"
                " return e.id || (e.textContent || '').trim().slice(0, 30); })()"
            )
        )
    raise AssertionError(f"{selector} not reached in {limit} Tab presses: {stops[:20]}…")


# -- 2: an error never replaces a form -------------------------------------------------------------


def test_an_error_answer_never_replaces_the_emit_form(live_server, page):
    board = Dashboard(page, live_server.url).open()
    page.fill("#emit-module", "big.one")
    big = json.dumps({"notes": "x" * 20_000})
    page.fill("#emit-context", big)
    with page.expect_response(lambda r: "/dashboard/emit" in r.url) as answer:
        page.click("#emit-form button[type=submit]")
    assert answer.value.status == 413
    page.wait_for_function("() => !document.querySelector('#emit-form [disabled]')")  # swapped
    expect(page.locator("#emit-form")).to_be_visible()
    expect(page.locator("#emit-module")).to_have_value("big.one")  # what was typed stays
    assert page.locator("#emit-context").input_value() == big
    status = page.locator("#emit-form-status .problem")
    expect(status).to_contain_text("at most 16 KiB")
    picture(page, "form-too-large")

    # the server cannot be reached: the form stays and says so
    page.route("**/dashboard/emit", lambda route: route.abort())
    page.fill("#emit-context", '{"small": true}')
    page.click("#emit-form button[type=submit]")
    expect(status).to_contain_text("could not be reached")
    expect(page.locator("#emit-module")).to_have_value("big.one")
    page.unroute("**/dashboard/emit")
    board.emit("big.one", '{"small": true}')
    expect(page.locator("#emit-form-status .notice.ok")).to_contain_text("broadcast")
    assert requests.get(live_server.url + "/api/stats").json()["total"] == 1
    assert page.js_errors == []


# -- 5: blocks with a way out ----------------------------------------------------------------------


def test_an_admin_sees_blocks_in_words_and_lifts_them(guarded_server, page):
    block_the_sensor(guarded_server)
    sign_in(page, guarded_server)
    board = Dashboard(page, guarded_server.url).open()
    panel = page.locator("#protection")
    row = panel.locator(".block", has_text="garden-sensor")
    expect(row).to_be_visible()
    expect(row.locator(".block-left")).to_have_text(re.compile(r"^blocked for [45] more minutes$"))
    assert not re.search(r"\d{4}-\d\d-\d\dT", panel.inner_text())  # no raw ISO time
    expect(page.locator("#breath-facts .alert-suspicion")).to_be_visible()

    # The climate clears after its window and two calm spells; the block outlasts it, and the
    # page says why.
    for seconds in (61, 31, 31):
        advance(guarded_server, seconds)
    expect(page.locator("#climate-name")).to_contain_text("clear")
    note = page.locator("#protection-note")
    expect(note).to_contain_text("The climate is clear again, but the watcher's block still holds")
    expect(note).to_contain_text(re.compile(r"blocked for [23] more minutes"))
    expect(row.locator(".block-left")).to_have_text(re.compile(r"^blocked for [23] more minutes$"))
    picture(page, "blocked")

    with page.expect_response(lambda r: r.url.endswith("/dashboard/protection")):
        row.get_by_role("button", name="Unblock garden-sensor").click()
    expect(page.locator("#protection-status")).to_contain_text("garden-sensor is let in again")
    expect(page.locator("#breath-facts .alert-suspicion")).to_have_count(0)
    expect(page.locator("#protection-note")).to_have_count(0)
    ok = post_glint(guarded_server, "sensor.garden", headers=bearer(SENSOR))
    assert ok.status_code == 201, ok.text
    board.expect_live()
    assert page.js_errors == []


def test_an_admin_ends_the_throttle_from_the_page(tmp_path, page):
    server = ServerProcess(
        tmp_path / "small", env={"SPIRAL_FAKE_CLOCK": "1", "SPIRAL_CAPACITY": "2"}
    ).start()
    try:
        board = Dashboard(page, server.url).open()
        http = requests.Session()
        for i in range(25):  # 2 glints/s is full usage: the throttle ritual pauses input
            post_glint(server, "load.test", http=http, context={"i": i})
        expect(board.breath).to_have_attribute("data-throttled", "true")
        button = page.locator("#protection #end-throttle")
        expect(button).to_be_visible()
        expect(page.locator("#protection")).to_contain_text("Input is paused.")
        picture(page, "throttled")
        button.click()  # usage is still high: only the admin's word lifts it now
        expect(page.locator("#protection-status")).to_contain_text("The throttle is ended")
        expect(board.breath).to_have_attribute("data-throttled", "false")
        assert requests.get(server.url + "/api/breath").json()["throttled"] is False
        assert page.js_errors == []
    finally:
        page.context.close()
        server.kill()


# -- 6: invoking rituals ---------------------------------------------------------------------------


def test_a_disruptive_invocation_asks_first_and_says_what_happened(live_server, page):
    board = Dashboard(page, live_server.url).open()
    board.open_controls()
    expect(page.locator("#invoke-throttle-button")).to_have_text("Invoke…")
    expect(page.locator("#invoke-archival-button")).to_have_text("Invoke")

    page.click("#invoke-throttle-button")
    confirm = page.locator("#invoke-throttle .confirm")
    expect(confirm).to_contain_text("Run throttle now?")
    expect(confirm).to_contain_text("so it will pause nothing")  # usage is low
    expect(page.locator("#confirm-throttle")).to_be_focused()
    assert requests.get(live_server.url + "/api/rituals/history").json()["runs"] == []
    picture(page, "confirm")
    page.click("#cancel-throttle")
    expect(board.invoke_result("throttle")).to_contain_text("Cancelled: nothing was changed")
    assert requests.get(live_server.url + "/api/rituals/history").json()["runs"] == []

    page.click("#invoke-throttle-button")
    page.click("#confirm-throttle")
    expect(board.invoke_result("throttle")).to_contain_text("input was not paused")
    assert post_glint(live_server, "after.throttle").status_code == 201  # and it is so
    expect(board.breath).to_have_attribute("data-throttled", "false")

    page.click("#invoke-suspicion_watcher-button")
    expect(page.locator("#invoke-suspicion_watcher .confirm")).to_contain_text(
        "The climate is clear now"
    )
    page.click("#confirm-suspicion_watcher")
    expect(board.invoke_result("suspicion_watcher")).to_contain_text("nothing to block")
    expect(page.locator("#breath-facts .alert")).to_have_count(0)  # no red alert under a clear sky
    expect(page.locator("#climate-name")).to_contain_text("clear")

    page.click("#invoke-archival-button")  # not disruptive: runs at once
    expect(board.invoke_result("archival")).to_contain_text("nothing older than 7 days")
    assert page.js_errors == []  # no window.confirm dialog was opened either


# -- 7: dry run, history, error pages --------------------------------------------------------------


def test_the_rule_tester_shows_what_a_rule_would_have_matched(live_server, page):
    for module in ("memory.scroll", "breath.emitter", "memory.scroll", "memory.index"):
        emit(live_server, module=module, context={"depth": "contemplative"})
    page.goto(live_server.url + "/dashboard/rules")
    expect(page.locator("#t-rule")).to_have_value('module == "memory.scroll" && phase == "return"')
    page.fill("#t-rule", 'module.startsWith("memory.")')
    page.click("#rule-submit")
    expect(page.locator("#matches-title")).to_have_text("3 of 4 would have matched")
    expect(page.locator("#matches tbody .module")).to_have_text(
        ["memory.index", "memory.scroll", "memory.scroll"]
    )
    picture(page, "rule-tester", full_page=True)
    page.fill("#t-rule", "module ==")
    page.click("#rule-submit")
    expect(page.locator("#err-rule")).to_be_visible()
    expect(page.locator("#t-rule")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#t-rule")).to_be_focused()
    page.click("a.chip:text-is('throttle')")
    expect(page.locator("#t-rule")).to_have_value("usage > 0.8")
    expect(page.locator("#matches-title")).to_have_text("0 of 4 would have matched")
    assert page.js_errors == []


def test_ritual_history_filters_and_pages(live_server, page):
    http = requests.Session()
    for _ in range(52):
        assert http.post(live_server.url + "/api/rituals/archival/invoke").status_code == 200
    assert http.post(live_server.url + "/api/rituals/caesura/invoke").status_code == 200
    Dashboard(page, live_server.url).open()
    page.click("#ritual-panel a.history-link")
    expect(page).to_have_url(re.compile(r"/dashboard/rituals$"))
    expect(page.locator("#ritual-runs > li")).to_have_count(50)
    expect(page.locator("#ritual-runs > li").first).to_have_attribute("data-ritual", "caesura")
    page.select_option("#r-ritual", "archival")
    page.select_option("#r-status", "ok")
    page.click("#rituals-submit")
    expect(page).to_have_url(re.compile(r"ritual=archival&status=ok"))
    expect(page.locator("#ritual-runs > li")).to_have_count(50)
    page.click("#rituals-older")
    expect(page.locator("#ritual-runs > li")).to_have_count(2)
    expect(page.locator("#ritual-runs > li[data-ritual=caesura]")).to_have_count(0)
    page.locator("#ritual-runs > li summary").first.click()
    expect(page.locator("#ritual-runs > li .run-json").first).to_be_visible()
    picture(page, "ritual-history", full_page=True)
    assert page.js_errors == []


def test_the_dashboards_own_urls_answer_html_error_pages(live_server, page):
    resp = page.goto(live_server.url + "/dashboard/glints/no-such-glint")
    assert resp is not None and resp.status == 404
    assert resp.headers["content-type"].startswith("text/html")
    expect(page.locator("#glint-detail h2")).to_have_text("Glint not found")
    expect(page.locator("#glint-detail")).to_contain_text("no-such-glint")
    expect(page.locator("header.topbar .console-nav")).to_be_visible()  # a way on
    picture(page, "not-found")
    resp = page.goto(live_server.url + "/dashboard/nowhere")
    assert resp is not None and resp.status == 404
    expect(page.locator("#error-title")).to_have_text("Not found")
    api = requests.get(live_server.url + "/api/glints/no-such-glint", timeout=10)
    assert api.status_code == 404 and api.json()["error"] == "not_found"  # the API stays JSON


# -- 9: form errors for people ---------------------------------------------------------------------


def test_the_emit_form_speaks_to_people_and_keeps_what_makes_sense(live_server, page):
    board = Dashboard(page, live_server.url).open()
    module = page.locator("#emit-module")
    assert module.get_attribute("placeholder") is None  # nothing that looks like a value
    assert page.locator("#emit-context").get_attribute("placeholder") is None
    help_text = page.locator("#emit-form").inner_text()
    for limit in ("8 KiB", "8 levels deep", "128 keys per object", "4,096 characters", "16 KiB"):
        assert limit in help_text, limit

    board.emit("Not A Module", "{}")
    error = page.locator("#err-module")
    expect(error).to_contain_text("lowercase words joined by dots, such as memory.scroll")
    assert "String should" not in error.inner_text() and "^[a-z]" not in error.inner_text()
    expect(module).to_be_focused()
    expect(module).to_have_value("Not A Module")

    board.emit("fine.module", '{"mood": calm}')
    expect(page.locator("#err-context")).to_contain_text("not valid JSON at line 1, column 10")
    expect(page.locator("#emit-context")).to_be_focused()
    board.emit("fine.module", '{"k": "' + "y" * 4100 + '"}')
    expect(page.locator("#err-context")).to_contain_text("longer than 4,096 characters")
    picture(page, "form-errors")

    board.emit("shrine.system", '{"glow": "steady"}', phase="return")
    expect(page.locator("#emit-form-status .notice.ok")).to_contain_text("broadcast")
    expect(module).to_have_value("shrine.system")  # the sender stays
    expect(page.locator("#emit-phase")).to_have_value("return")
    expect(page.locator("#emit-context")).to_have_value("")  # the payload is what changes
    assert page.js_errors == []


# -- 11: keyboard and screen readers ---------------------------------------------------------------


def test_keyboard_paths_and_announcements(guarded_server, page):
    http = requests.Session()
    for i in range(120):
        emit(guarded_server, module=f"load.m{i % 5}", http=http, headers=bearer(ADMIN),
             context={"i": i, "text": "x" * 80})  # fmt: skip
    for _ in range(20):
        http.post(guarded_server.url + "/api/rituals/archival/invoke", headers=bearer(ADMIN))
    board = Dashboard(page, guarded_server.url).open()
    expect(board.rows).to_have_count(100)

    # the skip link comes first, before "Sign in"
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('header') !== null")

    # the ritual log is one stop before the emit form, and the arrows move inside it
    page.locator("#ritual-log summary").first.focus()
    stops = tab_until(page, "#emit-module")
    assert len(stops) <= 3, stops
    page.locator("#ritual-log summary").first.focus()
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.closest('li').dataset.seq") == page.locator(
        "#ritual-log > li"
    ).nth(1).get_attribute("data-seq")

    # the timeline is one stop: from its newest row, Tab leaves it
    first_row = page.locator("#timeline a.glint-open").first
    first_row.focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#timeline a.glint-open").nth(1)).to_be_focused()
    page.keyboard.press("End")
    expect(page.locator("#timeline a.glint-open").last).to_be_focused()
    page.keyboard.press("Home")  # back at the top, where the timeline is live again
    expect(first_row).to_be_focused()
    expect(board.pause_button).to_have_attribute("data-state", "live")
    page.keyboard.press("Tab")
    assert page.evaluate("!document.activeElement.closest('#timeline')")
    assert page.locator("#timeline a.glint-open[tabindex='0']").count() == 1
    # (the next stop, "Older glints", sits at the timeline's end: scrolled there, it pauses)
    page.locator("#timeline-body").evaluate("b => { b.scrollTop = 0; }")
    expect(board.pause_button).to_have_attribute("data-state", "live")
    new = emit(guarded_server, module="late.one", headers=bearer(ADMIN))
    expect(board.glint(new["seq"])).to_be_visible()
    expect(board.glint(new["seq"]).locator("a")).to_have_attribute("tabindex", "0")  # the newest
    assert page.locator("#timeline a.glint-open[tabindex='0']").count() == 1

    # no two fields share a name
    expect(page.get_by_label("Module", exact=True)).to_have_count(1)
    expect(page.get_by_label("Phase", exact=True)).to_have_count(1)
    expect(page.get_by_label("Module of the new glint")).to_have_id("emit-module")

    # phase changes and ritual runs are said once, politely; a glint is not
    announcer = page.locator("#announcer")
    assert announcer.get_attribute("aria-live") == "polite"
    state = requests.get(guarded_server.url + "/api/breath").json()
    ends = datetime.fromisoformat(state["phase_ends_at"]).timestamp()
    now = datetime.fromisoformat(state["server_time"]).timestamp()
    moved = advance(guarded_server, ends - now + 0.01)
    expect(announcer).to_have_text(f"Phase: {moved['phase'].replace('_', ' ')}.")
    http.post(guarded_server.url + "/api/rituals/archival/invoke", headers=bearer(ADMIN))
    expect(announcer).to_have_text("Ritual ran: archival ok.")
    late = emit(guarded_server, module="quiet.one", headers=bearer(ADMIN))
    expect(board.glint(late["seq"])).to_be_visible()
    expect(announcer).to_have_text("Ritual ran: archival ok.")
    assert page.js_errors == []


def test_a_timeline_rows_accessible_name_is_short(live_server, page):
    board = Dashboard(page, live_server.url).open()
    g = emit(live_server, module="memory.scroll", phase="hold", context={"long": "y" * 300})
    link = board.glint(g["seq"]).locator("a")
    expect(link).to_be_visible()
    name = link.evaluate("a => a.getAttribute('aria-label') || a.textContent")
    assert "memory.scroll" in name and "hold" in name and len(name) < 80, name


# -- 12: layout ----------------------------------------------------------------------------------


def test_sign_in_sits_in_the_header_and_cards_have_room(guarded_server, browser):
    g = emit(guarded_server, module="memory.scroll", headers=bearer(ADMIN), context={"k": 1})
    for name, options in (("wide", {"viewport": {"width": 1440, "height": 900}}), ("phone", PHONE)):
        context = browser.new_context(**options)
        try:
            page = context.new_page()
            Dashboard(page, guarded_server.url).open()
            header = page.locator("header.topbar")
            sign_in_link = header.locator("#sign-in-link")
            expect(sign_in_link).to_be_visible()
            box, head = sign_in_link.bounding_box(), header.bounding_box()
            assert (
                box
                and head
                and head["y"] <= box["y"]
                and box["y"] + box["height"] <= head["y"] + head["height"]
            )
            assert page.evaluate("document.querySelector('#session').closest('header') !== null")
            picture(page, f"header-{name}")
            page.goto(guarded_server.url + f"/dashboard/glints/{g['id']}")
            card = page.locator("#detail-body")
            pad = card.evaluate("e => parseFloat(getComputedStyle(e).paddingTop)")
            assert pad >= 16, pad
            title, frame = page.locator("#detail-title").bounding_box(), card.bounding_box()
            assert title and frame and title["y"] - frame["y"] >= 16
            picture(page, f"glint-page-{name}", full_page=True)
        finally:
            context.close()


@pytest.mark.parametrize(
    "size", [pytest.param("wide", id="1440x900"), pytest.param("phone", id="phone")]
)
def test_the_empty_timeline_leads_to_the_form(live_server, browser, size):
    options = {"viewport": {"width": 1440, "height": 900}} if size == "wide" else PHONE
    context = browser.new_context(**options)
    try:
        page = context.new_page()
        Dashboard(page, live_server.url).open()
        link = page.locator("#timeline-empty a", has_text="Emit one with the form")
        expect(link).to_be_visible()
        link.click()
        field = page.locator("#emit-module")
        expect(field).to_be_focused()
        expect(field).to_be_in_viewport()
    finally:
        context.close()


def test_the_operator_pages_fit_a_phone(live_server, browser):
    for i in range(8):
        emit(live_server, module="memory.scroll" if i % 2 else "sensor.garden", context={"i": i})
    requests.post(live_server.url + "/api/rituals/archival/invoke", timeout=10)
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        for path, name in (
            ("/dashboard/console", "console"),
            ("/dashboard/history?text=i", "history"),
            ("/dashboard/rituals", "rituals"),
            ("/dashboard/rules?ritual=archival", "rules"),
            ("/dashboard/nowhere", "error"),
        ):
            page.goto(live_server.url + path)
            expect(page.locator("header.topbar .console-nav")).to_be_visible()
            expect(page.locator("#main")).to_be_visible()
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390 + 0.5, (path, width)  # tables scroll inside their box, not the page
            picture(page, f"phone-{name}", full_page=True)
    finally:
        context.close()


# -- what operators expect beside ------------------------------------------------------------------


def test_the_console_shows_refusals_and_connected_clients_live(guarded_server, page):
    sign_in(page, guarded_server)
    page.goto(guarded_server.url + "/dashboard/console")
    expect(page.locator("#refusal-log")).to_contain_text("No request has been refused.")
    listener = requests.get(
        guarded_server.url + "/stream?module=memory.*&phase=return", stream=True, timeout=30
    )
    try:
        http = requests.Session()
        for _ in range(6):
            post_glint(guarded_server, "Bad Module", http=http, headers=bearer(SENSOR))
        expect(page.locator("#refusal-total")).to_have_text("6", timeout=15_000)
        first = page.locator("#refusal-log tbody tr").first
        expect(first).to_contain_text("garden-sensor")
        expect(page.locator(".bars.sources li", has_text="garden-sensor")).to_contain_text("6")
        sse = page.locator(".clients-table tbody tr", has_text="memory.*")
        expect(sse).to_contain_text("sse")
        expect(sse).to_contain_text("return")
        expect(page.locator("#clients-total")).not_to_have_text("0")
        picture(page, "console", full_page=True)
    finally:
        listener.close()
    # The server learns a reader left when it next writes to it: a glint it wants does that.
    emit(guarded_server, module="memory.scroll", phase="return", headers=bearer(ADMIN))
    expect(page.locator(".clients-table tbody tr", has_text="memory.*")).to_have_count(
        0, timeout=20_000
    )
    assert page.js_errors == []


def test_the_refusal_log_says_the_status_and_reason_of_an_api_refusal(live_server, page):
    post_glint(live_server, "Bad Module")
    page.goto(live_server.url + "/dashboard/console")
    first = page.locator("#refusal-log tbody tr").first
    expect(first).to_contain_text("422")
    expect(first).to_contain_text("invalid glint")


def test_history_searches_context_text_and_a_time_range(live_server, page):
    http = requests.Session()
    for i in range(70):
        note = "rain on the roof" if i % 7 == 0 else "a quiet morning"
        emit(live_server, module="sensor.garden" if i % 2 else "memory.scroll", http=http,
             context={"i": i, "note": note})  # fmt: skip
    later = advance(live_server, 7200)["server_time"]
    for i in range(70, 75):
        emit(live_server, module="memory.scroll", http=http, context={"i": i, "note": "rain again"})
    page.goto(live_server.url + "/dashboard/history")
    rows = page.locator(".glints-table tbody tr")
    expect(rows).to_have_count(50)
    page.click("#history-older")
    expect(rows).to_have_count(25)
    page.goto(live_server.url + "/dashboard/history")
    page.fill("#h-text", "RAIN")
    page.click("#history-submit")
    expect(rows).to_have_count(15)
    expect(page.locator("#results-title")).to_contain_text("with “RAIN” in the context")
    picture(page, "history", full_page=True)
    page.fill("#h-module", "memory.*")
    page.fill("#h-from", later[:19])
    page.click("#history-submit")
    expect(rows).to_have_count(5)
    expect(rows.first).to_contain_text("rain again")
    assert page.js_errors == []


def test_a_glint_is_copied_shared_and_published_again(live_server, page):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    g = emit(live_server, module="shrine.system", phase="return", context={"glow": "it's steady"})
    board = Dashboard(page, live_server.url).open()
    sheet = board.open_glint(g["seq"])

    sheet.locator("#copy-json-button").click()
    expect(page.locator("#glint-actions-status")).to_contain_text("Copied as JSON")
    copied = json.loads(page.evaluate("navigator.clipboard.readText()"))
    assert copied["id"] == g["id"] and copied["context"] == {"glow": "it's steady"}

    sheet.locator("#copy-curl-button").click()
    curl = page.evaluate("navigator.clipboard.readText()")
    assert curl.startswith(f"curl -X POST '{live_server.url}/stream/glint'")
    if shutil.which("curl"):  # the command works as copied: it publishes the glint again
        done = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and '"status":"glint_broadcast"' in done.stdout

    sheet.locator("#copy-link-button").click()
    link = page.evaluate("navigator.clipboard.readText()")
    assert link == f"{live_server.url}/?glint={g['id']}"
    picture(page, "glint-sheet")

    sheet.locator("#republish-button").click()
    expect(page.locator("#glint-actions-status")).to_contain_text("Published again as glint #")
    stored = requests.get(live_server.url + "/api/glints").json()["glints"]
    same = [
        x
        for x in stored
        if (x["module"], x["phase"], x["context"])
        == ("shrine.system", "return", {"glow": "it's steady"})
    ]
    assert len(same) == (3 if shutil.which("curl") else 2)

    other = page.context.new_page()
    try:
        other.goto(link)
        expect(other.locator("#detail")).to_be_visible()
        expect(other.locator("#glint-detail h2")).to_have_text("shrine.system")
        expect(other.locator("#glint-detail")).to_have_attribute("data-glint-id", g["id"])
        other.keyboard.press("Escape")
        expect(other.locator("#detail")).to_be_hidden()
        expect(other).to_have_url(f"{live_server.url}/")  # closed: the address is the page's again
    finally:
        other.close()
    assert page.js_errors == []

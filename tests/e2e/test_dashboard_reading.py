"""Reading the dashboard, in Chromium: controls stay where the pointer is (issue 13, item 4), times
read in the browser's zone with its name and a UTC switch (item 8), and the sparkline says what
its numbers count (item 10)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import requests
from playwright.sync_api import expect

from ..support import emit
from .pages import LAYOUT_TOLERANCE, Dashboard
from .test_dashboard import advance

# Where each part of the page is (top/height, and the page's scroll): said when the Pause button
# moved, so that a failure names what pushed it.
LAYOUT = """() => [window.scrollY, document.documentElement.scrollHeight, Object.fromEntries(
  ['.topbar', '.col-shrine', '.shrine-panel', '#ritual-panel', '.col-side', '.stats-panel',
   '#admin', '#timeline-panel', '#timeline', '#timeline-more'].map((s) => {
    const r = document.querySelector(s)?.getBoundingClientRect();
    return [s, r ? `${Math.round(r.top)}/${Math.round(r.height)}` : null];
  }))]"""


def inside(x: float, y: float, box: dict) -> bool:
    return box["x"] <= x <= box["x"] + box["width"] and box["y"] <= y <= box["y"] + box["height"]


@pytest.mark.parametrize(
    "width, height",
    [
        pytest.param(1440, 900, id="laptop"),
        pytest.param(1180, 820, id="two-columns"),
        pytest.param(900, 900, id="narrow"),
        pytest.param(390, 844, id="phone"),
    ],
)
def test_pause_stays_under_the_pointer_when_new_glints_arrive(live_server, browser, width, height):
    for i in range(3):
        emit(live_server, module="breath.emitter", context={"i": i})
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        board = Dashboard(page, live_server.url).open()
        url = page.url
        board.pause_button.scroll_into_view_if_needed()
        before = board.pause_button.bounding_box()
        layout_before = page.evaluate(LAYOUT)
        x, y = before["x"] + before["width"] / 2, before["y"] + before["height"] / 2
        page.mouse.click(x, y)
        expect(board.pause_button).to_have_attribute("data-state", "paused")
        held = [
            emit(live_server, module="memory.scroll", context={"n": i})["seq"] for i in range(5)
        ]
        expect(board.new_count).to_have_text("5 new")
        expect(board.new_count).to_be_visible()
        after = board.pause_button.bounding_box()
        for side in ("x", "y", "width", "height"):
            assert abs(after[side] - before[side]) <= LAYOUT_TOLERANCE, (
                side,
                before,
                after,
                layout_before,
                page.evaluate(LAYOUT),
            )
        assert inside(x, y, after)

        # The same spot again resumes; it does not submit the filter.
        timeline_requests: list[str] = []
        page.on(
            "request",
            lambda r: timeline_requests.append(r.url) if "/dashboard/timeline" in r.url else None,
        )
        page.mouse.click(x, y)
        expect(board.pause_button).to_have_attribute("data-state", "live")
        expect(board.new_count).to_be_hidden()
        assert board.shown_seqs()[:5] == held[::-1]
        assert timeline_requests == [] and page.url == url
        assert errors == []
    finally:
        context.close()


def test_times_read_in_the_browsers_zone_named_with_a_utc_switch(live_server, browser):
    new_york = ZoneInfo("America/New_York")
    first = emit(live_server, module="breath.emitter")
    context = browser.new_context(
        timezone_id="America/New_York", viewport={"width": 1440, "height": 900}
    )
    try:
        page = context.new_page()
        board = Dashboard(page, live_server.url).open()
        live = emit(live_server, module="memory.scroll")
        expect(board.glint(live["seq"])).to_be_visible()

        def received(glint: dict) -> datetime:
            body = requests.get(f"{live_server.url}/api/glints/{glint['id']}", timeout=5).json()
            return datetime.fromisoformat(body["received_at"])

        def when(glint: dict):
            return board.glint(glint["seq"]).locator("time.when")

        at = received(first)
        zone = at.astimezone(new_york).tzname()  # EST or EDT, as New York reads it that day
        local, utc = page.locator("#tz-local"), page.locator("#tz-utc")
        expect(local).to_have_text(zone)
        expect(local).to_have_attribute("aria-pressed", "true")
        expect(local).to_have_attribute("title", "Times in America/New_York")
        for glint in (first, live):  # the first render's row and a streamed one
            t = received(glint)
            expect(when(glint)).to_have_text(t.astimezone(new_york).strftime("%H:%M:%S"))
            expect(when(glint)).to_have_attribute("title", re.compile(rf" {zone}$"))
            assert when(glint).get_attribute("datetime").endswith("Z")  # the machine value is UTC

        # The glint's sheet says when, with the date, in the same zone.
        detail_when = board.open_glint(first["seq"]).locator(".detail-facts time")
        expect(detail_when).to_have_text(
            re.compile("^" + re.escape(at.astimezone(new_york).strftime("%Y-%m-%d %H:%M:%S")))
        )
        page.keyboard.press("Escape")

        utc.click()
        expect(utc).to_have_attribute("aria-pressed", "true")
        expect(local).to_have_attribute("aria-pressed", "false")
        expect(when(first)).to_have_text(at.astimezone(UTC).strftime("%H:%M:%S"))
        page.reload()  # the choice is remembered
        board.expect_live()
        expect(utc).to_have_attribute("aria-pressed", "true")
        expect(when(first)).to_have_text(at.astimezone(UTC).strftime("%H:%M:%S"))
        later = emit(live_server, module="shrine.system")
        expect(when(later)).to_have_text(received(later).astimezone(UTC).strftime("%H:%M:%S"))
        local.click()
        expect(when(first)).to_have_text(at.astimezone(new_york).strftime("%H:%M:%S"))
    finally:
        context.close()


def test_the_sparkline_says_what_its_numbers_count(live_server, page):
    for i in range(7):
        emit(live_server, module="sensor.garden", context={"i": i})
    board = Dashboard(page, live_server.url).open()
    caption = page.locator(".spark figcaption")
    expect(caption).to_contain_text("Glints per 10 s")
    expect(page.locator("#spark-minute")).to_have_text("7")
    expect(page.locator("#spark-peak")).to_have_text("7")  # never more than were stored
    expect(caption).to_contain_text("7 in the last minute")
    expect(page.locator(".spark .axis")).to_contain_text("busiest 10 s: 7")
    expect(page.locator(".spark svg")).to_have_attribute(
        "aria-label", re.compile(r"7 in the last minute, at most 7 in one 10-second span")
    )

    # Ten seconds on, three more: the minute counts ten, the busiest ten seconds still seven.
    advance(live_server, 10)
    for i in range(3):
        emit(live_server, module="sensor.garden", context={"later": i})
    expect(page.locator("#spark-minute")).to_have_text("10", timeout=5000)
    expect(page.locator("#spark-peak")).to_have_text("7")
    assert int(page.locator("#stat-total").text_content()) == 10
    assert board.page.js_errors == []

"""The dashboard in a real browser (Debian's Chromium) against a real `spiral serve` process."""

from __future__ import annotations

import math
import random
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests
from playwright.sync_api import expect

from ..support import ServerProcess, emit, free_port
from .conftest import ARTIFACTS
from .pages import Dashboard, fits, has_class

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def breath(server) -> dict:
    return requests.get(server.url + "/api/breath", timeout=5).json()


def advance(server, seconds: float) -> dict:
    return requests.post(server.url + "/_test/clock", json={"advance": seconds}, timeout=5).json()


def to_phase_end(server) -> dict:
    """Move the server's fake clock just past the end of the current phase."""
    state = breath(server)
    ends = datetime.fromisoformat(state["phase_ends_at"]).timestamp()
    now = datetime.fromisoformat(state["server_time"]).timestamp()
    return advance(server, ends - now + 0.01)


# -- first render and live updates -----------------------------------------------------------------


def test_first_render_is_complete_without_javascript(live_server, browser):
    for i, module in enumerate(["breath.emitter", "memory.scroll", "shrine.system"]):
        emit(live_server, module=module, phase="inhale", context={"n": i})
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(live_server.url + "/")
        expect(page.locator("#timeline > li")).to_have_count(3)
        expect(page.locator("#stat-total")).to_have_text("3")
        expect(page.locator("#breath")).to_have_attribute(
            "data-phase", breath(live_server)["phase"]
        )
        expect(page.locator("#countdown")).to_have_text(re.compile(r"^\d+(s|m \d\ds)$"))
        expect(page.locator("#stats-detail .bars li")).to_have_count(3)
        expect(page.locator(".heat-row:not(.heat-axis)")).to_have_count(3)
        # a glint opens as a page of its own
        page.click("#glint-2 a")
        expect(page.locator("#glint-detail h2")).to_have_text("memory.scroll")
    finally:
        context.close()


def test_glints_and_statistics_arrive_live(live_server, page):
    board = Dashboard(page, live_server.url).open()
    expect(page.locator("#timeline-empty")).to_be_visible()
    answers = [
        emit(live_server, module=m, phase=p, context={"depth": "contemplative"})
        for m, p in [
            ("memory.scroll", "hold"),
            ("breath.emitter", "inhale"),
            ("memory.scroll", "exhale"),
        ]
    ]
    for a in answers:
        expect(board.glint(a["seq"])).to_be_visible()
    assert board.shown_seqs() == [a["seq"] for a in reversed(answers)]
    expect(page.locator("#timeline-empty")).to_have_count(0)
    expect(page.locator("#stat-total")).to_have_text("3")
    # the panels that follow time as well as glints arrive within a second or so
    expect(page.locator("#stats-detail .bars li").first).to_contain_text(
        "memory.scroll", timeout=5000
    )
    expect(page.locator("#glow")).not_to_have_attribute("data-rate", "0", timeout=5000)
    assert page.js_errors == []
    board.screenshot("dashboard-live.png")


def test_glyph_follows_the_server_phase(live_server, page):
    board = Dashboard(page, live_server.url).open()
    before = board.breath.get_attribute("data-phase")
    expect(page.locator(f"#breath .ring-{before}")).to_have_class(has_class("active"))
    moved = to_phase_end(live_server)
    assert moved["phase"] != before
    expect(board.breath).to_have_attribute("data-phase", moved["phase"])
    expect(page.locator(f"#breath .ring-{moved['phase']}")).to_have_class(has_class("active"))
    expect(page.locator(f"#breath .ring-{before}")).not_to_have_class(has_class("active"))
    expect(page.locator("#phase-name")).to_have_text(moved["phase"].replace("_", " "))
    assert page.title() == "Spiral · " + moved["phase"].replace("_", " ")
    # The animations start where the server is in the phase: a little way in, not at zero.
    again = to_phase_end(live_server)
    advance(live_server, 3)
    page.reload()
    board.expect_live()
    expect(board.breath).to_have_attribute("data-phase", again["phase"])
    style = board.breath.get_attribute("style")
    assert "--phase-delay: -3" in style, style
    length = re.search(r"--phase-ms: (\d+)ms", style)
    assert length and int(length.group(1)) > 3000
    assert page.js_errors == []


def test_glow_follows_the_climate(live_server, page):
    board = Dashboard(page, live_server.url).open()
    glow = page.locator("#glow")

    def glow_color() -> str:
        return glow.evaluate("g => getComputedStyle(g).getPropertyValue('--glow-color').trim()")

    assert board.breath.get_attribute("data-climate") == "clear"
    calm = glow_color()
    resp = requests.post(
        live_server.url + "/api/admin/climate", json={"climate": "suspicious", "seconds": 120}
    )
    assert resp.status_code == 200 and resp.json()["status"] == "climate_set"
    expect(board.breath).to_have_attribute("data-climate", "suspicious")
    expect(page.locator("#climate-name")).to_contain_text("suspicious")
    page.wait_for_timeout(1400)  # the colour eases over 1.2 s
    assert glow_color() not in ("", calm)
    assert glow_color() == "rgb(251, 113, 133)"
    # activity brightens it: the glint rate drives --activity
    level = float(glow.evaluate("g => g.style.getPropertyValue('--activity')") or 0)
    for i in range(12):
        emit(live_server, module="sensor.garden", context={"i": i})
    expect(glow).not_to_have_attribute("style", f"--activity: {level}", timeout=5000)
    assert float(glow.evaluate("g => g.style.getPropertyValue('--activity')")) > level
    board.screenshot("dashboard-suspicious.png")
    requests.post(live_server.url + "/api/admin/climate", json={"climate": None})
    expect(board.breath).to_have_attribute("data-climate", "clear")


# -- the timeline ----------------------------------------------------------------------------------


def test_filters_narrow_the_timeline_and_its_live_feed(live_server, page):
    emit(live_server, module="memory.scroll", phase="return")
    emit(live_server, module="breath.emitter", phase="inhale")
    emit(live_server, module="memory.index", phase="inhale")
    board = Dashboard(page, live_server.url).open()
    expect(board.rows).to_have_count(3)

    board.filter(module="memory.*")
    expect(board.rows).to_have_count(2)
    expect(page).to_have_url(re.compile(r"/\?module=memory\.\*$"))
    board.expect_live()
    kept = emit(live_server, module="memory.scroll", phase="hold")
    other = emit(live_server, module="breath.emitter", phase="hold")
    expect(board.glint(kept["seq"])).to_be_visible()
    expect(board.rows).to_have_count(3)
    assert board.glint(other["seq"]).count() == 0

    board.filter(module="memory.*", phase="inhale")
    expect(board.rows).to_have_count(1)
    expect(board.rows.first.locator(".module")).to_have_text("memory.index")
    page.reload()  # the filter lives in the address, so a reload keeps it
    board.expect_live()
    expect(page.locator("#filter-module")).to_have_value("memory.*")
    expect(page.locator("#filter-phase")).to_have_value("inhale")
    expect(board.rows).to_have_count(1)

    board.filter()
    expect(board.rows).to_have_count(5)
    late = emit(live_server, module="breath.emitter")
    expect(board.glint(late["seq"])).to_be_visible()
    assert page.js_errors == []


def test_pause_holds_new_glints_and_resume_loses_none(live_server, page):
    first = [emit(live_server, module="breath.emitter", context={"n": i})["seq"] for i in range(3)]
    board = Dashboard(page, live_server.url).open()
    board.pause_button.click()
    expect(board.pause_button).to_have_attribute("data-state", "paused")
    held = [emit(live_server, module="memory.scroll", context={"n": i})["seq"] for i in range(5)]
    expect(board.new_count).to_have_text("5 new")
    expect(board.rows).to_have_count(3)  # the reader's page stays still
    board.screenshot("dashboard-paused.png")
    board.new_count.click()
    expect(board.pause_button).to_have_attribute("data-state", "live")
    expect(board.new_count).to_be_hidden()
    assert board.shown_seqs() == list(reversed(first + held))

    # Scrolling away from the top pauses too; coming back resumes.
    with ThreadPoolExecutor(8) as pool:
        more = sorted(
            pool.map(
                lambda i: emit(live_server, module="agent.listener", context={"i": i})["seq"],
                range(40),
            )
        )
    expect(board.glint(more[-1])).to_be_visible()
    page.locator("#timeline-body").evaluate("b => { b.scrollTop = 400; }")
    expect(board.pause_button).to_have_attribute("data-state", "paused")
    late = [emit(live_server, module="shrine.system")["seq"] for _ in range(2)]
    expect(board.new_count).to_have_text("2 new")
    page.locator("#timeline-body").evaluate("b => { b.scrollTop = 0; }")
    expect(board.pause_button).to_have_attribute("data-state", "live")
    seqs = board.shown_seqs()
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == len(set(seqs)) == 50
    assert seqs[:2] == late[::-1]
    assert page.js_errors == []


def test_busy_hub_keeps_the_page_bounded_and_in_order(live_server, page):
    board = Dashboard(page, live_server.url).open()
    with ThreadPoolExecutor(8) as pool:
        seqs = list(
            pool.map(
                lambda i: emit(live_server, module=f"load.m{i % 7}", context={"i": i})["seq"],
                range(260),
            )
        )
    expect(board.glint(max(seqs))).to_be_visible(timeout=15_000)
    expect(page.locator("#stat-total")).to_have_text("260", timeout=10_000)
    shown = board.shown_seqs()
    assert len(shown) == 200  # the timeline keeps a bounded number of rows
    assert shown == sorted(seqs, reverse=True)[:200]
    # the rest is a click away
    page.locator("#timeline-body").evaluate("b => { b.scrollTop = b.scrollHeight; }")
    page.click("#timeline-more button")
    expect(board.rows).to_have_count(250)
    assert board.shown_seqs() == sorted(seqs, reverse=True)[:250]
    assert page.js_errors == []


# -- a glint and its lineage -----------------------------------------------------------------------


def test_a_glint_opens_with_its_context_and_lineage(live_server, page):
    root = emit(
        live_server,
        module="memory.scroll",
        phase="inhale",
        context={"intention": "morning_emergence"},
    )
    child = emit(
        live_server,
        module="ritual.archival",
        parent_id=root["id"],
        context={"ritual": "archival", "moved": 12, "note": HOSTILE},
    )
    emit(live_server, module="agent.scribe", parent_id=child["id"], context={"wrote": "summary"})
    emit(
        live_server,
        module="agent.listener",
        parent_id=child["id"],
        context={"ritual": {"name": "watcher"}},
    )
    board = Dashboard(page, live_server.url).open()
    expect(board.glint(child["seq"]).locator(".tag.ritual")).to_have_text("⟲ archival")

    sheet = board.open_glint(child["seq"])
    detail = sheet.locator("#glint-detail")
    expect(detail.locator("h2")).to_have_text("ritual.archival")
    expect(detail.locator("pre.json")).to_contain_text('"moved": 12')
    expect(detail.locator("pre.json")).to_contain_text(HOSTILE.replace('"', '\\"'))
    assert detail.locator("script, img").count() == 0
    expect(detail.locator(".ancestor .module")).to_have_text(["memory.scroll"])
    expect(detail.locator(".self > .node")).to_have_attribute("aria-current", "true")
    tree = detail.locator(".self .tree > li > .node")
    expect(tree).to_have_count(2)
    expect(tree.filter(has_text="agent.listener").locator(".tag.ritual")).to_have_text(
        "via watcher"
    )
    expect(detail.locator(".detail-facts")).to_contain_text("the archival ritual")
    board.screenshot("dashboard-lineage.png")

    # walk the lineage inside the sheet
    detail.locator(".tree .node", has_text="agent.scribe").click()
    expect(sheet.locator("#glint-detail h2")).to_have_text("agent.scribe")
    expect(sheet.locator(".ancestor .module")).to_have_text(["memory.scroll", "ritual.archival"])
    expect(sheet.locator("pre.json")).to_contain_text('"wrote": "summary"')
    page.keyboard.press("Escape")
    expect(sheet).to_be_hidden()
    assert page.evaluate("window.__pwned") is None
    assert page.js_errors == []


def test_hostile_text_is_shown_as_text(live_server, page):
    board = Dashboard(page, live_server.url).open()
    live = emit(live_server, module="shrine.system", context={"note": HOSTILE, HOSTILE: "key"})
    row = board.glint(live["seq"])
    expect(row.locator(".ctx")).to_contain_text("<script>window.__pwned = 1</script>")
    assert row.locator("script, img").count() == 0
    page.reload()
    board.expect_live()
    expect(board.glint(live["seq"]).locator(".ctx")).to_contain_text("<img src=x")
    page.goto(live_server.url + "/?module=%3Cscript%3E")  # a hostile filter is refused, not echoed
    expect(page.locator("#filter-error")).to_contain_text("Filter ignored")
    assert page.locator("#timeline-body script").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.js_errors == []


# -- forms -----------------------------------------------------------------------------------------


def test_emit_form_shows_server_errors_inline_and_emits(live_server, page):
    board = Dashboard(page, live_server.url).open()
    board.emit("Not A Module", "{}")
    expect(page.locator("#err-module")).to_be_visible()
    expect(page.locator("#emit-module")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#emit-module")).to_have_value("Not A Module")  # kept for correcting
    board.emit("fine.module", "{not json")
    expect(page.locator("#err-context")).to_contain_text("JSON")
    expect(page.locator("#err-module")).to_have_count(0)
    board.emit("fine.module", "[1, 2]")
    expect(page.locator("#err-context")).to_be_visible()
    assert requests.get(live_server.url + "/api/stats").json()["total"] == 0

    board.emit("shrine.system", '{"glow": "steady"}', phase="return")
    expect(page.locator("#emit-form .notice.ok")).to_contain_text("broadcast")
    expect(page.locator("#emit-form .field-error")).to_have_count(0)
    row = board.rows.first
    expect(row.locator(".module")).to_have_text("shrine.system")
    expect(row.locator(".badge")).to_have_text("return")
    assert requests.get(live_server.url + "/api/stats").json()["total"] == 1


def test_breath_controls_move_every_dashboard(live_server, page):
    board = Dashboard(page, live_server.url).open()
    other = Dashboard(page.context.new_page(), live_server.url).open()
    board.hold_phase("night_hold", minutes=15)
    expect(page.locator("#admin .notice.ok")).to_contain_text("night hold for 15 min")
    for b in (board, other):
        expect(b.breath).to_have_attribute("data-phase", "night_hold")
        expect(b.breath).to_have_attribute("data-resting", "true")
        expect(b.page.locator("#breath-facts .tag.held")).to_be_visible()
    expect(other.page.locator("#countdown")).to_have_text(re.compile(r"^1[45]m \d\ds$"))
    board.screenshot("dashboard-night-hold.png")

    board.set_climate("unsettled", minutes=1)
    expect(page.locator("#admin .notice.ok")).to_contain_text("unsettled for 1 min")
    expect(other.breath).to_have_attribute("data-climate", "unsettled")
    expect(page.locator("#admin-climate")).to_have_value("unsettled")  # the form keeps its choices

    page.click("#admin-release-phase")
    expect(page.locator("#admin .notice.ok")).to_contain_text("cycle resumes")
    expect(other.breath).not_to_have_attribute("data-phase", "night_hold")
    expect(other.breath).to_have_attribute("data-phase-reason", "cycle")
    page.click("#admin-release-climate")
    expect(other.breath).to_have_attribute("data-climate", "clear")
    assert page.js_errors == []


def test_admin_api_answers_json_and_refuses_bad_input(live_server):
    url = live_server.url + "/api/admin"
    ok = requests.post(url + "/phase", json={"phase": "hold", "seconds": 90})
    assert ok.status_code == 200
    body = ok.json()
    assert body["status"] == "phase_set" and body["breath"]["phase"] == "hold"
    assert (
        body["breath"]["phase_reason"] == "override"
        and body["until"] == body["breath"]["phase_ends_at"]
    )
    released = requests.post(url + "/phase", json={"phase": None}).json()
    assert released["status"] == "phase_released" and released["until"] is None
    for resp, status, code in [
        (requests.post(url + "/phase", json={"phase": "dusk"}), 422, "invalid_override"),
        (
            requests.post(url + "/phase", json={"phase": "hold", "seconds": 0}),
            422,
            "invalid_override",
        ),
        (requests.post(url + "/climate", json={"climate": "stormy"}), 422, "invalid_override"),
        (
            requests.post(url + "/climate", json={"climate": "clear", "colour": "red"}),
            422,
            "invalid_override",
        ),
        (requests.post(url + "/climate", json={}), 422, "invalid_override"),
        (
            requests.post(url + "/climate", data="{", headers={"Content-Type": "application/json"}),
            400,
            "invalid_json",
        ),
        (requests.post(url + "/climate", data="climate=clear"), 415, "unsupported_media_type"),
    ]:
        assert resp.status_code == status, resp.text
        assert resp.headers["Content-Type"].startswith("application/json")
        assert resp.json()["error"] == code and resp.json()["message"]


def test_admin_token_guards_the_api_and_the_controls(tmp_path, page):
    server = ServerProcess(
        tmp_path / "guarded",
        env={"SPIRAL_FAKE_CLOCK": "1", "SPIRAL_ADMIN_TOKEN": "s3cret-admin-token"},
    ).start()
    try:
        url = server.url + "/api/admin/climate"
        assert requests.post(url, json={"climate": "unsettled"}).status_code == 401
        wrong = requests.post(
            url, json={"climate": "unsettled"}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
        right = requests.post(
            url, json={"climate": None}, headers={"Authorization": "Bearer s3cret-admin-token"}
        )
        assert right.status_code == 200

        board = Dashboard(page, server.url).open()
        board.set_climate("suspicious")
        expect(page.locator("#admin-err-token")).to_contain_text("needs the admin token")
        expect(board.breath).to_have_attribute("data-climate", "clear")
        page.fill("#admin-token", "s3cret-admin-token")
        page.click("#admin-set-climate")
        expect(board.breath).to_have_attribute("data-climate", "suspicious")
        expect(page.locator("#admin-token")).to_have_value(
            "s3cret-admin-token"
        )  # kept for the next action
        # the ritual controls share the token field
        page.fill("#admin-token", "")
        board.invoke("archival")
        expect(board.invoke_result("archival")).to_contain_text("needs the admin token")
        expect(board.runs.and_(page.locator("[data-ritual=archival]"))).to_have_count(0)
        page.fill("#admin-token", "s3cret-admin-token")
        board.invoke("archival")
        expect(board.invoke_result("archival")).to_contain_text(
            "nothing older than 7 days to archive"
        )
        expect(board.runs.first).to_have_attribute("data-ritual", "archival")
    finally:
        page.context.close()  # its open stream and idle connections would hold a graceful stop
        server.kill()


# -- the connection --------------------------------------------------------------------------------


def test_catches_up_after_the_stream_is_cut_without_gaps_or_duplicates(live_server, page):
    resumes: list[str | None] = []
    page.on(
        "request",
        lambda r: (
            resumes.append(r.headers.get("last-event-id")) if "/dashboard/stream" in r.url else None
        ),
    )
    before = [emit(live_server, module="breath.emitter", context={"n": i})["seq"] for i in range(2)]
    board = Dashboard(page, live_server.url).open()
    before.append(
        emit(live_server, module="breath.emitter")["seq"]
    )  # seen live: its id is the resume point
    expect(board.glint(before[-1])).to_be_visible()

    # 1. The server dies and comes back (same port, same data); meanwhile glints are stored that
    #    this page never saw live. Reconnects are held back until they are stored.
    page.route("**/dashboard/stream*", lambda route: route.abort())
    live_server.kill()
    expect(page.locator("#conn")).not_to_have_attribute("data-state", "live")
    live_server.start()
    missed = [emit(live_server, module="memory.scroll", context={"n": i})["seq"] for i in range(3)]
    page.unroute("**/dashboard/stream*")
    board.expect_live(timeout=20_000)
    expect(board.glint(missed[-1])).to_be_visible(timeout=10_000)
    assert str(before[-1]) in resumes  # resumed with Last-Event-ID, not from scratch

    # 2. A background tab: htmx closes the stream while hidden and resumes when shown again.
    hide(page, True)
    page.wait_for_timeout(300)
    asleep = [emit(live_server, module="agent.listener", context={"n": i})["seq"] for i in range(3)]
    hide(page, False)
    expect(board.glint(asleep[-1])).to_be_visible(timeout=10_000)
    after = emit(live_server, module="shrine.system")["seq"]
    expect(board.glint(after)).to_be_visible()
    seqs = board.shown_seqs()
    assert seqs == sorted(before + missed + asleep + [after], reverse=True)  # no gap, no duplicate

    # 3. Asleep for longer than the page holds: the server sends the newest rows in one message
    #    instead of replaying everything; the page still shows the newest rows without a gap.
    hide(page, True)
    with ThreadPoolExecutor(8) as pool:
        lots = list(
            pool.map(
                lambda i: emit(live_server, module="sensor.garden", context={"i": i})["seq"],
                range(230),
            )
        )
    hide(page, False)
    expect(board.glint(max(lots))).to_be_visible(timeout=10_000)
    seqs = board.shown_seqs()
    assert seqs == list(range(max(lots), max(lots) - 200, -1))
    expect(page.locator("#timeline-more button")).to_be_visible()
    assert page.js_errors == []


def hide(page, hidden: bool) -> None:
    """Tell the page it went to the background (or came back), as a browser does with a tab."""
    page.evaluate(
        """hidden => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
        document.dispatchEvent(new Event('visibilitychange'));
    }""",
        hidden,
    )


def test_phone_layout_fits_and_stays_usable(live_server, browser):
    for i in range(6):
        emit(
            live_server, module=random.choice(["breath.emitter", "memory.scroll"]), context={"i": i}
        )
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    try:
        page = context.new_page()
        board = Dashboard(page, live_server.url).open()
        expect(board.rows).to_have_count(6)
        assert fits(page.evaluate("document.documentElement.scrollWidth"), 390)
        box = page.locator(".stage").bounding_box()
        assert box and box["width"] > 250
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
        board.open_glint(board.shown_seqs()[0])
        sheet = page.locator("#detail").bounding_box()
        assert sheet and fits(sheet["width"], 390)
    finally:
        context.close()


# -- the picture for the README -------------------------------------------------------------------

MODULES = [
    "breath.emitter",
    "memory.scroll",
    "shrine.system",
    "agent.listener",
    "sensor.garden",
    "agent.scribe",
    "memory.index",
]


# Rituals for the picture: one answers every inhale, one watches the garden and calls a webhook
# that is down (so the log shows an error too); the built-in archival answers memory.scroll.
PICTURE_RITUALS = """
[rituals.chime]
description = "every inhale: a chime"
rule = 'event == "phase_change" && breath_phase == "inhale"'
action = "emit"
module = "ritual.chime"
context = {{ rang = true }}

[rituals.dry_soil]
description = "dry soil: tell the gardener"
rule = 'module == "sensor.garden" && has(context.soil_moisture) && context.soil_moisture < 0.25'
action = "webhook"
url = "http://127.0.0.1:{port}/garden"
timeout = 1
retries = 0
cooldown = 240
"""


@pytest.mark.parametrize("size", [pytest.param((1440, 900), id="laptop")])
def test_screenshot_of_a_living_hub(tmp_path, browser, size):
    """Ten minutes of traffic on the fake clock, then the picture the README shows."""
    config = tmp_path / "spiral.toml"
    config.write_text(PICTURE_RITUALS.format(port=free_port()))
    live_server = ServerProcess(
        tmp_path / "server", env={"SPIRAL_FAKE_CLOCK": "1", "SPIRAL_CONFIG": str(config)}
    ).start()
    rng = random.Random(11)
    session = requests.Session()
    ids: list[str] = []
    for step in range(60):
        for _ in range(int(3 + 5 * (1 + math.sin(step / 6))) + rng.randint(0, 3)):
            body = {
                "module": rng.choices(MODULES, [8, 4, 3, 5, 6, 2, 2])[0],
                "context": rng.choice(
                    [
                        {"intention": rng.choice(["morning_emergence", "quiet_focus"])},
                        {
                            "depth": rng.choice(["contemplative", "surface"]),
                            "pages": rng.randint(1, 40),
                        },
                        {"soil_moisture": round(rng.uniform(0.2, 0.6), 3)},
                        {"heard": rng.choice(["footsteps", "a bell", "rain"])},
                    ]
                ),
            }
            if ids and rng.random() < 0.12:
                body["parent_id"] = rng.choice(ids[-20:])
            resp = session.post(live_server.url + "/stream/glint", json=body, timeout=5)
            assert resp.status_code == 201
            ids.append(resp.json()["id"])
        session.post(live_server.url + "/_test/clock", json={"advance": 10}, timeout=5)
    while to_phase_end(live_server)["phase"] != "exhale":  # a picture mid-breath, not at a seam
        pass
    advance(live_server, 6)
    # A reader away from UTC, so the picture shows times in their zone and the switch to UTC.
    context = browser.new_context(
        viewport={"width": size[0], "height": size[1]}, timezone_id="America/New_York"
    )
    try:
        page = context.new_page()
        board = Dashboard(page, live_server.url).open()
        expect(page.locator(".heat-row:not(.heat-axis)")).to_have_count(6)
        expect(page.locator("#stat-listeners")).to_have_text(
            "1"
        )  # this page, counted by the next pulse
        expect(board.runs.first).to_be_visible()
        assert set(board.runs.evaluate_all("rows => rows.map(r => r.dataset.ritual)")) >= {
            "archival",
            "chime",
        }
        board.screenshot("dashboard.png")
    finally:
        context.close()
        live_server.kill()

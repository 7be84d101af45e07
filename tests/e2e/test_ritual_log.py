"""The ritual log and the ritual controls in a real browser against a real `spiral serve`: runs
arrive live with their trigger and result, an admin invokes a ritual and sees its result inline, a
failing ritual shows as an error, the caesura's deferral is visible, hostile text stays text."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from ..support import ServerProcess, bell_and_hook_rituals, emit, free_port
from .pages import Dashboard, has_class
from .test_dashboard import HOSTILE, to_phase_end


@pytest.fixture
def ritual_server(tmp_path):
    """A real server with the fake clock and two rituals from a TOML file; the failing `hook`
    carries hostile text where a configuration can: its description and its webhook's URL."""
    config = tmp_path / "spiral.toml"
    config.write_text(
        bell_and_hook_rituals(
            free_port(), "<b>tell ops</b> <script>window.__pwned = 4</script>", HOSTILE
        )
    )
    proc = ServerProcess(
        tmp_path / "server", env={"SPIRAL_FAKE_CLOCK": "1", "SPIRAL_CONFIG": str(config)}
    ).start()
    yield proc
    proc.kill()


def test_runs_arrive_live_with_trigger_and_result_and_errors_show_as_errors(ritual_server, page):
    board = Dashboard(page, ritual_server.url).open()
    expect(page.locator("#ritual-empty")).to_be_visible()

    scroll = emit(
        ritual_server, module="memory.scroll", phase="return", context={"depth": "contemplative"}
    )
    run = board.runs.first
    expect(run).to_have_attribute("data-ritual", "archival")
    expect(run.locator(".run-status")).to_have_text("ok")
    expect(run.locator(".run-trigger")).to_have_text(f"memory.scroll #{scroll['seq']}")
    expect(run.locator(".run-result")).to_have_text("nothing older than 7 days to archive")
    expect(page.locator("#ritual-empty")).to_be_hidden()
    expect(board.ritual_state("archival").locator(".rnote.cooldown")).to_contain_text(
        "cooling until"
    )

    # A failing ritual: an error run, its message in the row; hostile text in its result (the
    # URL) and in its trigger (the glint's context) is shown as text.
    hook = emit(ritual_server, module="hook.me", context={"note": HOSTILE})
    failed = board.runs.first
    expect(failed).to_have_attribute("data-ritual", "hook", timeout=10_000)
    expect(failed.locator(".run-status")).to_have_text("error")
    expect(failed.locator(".run-result")).to_contain_text("webhook failed after 1 attempt(s)")
    expect(failed.locator(".run-trigger")).to_have_text(f"hook.me #{hook['seq']}")
    expect(board.ritual_state("hook")).to_have_class(has_class("last-error"))
    failed.locator("summary").click()
    expect(failed.locator(".run-json")).to_contain_text(HOSTILE.replace('"', '\\"'))
    expect(failed.locator(".run-facts")).to_contain_text("<script>window.__pwned = 1</script>")
    expect(failed.locator(".run-facts a")).to_have_text(f"hook.me #{hook['seq']}")
    assert (
        page.locator("#ritual-panel script, #ritual-panel img, #admin script, #admin b").count()
        == 0
    )
    board.screenshot("dashboard-rituals.png")

    # The trigger opens in the glint sheet.
    failed.locator(".run-facts a").click()
    expect(page.locator("#glint-detail h2")).to_have_text("hook.me")
    page.keyboard.press("Escape")

    # A reload renders the log from the store; the stream then resumes after the newest glint,
    # replaying the run that came after it, which the page must not show twice.
    page.reload()
    board.expect_live()
    page.wait_for_timeout(300)
    expect(board.runs).to_have_count(2)
    assert board.runs.evaluate_all("rows => rows.map(r => r.dataset.ritual)") == [
        "hook",
        "archival",
    ]
    assert page.evaluate("window.__pwned") is None
    assert page.js_errors == []


def test_an_admin_invokes_rituals_from_the_dashboard(ritual_server, page):
    board = Dashboard(page, ritual_server.url).open()
    other = Dashboard(page.context.new_page(), ritual_server.url).open()
    board.open_controls()
    expect(page.locator("#invoke-hook-about")).to_have_text(
        "<b>tell ops</b> <script>window.__pwned = 4</script>"
    )

    board.invoke("bell")
    result = board.invoke_result("bell")
    expect(result).to_contain_text("ok")
    expect(result).to_contain_text("emitted ritual.bell")
    for b in (board, other):  # the run streams to every dashboard, its glint too
        expect(b.runs.first).to_have_attribute("data-ritual", "bell")
        expect(b.runs.first.locator(".run-trigger")).to_have_text("invoked by an admin")
        expect(b.rows.first.locator(".module")).to_have_text("ritual.bell")
        expect(b.rows.first.locator(".tag.ritual")).to_have_text("⟲ bell")

    board.invoke("hook")
    failed = board.invoke_result("hook")
    expect(failed).to_contain_text("error")
    expect(failed).to_contain_text("webhook failed after 1 attempt(s)")
    expect(board.invoke_result("bell")).to_have_count(0)  # one result at a time, by its ritual
    expect(other.runs.first).to_have_attribute("data-ritual", "hook")
    expect(other.runs.first.locator(".run-status")).to_have_text("error")
    expect(board.runs).to_have_count(2)
    page.locator("#invoke-hook").scroll_into_view_if_needed()
    board.screenshot("dashboard-invoke.png")
    assert page.evaluate("window.__pwned") is None
    assert page.js_errors == []


def test_the_caesura_defers_a_ritual_until_inhale_and_says_so(live_server, page):
    board = Dashboard(page, live_server.url).open()
    url = live_server.url + "/api/admin/phase"
    assert (
        requests.post(url, json={"phase": "night_hold", "seconds": 600}, timeout=5).status_code
        == 200
    )
    emit(live_server, module="shrine.system")  # a glint in night_hold: the caesura is declared
    expect(board.runs.first).to_have_attribute("data-ritual", "caesura")
    expect(board.runs.first.locator(".run-result")).to_contain_text("the hub rests until")
    emit(live_server, module="memory.scroll", phase="return")
    deferred = board.runs.first
    expect(deferred).to_have_attribute("data-ritual", "archival")
    expect(deferred.locator(".run-status")).to_have_text("deferred")
    expect(deferred.locator(".run-result")).to_have_text("caesura: waits for the next inhale")
    expect(board.ritual_state("archival").locator(".rnote.deferred")).to_have_text(
        "waits for inhale"
    )
    board.screenshot("dashboard-caesura.png")

    requests.post(url, json={"phase": None}, timeout=5)
    while to_phase_end(live_server)["phase"] != "inhale":
        pass
    ran = board.runs.first
    expect(ran.locator(".run-status")).to_have_text("ok")
    expect(ran).to_have_attribute("data-ritual", "archival")
    expect(ran.locator(".run-result")).to_have_text(
        "after the caesura (1 match): nothing older than 7 days to archive"
    )
    expect(board.ritual_state("archival").locator(".rnote.deferred")).to_have_count(0)
    assert page.js_errors == []

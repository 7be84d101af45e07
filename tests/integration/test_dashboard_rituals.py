"""The dashboard's ritual log and ritual controls, server-side: the log's first render from the
store, the form route that invokes a ritual (as the JSON API does), and `ritual` events on the
dashboard's stream rendered with the same partial."""

from __future__ import annotations

import re

import pytest

from spiral_web import create_app

from ..sse import SSEReader
from ..support import answer_status, bell_and_hook_rituals, emit, free_port

T0 = 1_800_000_000.0  # an inhale starts here with the default breath
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


@pytest.fixture
def make_app(tmp_path):
    """create_app on a fake clock at T0 with the two rituals above; settings may be added."""
    apps = []

    def make(**settings):
        config = tmp_path / f"spiral{len(apps)}.toml"
        config.write_text(bell_and_hook_rituals(free_port(), SCRIPT, IMG))
        app = create_app(
            {
                "data_dir": str(tmp_path / f"data{len(apps)}"),
                "fake_clock": True,
                "start_ticker": False,
                "heartbeat_seconds": 0.1,
                "config_file": str(config),
                **settings,
            }
        )
        app.extensions["spiral"].clock.set(T0)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["spiral"].close()


def csrf(client) -> str:
    """This test client's CSRF token, as the page's forms carry it (the page starts the session)."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert found, "the admin form carries no CSRF field"
    return found.group(1)


def invoke(
    client, name: str, form: dict | None = None, headers: dict | None = None, htmx: bool = True
):
    """Post the admin panel's form to a ritual's invoke route, as the page does."""
    data = {"csrf_token": csrf(client), **(form or {})}
    return client.post(
        f"/dashboard/rituals/{name}/invoke",
        data=data,
        headers={**({"HX-Request": "true"} if htmx else {}), **(headers or {})},
    )


def history(client) -> list[dict]:
    return client.get("/api/rituals/history").get_json()["runs"]  # newest first


def log_rows(page: str) -> list[str]:
    """The runs in the page's ritual log, by id, in page order."""
    log = page[page.index('id="ritual-log"') : page.index('id="ritual-empty"')]
    return re.findall(r'<li id="(run-\d+)"', log)


def assert_never_raw(text: str) -> None:
    for bad in (SCRIPT, IMG, "onerror=alert(1)>"):
        assert bad not in text


# -- the first render ------------------------------------------------------------------------------


def test_first_render_shows_the_ritual_log_from_the_store_newest_first(make_app):
    app = make_app()
    client = app.test_client()
    assert 'id="ritual-empty"' in client.get("/").text and log_rows(client.get("/").text) == []
    scroll = emit(client, "memory.scroll", "return")
    app.extensions["spiral"].rituals.drain()  # archival runs on the background worker
    bell = emit(client, "bell.tower", context={"note": SCRIPT})
    runs = history(client)
    assert [r["ritual"] for r in runs] == ["bell", "archival"]

    page = client.get("/").text
    assert log_rows(page) == [f"run-{runs[0]['seq']}", f"run-{runs[1]['seq']}"]
    bell_row = page[
        page.index(f'id="run-{runs[0]["seq"]}"') : page.index(f'id="run-{runs[1]["seq"]}"')
    ]
    assert 'class="run status-ok"' in bell_row and 'data-ritual="bell"' in bell_row
    assert f"bell.tower #{bell['seq']}" in bell_row  # the trigger, by module and seq
    assert "emitted ritual.bell" in bell_row  # the result in a line
    assert f'href="/dashboard/glints/{runs[0]["emitted_id"]}"' in bell_row
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in bell_row  # the trigger's context, as text
    archival_row = page[page.index(f'id="run-{runs[1]["seq"]}"') :]
    assert f"memory.scroll #{scroll['seq']}" in archival_row
    assert "nothing older than 7 days to archive" in archival_row
    # each ritual's state, and a control per ritual the API lists, posting to the form route
    states = page[
        page.index('id="ritual-states"') : page.index("</ul>", page.index('id="ritual-states"'))
    ]
    assert re.search(
        r'class="rstate last-ok"[^>]*>\s*<span class="run-dot"[^>]*></span>'
        r'<span class="rname">bell',
        states,
    )
    assert "cooling until" in states  # archival's 60 s cooldown
    names = [r["name"] for r in client.get("/api/rituals").get_json()["rituals"]]
    assert names == ["archival", "throttle", "suspicion_watcher", "caesura", "bell", "hook"]
    for name in names:
        assert f'formaction="/dashboard/rituals/{name}/invoke"' in page
        assert f'hx-post="/dashboard/rituals/{name}/invoke"' in page
    assert_never_raw(page)  # the hostile description


def test_a_failed_run_is_an_error_row_and_hostile_text_stays_text(make_app):
    app = make_app()
    client = app.test_client()
    emit(client, "hook.me", context={IMG: SCRIPT})
    app.extensions["spiral"].rituals.drain()
    [run] = history(client)
    assert run["status"] == "error" and IMG in run["result"]["url"]
    page = client.get("/").text
    row = page[page.index(f'id="run-{run["seq"]}"') : page.index('id="ritual-empty"')]
    assert 'class="run status-error"' in row and ">error</span>" in row
    assert "webhook failed after 1 attempt(s)" in row
    assert "&lt;img src=x onerror=alert(1)&gt;" in row
    assert_never_raw(page)


# -- the form route --------------------------------------------------------------------------------


def test_invoking_from_the_panel_runs_the_ritual_and_answers_the_panel_with_its_result(make_app):
    client = make_app().test_client()
    resp = invoke(client, "bell", {"phase": "hold", "minutes": "5"})
    assert resp.status_code == 200
    fragment = resp.text.strip()
    assert fragment.startswith('<section id="admin"') and fragment.endswith("</section>")
    [run] = history(client)
    assert (run["ritual"], run["status"], run["trigger_event"]) == ("bell", "ok", "invoke")
    result = fragment[fragment.index('id="invoke-bell"') : fragment.index('id="invoke-hook"')]
    assert 'class="ritual-result status-ok"' in result and f"run #{run['seq']}" in result
    assert "emitted ritual.bell" in result
    assert "<details open>" in fragment  # the panel stays open on its answer
    assert 'value="hold" selected' in fragment  # and keeps the form's choices

    failed = invoke(client, "hook")
    assert failed.status_code == 200  # the invocation worked; the ritual failed, and says so
    assert 'class="ritual-result status-error"' in failed.text and "webhook failed" in failed.text
    assert_never_raw(failed.text)

    # without JavaScript: back to the page, at the run
    plain = invoke(client, "bell", htmx=False)
    assert plain.status_code == 303
    assert plain.headers["Location"].endswith(f"/#run-{history(client)[0]['seq']}")


@pytest.mark.parametrize(
    ("form", "headers", "status", "problem"),
    [
        pytest.param({}, {}, 401, "needs the admin token", id="no-token"),
        pytest.param({"token": "not-the-admin-token"}, {}, 403, "not valid", id="wrong-token"),
    ],
)
def test_the_panel_refuses_without_the_admin_token(make_app, form, headers, status, problem):
    client = make_app(admin_token="s3cret-admin-token").test_client()
    resp = invoke(client, "bell", form, headers)
    assert answer_status(resp) == status
    result = resp.text[resp.text.index('id="invoke-bell"') : resp.text.index('id="invoke-hook"')]
    assert 'class="ritual-result status-error"' in result and problem in result
    assert 'id="admin-token"' in resp.text and 'aria-invalid="true"' in resp.text
    assert history(client) == []


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        pytest.param({}, {}, id="no-csrf-token"),
        pytest.param({"csrf_token": "forged"}, {}, id="wrong-csrf-token"),
        pytest.param(None, {"Origin": "https://evil.example"}, id="cross-site"),
    ],
)
def test_the_panel_refuses_a_post_that_did_not_come_from_the_dashboard(make_app, data, headers):
    client = make_app(admin_token="s3cret-admin-token").test_client()
    data = {"csrf_token": csrf(client)} if data is None else data
    resp = client.post(
        "/dashboard/rituals/bell/invoke",
        data={**data, "token": "s3cret-admin-token"},
        headers={"HX-Request": "true", **headers},
    )
    assert resp.status_code == 403
    assert history(client) == []


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        pytest.param({"token": "s3cret-admin-token"}, {}, id="token-field"),
        pytest.param({}, {"Authorization": "Bearer s3cret-admin-token"}, id="bearer"),
    ],
)
def test_the_panel_invokes_with_the_admin_token(make_app, form, headers):
    client = make_app(admin_token="s3cret-admin-token").test_client()
    resp = invoke(client, "bell", form, headers)
    assert resp.status_code == 200, resp.text
    assert [r["ritual"] for r in history(client)] == ["bell"]


def test_a_signed_in_admin_invokes_without_the_token_field(make_app):
    client = make_app(admin_token="s3cret-admin-token").test_client()
    assert 'id="admin-token"' in client.get("/").text
    signed = client.post(
        "/auth/sign-in", data={"csrf_token": csrf(client), "token": "s3cret-admin-token"}
    )
    assert signed.status_code == 303
    page = client.get("/").text
    assert 'id="admin-token"' not in page  # the session proves it
    resp = invoke(client, "bell")
    assert resp.status_code == 200, resp.text
    assert 'class="ritual-result status-ok"' in resp.text
    assert [r["ritual"] for r in history(client)] == ["bell"]


def test_an_unknown_ritual_is_refused_inline(make_app):
    client = make_app().test_client()
    resp = invoke(client, "nope")
    assert answer_status(resp) == 404
    assert resp.text.strip().startswith('<section id="admin"')
    assert history(client) == []


# -- the stream ------------------------------------------------------------------------------------


def test_a_run_streams_as_an_unnamed_message_with_the_first_renders_partial(make_app):
    client = make_app().test_client()
    stream = SSEReader(client.get("/dashboard/stream", buffered=False))
    try:
        trigger = emit(client, "bell.tower", context={"note": SCRIPT})
        frames = stream.until(
            lambda f: any('<hx-partial hx-target="#ritual-log"' in fr.data for fr in f)
        )
    finally:
        stream.close()
    [run] = history(client)
    # the tick's message: the glints, then the run (swapped by htmx, resumable after its id)
    [frame] = [f for f in frames if '<hx-partial hx-target="#ritual-log"' in f.data]
    assert frame.event is None and int(frame.id) >= run["seq"]
    log = frame.data.split('<hx-partial hx-target="#ritual-log"', 1)[1]
    assert log.startswith(' hx-swap="afterbegin"')
    assert '<hx-partial hx-target="#ritual-states" hx-swap="outerMorph">' in frame.data
    assert f'id="run-{run["seq"]}"' in frame.data and f"bell.tower #{trigger['seq']}" in frame.data
    assert_never_raw(frame.data)
    # the same row as the first render, line for line
    row = log.split('hx-swap="afterbegin">', 1)[1].split("</hx-partial>", 1)[0]
    assert row.strip() in client.get("/").text.replace("\r", "")


def test_a_far_behind_stream_resets_the_log_with_the_newest_runs(make_app):
    client = make_app().test_client()
    emit(client, "bell.tower")
    for i in range(205):
        emit(client, "a.b", context={"i": i})
    [run] = history(client)
    stream = SSEReader(client.get("/dashboard/stream?lastEventId=1", buffered=False))
    try:
        frames = stream.until(
            lambda f: any('hx-target="#ritual-log" hx-swap="innerHTML"' in fr.data for fr in f)
        )
    finally:
        stream.close()
    [reset] = [f for f in frames if 'hx-target="#ritual-log"' in f.data]
    assert f'id="run-{run["seq"]}"' in reset.data

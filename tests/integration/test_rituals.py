"""Rituals seen from outside, over HTTP: the four built-ins' effects, rituals from a TOML file,
webhooks that never slow ingest, start-up errors, the ritual API, and `event: ritual` on the
stream with replay. Time is the fake clock, moved by the test (or through /_test/clock)."""

from __future__ import annotations

import http.server
import threading
import time

import orjson
import pytest

from spiral_web import create_app
from spiral_web.cli import main as spiral_cli

from ..sse import SSEReader, glint_frames
from ..support import emit, free_port, post_glint

T0 = 1_800_000_000.0  # an inhale starts here with the default breath (16/8/16/8 s, epoch 0)
DAY = 86400.0
BAD_SOURCE = {"REMOTE_ADDR": "10.0.0.9"}
GOOD_SOURCE = {"REMOTE_ADDR": "10.0.0.1"}

BELL_TOML = """
[rituals.bell]
rule = 'module == "bell.tower"'
action = "emit"
module = "ritual.bell"
context = { rang = true }
cooldown = 30
phases = ["inhale", "hold"]

[rituals.storm]
rule = 'module == "sensor.spike" && has(context.level) && context.level > 5'
action = "emit"
module = "ritual.storm"
window = { count = 3, seconds = 60 }

[rituals.turn]
rule = 'event == "phase_change" && breath_phase == "return"'
action = "emit"
module = "ritual.turn"

[rituals.alarm]
rule = 'module == "alarm.bell"'
action = "set_climate"
climate = "unsettled"
seconds = 60
essential = true
"""


@pytest.fixture
def make_app(tmp_path):
    """create_app with a fake clock at T0, no ticker, and (optionally) a TOML file."""
    apps = []

    def make(toml: str | None = None, **settings):
        config = {
            "data_dir": str(tmp_path / f"data{len(apps)}"),
            "fake_clock": True,
            "start_ticker": False,
            "heartbeat_seconds": 0.1,
            **settings,
        }
        if toml is not None:
            path = tmp_path / f"spiral{len(apps)}.toml"
            path.write_text(toml)
            config["config_file"] = str(path)
        app = create_app(config)
        apps.append(app)
        app.extensions["spiral"].clock.set(T0)
        return app

    yield make
    for app in apps:
        app.extensions["spiral"].close()


def glints(client, module=None, path="/api/glints") -> list[dict]:
    query = f"?limit=500&module={module}" if module else "?limit=500"
    resp = client.get(path + query)
    assert resp.status_code == 200, resp.get_json()
    return list(reversed(resp.get_json()["glints"]))  # oldest first


def history(client, ritual=None, status=None) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in (("ritual", ritual), ("status", status)) if v)
    resp = client.get(f"/api/rituals/history?limit=500&{query}")
    assert resp.status_code == 200, resp.get_json()
    return list(reversed(resp.get_json()["runs"]))  # oldest first


def move_clock(client, **body) -> dict:
    """Move the fake clock through the test endpoint, which publishes the breath (as a tick)."""
    resp = client.post("/_test/clock", json=body)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def ritual_state(client, name: str) -> dict:
    [found] = [r for r in client.get("/api/rituals").get_json()["rituals"] if r["name"] == name]
    return found


# -- throttle ------------------------------------------------------------------------------------


def test_throttle_answers_429_with_retry_after_warns_once_and_recovers_below_release(make_app):
    app = make_app(capacity=1.0)  # 1 glint/s is full usage (over the 10 s usage window)
    client, clock = app.test_client(), app.extensions["spiral"].clock
    for _ in range(4):
        emit(client)
    clock.advance(1)
    for _ in range(4):
        emit(client)
    clock.advance(1)
    emit(client)  # stamped usage 0.8: not above it
    emit(client)  # stamped 0.9: the throttle ritual fires after this one is stored
    refused = post_glint(client)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "9"  # until usage (1.1 → 0.7 → 0.3) is below 0.6
    assert refused.get_json() == {
        "error": "throttled",
        "retry_after": 9,
        "message": "the hub is saturated (usage 1.00) and 127.0.0.1 is among its heaviest "
        "sources: its input is paused until usage falls below 0.6",
    }
    breath = client.get("/api/breath").get_json()
    assert breath["throttled"] is True and breath["usage"] == 1.0
    assert post_glint(client).status_code == 429  # still the same episode

    clock.advance(8)  # usage 0.7: below the 0.8 that started it, not below the 0.6 that lifts it
    assert client.get("/api/breath").get_json()["usage"] == 0.7
    again = post_glint(client)
    assert (again.status_code, again.headers["Retry-After"]) == (429, "1")
    clock.advance(1)  # usage 0.3
    emit(client)
    assert client.get("/api/breath").get_json()["throttled"] is False

    [warning] = glints(client, "ritual.throttle")  # one warning for the whole episode
    assert warning["context"]["ritual"] == "throttle" and warning["context"]["usage"] == 0.9
    [run] = history(client, "throttle")
    assert (run["status"], run["emitted_id"], run["trigger_event"]) == (
        "ok",
        warning["id"],
        "glint",
    )
    assert warning["parent_id"] == run["trigger_id"]

    for _ in range(6):  # usage 0.4 … 0.9: a second episode, a second warning
        emit(client)
    assert post_glint(client).status_code == 429
    assert len(glints(client, "ritual.throttle")) == 2


# -- suspicion watcher ---------------------------------------------------------------------------


def test_a_burst_of_rejections_from_one_source_gets_it_blocked_and_the_other_not(make_app):
    app = make_app()
    client, clock = app.test_client(), app.extensions["spiral"].clock
    for _ in range(30):  # invalid JSON from one address
        resp = client.post(
            "/stream/glint", data=b"{nope", content_type="application/json", environ_base=BAD_SOURCE
        )
        assert resp.status_code == 400
    assert client.get("/api/breath").get_json()["climate"] == "suspicious"

    emit(client, environ=GOOD_SOURCE)  # the next glint meets the climate: the watcher runs
    blocked = post_glint(client, environ=BAD_SOURCE)
    assert blocked.status_code == 429
    assert blocked.get_json()["error"] == "source_blocked"
    assert blocked.headers["Retry-After"] == "300"
    emit(client, environ=GOOD_SOURCE)  # another source is not limited

    [watcher] = glints(client, "ritual.suspicion_watcher")  # once, not once per glint
    assert watcher["context"]["sources"] == ["10.0.0.9"]
    assert watcher["context"]["rejected"] == {"10.0.0.9": 30}
    [alert] = client.get("/api/breath").get_json()["alerts"]
    assert (alert["kind"], alert["sources"]) == ("suspicion", ["10.0.0.9"])
    assert alert["until"] == "2027-01-15T08:05:00.000Z"
    [run] = history(client, "suspicion_watcher")
    assert run["result"]["sources"] == ["10.0.0.9"] and run["emitted_id"] == watcher["id"]

    # the traffic calms down: the climate eases a step per calm period, the block runs out
    for seconds in (61, 31, 31):
        clock.advance(seconds)
        breath = client.get("/api/breath").get_json()
    assert breath["climate"] == "clear"
    assert post_glint(client, environ=BAD_SOURCE).status_code == 429  # blocked for its full time
    clock.advance(300 - 123)
    assert client.get("/api/breath").get_json()["alerts"] == []
    emit(client, environ=BAD_SOURCE)


def test_the_watcher_also_runs_when_the_climate_turns_without_a_glint(make_app):
    app = make_app()
    client = app.test_client()
    move_clock(client, advance=0)  # the breath as it stands is published
    for _ in range(30):
        client.post(
            "/stream/glint", data=b"[", content_type="application/json", environ_base=BAD_SOURCE
        )
    move_clock(client, advance=0)  # the next publish (as the ticker does): climate_change
    [run] = history(client, "suspicion_watcher")
    assert run["trigger_event"] == "climate_change" and run["trigger_id"] is None
    assert post_glint(client, environ=BAD_SOURCE).status_code == 429


# -- archival ------------------------------------------------------------------------------------


def test_archival_moves_old_glints_to_the_archive_and_keeps_counts_and_lineage(make_app, tmp_path):
    app = make_app()
    client, hub = app.test_client(), app.extensions["spiral"]
    emit(client, "old.root", id="old-root")
    emit(client, "old.leaf", "hold", id="old-leaf", parent_id="old-root")
    hub.clock.advance(8 * DAY)
    emit(client, "new.leaf", id="fresh", parent_id="old-leaf")
    before = client.get("/api/stats").get_json()

    scroll = emit(client, "memory.scroll", "return", id="scroll")
    assert hub.rituals.drain(5)

    hot = [g["id"] for g in glints(client)]
    assert "old-root" not in hot and "old-leaf" not in hot
    [child] = glints(client, "ritual.archival")
    assert hot == ["fresh", "scroll", child["id"]]
    assert child["parent_id"] == "scroll" and child["context"]["ritual"] == "archival"
    assert child["context"]["moved"] == 2
    assert [g["id"] for g in glints(client, path="/api/archive")] == ["old-root", "old-leaf"]
    assert [g["id"] for g in glints(client, "old.*", path="/api/archive")] == [
        "old-root",
        "old-leaf",
    ]

    after = client.get("/api/stats").get_json()
    assert after["total"] == before["total"] + 2  # the scroll and the archival glint
    assert after["by_module"]["old.root"] == before["by_module"]["old.root"] == 1

    assert client.get("/api/glints/old-root").status_code == 200  # still found, in the archive
    lineage = client.get("/api/glints/fresh/lineage").get_json()
    assert [g["id"] for g in lineage["ancestors"]] == ["old-leaf", "old-root"]
    down = client.get("/api/glints/old-root/lineage").get_json()["descendants"]
    assert down[0]["id"] == "old-leaf" and down[0]["children"][0]["id"] == "fresh"
    again = post_glint(client, "old.root", id="old-root")
    assert (again.status_code, again.get_json()["status"]) == (200, "glint_duplicate")
    emit(client, "new.leaf", parent_id="old-root")  # an archived parent is a parent

    [run] = history(client, "archival")
    assert (run["status"], run["trigger_id"], run["emitted_id"]) == (
        "ok",
        scroll["id"],
        child["id"],
    )
    assert run["result"]["moved"] == 2
    assert run["result"]["archived"] == {
        "by_module": {"old.leaf": 1, "old.root": 1},
        "by_phase": {"inhale": 1, "hold": 1},
    }
    assert (
        run["result"]["since_last"]["total"] == 4 and run["result"]["since_last"]["since"] is None
    )

    restarted = create_app(
        {
            "data_dir": app.extensions["spiral"].config.data_dir,
            "fake_clock": True,
            "start_ticker": False,
        }
    )
    try:  # counts are seeded from hot store plus archive
        stats = restarted.test_client().get("/api/stats").get_json()
        assert (stats["total"], stats["by_module"]["old.root"]) == (after["total"] + 1, 1)
    finally:
        restarted.extensions["spiral"].close()


def test_archival_with_nothing_to_move_records_the_run_but_emits_no_glint(make_app):
    app = make_app()
    client = app.test_client()
    emit(client, "memory.scroll", "return")
    assert app.extensions["spiral"].rituals.drain(5)
    [run] = history(client, "archival")
    assert (run["status"], run["result"]["moved"], run["emitted_id"]) == ("ok", 0, None)
    assert [g["module"] for g in glints(client)] == ["memory.scroll"]


# -- caesura -------------------------------------------------------------------------------------


def test_caesura_rests_defers_archival_and_runs_it_at_the_next_inhale(make_app):
    app = make_app()
    client, hub = app.test_client(), app.extensions["spiral"]
    hub.breath.override_phase("night_hold", seconds=130)  # ends in an exhale
    breath = move_clock(client, advance=0)
    assert breath["phase"] == "night_hold" and breath["resting"] is True
    assert client.get("/api/breath").get_json()["caesura"] is True
    [rest] = glints(client, "ritual.caesura")
    assert rest["context"]["until"] == "2027-01-15T08:02:10.000Z"

    first = emit(client, "memory.scroll", "return")  # accepted and stored, as always
    emit(client, "memory.scroll", "return")
    assert hub.rituals.drain(5)
    [deferred] = history(client, "archival")
    assert (deferred["status"], deferred["trigger_id"]) == ("deferred", first["id"])
    assert ritual_state(client, "archival")["state"]["deferred"] == 2

    assert move_clock(client, advance=130)["phase"] == "exhale"
    assert [r["status"] for r in history(client, "archival")] == ["deferred"]
    assert move_clock(client, set=T0 + 3 * 48)["phase"] == "inhale"
    assert hub.rituals.drain(5)
    done = history(client, "archival")[-1]
    assert (done["status"], done["deferred_from"], done["coalesced"]) == ("ok", deferred["seq"], 2)
    assert ritual_state(client, "archival")["state"]["deferred"] == 0
    breath = client.get("/api/breath").get_json()
    assert (breath["resting"], breath["caesura"]) == (False, False)


def test_invoking_the_caesura_starts_a_night_hold(make_app):
    app = make_app()
    client = app.test_client()
    resp = client.post("/api/rituals/caesura/invoke", json={})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["run"]["trigger_event"] == "invoke"
    breath = client.get("/api/breath").get_json()
    assert (breath["phase"], breath["phase_reason"], breath["caesura"]) == (
        "night_hold",
        "override",
        True,
    )


# -- rituals from a TOML file --------------------------------------------------------------------


def test_a_configured_ritual_fires_with_its_cooldown_and_phases(make_app):
    app = make_app(BELL_TOML)
    client, clock = app.test_client(), app.extensions["spiral"].clock
    trigger = emit(client, "bell.tower")
    emit(client, "bell.tower")  # inside the 30 s cooldown
    emit(client, "bell.tower")
    [child] = glints(client, "ritual.bell")
    assert child["parent_id"] == trigger["id"]
    assert child["context"] == {"rang": True, "ritual": "bell", "trigger_event": "glint"}
    assert [r["status"] for r in history(client, "bell")] == ["ok", "skipped_cooldown"]

    clock.advance(31)  # cooldown over, but exhale is not one of its phases
    emit(client, "bell.tower")
    assert len(glints(client, "ritual.bell")) == 1
    clock.set(T0 + 48 + 17)  # hold, next cycle
    emit(client, "bell.tower")
    assert len(glints(client, "ritual.bell")) == 2
    bell = ritual_state(client, "bell")
    assert (bell["cooldown"], bell["phases"], bell["builtin"]) == (30.0, ["inhale", "hold"], False)
    assert bell["state"]["last_status"] == "ok" and bell["state"]["cooldown_until"] is not None


def test_a_count_within_a_window_condition(make_app):
    app = make_app(BELL_TOML)
    client, clock = app.test_client(), app.extensions["spiral"].clock
    emit(client, "sensor.spike", context={"level": 9})
    emit(client, "sensor.spike", context={"level": 2})  # does not match the rule: not counted
    emit(client, "sensor.spike", context={"level": 7})
    clock.advance(61)
    emit(client, "sensor.spike", context={"level": 8})
    emit(client, "sensor.spike", context={"level": 8})
    assert glints(client, "ritual.storm") == []
    third = emit(client, "sensor.spike", context={"level": 8})
    [storm] = glints(client, "ritual.storm")
    assert storm["parent_id"] == third["id"]


def test_breath_changes_and_set_climate_from_the_file(make_app):
    app = make_app(BELL_TOML)
    client = app.test_client()
    move_clock(client, set=T0 + 40)  # return begins
    [turn] = glints(client, "ritual.turn")
    assert turn["parent_id"] is None and turn["context"]["trigger_event"] == "phase_change"
    emit(client, "alarm.bell")
    breath = client.get("/api/breath").get_json()
    assert (breath["climate"], breath["climate_reason"]) == ("unsettled", "override")


def test_a_disabled_builtin_does_not_run(make_app):
    app = make_app("[rituals.archival]\nenabled = false\n")
    client = app.test_client()
    emit(client, "memory.scroll", "return")
    assert app.extensions["spiral"].rituals.drain(5)
    assert history(client) == []
    assert ritual_state(client, "archival")["enabled"] is False


# -- webhooks ------------------------------------------------------------------------------------


def test_a_webhook_whose_target_is_down_does_not_slow_ingest(make_app):
    port = free_port()  # nothing listens there
    app = make_app(f"""
[rituals.hook]
rule = 'module == "hook.me"'
action = "webhook"
url = "http://127.0.0.1:{port}/hook"
timeout = 1
retries = 3
backoff = 0.1
""")
    client, hub = app.test_client(), app.extensions["spiral"]
    latencies = []
    for _ in range(3):
        started = time.perf_counter()
        emit(client, "hook.me")
        latencies.append(time.perf_counter() - started)
    assert hub.rituals.drain(0) is False  # the worker is still retrying in the background
    assert max(latencies) < 0.1, latencies  # each run's retries take 0.7 s
    assert hub.rituals.drain(20)
    runs = history(client, "hook")
    assert [r["status"] for r in runs] == ["error"] * 3
    assert runs[0]["result"]["attempts"] == 4
    assert runs[0]["result"]["error"].startswith(
        "webhook failed after 4 attempt(s): ConnectionError"
    )
    assert runs[0]["duration_ms"] >= 700  # 0.1 + 0.2 + 0.4 s of backoff


def test_a_webhook_posts_the_run_as_json(make_app):
    received: list[dict] = []

    class Target(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(orjson.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        app = make_app(f"""
[rituals.hook]
rule = 'module == "hook.me"'
action = "webhook"
url = "http://127.0.0.1:{server.server_port}/hook"
""")
        client = app.test_client()
        trigger = emit(client, "hook.me", context={"n": 1})
        assert app.extensions["spiral"].rituals.drain(10)
    finally:
        server.shutdown()
        server.server_close()
    [payload] = received
    assert (payload["ritual"], payload["trigger_event"]) == ("hook", "glint")
    assert payload["trigger"]["id"] == trigger["id"] and payload["trigger"]["context"] == {"n": 1}
    assert payload["breath"]["phase"] == "inhale"
    [run] = history(client, "hook")
    assert (run["status"], run["result"]["status_code"], run["result"]["attempts"]) == (
        "ok",
        204,
        1,
    )


# -- start-up errors -----------------------------------------------------------------------------

BROKEN = """
[rituals.broken]
rule = 'module == "a" &&'
action = "emit"
module = "x.y"
"""


def test_a_bad_rule_stops_create_app_naming_file_ritual_and_problem(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    with pytest.raises(ValueError) as caught:
        create_app(
            {"data_dir": str(tmp_path / "d"), "config_file": str(path), "start_ticker": False}
        )
    message = str(caught.value)
    assert message.startswith(f"{path}: ritual 'broken': rule 'module == \"a\" &&': ")
    assert "Syntax error" in message


def test_spiral_serve_reports_a_bad_ritual_as_a_configuration_error(tmp_path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text('[rituals.broken]\nrule = "true"\naction = "explode"\n')
    assert spiral_cli(["serve", "--config", str(path), "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"spiral: configuration error: {path}: ritual 'broken': action: must be one of"
    )


# -- the API -------------------------------------------------------------------------------------


def test_list_rituals_shows_definitions_and_state(make_app):
    app = make_app()
    rituals = app.test_client().get("/api/rituals").get_json()["rituals"]
    assert [r["name"] for r in rituals] == ["archival", "throttle", "suspicion_watcher", "caesura"]
    archival = rituals[0]
    assert archival["action"] == "archive" and archival["params"] == {"retention_days": 7.0}
    assert archival["essential"] is False and archival["background"] is True
    assert archival["state"] == {
        "last_run_at": None,
        "last_status": None,
        "last_seq": None,
        "cooldown_until": None,
        "deferred": 0,
        "runs": 0,
        "skipped_cooldown": 0,
    }


def test_invoke_needs_the_admin_token_when_one_is_set(make_app):
    app = make_app(admin_token="s3cret-admin-token")
    client = app.test_client()
    assert client.post("/api/rituals/archival/invoke").status_code == 401
    wrong = client.post("/api/rituals/archival/invoke", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    scroll = emit(client, "memory.scroll", "hold")
    ok = client.post(
        "/api/rituals/archival/invoke",
        json={"glint_id": scroll["id"]},
        headers={"Authorization": "Bearer s3cret-admin-token"},
    )
    assert ok.status_code == 200, ok.get_json()
    run = ok.get_json()["run"]
    assert (run["ritual"], run["status"], run["trigger_event"], run["trigger_id"]) == (
        "archival",
        "ok",
        "invoke",
        scroll["id"],
    )
    assert history(client, "archival") == [run]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        pytest.param("/api/rituals/nope/invoke", None, 404, "not_found", id="invoke-unknown"),
        pytest.param(
            "/api/rituals/archival/invoke",
            {"glint_id": "ghost"},
            422,
            "invalid_request",
            id="invoke-unknown-glint",
        ),
        pytest.param(
            "/api/rituals/archival/invoke",
            {"colour": 1},
            422,
            "invalid_request",
            id="invoke-extra-field",
        ),
        pytest.param(
            "/api/rituals/archival/dry-run", {"last": 0}, 422, "invalid_request", id="dry-run-last"
        ),
        pytest.param(
            "/api/rituals/archival/dry-run",
            {"rule": "usage >"},
            422,
            "invalid_rule",
            id="dry-run-bad-rule",
        ),
        pytest.param("/api/rituals/nope/dry-run", None, 404, "not_found", id="dry-run-unknown"),
    ],
)
def test_ritual_api_errors_are_json(make_app, path, body, status, code):
    client = make_app().test_client()
    resp = client.post(path, json=body) if body is not None else client.post(path)
    assert resp.status_code == status
    assert resp.get_json()["error"] == code and resp.get_json()["message"]


def test_a_body_that_is_not_json_answers_400(make_app):
    client = make_app().test_client()
    resp = client.post("/api/rituals/archival/dry-run", data=b"{", content_type="application/json")
    assert (resp.status_code, resp.get_json()["error"]) == (400, "invalid_json")


@pytest.mark.parametrize("query", ["?status=fine", "?ritual=No-Such", "?limit=0", "?before_seq=x"])
def test_bad_history_queries_answer_400(make_app, query):
    resp = make_app().test_client().get("/api/rituals/history" + query)
    assert (resp.status_code, resp.get_json()["error"]) == (400, "invalid_query")


@pytest.mark.parametrize("query", ["?phase=dusk", "?module=<x>", "?since=yesterday", "?limit=501"])
def test_bad_archive_queries_answer_400(make_app, query):
    resp = make_app().test_client().get("/api/archive" + query)
    assert (resp.status_code, resp.get_json()["error"]) == (400, "invalid_query")


def test_dry_run_names_the_latest_glints_a_rule_would_match(make_app):
    app = make_app()
    client = app.test_client()
    emit(client, "memory.scroll", "return", id="m1")
    emit(client, "memory.scroll", "hold", id="m2")
    emit(client, "memory.scroll", "return", id="m3")
    assert app.extensions["spiral"].rituals.drain(5)
    before = history(client)
    own = client.post("/api/rituals/archival/dry-run", json={"last": 2}).get_json()
    assert (own["examined"], own["matched_count"]) == (2, 1)
    assert [m["id"] for m in own["matched"]] == ["m3"]
    other = client.post(
        "/api/rituals/archival/dry-run", json={"rule": 'phase == "hold" || id == "m1"'}
    ).get_json()
    assert [m["id"] for m in other["matched"]] == ["m2", "m1"]
    assert history(client) == before  # a dry run runs nothing and records nothing


def test_history_pages_and_filters(make_app):
    app = make_app()
    client = app.test_client()
    for _ in range(5):
        client.post("/api/rituals/throttle/invoke")
    client.post("/api/rituals/archival/invoke")
    page = client.get("/api/rituals/history?ritual=throttle&limit=3").get_json()
    assert len(page["runs"]) == 3
    rest = client.get(f"/api/rituals/history?ritual=throttle&before_seq={page['next_before_seq']}")
    assert len(rest.get_json()["runs"]) == 2 and rest.get_json()["next_before_seq"] is None
    seqs = [r["seq"] for r in page["runs"] + rest.get_json()["runs"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 5
    assert [r["ritual"] for r in history(client, status="ok")].count("archival") == 1


def test_the_openapi_document_describes_the_ritual_api(make_app):
    doc = make_app().test_client().get("/api/openapi.json").get_json()
    for path in (
        "/api/rituals",
        "/api/rituals/history",
        "/api/rituals/{name}/invoke",
        "/api/rituals/{name}/dry-run",
        "/api/archive",
    ):
        assert path in doc["paths"]
    assert "Retry-After" in doc["paths"]["/stream/glint"]["post"]["responses"]["429"]["headers"]


# -- the stream ----------------------------------------------------------------------------------


def test_ritual_runs_stream_as_ritual_events_and_replay_in_order_with_glints(make_app):
    app = make_app(BELL_TOML)
    client = app.test_client()
    live = SSEReader(client.get("/stream", buffered=False))
    trigger = emit(client, "bell.tower")
    emit(client, "bell.tower")  # skipped for the cooldown: a run as well
    emit(client, "a.b")
    frames = live.until(lambda f: any(fr.id == "6" for fr in f))
    in_order = [
        ("glint_emission", 1),
        ("glint_emission", 2),
        ("ritual", 3),  # glint, child, run
        ("glint_emission", 4),
        ("ritual", 5),
        ("glint_emission", 6),
    ]  # glint, skip, glint
    assert [(f.event, int(f.id)) for f in frames if f.id is not None] == in_order
    ritual = next(f for f in frames if f.event == "ritual")
    run = ritual.json()
    assert run["seq"] == int(ritual.id) == 3
    assert (run["ritual"], run["trigger_id"], run["status"]) == ("bell", trigger["id"], "ok")
    assert run["emitted_id"] == glint_frames(frames)[1].json()["id"]
    live.close()

    everything = SSEReader(client.get("/stream", headers={"Last-Event-ID": "0"}, buffered=False))
    got = everything.until(lambda f: any(fr.id == "6" for fr in f))
    assert [(f.event, int(f.id)) for f in got if f.id is not None] == in_order  # no gap, no dup
    assert [f.data for f in got if f.id is not None] == [f.data for f in frames if f.id is not None]
    everything.close()

    resumed = SSEReader(client.get("/stream?lastEventId=3", buffered=False))
    emit(client, "a.b", id="after")
    got = resumed.until(
        lambda f: any(fr.event == "glint_emission" and fr.json()["id"] == "after" for fr in f)
    )
    assert [int(f.id) for f in got if f.id is not None] == [4, 5, 6, 7]
    resumed.close()


def test_module_filters_do_not_hide_ritual_events(make_app):
    app = make_app(BELL_TOML)
    client = app.test_client()
    emit(client, "bell.tower")
    stream = SSEReader(client.get("/stream?module=nothing.here&lastEventId=0", buffered=False))
    got = stream.until(lambda f: any(fr.event == "ritual" for fr in f))
    assert [f.event for f in got if f.id is not None] == ["ritual"]
    stream.close()

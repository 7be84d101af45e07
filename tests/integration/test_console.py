"""The operator's console server-side: /api/operators/ (protection and the way out, refusals,
clients), the console's pages (history with text search and paging, ritual history, the rule
tester), refusals to the dashboard's URLs answered as HTML, and publishing a glint again."""

from __future__ import annotations

import re

import pytest

from ..security.conftest import ADMIN, bearer, csrf_of
from ..support import answer_status, emit, post_glint

SENSOR = "sensor-secret-0123456789abcdef"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
HTMX = {**HTML, "HX-Request": "true"}


@pytest.fixture
def guarded(make_app):
    return make_app(admin_token=ADMIN, publish_tokens={"garden-sensor": SENSOR})


def block_the_sensor(app) -> None:
    """Forty refused glints from one token make the climate suspicious; the watcher blocks it."""
    client = app.test_client()
    for _ in range(40):
        resp = post_glint(client, "Not A Module", headers=bearer(SENSOR))
        assert resp.status_code in (422, 429)
    hub = app.extensions["spiral"]
    hub.orchestrator.publish_breath()  # what the ticker does each second: the climate changes
    blocks = hub.breath.blocks()
    assert [b["source"] for b in blocks] == ["garden-sensor"]


# -- /api/operators/ ------------------------------------------------------------------------------


def test_protection_lists_blocks_and_an_admin_lifts_them(guarded):
    block_the_sensor(guarded)
    client = guarded.test_client()
    seen = client.get("/api/operators/protection", headers=bearer(ADMIN)).get_json()
    assert seen["throttled"] is False and seen["climate"] == "suspicious"
    (block,) = seen["blocks"]
    assert block["source"] == "garden-sensor" and 0 < block["seconds_left"] <= 300
    assert block["until"].endswith("Z") and "rejected requests" in block["reason"]
    assert post_glint(client, "a.b", headers=bearer(SENSOR)).status_code == 429

    # a publisher may not lift it; an admin may, once
    refused = client.post("/api/operators/unblock", json={"source": "garden-sensor"},
                          headers=bearer(SENSOR))  # fmt: skip
    assert refused.status_code == 403
    lifted = client.post(
        "/api/operators/unblock", json={"source": "garden-sensor"}, headers=bearer(ADMIN)
    ).get_json()
    assert lifted == {"source": "garden-sensor", "unblocked": True, "blocks": []}
    again = client.post(
        "/api/operators/unblock", json={"source": "garden-sensor"}, headers=bearer(ADMIN)
    ).get_json()
    assert again["unblocked"] is False
    breath = client.get("/api/breath", headers=bearer(ADMIN)).get_json()
    assert not [a for a in breath["alerts"] if "garden-sensor" in a["sources"]]
    assert post_glint(client, "a.b", headers=bearer(SENSOR)).status_code == 201


@pytest.mark.parametrize(
    "body, status",
    [
        pytest.param({}, 422, id="no-source"),
        pytest.param({"source": ""}, 422, id="empty-source"),
        pytest.param({"source": "x", "more": 1}, 422, id="unknown-field"),
        pytest.param([1], 422, id="not-an-object"),
    ],
)
def test_unblock_refuses_bad_bodies(guarded, body, status):
    resp = guarded.test_client().post("/api/operators/unblock", json=body, headers=bearer(ADMIN))
    assert resp.status_code == status and resp.get_json()["error"] == "invalid_request"


def test_the_throttle_ends_when_an_admin_says_so(make_app):
    app = make_app(capacity=2.0, admin_token=ADMIN)
    client = app.test_client()
    hub = app.extensions["spiral"]
    for i in range(25):  # 2/s is full usage: 25 in a moment saturate it, and the throttle runs
        post_glint(client, "load.test", context={"i": i}, headers=bearer(ADMIN))
    assert hub.breath.state().throttled
    ended = client.post("/api/operators/throttle/end", headers=bearer(ADMIN)).get_json()
    assert ended == {"ended": True, "throttled": False}
    assert client.post("/api/operators/throttle/end", headers=bearer(ADMIN)).get_json() == {
        "ended": False,
        "throttled": False,
    }


def test_refusals_say_who_and_why(guarded):
    block_the_sensor(guarded)
    client = guarded.test_client()
    assert client.get("/api/operators/refusals", headers=bearer(SENSOR)).status_code == 403
    body = client.get("/api/operators/refusals?limit=5", headers=bearer(ADMIN)).get_json()
    assert body["total"] >= 40 and body["window_seconds"] == 60
    assert body["by_source"]["garden-sensor"] >= 40
    assert len(body["recent"]) == 5 and body["recent"][0]["source"] == "garden-sensor"
    assert client.get("/api/operators/refusals?limit=0", headers=bearer(ADMIN)).status_code == 400


def test_the_dashboards_own_refusals_carry_status_and_reason(make_app):
    app = make_app()
    client = app.test_client()
    token = csrf_of(client, "/")
    resp = client.post(
        "/dashboard/emit", data={"module": "Not A Module", "csrf_token": token}, headers=HTMX
    )
    assert answer_status(resp) == 422
    recent = app.extensions["spiral"].breath.rejections()["recent"]
    assert (recent[0]["status"], recent[0]["reason"]) == (422, "invalid_glint")


def test_clients_are_listed_per_worker_with_their_filters(make_app):
    app = make_app()
    client = app.test_client()
    stream = client.get("/stream?module=memory.*&phase=return", buffered=False)
    try:
        body = client.get("/api/operators/clients").get_json()
    finally:
        stream.close()
    assert body["total"] == 1
    (worker,) = body["workers"]
    assert worker["this"] is True and worker["listeners"] == 1
    (sub,) = worker["subscribers"]
    assert sub["transport"] == "sse" and sub["module"] == "memory.*"
    assert sub["phases"] == ["return"] and sub["lag"] == 0 and sub["since"]


# -- pages -----------------------------------------------------------------------------------------


def test_history_searches_context_text_and_pages(make_app):
    app = make_app()
    client = app.test_client()
    clock = app.extensions["spiral"].clock
    start = clock.now()
    for i in range(120):
        note = "rain on the roof" if i % 3 == 0 else "a quiet morning"
        emit(
            client,
            module="sensor.garden" if i % 2 else "memory.scroll",
            context={"i": i, "n": note},
        )
        if i == 59:
            clock.advance(3600)
    page = client.get("/dashboard/history?text=RAIN").text
    rows = re.findall(r'<td class="num seq c-seq">#(\d+)</td>', page)
    assert len(rows) == 40 and rows == sorted(rows, key=int, reverse=True)
    assert "with “RAIN” in the context" in page
    # paging: 120 glints are three pages of 50, 50 and 20, each older one starting where the
    # last ended (ritual runs, stored by the rituals' worker meanwhile, take seqs of their own)
    seqs: list[int] = []
    sizes: list[int] = []
    url = "/dashboard/history"
    while url:
        page = client.get(url).text
        shown = [int(n) for n in re.findall(r'<td class="num seq c-seq">#(\d+)</td>', page)]
        assert shown == sorted(shown, reverse=True) and (not seqs or shown[0] < seqs[-1])
        seqs += shown
        sizes.append(len(shown))
        older = re.search(r'id="history-older" rel="next" href="([^"]+)"', page)
        if older:
            assert f"before={shown[-1]}" in older.group(1)
        url = older.group(1).replace("&amp;", "&") if older else ""
    assert sizes == [50, 50, 20] and len(set(seqs)) == 120
    # a time range: the first hour's sixty
    until = f"{_iso(start + 60)}"
    ranged = client.get(f"/dashboard/history?to={until}&module=memory.*").text
    assert len(re.findall(r'<td class="num seq c-seq">', ranged)) == 30
    # a bad filter is named, not a 500 and not JSON
    bad = client.get("/dashboard/history?module=%3Cscript%3E&from=yesterday", headers=HTML)
    assert bad.status_code == 400 and bad.mimetype == "text/html"
    assert 'id="err-module"' in bad.text and 'id="err-from"' in bad.text
    assert "<script>" not in bad.text


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_text_search_is_bounded_and_says_where_it_stopped(make_app, monkeypatch):
    from spiral_web.web.dashboard import history

    monkeypatch.setattr(history, "SCAN_LIMIT", 30)
    monkeypatch.setattr(history, "SCAN_PAGE", 10)
    app = make_app()
    client = app.test_client()
    for i in range(80):
        emit(client, context={"i": i, "word": "needle" if i < 5 else "hay"})
    page = client.get("/dashboard/history?text=needle").text
    assert "No stored glint has “needle” in its context" in page
    assert "The search read 30 glints, back to #51" in page
    further = re.search(r'id="history-older" rel="next" href="([^"]+)"', page)
    assert further and "before=51" in further.group(1)


def test_ritual_history_filters_and_pages(make_app):
    app = make_app()
    client = app.test_client()
    for _ in range(53):
        assert client.post("/api/rituals/archival/invoke").status_code == 200
    page = client.get("/dashboard/rituals?ritual=archival&status=ok").text
    assert len(re.findall(r'<li id="run-\d+" class="run', page)) == 50
    older = re.search(r'id="rituals-older" rel="next" href="([^"]+)"', page)
    assert older
    rest = client.get(older.group(1).replace("&amp;", "&")).text
    assert len(re.findall(r'<li id="run-\d+" class="run', rest)) == 3
    none = client.get("/dashboard/rituals?ritual=caesura").text
    assert "No ritual has run with this filter." in none
    bad = client.get("/dashboard/rituals?ritual=nope&status=odd", headers=HTML)
    assert (
        bad.status_code == 400 and 'id="err-ritual"' in bad.text and 'id="err-status"' in bad.text
    )


def test_rule_tester_shows_what_would_have_matched(make_app):
    app = make_app(admin_token=ADMIN)
    client = app.test_client()
    for module in ("memory.scroll", "breath.emitter", "memory.scroll"):
        emit(client, module=module, headers=bearer(ADMIN))
    page = client.get(
        '/dashboard/rules?ritual=archival&rule=module == "memory.scroll"', headers=bearer(ADMIN)
    ).text
    assert "2 of 3 would have matched" in page
    assert page.count('class="module"') == 2
    bad = client.get("/dashboard/rules?ritual=archival&rule=module ==", headers=bearer(ADMIN))
    assert bad.status_code == 422 and 'id="err-rule"' in bad.text
    assert 'aria-invalid="true"' in bad.text
    refused = client.get("/dashboard/rules", headers={**HTML, "Authorization": "Bearer nope"})
    assert refused.status_code == 403 and refused.mimetype == "text/html"


# -- refusals as HTML ------------------------------------------------------------------------------


def test_dashboard_urls_answer_html_error_pages_and_the_api_stays_json(make_app):
    client = make_app().test_client()
    missing = client.get("/dashboard/glints/no-such-glint", headers=HTML)
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert "Glint not found" in missing.text and "no-such-glint" in missing.text
    nowhere = client.get("/dashboard/nowhere", headers=HTML)
    assert nowhere.status_code == 404 and nowhere.mimetype == "text/html"
    assert '<h1 id="error-title">Not found</h1>' in nowhere.text
    assert client.get("/api/glints/no-such-glint", headers=HTML).mimetype == "application/json"
    assert client.get("/dashboard/nowhere").mimetype == "application/json"  # a script's answer


def test_a_too_large_form_answers_a_line_for_the_forms_status(make_app):
    app = make_app()
    client = app.test_client()
    token = csrf_of(client, "/")
    resp = client.post(
        "/dashboard/emit",
        data={"module": "big.one", "context": '{"a": "' + "x" * 20_000 + '"}', "csrf_token": token},
        headers={**HTMX, "HX-Target": "form#emit-form"},
    )
    assert resp.status_code == 413 and resp.mimetype == "text/html"
    assert resp.headers["HX-Retarget"] == "#emit-form-status"
    assert resp.headers["HX-Reswap"] == "innerHTML"
    assert "at most 16 KiB" in resp.text and "<form" not in resp.text
    # a target no form claims writes to the page's own line
    other = client.get("/dashboard/glints?before=x", headers={**HTMX, "HX-Target": "div#x"})
    assert other.headers["HX-Retarget"] == "#page-problem"


# -- a glint, again --------------------------------------------------------------------------------


def test_a_glint_is_published_again_as_a_new_one(make_app):
    app = make_app()
    client = app.test_client()
    old = emit(client, module="shrine.system", phase="return", context={"glow": "it's steady"})
    detail = client.get(f"/dashboard/glints/{old['id']}", headers=HTMX).text
    assert "curl -X POST &#39;http://localhost/stream/glint&#39;" in detail
    assert "it&#39;\\&#39;&#39;s steady" in detail  # the quote closed, escaped, reopened
    assert f"http://localhost/?glint={old['id']}" in detail
    resp = client.post(
        f"/dashboard/glints/{old['id']}/republish",
        data={"csrf_token": csrf_of(client, "/")},
        headers=HTMX,
    )
    assert resp.status_code == 200 and "Published again as glint #2" in resp.text
    glints = client.get("/api/glints").get_json()["glints"]
    assert [(g["module"], g["phase"], g["context"]) for g in glints] == [
        ("shrine.system", "return", {"glow": "it's steady"})
    ] * 2
    assert glints[0]["id"] != glints[1]["id"]
    gone = client.post(
        "/dashboard/glints/none-such/republish",
        data={"csrf_token": csrf_of(client, "/")},
        headers=HTMX,
    )
    assert gone.status_code == 404

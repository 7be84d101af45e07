"""The dashboard, server-side: first render, escaping, the emit form, and its HTML stream."""

from __future__ import annotations

import html
import re

import pytest

from ..sse import SSEReader
from ..support import answer_status, emit

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
HOSTILE_CONTEXT = {"note": SCRIPT, IMG: "key", "nested": [{"quote": "\"'&</pre>"}]}


@pytest.fixture
def app(make_app):
    """As conftest's app, with a short heartbeat so the stream reader never blocks for long."""
    return make_app(heartbeat_seconds=0.1)


@pytest.fixture
def client(app):
    """A client whose form posts carry the session's CSRF token, as the dashboard's htmx requests
    do (base.html sends it in X-CSRF-Token); tests/security checks the refusal without it."""
    client = app.test_client()
    with client.session_transaction() as session:
        session["csrf"] = CSRF
    client.environ_base["HTTP_X_CSRF_TOKEN"] = CSRF
    return client


CSRF = "test-csrf-token-0123456789abcdef0123456789"


def assert_never_raw(text: str) -> None:
    for bad in (SCRIPT, IMG, "onerror=alert(1)>", '</pre>"'):
        assert bad not in text


def test_first_render_is_a_complete_page(client):
    emit(client, module="breath.emitter", phase="inhale", id="first-glint")
    emit(client, module="memory.scroll", phase="hold", id="second-glint")
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    page = resp.text
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert page.rstrip().endswith("</html>")
    # recent glints, newest first
    assert 'id="timeline"' in page
    assert page.index('id="glint-2"') < page.index('id="glint-1"')
    assert "first-glint" in page and "second-glint" in page and "memory.scroll" in page
    # statistics and the form
    assert 'id="stats"' in page and '<dd id="stat-total">2</dd>' in page
    assert 'id="emit-form"' in page and 'name="module"' in page and 'name="context"' in page
    # the breath, and the stream it resumes from
    assert 'id="breath"' in page
    connect = re.search(r'hx-sse:connect="([^"]*)"', page)
    assert connect is not None
    url = html.unescape(connect.group(1))
    assert url.startswith("/dashboard/stream?")
    last_seq = client.get("/api/stats").get_json()["last_seq"]
    assert f"lastEventId={last_seq}" in url.split("?", 1)[1].split("&")  # after the newest shown


def test_empty_dashboard_says_so(client):
    page = client.get("/").text
    assert 'id="timeline-empty"' in page
    assert '<dd id="stat-total">0</dd>' in page


def test_hostile_context_is_escaped_on_the_page(client):
    emit(client, context=HOSTILE_CONTEXT)
    page = client.get("/").text
    assert_never_raw(page)
    assert html.escape(SCRIPT) in page or "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_hostile_module_is_refused_and_echoed_escaped(client):
    resp = client.post(
        "/dashboard/emit", data={"module": SCRIPT, "context": ""}, headers={"HX-Request": "true"}
    )
    assert answer_status(resp) == 422
    assert_never_raw(resp.text)
    assert "&lt;script&gt;" in resp.text
    assert client.get("/api/stats").get_json()["total"] == 0


@pytest.mark.parametrize(
    ("form", "field", "problem"),
    [
        pytest.param(
            {"module": "a.b", "context": "{not json"},
            "context",
            "not valid JSON",
            id="context-bad-json",
        ),
        pytest.param(
            {"module": "a.b", "context": "[1, 2]"}, "context", "", id="context-not-object"
        ),
        pytest.param({"module": "Bad Module", "context": ""}, "module", "pattern", id="bad-module"),
        pytest.param({"module": "", "context": "{}"}, "module", "", id="empty-module"),
        pytest.param({"module": "a.b", "phase": "dusk"}, "phase", "", id="bad-phase"),
    ],
)
def test_emit_form_with_htmx_shows_errors_inline(client, form, field, problem):
    resp = client.post("/dashboard/emit", data=form, headers={"HX-Request": "true"})
    assert resp.status_code == 200 and answer_status(resp) == 422  # no console error
    fragment = resp.text.strip()
    assert fragment.startswith('<form id="emit-form"')
    assert fragment.endswith("</form>")
    assert "<html" not in fragment
    assert f'id="err-{field}"' in fragment
    assert problem in fragment
    if field != "phase":
        assert f'aria-describedby="err-{field}"' in fragment
    if form.get("context"):
        assert html.escape(form["context"], quote=False) in fragment  # kept for correction
    assert client.get("/api/stats").get_json()["total"] == 0


def test_emit_form_with_htmx_succeeds_with_a_notice(client):
    resp = client.post(
        "/dashboard/emit",
        headers={"HX-Request": "true"},
        data={"module": "memory.scroll", "phase": "hold", "context": '{"k": 1}'},
    )
    assert resp.status_code == 200
    assert resp.text.strip().startswith('<form id="emit-form"')
    assert 'class="notice ok"' in resp.text and "broadcast (seq 1)" in resp.text
    assert "field-error" not in resp.text
    glints = client.get("/api/glints").get_json()["glints"]
    assert [(g["module"], g["phase"], g["context"]) for g in glints] == [
        ("memory.scroll", "hold", {"k": 1})
    ]


def test_emit_form_without_javascript(client):
    ok = client.post("/dashboard/emit", data={"module": "a.b", "context": ""})
    assert ok.status_code == 303
    assert ok.headers["Location"].endswith("/")
    bad = client.post("/dashboard/emit", data={"module": "a.b", "context": "{"})
    assert bad.status_code == 422
    assert bad.text.lstrip().lower().startswith("<!doctype html>")
    assert 'id="err-context"' in bad.text
    assert client.get("/api/stats").get_json()["total"] == 1


@pytest.mark.parametrize(
    "method, path, data",
    [
        pytest.param("GET", "/dashboard/glints/one", None, id="a-glint"),
        pytest.param("GET", "/dashboard/glints/none-such", None, id="a-missing-glint"),
        pytest.param("POST", "/dashboard/emit", {"module": "a.b", "context": "{"}, id="emit-form"),
        pytest.param("POST", "/dashboard/admin", {"do": "release-phase"}, id="breath-controls"),
        pytest.param("POST", "/dashboard/rituals/archival/invoke", {}, id="ritual-control"),
    ],
)
def test_htmx_and_plain_answers_of_one_url_say_they_vary_by_hx_request(client, method, path, data):
    """A partial for htmx and a page for a browser from the same URL: a cache must keep both."""
    emit(client, id="one")
    plain = client.open(path, method=method, data=data)
    partial = client.open(path, method=method, data=data, headers={"HX-Request": "true"})
    assert "HX-Request" in plain.vary and "HX-Request" in partial.vary
    assert plain.text != partial.text


def test_dashboard_stream_sends_unnamed_html_messages(client):
    stream = SSEReader(client.get("/dashboard/stream", buffered=False))
    try:
        assert stream.response.headers["Content-Type"].startswith("text/event-stream")
        assert stream.response.headers["X-Accel-Buffering"] == "no"
        emit(client, module="memory.scroll", phase="hold", id="live-one", context=HOSTILE_CONTEXT)
        frames = stream.until(lambda f: any(fr.id for fr in f))
        glint = frames[-1]
        # the statistics follow within a tick or a pulse (shared by every dashboard: panels.py)
        stats = stream.until(lambda f: '<dd id="stat-total">1</dd>' in f[-1].data)[-1]
    finally:
        stream.close()
    assert frames[0].retry == 3000
    breath = frames[1]
    assert breath.event is None and breath.id is None
    assert breath.data.startswith('<hx-partial hx-target="#breath"')
    assert glint.event is None  # htmx 4 swaps unnamed messages
    assert glint.id == "1"
    assert glint.data.startswith('<hx-partial hx-target="#timeline"')
    assert 'id="glint-1"' in glint.data and "live-one" in glint.data
    assert stats.event is None and '<hx-partial hx-target="#stats"' in stats.data
    assert_never_raw(glint.data)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in glint.data


def test_dashboard_stream_replays_with_the_same_partial(client):
    emit(client, id="one")
    emit(client, id="two")
    emit(client, id="three")
    page = client.get("/").text
    stream = SSEReader(client.get("/dashboard/stream?lastEventId=1", buffered=False))
    try:
        frames = stream.until(lambda f: any(fr.id == "3" for fr in f))
    finally:
        stream.close()
    # the replay comes as one message (one swap), newest row first, resumable after its id
    [replayed] = [fr for fr in frames if fr.id]
    rows = replayed.data.split('hx-swap="afterbegin">', 1)[1].split("</hx-partial>", 1)[0]
    assert re.findall(r'id="glint-(\d+)"', rows) == ["3", "2"]
    # the stream's glint partial is the first render's partial, line for line
    item = rows.split('<li id="glint-2"', 1)[1]
    assert '<li id="glint-2"' + item.rstrip() in page.replace("\r", "")

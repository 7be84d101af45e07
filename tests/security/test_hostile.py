"""Hostile input: property-based tests on glint validation, and a corpus of nasty strings through
every entry point (POST, WebSocket emit, the dashboard's form, query parameters, Last-Event-ID,
the Authorization header, the sign-in form). Each answer is a 4xx, or the input is stored and
shown escaped; never a 500."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from urllib.parse import quote

import orjson
import pytest
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spiral_web import create_app
from spiral_web.engine.glints import (
    MAX_CONTEXT_BYTES,
    MAX_CONTEXT_DEPTH,
    MAX_CONTEXT_KEYS,
    MODULE_PATTERN,
    GlintError,
    validate_glint,
)
from tests.sse import SSEReader
from tests.support import ServerProcess

from .conftest import ADMIN, bearer, csrf_of
from .figures import record

PHASES = ["inhale", "hold", "exhale", "return", "night_hold"]
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)

# -- property-based: glint validation -------------------------------------------------------------

# Text a glint may carry: any character but C0/C1 controls (tab, newline, CR are fine), DEL,
# surrogates, and the bidi overrides and isolates.
_FORBIDDEN = (
    set(range(0x09))
    | {0x0B, 0x0C}
    | set(range(0x0E, 0x20))
    | set(range(0x7F, 0xA0))
    | set(range(0x202A, 0x202F))
    | set(range(0x2066, 0x206A))
)
safe_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="".join(map(chr, _FORBIDDEN))),
    max_size=40,
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | safe_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(safe_text, inner, max_size=5),
    max_leaves=25,
)
contexts = st.dictionaries(safe_text, json_values, max_size=8)
modules = st.from_regex(MODULE_PATTERN, fullmatch=True).filter(lambda m: len(m) <= 100)
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,40}", fullmatch=True)


def _depth(value, level: int = 1) -> int:
    if isinstance(value, dict):
        return max([level] + [_depth(v, level + 1) for v in value.values()])
    if isinstance(value, list):
        return max([level] + [_depth(v, level + 1) for v in value])
    return level - 1


def _fits(context: dict) -> bool:
    return (
        _depth(context) <= MAX_CONTEXT_DEPTH
        and len(orjson.dumps(context)) <= MAX_CONTEXT_BYTES
        and len(context) <= MAX_CONTEXT_KEYS
    )


valid_glints = st.fixed_dictionaries(
    {"module": modules, "context": contexts.filter(_fits)},
    optional={"phase": st.sampled_from(PHASES), "id": ids},
)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """One app for the module's properties (hypothesis runs many examples per test)."""
    app = create_app(
        {
            "data_dir": str(tmp_path_factory.mktemp("hostile") / "data"),
            "fake_clock": True,
            "start_ticker": False,
            "capacity": 1e9,
        }
    )
    yield app
    app.extensions["spiral"].close()


COUNT = {"inputs": 0, "5xx": 0}


@pytest.fixture(scope="module", autouse=True)
def _figures():
    """Keeps this module's hostile-input totals for RELIABILITY.md."""
    yield
    record("hostile_total", inputs=COUNT["inputs"], server_errors=COUNT["5xx"])


def _seen(status: int) -> None:
    COUNT["inputs"] += 1
    COUNT["5xx"] += status >= 500


@SETTINGS
@given(glint=valid_glints)
def test_valid_glints_are_accepted_and_round_trip(hub, glint):
    client = hub.test_client()
    resp = client.post("/stream/glint", json=glint, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    _seen(resp.status_code)
    assert resp.status_code in (200, 201, 409), resp.get_json()
    if resp.status_code == 200:  # an id an earlier example took: stored once, not again
        assert resp.get_json()["status"] == "glint_duplicate"
        return
    if resp.status_code == 409:  # an id an earlier example took with another body
        assert resp.get_json()["error"] == "glint_conflict" and "id" in glint
        return
    stored = client.get(f"/api/glints/{quote(resp.get_json()['id'], safe='')}").get_json()
    assert stored["module"] == glint["module"]
    assert stored["context"] == glint["context"]
    if "phase" in glint:
        assert stored["phase"] == glint["phase"]


anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=60),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=20), inner, max_size=6)
    ),
    max_leaves=40,
)
glint_like = st.fixed_dictionaries(
    {},
    optional={
        "module": anything | modules | st.text(max_size=120),
        "phase": anything | st.sampled_from(PHASES),
        "context": anything | contexts,
        "id": anything | ids | st.text(max_size=200),
        "parent_id": anything | ids,
        "extra": anything,
    },
)


def _dumpable(value) -> bool:
    try:
        orjson.dumps(value)
        return True
    except (TypeError, orjson.JSONEncodeError):
        return False


def _safe_dumps(value) -> bytes:
    try:
        return json.dumps(value).encode()  # NaN and big integers included, as a client might send
    except (TypeError, ValueError):
        return b"null"


bodies = (
    glint_like.map(
        lambda g: orjson.dumps(g, option=orjson.OPT_NON_STR_KEYS) if _dumpable(g) else b"{"
    )
    | st.binary(max_size=300)
    | anything.map(_safe_dumps)
)


@SETTINGS
@given(body=bodies)
def test_any_body_is_a_4xx_or_a_valid_glint_never_a_500(hub, body):
    client = hub.test_client()
    resp = client.post(
        "/stream/glint",
        data=body,
        content_type="application/json",
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
    )
    _seen(resp.status_code)
    assert resp.status_code < 500, resp.get_data()[:300]
    answer = resp.get_json()
    if resp.status_code in (200, 201):
        sent = orjson.loads(body)
        validate_glint(sent)  # only what the validator accepts is ever stored
        stored = client.get(f"/api/glints/{quote(answer['id'], safe='')}").get_json()
        assert stored["context"] == sent.get("context", {})
    else:
        assert 400 <= resp.status_code < 500 and answer["error"] and answer["message"]
        if resp.status_code == 422 and answer["message"] != "a glint must be a JSON object":
            assert answer["details"][0]["field"]  # the field path is named


@SETTINGS
@given(value=anything)
def test_the_validator_refuses_with_a_glint_error_or_accepts(value):
    """The engine's own answer, without HTTP: a GlintError (4xx) or a model, nothing else."""
    try:
        validate_glint(value)
    except GlintError as exc:
        assert 400 <= exc.status < 500
    _seen(200)


# -- the corpus ------------------------------------------------------------------------------------

NASTY = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    '"><svg onload=window.__pwned=1>',
    "' onmouseover='window.__pwned=1",
    "javascript:window.__pwned=1",
    "</script><script>window.__pwned=1</script>",
    '<hx-partial hx-target="#admin"><script>window.__pwned=1</script></hx-partial>',
    '<div hx-get="/api/stats" hx-trigger="load" hx-on:htmx:after-request="window.__pwned=1">',
    '<iframe srcdoc="<script>parent.__pwned=1</script>">',
    '<a href="javascript:window.__pwned=1">x</a>',
    "{{7*7}}{% raw %}",
    "${7*7}",
    "\u202etxt.exe",
    "\u2066isolate\u2069",
    "nul\x00byte",
    "bell\x07",
    "esc\x1b[31m",
    "c1\x85control",
    "line\u2028separator",
    "data: injected\n\nevent: glint_emission\ndata: {}",
    "\r\nSet-Cookie: pwned=1",
    "x" * 5000,
    "é" * 4096,
    "🌀" * 2000,
    "../../etc/passwd",
    "%00%0d%0a",
    "' OR 1=1 --",
    "\ud800",
    "A" * 101,
    "memory.scroll\n",
    "MEMORY.SCROLL",
    "memory..scroll",
    "-1",
    "99999999999999999999999999999",
    "1e309",
    "NaN",
]
DEEP = {"d": None}
for _ in range(40):
    DEEP = {"d": DEEP}
RAW_BODIES = [
    json.dumps({"module": "a.b", "context": DEEP}).encode(),
    b'{"module": "a.b", "context": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"module": "a.b", "context": {"n": NaN}}',
    b'{"module": "a.b", "context": {"n": 1e999}}',
    b'{"module": "a.b", "context": {"n": 123456789012345678901234567890}}',
    b'{"module": "a.b", "module": "c.d"}',
    b'{"module": "a.b", "context": {"</script>": "</script><script>window.__pwned=1</script>"}}',
    b'{"module": "a.b", "context": {"v": "\\ud800"}}',
    b"\xff\xfe\x00garbage",
    b"",
    b"[]",
    b"null",
]


def _json_safe(text: str) -> bool:
    try:
        text.encode()
        return True
    except UnicodeEncodeError:
        return False


class _Markup(HTMLParser):
    """What a page would run: script elements without src, on* and hx-on* attributes,
    javascript: URLs, frames; and <hx-partial> outside the stream."""

    def __init__(self, partials: bool) -> None:
        super().__init__()
        self.partials = partials
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and not dict(attrs).get("src"):
            self.found.append("inline <script>")
        if tag in ("iframe", "object", "embed", "base") or (
            tag == "hx-partial" and not self.partials
        ):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith(("on", "hx-on")):
                self.found.append(f"{tag} {name}=")
            url = name in ("href", "src", "action", "formaction", "xlink:href") or name.startswith(
                "hx-"
            )
            if (
                url
                and value
                and value.strip().lower().startswith(("javascript:", "data:text/html"))
            ):
                self.found.append(f"{tag} {name}={value[:30]}")


def _assert_escaped(page: str, partials: bool = False) -> None:
    """No nasty input reaches the page as markup: it is all text."""
    scan = _Markup(partials)
    scan.feed(page)
    assert not scan.found, scan.found


@pytest.fixture
def app(make_app):
    return make_app(capacity=1e9, admin_token=ADMIN, heartbeat_seconds=0.2)


def test_the_corpus_through_every_http_entry_point(app):
    client = app.test_client()
    token = csrf_of(client, "/")
    statuses: dict[str, int] = {}
    stored: list[str] = []

    def seen(where: str, resp) -> None:
        status = resp.status_code
        _seen(status)
        statuses[where] = status
        resp.close()
        assert status < 500, (where, resp.get_data()[:300] if status >= 500 else "")

    for n, text in enumerate(NASTY):
        if not _json_safe(text):
            continue
        # A client address per string: the refusals must not add up to the suspicion watcher
        # blocking the source, or later inputs would meet a 429 instead of the validation.
        client.environ_base["REMOTE_ADDR"] = f"10.9.{n}.1"
        # POST /stream/glint: each field
        for field, glint in [
            ("module", {"module": text}),
            ("phase", {"module": "a.b", "phase": text}),
            ("value", {"module": "a.b", "context": {"v": text}}),
            ("key", {"module": "a.b", "context": {text: 1}}),
            ("id", {"module": "a.b", "id": text}),
            ("parent", {"module": "a.b", "parent_id": text}),
        ]:
            resp = client.post("/stream/glint", json=glint)
            if resp.status_code == 201:
                stored.append(resp.get_json()["id"])
            seen(f"post {field} #{n}", resp)
        # the dashboard's form, with and without htmx
        for hx in ({}, {"HX-Request": "true"}):
            form = {
                "module": text,
                "context": json.dumps({"v": text}),
                "phase": text,
                "csrf_token": token,
            }
            resp = client.post("/dashboard/emit", data=form, headers=hx)
            if resp.status_code < 300 or resp.status_code == 422:
                _assert_escaped(resp.get_data(as_text=True))
            seen(f"form #{n} {bool(hx)}", resp)
            form = {"module": "form.ok", "context": json.dumps({text: text}), "csrf_token": token}
            resp = client.post("/dashboard/emit", data=form, headers=hx)
            seen(f"form context #{n} {bool(hx)}", resp)
        # query parameters and path segments
        client.environ_base["REMOTE_ADDR"] = f"10.9.{n}.2"
        q = quote(text, safe="")
        for path in (
            f"/api/glints?module={q}",
            f"/api/glints?phase={q}",
            f"/api/glints?since={q}",
            f"/api/glints?until={q}",
            f"/api/glints?limit={q}",
            f"/api/glints?before_seq={q}",
            f"/api/archive?module={q}&since={q}",
            f"/api/rituals/history?ritual={q}&status={q}",
            f"/api/glints/{q}",
            f"/api/glints/{q}/lineage",
            f"/?module={q}&phase={q}",
            f"/dashboard/timeline?module={q}",
            f"/dashboard/glints?before={q}&module={q}",
            f"/dashboard/glints/{q}",
            f"/auth/sign-in?next={q}",
            f"/stream?module={q}&phase={q}",
            f"/stream?lastEventId={q}",
            f"/dashboard/stream?lastEventId={q}&module={q}",
        ):
            resp = client.get(
                path, buffered=False, headers={"HX-Request": "true"} if "dashboard/" in path else {}
            )
            if resp.mimetype == "text/html":
                _assert_escaped(resp.get_data(as_text=True))
            seen(f"GET {path[:40]} #{n}", resp)
        # headers: Last-Event-ID and Authorization (latin-1 only, as HTTP carries them)
        if text.isascii() and "\n" not in text and "\r" not in text and "\x00" not in text:
            for path in ("/stream", "/dashboard/stream"):
                seen(
                    f"Last-Event-ID {path} #{n}",
                    client.get(path, headers={"Last-Event-ID": text}, buffered=False),
                )
            seen(
                f"Authorization #{n}",
                client.post("/api/admin/phase", json={"phase": "hold"}, headers=bearer(text)),
            )
        # the sign-in form
        client.environ_base["REMOTE_ADDR"] = f"10.9.{n}.3"
        seen(
            f"sign-in #{n}",
            client.post(
                "/auth/sign-in", data={"token": text, "next": text, "csrf_token": csrf_of(client)}
            ),
        )
        token = csrf_of(client, "/")

    for n, body in enumerate(RAW_BODIES):
        seen(
            f"raw body #{n}",
            client.post("/stream/glint", data=body, content_type="application/json"),
        )

    # what was stored shows escaped, in the page, the detail, the older rows and the stream
    assert stored, "some nasty context values and keys are valid glints"
    _assert_escaped(client.get("/").get_data(as_text=True))
    for gid in stored:
        for hx in ({}, {"HX-Request": "true"}):
            resp = client.get(f"/dashboard/glints/{quote(gid, safe='')}", headers=hx)
            assert resp.status_code == 200
            _assert_escaped(resp.get_data(as_text=True))
    _assert_escaped(
        client.get("/dashboard/glints?before=999999").get_data(as_text=True), partials=True
    )
    newest = str(app.extensions["spiral"].store.seq_bounds()[1])
    stream = SSEReader(client.get("/dashboard/stream?lastEventId=0", buffered=False))
    try:  # the replay, rendered as the live stream renders it
        frames = stream.until(lambda got: any(f.id == newest for f in got))
    finally:
        stream.close()
    _assert_escaped("".join(f.data for f in frames), partials=True)
    record(
        "hostile_http",
        inputs=len(statuses),
        stored=len(stored),
        status_counts={
            str(s): list(statuses.values()).count(s) for s in sorted(set(statuses.values()))
        },
        server_errors=sum(1 for s in statuses.values() if s >= 500),
    )


def test_json_answers_cannot_be_read_as_html(app):
    client = app.test_client()
    gid = client.post(
        "/stream/glint", json={"module": "a.b", "context": {"x": "</script><script>x()</script>"}}
    ).get_json()["id"]
    resp = client.get(f"/api/glints/{gid}")
    assert (
        resp.mimetype == "application/json" and resp.headers["X-Content-Type-Options"] == "nosniff"
    )


# -- the WebSocket, against a real server ----------------------------------------------------------


@pytest.fixture(scope="module")
def ws_url(tmp_path_factory):
    server = ServerProcess(
        tmp_path_factory.mktemp("hostile-ws") / "server", env={"SPIRAL_CAPACITY": "1000000"}
    ).start()
    yield server.url.replace("http", "ws") + "/ws"
    server.kill()


def test_the_corpus_through_the_websocket(ws_url):
    ws = websocket.create_connection(ws_url, timeout=5)
    answers: list[dict] = []
    sent = 0
    try:
        frames: list[str] = []
        for text in NASTY:
            if not _json_safe(text):
                continue
            for glint in (
                {"module": text},
                {"module": "a.b", "context": {text: text}},
                {"module": "a.b", "phase": text},
                {"module": "a.b", "id": text},
            ):
                frames.append(
                    json.dumps({"type": "emit", "ref": f"r{len(frames)}", "glint": glint})
                )
            frames.append(
                json.dumps({"type": "subscribe", "module": text, "ref": f"r{len(frames)}"})
            )
            frames.append(
                json.dumps({"type": "subscribe", "last_event_id": text, "ref": f"r{len(frames)}"})
            )
            frames.append(json.dumps({"type": text, "ref": text[:100]}))
        frames += [b.decode("utf-8", "replace") for b in RAW_BODIES if b]
        frames.append(json.dumps({"type": "emit", "glint": {"module": "a.b", "context": DEEP}}))
        for frame in frames:
            if len(frame.encode()) > 15_000:
                continue  # past the frame limit the socket is closed (1009): see test_ws.py
            ws.send(frame)
            sent += 1
            while True:  # read up to the answer to this frame (events may come first)
                answer = json.loads(ws.recv())
                if answer.get("type") in ("error", "emit_result", "subscribed"):
                    answers.append(answer)
                    break
        ws.send(json.dumps({"type": "ping", "ref": "still-there"}))
        assert any(json.loads(ws.recv()).get("type") == "pong" for _ in range(50))
    finally:
        ws.close()
    errors = [a for a in answers if a["type"] == "error"]
    internal = [a for a in errors if a["error"] == "internal_error"]
    for _ in answers:
        _seen(200)
    COUNT["5xx"] += len(internal)
    record(
        "hostile_ws",
        frames=sent,
        answers=len(answers),
        refused=len(errors),
        internal_errors=len(internal),
    )
    assert len(answers) == sent and not internal

"""Limits answer clearly (413, 415, 422 with the field path, 429 with Retry-After per source, 503
with Retry-After at the subscriber cap), and every response carries the security headers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spiral_web.engine.glints import MAX_CONTEXT_DEPTH, MAX_CONTEXT_KEYS
from spiral_web.web.security import CSP, SourceLimiter

from .conftest import PUBLISH, bearer

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _deep(n: int) -> dict:
    value: dict = {}
    for _ in range(n - 1):
        value = {"d": value}
    return value


@pytest.mark.parametrize(
    "kwargs, status, error, mentions",
    [
        pytest.param(
            {"data": b"{" + b" " * 20_000 + b"}", "content_type": "application/json"},
            413,
            "body_too_large",
            "16384",
            id="body-size",
        ),
        pytest.param(
            {"data": "module=a.b", "content_type": "text/plain"},
            415,
            "unsupported_media_type",
            "application/json",
            id="content-type",
        ),
        pytest.param(
            {"json": {"module": "Not Valid"}}, 422, "invalid_glint", "module", id="schema-field"
        ),
        pytest.param(
            {"json": {"module": "a.b", "context": {"list": [1, {"x": "\u202e"}]}}},
            422,
            "invalid_glint",
            "context",
            id="bidi-override",
        ),
        pytest.param(
            {"json": {"module": "a.b", "context": _deep(MAX_CONTEXT_DEPTH + 1)}},
            422,
            "invalid_glint",
            "deeper",
            id="context-depth",
        ),
        pytest.param(
            {
                "json": {
                    "module": "a.b",
                    "context": {f"k{i}": i for i in range(MAX_CONTEXT_KEYS + 1)},
                }
            },
            422,
            "invalid_glint",
            "keys",
            id="context-keys",
        ),
    ],
)
def test_limits_answer_clearly(make_app, kwargs, status, error, mentions):
    client = make_app().test_client()
    resp = client.post("/stream/glint", **kwargs)
    assert resp.status_code == status
    body = resp.get_json()
    assert body["error"] == error and mentions in (body["message"] + str(body.get("details")))
    assert client.get("/api/stats").get_json()["total"] == 0


def test_the_schema_error_names_the_field_path(make_app):
    resp = (
        make_app()
        .test_client()
        .post("/stream/glint", json={"module": "a.b", "context": {"a": 2**70}})
    )
    assert resp.status_code == 422
    assert resp.get_json()["details"][0]["field"].startswith("context")
    resp = make_app().test_client().post("/stream/glint", json={"module": "a.b", "phase": "dusk"})
    assert resp.get_json()["details"][0]["field"] == "phase"


def test_each_source_has_its_own_rate(make_app):
    app = make_app(publish_tokens=dict(PUBLISH), source_rate=2.0, source_burst=3)
    client = app.test_client()
    answers = [
        client.post("/stream/glint", json={"module": "rate.a"}, headers=bearer(PUBLISH["alpha"]))
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    refused = answers[-1]
    assert refused.headers["Retry-After"] == "1"
    assert refused.get_json() == {
        "error": "rate_limited",
        "retry_after": 1,
        "message": "this source may send 2 glints a second; try again in 1 s",
    }
    # another token is another source, with a bucket of its own
    other = client.post("/stream/glint", json={"module": "rate.b"}, headers=bearer(PUBLISH["beta"]))
    assert other.status_code == 201
    assert app.extensions["spiral"].store.seq_bounds()[1] == 4


def test_the_rate_is_on_by_default_only_beyond_a_local_open_hub(make_app):
    assert make_app().extensions["spiral.limiter"] is None
    limiter = make_app(publish_tokens=dict(PUBLISH)).extensions["spiral.limiter"]
    assert (limiter.rate, limiter.burst) == (200.0, 400.0)
    assert (
        make_app(publish_tokens=dict(PUBLISH), source_rate=0).extensions["spiral.limiter"] is None
    )


def test_a_bucket_refills_with_time():
    now = [0.0]
    limiter = SourceLimiter(rate=10, burst=2, clock=lambda: now[0], max_sources=2)
    assert limiter.take("a") is None and limiter.take("a") is None
    assert limiter.take("a") == 1
    now[0] += 0.1  # one token back
    assert limiter.take("a") is None and limiter.take("a") == 1
    limiter.take("b"), limiter.take("c")  # "a" is the least recently used: forgotten, full again
    assert limiter.take("a") is None


def test_the_subscriber_cap_answers_503_with_retry_after(make_app):
    app = make_app(max_subscribers=2)
    client = app.test_client()
    streams = [client.get("/stream", buffered=False) for _ in range(2)]
    try:
        assert [s.status_code for s in streams] == [200, 200]
        full = client.get("/stream", buffered=False)
        dash = client.get("/dashboard/stream", buffered=False)
        for resp in (full, dash):
            assert resp.status_code == 503
            assert 2 <= int(resp.headers["Retry-After"]) <= 8
            assert resp.get_json()["error"] == "too_many_listeners"
            assert resp.get_json()["retry_after"] == int(resp.headers["Retry-After"])
    finally:
        for s in streams:
            s.close()
    again = client.get("/stream", buffered=False)
    assert again.status_code == 200
    again.close()


@pytest.mark.parametrize(
    "path, method",
    [
        ("/", "GET"),
        ("/api/stats", "GET"),
        ("/stream/glint", "POST"),
        ("/healthz", "GET"),
        ("/static/css/spiral.css", "GET"),
        ("/no/such/page", "GET"),
        ("/auth/sign-in", "GET"),
        ("/api/openapi.json", "GET"),
    ],
)
def test_every_response_carries_the_security_headers(make_app, path, method):
    with (
        make_app()
        .test_client()
        .open(path, method=method, json={} if method == "POST" else None) as resp
    ):
        headers = resp.headers
        assert headers["Content-Security-Policy"] == CSP
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"


def test_the_policy_allows_only_the_apps_own_scripts():
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["script-src"] == "'self'"
    assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in CSP
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert directives["style-src-elem"] == "'self'"


def test_templates_hold_no_inline_script_or_handlers():
    """What the CSP would block: inline <script>, on* handler attributes, javascript: URLs, and
    htmx's hx-on:* (evaluated with Function(), which script-src 'self' forbids)."""
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text()
        for pattern in (
            r"<script(?![^>]*\bsrc=)[^>]*>",
            r"\son[a-z]+\s*=",
            r"javascript:",
            r"\bhx-on[:-]",
            r"\bhx-vals\s*=\s*['\"]\s*js:",
            r"hx-trigger\s*=\s*\"[^\"]*\[",
        ):
            for m in re.finditer(pattern, text):
                found.append(f"{path.relative_to(TEMPLATES)}: {m.group(0)!r}")
    assert not found

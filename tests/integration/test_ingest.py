"""POST /stream/glint answers alike whether web/ingest.py serves it in front of Flask (as it does
for every request without a cookie) or its Flask view does: the same statuses, headers and
bodies, the same glints stored, the same refusals counted for the climate.

Every case runs twice, on two apps built from the same settings: one with the handler (checked
to have served every request of the case), one with the handler off (Flask serves all)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from spiral_web import create_app
from spiral_web.engine.ports import RecordUnavailable

from ..security.conftest import ADMIN, PUBLISH, READ, REVOKED, bearer

T0 = 1_800_000_000.0  # a cycle start: inhale
ALPHA = bearer(PUBLISH["alpha"])
GUARDED = {
    "admin_token": ADMIN,
    "publish_tokens": {**PUBLISH, "gamma": REVOKED["gamma"]},
    "read_tokens": dict(READ),
    "revoked_tokens": ["gamma"],
}
# Each case: the settings of both apps, what is posted, and the last answer's status and error
# (or status), the same in both.
Step = Callable[[Any, Any], list[Any]]  # (client, spiral) -> responses


def post(client, body: Any = None, *, data: bytes | None = None, **kwargs: Any) -> Any:
    if data is None and "json" not in kwargs:
        kwargs["json"] = body
    elif data is not None:
        kwargs.setdefault("content_type", "application/json")
        kwargs["data"] = data
    return client.post("/stream/glint", **kwargs)


def one(body: Any = None, **kwargs: Any) -> Step:
    return lambda client, spiral: [post(client, body, **kwargs)]


def duplicate(client, spiral) -> list[Any]:
    glint = {"module": "a.b", "id": "twice", "context": {"n": 1}}
    return [post(client, glint), post(client, glint)]


def conflict(client, spiral) -> list[Any]:
    return [
        post(client, {"module": "a.b", "id": "taken"}),
        post(client, {"module": "c.d", "id": "taken", "context": {"n": 2}}),
    ]


def lineage(client, spiral) -> list[Any]:
    return [
        post(client, {"module": "a.b", "id": "root"}),
        post(client, {"module": "a.b", "parent_id": "root", "id": "child"}),
        post(client, {"module": "a.b", "parent_id": "nobody"}),
    ]


def with_listener(client, spiral) -> list[Any]:
    sub = spiral.hub.subscribe()
    try:
        return [post(client, {"module": "a.b", "id": "heard"})]
    finally:
        sub.close()


def rate_limited(client, spiral) -> list[Any]:
    return [post(client, {"module": "rate.a"}, headers=ALPHA) for _ in range(4)]


def guessing(client, spiral) -> list[Any]:
    """New wrong secrets from one address until it is throttled; then the right one is refused
    too (429), and so is an anonymous caller's missing token (401 stays)."""
    answers = [
        post(client, {"module": "a.b"}, headers=bearer(f"guess-{i:04d}-0123456789"))
        for i in range(22)
    ]
    answers.append(post(client, {"module": "a.b"}, headers=ALPHA))
    answers.append(post(client, {"module": "a.b"}))
    return answers


def throttled(client, spiral) -> list[Any]:
    answers = [post(client, {"module": "busy.a"}) for _ in range(9)]
    spiral.breath.begin_throttle(0.5)
    return [*answers, post(client, {"module": "busy.a"})]


def blocked(client, spiral) -> list[Any]:
    spiral.breath.block(["127.0.0.1"], 60, "too many rejected requests")
    return [post(client, {"module": "a.b"}), post(client, {"module": "a.b"}, headers=ALPHA)]


def unavailable(client, spiral, monkeypatch=None) -> list[Any]:
    def down(drafts):
        raise RecordUnavailable("the record is away", retry_after=3)

    spiral.store.append = down
    try:
        return [post(client, {"module": "a.b"})]
    finally:
        del spiral.store.append


def chunked(client, spiral) -> list[Any]:
    """A chunked body (no Content-Length): read whole by the gate, within the size limit or not."""
    small, large = b'{"module":"a.b","id":"chunked"}', b'{"module":"a.b","x":"' + b"x" * 20_000
    return [
        client.post(
            "/stream/glint",
            input_stream=__import__("io").BytesIO(body),
            content_type="application/json",
            headers={"Transfer-Encoding": "chunked"},
        )
        for body in (small, large)
    ]


CASES: list[Any] = [
    pytest.param(
        {},
        one({"module": "a.b", "id": "first", "context": {"x": 1}}),
        "201 glint_broadcast",
        id="valid",
    ),
    pytest.param(
        {},
        one({"module": "a.b", "phase": "hold", "id": "held"}),
        "201 glint_broadcast",
        id="valid-phase",
    ),
    pytest.param({}, with_listener, "201 glint_broadcast", id="valid-with-a-listener"),
    pytest.param({}, duplicate, "200 glint_duplicate", id="duplicate"),
    pytest.param({}, conflict, "409 glint_conflict", id="conflict"),
    pytest.param({}, lineage, "422 invalid_glint", id="parents"),
    pytest.param({}, one(data=b"{not json"), "400 invalid_json", id="bad-json"),
    pytest.param({}, one(data=b""), "400 invalid_json", id="empty-body"),
    pytest.param({}, one(data=b"x" * 20_000), "413 body_too_large", id="413-too-large"),
    pytest.param({}, chunked, "413 body_too_large", id="chunked"),
    pytest.param(
        {},
        one(data=b'{"module":"a.b"}', content_type="text/plain"),
        "415 unsupported_media_type",
        id="415-text",
    ),
    pytest.param(
        {},
        one(data=b'{"module":"a.b"}', content_type=""),
        "415 unsupported_media_type",
        id="415-none",
    ),
    pytest.param(
        {},
        one(data=b'{"module":"a.b"}', content_type="Application/JSON; charset=utf-8"),
        "201 glint_broadcast",
        id="json-params",
    ),
    pytest.param(
        {},
        lambda c, s: [c.post("/stream/glint", data={"module": "a.b"})],
        "415 unsupported_media_type",
        id="415-form",
    ),
    pytest.param({}, one({"module": "a.b", "phase": "dusk"}), "422 invalid_glint", id="422-phase"),
    pytest.param({}, one({"phase": "hold"}), "422 invalid_glint", id="422-missing-module"),
    pytest.param({}, one({"module": "a.b", "extra": True}), "422 invalid_glint", id="422-extra"),
    pytest.param({}, one([{"module": "a.b"}]), "422 invalid_glint", id="422-array"),
    pytest.param(
        {},
        one({"module": "a.b", "context": {"x": "bell\x07"}}),
        "422 invalid_glint",
        id="422-control",
    ),
    pytest.param(
        {}, one(data=b'{"module":"a.b","context":{"n":NaN}}'), "422 invalid_glint", id="422-nan"
    ),
    pytest.param(
        GUARDED, one({"module": "a.b", "id": "t"}, headers=ALPHA), "201 glint_broadcast", id="token"
    ),
    pytest.param(GUARDED, one({"module": "a.b"}), "401 unauthorized", id="401-no-token"),
    pytest.param(
        GUARDED,
        one({"module": "a.b"}, headers={"Authorization": "Basic YTpi"}),
        "401 unauthorized",
        id="401-basic",
    ),
    pytest.param(
        GUARDED,
        one({"module": "a.b"}, headers=bearer("wrong-0123456789")),
        "403 forbidden",
        id="403-wrong",
    ),
    pytest.param(
        GUARDED,
        one({"module": "a.b"}, headers=bearer(REVOKED["gamma"])),
        "403 token_revoked",
        id="403-revoked",
    ),
    pytest.param(
        GUARDED,
        one({"module": "a.b"}, headers=bearer(READ["watcher"])),
        "403 forbidden",
        id="403-reader",
    ),
    pytest.param(
        GUARDED,
        one({"module": "a.b"}, headers=bearer(ADMIN)),
        "201 glint_broadcast",
        id="admin-publishes",
    ),
    pytest.param(GUARDED, guessing, "401 unauthorized", id="429-guessing"),
    pytest.param(
        {"publish_tokens": dict(PUBLISH), "source_rate": 2.0, "source_burst": 3},
        rate_limited,
        "429 rate_limited",
        id="429-rate-limited",
    ),
    pytest.param({"capacity": 1.0}, throttled, "429 throttled", id="429-throttled"),
    pytest.param({}, blocked, "429 source_blocked", id="429-blocked"),
    pytest.param({}, unavailable, "503 record_unavailable", id="503-record-unavailable"),
    pytest.param(
        {},
        one({"module": "a.b"}, headers={"Sec-Fetch-Site": "cross-site"}),
        "403 cross_origin",
        id="403-cross-site",
    ),
    pytest.param(
        {},
        one({"module": "a.b"}, headers={"Origin": "http://evil.example"}),
        "403 cross_origin",
        id="403-origin",
    ),
    pytest.param(
        {},
        one({"module": "a.b", "id": "o"}, headers={"Origin": "http://localhost"}),
        "201 glint_broadcast",
        id="same-origin",
    ),
    pytest.param(
        GUARDED,
        one({"module": "a.b"}, headers={**ALPHA, "Sec-Fetch-Site": "cross-site"}),
        "403 cross_origin",
        id="403-cross-site-with-token",
    ),
    pytest.param(
        {},
        one({"module": "a.b"}, headers={"Host": "evil.example"}),
        "400 host_not_allowed",
        id="400-host",
    ),
]


class Spy:
    """Counts the requests the handler served."""

    def __init__(self, ingest: Any) -> None:
        self.ingest, self.served = ingest, 0

    def takes(self, environ: dict[str, Any], body: bytes | None) -> bool:
        return self.ingest.takes(environ, body)

    def __call__(self, environ: dict[str, Any], start_response: Any, body: bytes | None) -> Any:
        self.served += 1
        return self.ingest(environ, start_response, body)


class Generated:
    """Names the ids the hub generated (random) in the order they appear: gen-1, gen-2…"""

    UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

    def __init__(self) -> None:
        self.names: dict[bytes, bytes] = {}

    def __call__(self, text: bytes) -> bytes:
        def name(match: re.Match[bytes]) -> bytes:
            return self.names.setdefault(match.group(), b"gen-%d" % (len(self.names) + 1))

        return self.UUID.sub(name, text)


def run(tmp_path, name: str, settings: dict[str, Any], step: Step, fast: bool) -> dict[str, Any]:
    app = create_app(
        {"data_dir": str(tmp_path / name), "fake_clock": True, "start_ticker": False, **settings}
    )
    spiral = app.extensions["spiral"]
    try:
        spiral.clock.set(T0)
        gate = app.extensions["spiral.gate"]
        gate.ingest.enabled = fast
        spy = gate.ingest = Spy(gate.ingest)
        answers = step(app.test_client(), spiral)
        spiral.rituals.drain()
        named = Generated()
        return {
            "answers": [
                (a.status, sorted(a.headers.items()), orjson.loads(named(a.data))) for a in answers
            ],
            "stored": [named(g.json) for g in spiral.store.query(limit=100)[::-1]],
            "refusals": spiral.breath.rejections(),
            "climate": spiral.breath._climate.counts(spiral.clock.now()),
            "served": spy.served,
            "requests": len(answers),
        }
    finally:
        spiral.close()


@pytest.mark.parametrize(("settings", "step", "last"), CASES)
def test_the_handler_answers_as_the_flask_view(tmp_path, settings, step, last):
    fast = run(tmp_path, "fast", settings, step, fast=True)
    flask = run(tmp_path, "flask", settings, step, fast=False)
    status, _, body = fast["answers"][-1]
    assert f"{status.split()[0]} {body.get('error') or body['status']}" == last
    assert flask["served"] == 0
    host_refused = any(a[2].get("error") == "host_not_allowed" for a in fast["answers"])
    assert fast["served"] == (0 if host_refused else fast["requests"])
    for key in ("answers", "stored", "refusals", "climate"):
        assert fast[key] == flask[key], key


def test_a_request_with_a_cookie_is_flasks(client, app):
    spy = app.extensions["spiral.gate"].ingest = Spy(app.extensions["spiral.gate"].ingest)
    client.set_cookie("spiral_session", "anything")
    assert post(client, {"module": "a.b"}).status_code == 201
    assert spy.served == 0
    client.delete_cookie("spiral_session")
    assert post(client, {"module": "a.b"}).status_code == 201
    assert spy.served == 1

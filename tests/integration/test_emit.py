"""POST /stream/glint: the answer, every refusal, idempotent ids, lineage checks."""

from __future__ import annotations

import orjson
import pytest


def post(client, payload, **kwargs):
    return client.post("/stream/glint", json=payload, **kwargs)


def stored(client) -> tuple[int, list[dict]]:
    stats = client.get("/api/stats").get_json()
    page = client.get("/api/glints").get_json()
    assert stats["total"] == len(page["glints"])
    return stats["total"], page["glints"]


def test_emit_answers_broadcast_with_id_seq_listeners(client, spiral):
    sub = spiral.hub.subscribe()  # one listener
    try:
        resp = post(
            client,
            {
                "module": "breath.emitter",
                "phase": "inhale",
                "id": "test-123",
                "context": {"intention": "morning_emergence", "saturation": 0.1},
            },
        )
        assert resp.status_code == 201
        assert resp.mimetype == "application/json"
        assert resp.get_json() == {
            "status": "glint_broadcast",
            "id": "test-123",
            "seq": 1,
            "listeners": 1,
        }
        events = sub.wait(0)
    finally:
        sub.close()
    assert [e.kind for e in events] == ["glint_emission"]
    assert orjson.loads(events[0].data)["id"] == "test-123"


def test_emit_stamps_the_glint(client, clock):
    clock.set(1_800_000_000.0)  # a cycle start with the default breath: inhale
    resp = post(client, {"module": "memory.scroll", "context": {"a": 1}})
    gid = resp.get_json()["id"]
    glint = client.get(f"/api/glints/{gid}").get_json()
    assert glint == {
        "id": gid,
        "seq": 1,
        "module": "memory.scroll",
        "phase": "inhale",  # the current phase
        "context": {"a": 1},
        "parent_id": None,
        "received_at": "2027-01-15T08:00:00.000Z",
        "breath": {"phase": "inhale", "climate": "clear", "usage": 0.0},
        "source": "127.0.0.1",
    }


def test_generated_ids_are_unique_and_seqs_increase(client):
    answers = [post(client, {"module": "a.b"}).get_json() for _ in range(5)]
    assert len({a["id"] for a in answers}) == 5
    assert [a["seq"] for a in answers] == [1, 2, 3, 4, 5]


REFUSALS = [
    pytest.param(
        {"data": b"{not json", "content_type": "application/json"},
        400,
        "invalid_json",
        "JSON",
        id="invalid-json",
    ),
    pytest.param(
        {"data": b"", "content_type": "application/json"},
        400,
        "invalid_json",
        "JSON",
        id="empty-body",
    ),
    pytest.param(
        {"data": b'{"module": "a.b"}', "content_type": "text/plain"},
        415,
        "unsupported_media_type",
        "application/json",
        id="text-plain",
    ),
    pytest.param(
        {"data": {"module": "a.b"}},
        415,
        "unsupported_media_type",
        "application/json",
        id="form-encoded",
    ),
    pytest.param(
        {"data": b'{"module": "a.b"}'},
        415,
        "unsupported_media_type",
        "application/json",
        id="no-content-type",
    ),
    pytest.param(
        {
            "data": b'{"module":"a.b","context":{"x":"' + b"x" * 20_000 + b'"}}',
            "content_type": "application/json",
        },
        413,
        "body_too_large",
        "16384",
        id="oversized-body",
    ),
    pytest.param(
        {"json": {"module": "a.b", "phase": "dusk"}},
        422,
        "invalid_glint",
        "phase",
        id="unknown-phase",
    ),
    pytest.param({"json": {"phase": "hold"}}, 422, "invalid_glint", "module", id="missing-module"),
    pytest.param(
        {"json": {"module": "Not A Module"}}, 422, "invalid_glint", "module", id="bad-module"
    ),
    pytest.param(
        {"json": {"module": "a.b", "context": [1]}},
        422,
        "invalid_glint",
        "context",
        id="context-not-an-object",
    ),
    pytest.param(
        {"json": {"module": "a.b", "context": {"x": "bell\x07"}}},
        422,
        "invalid_glint",
        "control",
        id="control-characters",
    ),
    pytest.param(
        {"data": b'{"module":"a.b","context":{"n":NaN}}', "content_type": "application/json"},
        422,
        "invalid_glint",
        "context",
        id="nan",
    ),
    pytest.param(
        {
            "data": b'{"module":"a.b","context":{"n":99999999999999999999999}}',
            "content_type": "application/json",
        },
        422,
        "invalid_glint",
        "context",
        id="huge-integer",
    ),
    pytest.param(
        {"json": {"module": "a.b", "extra": True}}, 422, "invalid_glint", "extra", id="extra-field"
    ),
    pytest.param({"json": [{"module": "a.b"}]}, 422, "invalid_glint", "object", id="array-body"),
    pytest.param(
        {"json": {"module": "a.b", "parent_id": "nobody"}},
        422,
        "invalid_glint",
        "parent_id",
        id="unknown-parent",
    ),
]


@pytest.mark.parametrize(("kwargs", "status", "error", "mentions"), REFUSALS)
def test_refusals_answer_json_and_store_nothing(client, spiral, kwargs, status, error, mentions):
    sub = spiral.hub.subscribe()
    try:
        resp = client.post("/stream/glint", **kwargs)
        published = sub.wait(0)
    finally:
        sub.close()
    assert resp.status_code == status
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert body["error"] == error
    assert mentions in body["message"]
    assert stored(client) == (0, [])
    assert published == []


def test_refusals_feed_the_climate_once_each(client, spiral):
    post(client, {"module": "a.b", "parent_id": "nobody"})
    post(client, {"module": "a.b", "phase": "dusk"})
    client.post("/stream/glint", data=b"{", content_type="application/json")
    client.get("/api/glints/nobody")  # a 404 on a read is not a rejection
    now = spiral.clock.now()
    assert spiral.breath._climate.counts(now) == {"accepted": 0, "rejected": 3}


def test_a_repeated_id_is_stored_and_broadcast_once(client, spiral):
    first = post(client, {"module": "a.b", "id": "once", "context": {"n": 1}})
    assert first.status_code == 201
    sub = spiral.hub.subscribe()
    try:
        again = post(client, {"module": "a.b", "id": "once", "context": {"n": 1}})
        different = post(client, {"module": "c.d", "id": "once", "context": {"n": 2}})
        published = sub.wait(0)
    finally:
        sub.close()
    assert again.status_code == 200
    assert again.get_json() == {
        "status": "glint_duplicate",
        "id": "once",
        "seq": 1,
        "listeners": 1,
    }
    # the same id with another body is a conflict that names what differs, not a silent 200
    assert different.status_code == 409
    body = different.get_json()
    assert body["error"] == "glint_conflict"
    assert [d["field"] for d in body["details"]] == ["module", "context"]
    assert published == []
    total, glints = stored(client)
    assert total == 1
    assert glints[0]["module"] == "a.b" and glints[0]["context"] == {"n": 1}  # the first one kept
    assert spiral.orchestrator.statistics()["by_module"] == {"a.b": 1}


def test_a_known_parent_is_accepted(client):
    post(client, {"module": "a.b", "id": "root"})
    resp = post(client, {"module": "a.b", "id": "child", "parent_id": "root"})
    assert resp.status_code == 201
    assert client.get("/api/glints/child").get_json()["parent_id"] == "root"


def test_unknown_parent_names_the_field(client):
    resp = post(client, {"module": "a.b", "parent_id": "ghost"})
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["details"] == [
        {"field": "parent_id", "problem": "parent_id: no glint with id 'ghost'"}
    ]
    assert "ghost" in body["message"]


def test_other_routes_and_methods_answer_json_errors(client):
    missing = client.get("/no/such/page")
    assert (missing.status_code, missing.get_json()["error"]) == (404, "not_found")
    wrong = client.get("/stream/glint")
    assert (wrong.status_code, wrong.get_json()["error"]) == (405, "method_not_allowed")

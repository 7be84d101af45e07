"""The JSON API (glints, lineage, stats, breath, OpenAPI) and the operations endpoints."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from spiral_web.engine.breath import iso

from ..support import emit

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, an inhale start with the default breath


def subset(actual: dict, expected: dict) -> bool:
    """`expected`'s keys have these values in `actual` (later features may add keys)."""
    assert {k: actual.get(k) for k in expected} == expected
    return True


def ids(resp) -> list[str]:
    assert resp.status_code == 200, resp.get_json()
    return [g["id"] for g in resp.get_json()["glints"]]


# -- statistics --------------------------------------------------------------------------------


def test_stats_count_by_phase_and_module(client, spiral, clock):
    clock.set(T0)
    empty = client.get("/api/stats").get_json()
    assert subset(
        empty,
        {
            "total": 0,
            "by_phase": {},
            "by_module": {},
            "stream_sync": True,
            "listeners": 0,
            "last_seq": 0,
            "rates": {"per_second_10s": 0.0, "per_second_60s": 0.0},
        },
    )
    emit(client, "breath.emitter", "inhale")
    emit(client, "memory.echo", "hold")  # not memory.scroll: that in return starts a ritual
    emit(client, "memory.echo", "return")
    emit(client, "memory.echo", "night_hold")
    sub = spiral.hub.subscribe()
    try:
        stats = client.get("/api/stats").get_json()
    finally:
        sub.close()
    assert stats["total"] == 4
    assert stats["by_phase"] == {"inhale": 1, "hold": 1, "return": 1, "night_hold": 1}
    assert stats["by_module"] == {"memory.echo": 3, "breath.emitter": 1}
    assert list(stats["by_module"]) == ["memory.echo", "breath.emitter"]  # busiest first
    assert (stats["stream_sync"], stats["listeners"], stats["last_seq"]) == (True, 1, 4)
    assert stats["rates"] == {"per_second_10s": 0.4, "per_second_60s": round(4 / 60, 3)}
    clock.advance(10)
    assert client.get("/api/stats").get_json()["rates"]["per_second_10s"] == 0.0


def test_stats_survive_a_restart(app, tmp_path):
    from spiral_web import create_app

    client = app.test_client()
    emit(client, "memory.scroll", "hold")
    emit(client, "shrine.system", "return")
    app.extensions["spiral"].close()
    again = create_app(
        {"data_dir": str(tmp_path / "data"), "fake_clock": True, "start_ticker": False}
    )
    try:
        stats = again.test_client().get("/api/stats").get_json()
    finally:
        again.extensions["spiral"].close()
    assert (stats["total"], stats["last_seq"]) == (2, 2)
    assert stats["by_phase"] == {"hold": 1, "return": 1}


# -- listing glints ----------------------------------------------------------------------------


@pytest.fixture
def corpus(client, clock):
    """Six glints, one per minute from T0 (no memory.scroll in return: that starts a ritual)."""
    clock.set(T0)
    rows = [
        ("memory.echo", "return"),
        ("memory.echo", "hold"),
        ("memory.deep.archive", "return"),
        ("memoryx.scroll", "return"),
        ("breath.emitter", "inhale"),
        ("shrine.system", "exhale"),
    ]
    for i, (module, phase) in enumerate(rows, start=1):
        emit(client, module, phase, id=f"g{i}")
        clock.advance(60)
    return rows


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", ["g6", "g5", "g4", "g3", "g2", "g1"], id="all-newest-first"),
        pytest.param("?module=memory.echo", ["g2", "g1"], id="module-exact"),
        pytest.param("?module=memory.*", ["g3", "g2", "g1"], id="module-glob"),
        pytest.param("?module=memory*", ["g4", "g3", "g2", "g1"], id="module-glob-no-dot"),
        pytest.param("?module=memory?.scrol?", ["g4"], id="module-question-mark"),
        pytest.param("?module=*.ech?", ["g2", "g1"], id="module-leading-star"),
        pytest.param("?module=memory", [], id="module-exact-no-match"),
        pytest.param("?phase=return", ["g4", "g3", "g1"], id="phase"),
        pytest.param("?module=memory.*&phase=return", ["g3", "g1"], id="module-and-phase"),
        pytest.param(f"?since={T0 + 120}", ["g6", "g5", "g4", "g3"], id="since-epoch"),
        pytest.param(f"?until={T0 + 120}", ["g2", "g1"], id="until-epoch-exclusive"),
        pytest.param(
            "?since=2027-01-15T08:01:00Z&until=2027-01-15T08:03:00Z",
            ["g3", "g2"],
            id="since-until-iso",
        ),
        pytest.param(
            "?since=2027-01-15T09:01:00%2B01:00",
            ["g6", "g5", "g4", "g3", "g2"],
            id="since-iso-offset",
        ),
        pytest.param("?limit=2", ["g6", "g5"], id="limit"),
        pytest.param("?before_seq=3", ["g2", "g1"], id="before-seq"),
    ],
)
def test_list_glints_filters(client, corpus, query, expected):
    assert ids(client.get("/api/glints" + query)) == expected


def test_paging_with_next_before_seq_visits_everything_once(client, corpus):
    query = "?limit=4&module=memory*"
    first = client.get("/api/glints" + query).get_json()
    assert [g["id"] for g in first["glints"]] == ["g4", "g3", "g2", "g1"]
    assert first["next_before_seq"] == 1  # a full page: there may be more
    second = client.get(f"/api/glints{query}&before_seq={first['next_before_seq']}").get_json()
    assert second == {"glints": [], "next_before_seq": None}

    pages, before = [], ""
    while True:
        page = client.get(f"/api/glints?limit=4{before}").get_json()
        pages.append([g["id"] for g in page["glints"]])
        if page["next_before_seq"] is None:
            break
        before = f"&before_seq={page['next_before_seq']}"
    assert pages == [["g6", "g5", "g4", "g3"], ["g2", "g1"]]


@pytest.mark.parametrize(
    ("query", "mentions"),
    [
        pytest.param("?limit=0", "limit", id="limit-zero"),
        pytest.param("?limit=501", "limit", id="limit-too-big"),
        pytest.param("?limit=ten", "limit", id="limit-not-a-number"),
        pytest.param("?before_seq=-1", "before_seq", id="before-seq-negative"),
        pytest.param("?before_seq=1.5", "before_seq", id="before-seq-fraction"),
        pytest.param("?phase=dusk", "phase", id="unknown-phase"),
        pytest.param("?module=a;drop", "module", id="module-punctuation"),
        pytest.param("?module=memory.[ab]", "module", id="module-brackets"),
        pytest.param("?module=" + "a" * 101, "module", id="module-too-long"),
        pytest.param("?since=yesterday", "since", id="since-words"),
        pytest.param("?until=2027-01-15T08:00:00", "until", id="until-without-zone"),
        pytest.param("?since=nan", "since", id="since-nan"),
        pytest.param("?until=inf", "until", id="until-infinity"),
    ],
)
def test_bad_query_parameters_answer_400(client, query, mentions):
    resp = client.get("/api/glints" + query)
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["error"] == "invalid_query"
    assert mentions in body["message"]


# -- one glint and its lineage -----------------------------------------------------------------


def test_get_one_glint(client, clock):
    clock.set(T0)
    emit(client, "memory.scroll", "hold", id="one", context={"k": [1, 2]})
    resp = client.get("/api/glints/one")
    assert resp.status_code == 200
    glint = resp.get_json()
    assert (glint["id"], glint["module"], glint["phase"], glint["context"]) == (
        "one",
        "memory.scroll",
        "hold",
        {"k": [1, 2]},
    )
    assert glint["received_at"] == iso(T0)


def test_get_unknown_glint_is_404(client):
    resp = client.get("/api/glints/nobody")
    assert resp.status_code == 404
    assert resp.get_json() == {"error": "not_found", "message": "no glint with id 'nobody'"}
    assert client.get("/api/glints/nobody/lineage").status_code == 404


@pytest.fixture
def family(client):
    """root ─┬─ child ── grandchild
    └─ sibling                 (and an unrelated glint)"""
    emit(client, id="root")
    emit(client, id="child", parent_id="root")
    emit(client, id="grandchild", parent_id="child")
    emit(client, id="sibling", parent_id="root")
    emit(client, id="stranger")


def tree(nodes: list[dict]) -> dict:
    return {n["id"]: tree(n["children"]) for n in nodes}


def test_lineage_of_a_leaf_lists_ancestors_nearest_first(client, family):
    lineage = client.get("/api/glints/grandchild/lineage").get_json()
    assert lineage["glint"]["id"] == "grandchild"
    assert [g["id"] for g in lineage["ancestors"]] == ["child", "root"]
    assert lineage["descendants"] == []
    assert lineage["truncated"] is False


def test_lineage_of_the_root_is_the_descendant_tree(client, family):
    lineage = client.get("/api/glints/root/lineage").get_json()
    assert lineage["ancestors"] == []
    assert tree(lineage["descendants"]) == {"child": {"grandchild": {}}, "sibling": {}}
    assert lineage["descendants"][0]["module"] == "a.b"  # whole glints, not just ids


def test_lineage_of_a_middle_glint_has_both(client, family):
    lineage = client.get("/api/glints/child/lineage").get_json()
    assert [g["id"] for g in lineage["ancestors"]] == ["root"]
    assert tree(lineage["descendants"]) == {"grandchild": {}}


# -- breath ------------------------------------------------------------------------------------


def test_breath_follows_the_fake_clock(client, clock):
    clock.set(T0)
    breath = client.get("/api/breath").get_json()
    assert subset(
        breath,
        {
            "phase": "inhale",
            "phase_started_at": iso(T0),
            "phase_ends_at": iso(T0 + 16),
            "phase_reason": "cycle",
            "climate": "clear",
            "climate_reason": "traffic",
            "usage": 0.0,
            "resting": False,
            "server_time": iso(T0),
        },
    )
    for seconds, phase in [(16, "hold"), (8, "exhale"), (16, "return"), (8, "inhale")]:
        clock.advance(seconds)
        breath = client.get("/api/breath").get_json()
        assert (breath["phase"], breath["phase_started_at"]) == (phase, iso(clock.now()))


def test_breath_in_quiet_hours_rests(tmp_path):
    from spiral_web import create_app

    app = create_app(
        {
            "data_dir": str(tmp_path / "q"),
            "fake_clock": True,
            "start_ticker": False,
            "quiet_hours": "07:00-09:00",
            "quiet_tz": "UTC",
        }
    )
    try:
        app.extensions["spiral"].clock.set(T0)  # 08:00 UTC
        breath = app.test_client().get("/api/breath").get_json()
    finally:
        app.extensions["spiral"].close()
    assert (breath["phase"], breath["phase_reason"], breath["resting"]) == (
        "night_hold",
        "quiet_hours",
        True,
    )
    assert breath["phase_ends_at"] == "2027-01-15T09:00:00.000Z"


# -- operations --------------------------------------------------------------------------------


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready", "checks": {"store": True}}


def test_readyz_fails_when_the_store_is_gone(client, spiral):
    spiral.store.close()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"] == {"store": False}


def test_metrics_are_prometheus_text(client):
    emit(client, phase="hold")
    emit(client, phase="hold")
    emit(client, phase="return")
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    assert resp.headers["Content-Type"].count("charset") == 1
    lines = resp.text.splitlines()
    assert "# TYPE spiral_glints_total counter" in lines
    assert 'spiral_glints_total{phase="hold"} 2.0' in lines
    assert 'spiral_glints_total{phase="return"} 1.0' in lines
    assert 'spiral_glints_total{phase="inhale"} 0.0' in lines
    assert "spiral_events_published_total 3.0" in lines
    assert "spiral_listeners 0.0" in lines
    assert 'spiral_climate{climate="clear"} 1.0' in lines


def test_test_clock_endpoint_moves_the_clock(client, clock):
    clock.set(T0)
    resp = client.post("/_test/clock", json={"advance": 16})
    assert resp.status_code == 200 and resp.get_json()["phase"] == "hold"
    assert client.post("/_test/clock", json={"set": T0}).get_json()["phase"] == "inhale"
    assert client.post("/_test/clock", json={}).status_code == 400


def test_test_clock_endpoint_is_absent_without_a_fake_clock(tmp_path):
    from spiral_web import create_app

    app = create_app({"data_dir": str(tmp_path / "real"), "start_ticker": False})
    try:
        resp = app.test_client().post("/_test/clock", json={"advance": 10})
    finally:
        app.extensions["spiral"].close()
    assert resp.status_code == 404


# -- OpenAPI -----------------------------------------------------------------------------------


def test_openapi_document_is_valid_3_1(client):
    resp = client.get("/api/openapi.json")
    assert resp.status_code == 200
    doc = resp.get_json()
    validate(doc)  # raises on an invalid document
    assert doc["openapi"].startswith("3.1")
    glint_in = doc["components"]["schemas"]["GlintIn"]
    assert glint_in["required"] == ["module"]
    assert set(glint_in["properties"]) == {"module", "phase", "context", "id", "parent_id"}
    assert glint_in["additionalProperties"] is False
    emit_op = doc["paths"]["/stream/glint"]["post"]
    assert emit_op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GlintIn"
    }
    assert {"200", "201", "400", "413", "415", "422"} <= set(emit_op["responses"])
    for path in (
        "/api/glints",
        "/api/glints/{glint_id}",
        "/api/glints/{glint_id}/lineage",
        "/api/stats",
        "/api/breath",
        "/stream",
    ):
        assert path in doc["paths"]

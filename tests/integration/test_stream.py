"""GET /stream: framing, live delivery, Last-Event-ID replay (with races), filters, heartbeat."""

from __future__ import annotations

import threading

import pytest

from spiral_web import create_app
from spiral_web.engine.glints import validate_glint

from ..sse import SSEReader, glint_frames, seqs
from ..support import emit

HEARTBEAT = 0.1


@pytest.fixture
def app(make_app):
    """As conftest's app, with a short heartbeat so a reader never blocks for long."""
    return make_app(heartbeat_seconds=HEARTBEAT)


@pytest.fixture
def open_stream(client):
    readers: list[SSEReader] = []

    def open_(path: str = "/stream", **kwargs) -> SSEReader:
        resp = client.get(path, buffered=False, **kwargs)
        assert resp.status_code == 200, resp.get_data()
        reader = SSEReader(resp)
        readers.append(reader)
        return reader

    yield open_
    for reader in readers:
        reader.close()


def emit_direct(spiral, n: int, module="a.b", phase="inhale") -> None:
    """Store n glints through the orchestrator (the same path, without HTTP): fast set-up."""
    data = validate_glint({"module": module, "phase": phase})
    for _ in range(n):
        spiral.orchestrator.emit(data, "test")


def test_stream_headers_and_greeting(open_stream, client):
    stream = open_stream()
    headers = stream.response.headers
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"
    frames = stream.until(lambda f: len(f) >= 2)
    assert frames[0].retry == 3000
    assert frames[1].event == "breath"
    assert frames[1].id is None  # breath events are not replayable
    assert frames[1].json() == client.get("/api/breath").get_json()


def test_live_glints_are_delivered_with_their_seq_as_id(open_stream, client):
    stream = open_stream()
    answers = [
        emit(client, "breath.emitter", phase, context={"n": i})
        for i, phase in enumerate(["inhale", "hold", "return"])
    ]
    got = stream.glints(3)
    assert seqs(got) == [a["seq"] for a in answers] == [1, 2, 3]
    for frame, answer in zip(got, answers, strict=True):
        assert frame.json() == client.get(f"/api/glints/{answer['id']}").get_json()
    assert "data: " + got[0].data in got[0].raw.decode()  # data is one line of JSON


def test_listeners_count_open_streams(open_stream, client, spiral):
    first = open_stream()
    open_stream()
    assert client.get("/api/stats").get_json()["listeners"] == 2
    assert emit(client)["listeners"] == 2
    first.close()
    assert spiral.hub.listeners == 1


def test_head_request_leaves_no_listener_behind(client, spiral):
    resp = client.head("/stream")
    resp.close()
    assert resp.status_code == 200
    assert spiral.hub.listeners == 0


@pytest.mark.parametrize(
    "how",
    [
        pytest.param({"headers": {"Last-Event-ID": "2"}}, id="header"),
        pytest.param({"query_string": {"lastEventId": "2"}}, id="query"),
        pytest.param(
            {"headers": {"Last-Event-ID": "2"}, "query_string": {"lastEventId": "4"}},
            id="header-wins",
        ),
    ],
)
def test_last_event_id_replays_what_was_missed(open_stream, client, how):
    for _ in range(5):
        emit(client)
    stream = open_stream(**how)
    assert seqs(stream.glints(3)) == [3, 4, 5]
    emit(client)
    assert seqs(stream.glints(4)) == [3, 4, 5, 6]


def test_resume_from_the_newest_replays_nothing(open_stream, client):
    for _ in range(3):
        emit(client)
    stream = open_stream(headers={"Last-Event-ID": "3"})
    stream.until(lambda f: any("heartbeat" in c for fr in f for c in fr.comments))
    assert glint_frames(stream.frames) == []
    emit(client)
    assert seqs(stream.glints(1)) == [4]


def test_glints_posted_between_replay_pages_are_sent_once_in_order(open_stream, client, spiral):
    emit_direct(spiral, 510)  # more than one 500-glint replay page
    stream = open_stream(headers={"Last-Event-ID": "0"})  # subscribed; replay not yet started
    emit(client)  # 511: stored and published before the replay reads anything
    stream.glints(500)  # the first page
    for _ in range(5):  # 512..516: land while the replay is between pages
        emit(client)
    stream.glints(516)
    for _ in range(3):  # 517..519: live only
        emit(client)
    assert seqs(stream.glints(519)) == list(range(1, 520))
    stream.until(lambda f: any("heartbeat" in c for c in f[-1].comments))
    assert len(glint_frames(stream.frames)) == 519  # no late duplicates either


def test_glints_posted_from_another_thread_during_replay(open_stream, app, spiral):
    emit_direct(spiral, 300)
    stream = open_stream(headers={"Last-Event-ID": "0"})
    failures: list[int] = []

    def poster() -> None:
        client = app.test_client()
        for _ in range(150):
            resp = client.post("/stream/glint", json={"module": "race.poster"})
            if resp.status_code != 201:
                failures.append(resp.status_code)

    thread = threading.Thread(target=poster)
    thread.start()
    try:
        got = stream.glints(450, timeout=20)
    finally:
        thread.join(30)
    assert failures == []
    assert seqs(got) == list(range(1, 451))


@pytest.mark.parametrize(
    ("query", "replayed", "live"),
    [
        pytest.param(
            {"module": "memory.*", "phase": "return"},
            ["g1", "g3"],
            ["h1", "h3"],
            id="module-glob-and-phase",
        ),
        pytest.param({"module": "memory.echo"}, ["g1", "g2"], ["h1", "h2"], id="module-exact"),
        pytest.param(
            {"phase": "return,hold"},
            ["g1", "g2", "g3", "g4", "g5"],
            ["h1", "h2", "h3", "h4", "h5"],
            id="phases-comma-separated",
        ),
        pytest.param(
            [("phase", "return"), ("phase", "hold")],
            ["g1", "g2", "g3", "g4", "g5"],
            ["h1", "h2", "h3", "h4", "h5"],
            id="phases-repeated",
        ),
        pytest.param(
            {"phase": "return"}, ["g1", "g3", "g4", "g5"], ["h1", "h3", "h4", "h5"], id="phase-only"
        ),
    ],
)
def test_filters_apply_to_replay_and_live(open_stream, client, query, replayed, live):
    # not memory.scroll: in return it would start the archival ritual
    rows = [
        ("memory.echo", "return"),
        ("memory.echo", "hold"),
        ("memory.deep.archive", "return"),
        ("memoryx.scroll", "return"),
        ("breath.emitter", "return"),
        ("shrine.system", "exhale"),
    ]
    for i, (module, phase) in enumerate(rows, start=1):
        emit(client, module, phase, id=f"g{i}")
    qs = list(query.items()) if isinstance(query, dict) else query
    stream = open_stream(query_string=qs + [("lastEventId", "0")])
    for i, (module, phase) in enumerate(rows, start=1):
        emit(client, module, phase, id=f"h{i}")
    emit(client, "memory.echo", "return", id="last")  # matches every filter above: a marker
    got = stream.until(lambda f: any(g.json()["id"] == "last" for g in glint_frames(f)))
    assert [g.json()["id"] for g in glint_frames(got)] == replayed + live + ["last"]
    assert seqs(glint_frames(got)) == sorted(seqs(glint_frames(got)))
    assert any(f.event == "breath" for f in got)  # breath events are never filtered out


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param(
            {"headers": {"Last-Event-ID": "abc"}}, "invalid_last_event_id", id="header-text"
        ),
        pytest.param(
            {"headers": {"Last-Event-ID": "-3"}}, "invalid_last_event_id", id="header-negative"
        ),
        pytest.param(
            {"query_string": {"lastEventId": "1.5"}}, "invalid_last_event_id", id="query-fraction"
        ),
        pytest.param({"query_string": {"phase": "dusk"}}, "invalid_filter", id="unknown-phase"),
        pytest.param({"query_string": {"module": "<script>"}}, "invalid_filter", id="bad-module"),
    ],
)
def test_bad_resume_points_and_filters_answer_400(client, spiral, kwargs, error):
    resp = client.get("/stream", **kwargs)
    assert resp.status_code == 400
    assert resp.mimetype == "application/json"
    assert resp.get_json()["error"] == error
    assert spiral.hub.listeners == 0


def test_heartbeat_comment_arrives(tmp_path):
    app = create_app(
        {
            "data_dir": str(tmp_path / "hb"),
            "fake_clock": True,
            "start_ticker": False,
            "heartbeat_seconds": 0.05,
        }
    )
    try:
        stream = SSEReader(app.test_client().get("/stream", buffered=False), timeout=5)
        frames = stream.until(lambda f: any(fr.comments for fr in f))
        assert frames[-1].comments == ["heartbeat"]
        assert frames[-1].raw == b": heartbeat"
        stream.close()
    finally:
        app.extensions["spiral"].close()


def test_a_stalled_listener_is_dropped_with_a_reason(tmp_path):
    app = create_app(
        {
            "data_dir": str(tmp_path / "small"),
            "fake_clock": True,
            "start_ticker": False,
            "heartbeat_seconds": HEARTBEAT,
            "hub_capacity": 4,
        }
    )
    spiral = app.extensions["spiral"]
    try:
        client = app.test_client()
        stream = SSEReader(client.get("/stream", buffered=False))
        for _ in range(6):  # nobody reads: the stream falls more than 4 events behind
            assert client.post("/stream/glint", json={"module": "a.b"}).status_code == 201
        frames = stream.read_to_end()
        assert frames[-1].event == "dropped"
        notice = frames[-1].json()
        assert notice["reason"] == "fell 6 events behind (buffer holds 4)"
        assert notice["last_id"] == -1  # nothing delivered yet: resume from the start
        assert spiral.hub.listeners == 0
        stream.close()
    finally:
        spiral.close()


def test_server_shutdown_ends_streams_with_a_notice(open_stream, spiral):
    stream = open_stream()
    stream.until(lambda f: len(f) >= 2)
    spiral.hub.close()
    frames = stream.read_to_end()
    assert frames[-1].event == "closing"

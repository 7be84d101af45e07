"""PostgreSQL down: ingest answers 503 with Retry-After and stores nothing, readiness says why,
streams stay open and catch up when it is back. And psycopg waits cooperatively under gevent."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from spiral_web import create_app
from spiral_web.engine.ports import RecordUnavailable
from spiral_web.store.postgres import PostgresStore

from ..pg import PostgresCluster
from ..sse import SSEReader, seqs


@pytest.fixture
def own_postgres():
    """A PostgreSQL of this test's own, to stop and start."""
    cluster = PostgresCluster().start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def app(own_postgres, tmp_path, monkeypatch):
    monkeypatch.setenv("SPIRAL_DATABASE_URL", own_postgres.create_database())
    app = create_app(
        {
            "data_dir": str(tmp_path / "data"),
            "fake_clock": True,
            "start_ticker": False,
            "heartbeat_seconds": 0.1,
        }  # fmt: skip
    )
    yield app
    app.extensions["spiral"].close()


def post(client, gid: str):
    return client.post("/stream/glint", json={"module": "outage.test", "id": gid})


def test_while_postgres_is_down_nothing_is_stored_and_everyone_is_told(app, own_postgres):
    client = app.test_client()
    assert [post(client, f"g{i}").status_code for i in range(2)] == [201, 201]
    live = SSEReader(client.get("/stream", buffered=False))
    live.until(lambda frames: any(f.event == "breath" for f in frames))
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)

    own_postgres.stop()
    refused = post(client, "lost")
    assert refused.status_code == 503
    assert refused.json["error"] == "record_unavailable" and "retry" in refused.json["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["checks"]["store"] is False
    assert "unreachable" in ready.json["why"]["store"]  # /readyz says why
    form = client.post(  # the dashboard's emit form: an inline message, the form kept
        "/dashboard/emit",
        data={"module": "outage.form", "context": "", "csrf_token": token},
        headers={"HX-Request": "true", "Sec-Fetch-Site": "same-origin"},
    )
    assert form.status_code == 503 and b"nothing was stored" in form.data
    assert b'id="emit-form"' in form.data
    assert "unreachable" in app.extensions["spiral"].problems()["store"]
    resuming = SSEReader(client.get("/stream", headers={"Last-Event-ID": "1"}, buffered=False))
    told = len(resuming.until(lambda fs: any(f.event == "unavailable" for f in fs)))
    resuming.until(lambda fs: len(fs) > told + 2)  # kept open: heartbeats go on

    own_postgres.start_again()
    assert client.get("/readyz").status_code == 200
    assert post(client, "after").json["seq"] == 3  # nothing of the refused glint was stored
    assert client.get("/api/glints/lost").status_code == 404
    assert seqs(resuming.glints(2)) == [2, 3]  # caught up from the record, then live
    assert seqs(live.glints(1)) == [3]
    live.close()
    resuming.close()


def test_an_unreachable_server_fails_fast_instead_of_hanging(own_postgres):
    url = own_postgres.create_database()
    store = PostgresStore(url)
    own_postgres.stop()
    try:
        with pytest.raises(RecordUnavailable):
            store.seq_bounds()
        assert store.ping() is False
    finally:
        store.close()
    with pytest.raises(RecordUnavailable):
        PostgresStore(url)


def test_psycopg_lets_other_greenlets_run_while_a_query_waits(postgres_url):
    """Under gevent's monkey-patching (as in gunicorn's gevent worker) a slow query must not
    stop the other greenlets: another one runs while it waits."""
    script = textwrap.dedent(
        f"""
        from gevent import monkey
        monkey.patch_all()
        import gevent
        from spiral_web.store.postgres import PostgresStore

        store = PostgresStore({postgres_url!r})
        order = []

        def slow():
            store._read("SELECT pg_sleep(0.5)")
            order.append("slow query done")

        def other():
            gevent.sleep(0.05)
            order.append("other greenlet ran")
            order.append(store.seq_bounds())

        gevent.joinall([gevent.spawn(slow), gevent.spawn(other)])
        print(order)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['other greenlet ran', (0, 0), 'slow query done']"

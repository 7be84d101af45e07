"""The `spiral` command against a real server: demo, emit, listen."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import orjson
import pytest
import requests

from spiral_web import cli
from spiral_web.cli import SEED_GLINTS
from tests.support import ServerProcess

ENV = {**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"}


def spiral(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spiral_web.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        check=False,
    )


def test_demo_prints_the_seed_output_with_real_ids(server):
    done = spiral("demo", "--url", server.url, "--timeout", "20")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    lines = [line.strip() for line in out.splitlines()]
    assert "✅ Glint sent successfully" in lines
    assert "Status: glint_broadcast" in lines
    assert "Listeners: 1" in lines
    received = [line for line in lines if line.startswith("🔄 Stream received glint:")]
    assert received == [
        f"🔄 Stream received glint: {module} | {phase}" for module, phase, _ in SEED_GLINTS
    ]
    assert "Stream sync: True" in lines
    assert "Total glints: 6" in lines  # the endpoint test glint and the five

    test_id = next(line.split(": ", 1)[1] for line in lines if line.startswith("ID: test-"))
    emitted = [line.split(": ", 1)[1] for line in lines if line.startswith("Glint ID: ")]
    echoed = [
        line.split(": ", 1)[1]
        for line in lines
        if line.startswith("ID: ") and not line.startswith("ID: test-")
    ]
    assert emitted == echoed and len(emitted) == 5
    stored = requests.get(f"{server.url}/api/glints", timeout=5).json()["glints"]
    assert [g["id"] for g in reversed(stored)] == [test_id, *emitted]
    assert [(g["module"], g["phase"]) for g in reversed(stored)][1:] == [
        (module, phase) for module, phase, _ in SEED_GLINTS
    ]
    contexts = [line for line in lines if line.startswith("Context: ")]
    assert contexts == [f"Context: {context}" for _, _, context in SEED_GLINTS]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One real server for the tests below: they do not need a fresh one (each start costs seconds),
    so they use their own ids and compare with what was there before."""
    proc = ServerProcess(tmp_path_factory.mktemp("cli"), env={"SPIRAL_FAKE_CLOCK": "1"}).start()
    yield proc
    proc.stop()


def last_seq(url: str) -> int:
    return requests.get(f"{url}/api/stats", timeout=5).json()["last_seq"]


def test_emit_prints_the_answer(shared, capsys):
    gid = f"cli-{uuid.uuid4().hex[:8]}"
    done = spiral(
        "emit",
        "memory.scroll",
        "--phase",
        "exhale",
        "--context",
        '{"k": [1, 2]}',
        "--id",
        gid,
        "--url",
        shared.url,
    )
    assert done.returncode == 0, done.stderr
    answer = orjson.loads(done.stdout)
    assert (answer["status"], answer["id"]) == ("glint_broadcast", gid)
    assert answer["seq"] == last_seq(shared.url)
    glint = requests.get(f"{shared.url}/api/glints/{gid}", timeout=5).json()
    assert (glint["module"], glint["phase"], glint["context"]) == (
        "memory.scroll",
        "exhale",
        {"k": [1, 2]},
    )

    # the same command in-process (no interpreter start-up): --parent-id and a repeated id
    assert cli.main(["emit", "memory.scroll", "--parent-id", gid, "--url", shared.url]) == 0
    child = orjson.loads(capsys.readouterr().out)
    assert (
        requests.get(f"{shared.url}/api/glints/{child['id']}", timeout=5).json()["parent_id"] == gid
    )
    retry = ["emit", "memory.scroll", "--phase", "exhale", "--context", '{"k": [1, 2]}']
    assert cli.main([*retry, "--id", gid, "--url", shared.url]) == 0
    assert orjson.loads(capsys.readouterr().out)["status"] == "glint_duplicate"
    # the same id with another body is a conflict, said in one line
    assert cli.main(["emit", "memory.scroll", "--id", gid, "--url", shared.url]) == 1
    assert "409 glint_conflict" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        pytest.param(
            ["a.b", "--context", "{nope"], 2, "--context must be a JSON object", id="bad-context"
        ),
        pytest.param(["Bad Module"], 1, "refused: 422 invalid_glint: module:", id="refused"),
    ],
)
def test_emit_reports_refusals(shared, capsys, args, code, says):
    before = requests.get(f"{shared.url}/api/stats", timeout=5).json()["total"]
    assert cli.main(["emit", *args, "--url", shared.url]) == code
    assert says in capsys.readouterr().err
    assert requests.get(f"{shared.url}/api/stats", timeout=5).json()["total"] == before


def test_listen_prints_json_lines_and_stops_after_count(shared):
    requests.post(f"{shared.url}/stream/glint", json={"module": "memory.old"}, timeout=5)
    # resuming from now means nothing is missed even if the emits below beat the connection
    listener = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spiral_web.cli",
            "listen",
            "--count",
            "1",
            "--module",
            "memory.*",
            "--last-event-id",
            str(last_seq(shared.url)),
            "--url",
            shared.url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        requests.post(
            f"{shared.url}/stream/glint", json={"module": "shrine.system"}, timeout=5
        )  # filtered out
        heard = spiral("emit", "memory.scroll", "--phase", "hold", "--url", shared.url)
        assert heard.returncode == 0, heard.stderr
        out, err = listener.communicate(timeout=30)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.communicate()
    assert listener.returncode == 0, err
    answer = orjson.loads(heard.stdout)
    events = [orjson.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "breath"
    glints = [e for e in events if e["event"] == "glint_emission"]
    assert [(g["id"], g["data"]["id"]) for g in glints] == [(str(answer["seq"]), answer["id"])]
    assert glints[0]["data"]["module"] == "memory.scroll"


def test_listen_resumes_from_last_event_id(shared):
    start = last_seq(shared.url)
    ids = [f"r-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for gid in ids:
        requests.post(f"{shared.url}/stream/glint", json={"module": "a.b", "id": gid}, timeout=5)
    done = spiral(
        "listen", "--count", "2", "--last-event-id", str(start + 1), "--url", shared.url, timeout=30
    )
    assert done.returncode == 0, done.stderr
    events = [orjson.loads(line) for line in done.stdout.splitlines()]
    glints = [e for e in events if e["event"] == "glint_emission"]
    assert [(g["id"], g["data"]["id"]) for g in glints] == [
        (str(start + 2), ids[1]),
        (str(start + 3), ids[2]),
    ]

"""The `spiral` command when the hub is not there: one clear line and a non-zero exit for emit,
a connection that says what it is doing for listen, and the address's setting documented."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ServerProcess, free_port

ENV = {**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"}
ENV.pop("SPIRAL_URL", None)


def spiral(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spiral_web.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or ENV,
        check=False,
    )


def test_emit_to_a_stopped_hub_says_so_in_one_line():
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    done = spiral("emit", "memory.scroll", "--url", url)
    assert done.returncode == 3
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert lines[0].startswith(f"spiral: cannot reach {url} (connection refused).")
    assert "SPIRAL_URL" in lines[0]


def test_spiral_url_is_the_default_address():
    url = f"http://127.0.0.1:{free_port()}"
    done = spiral("emit", "memory.scroll", env={**ENV, "SPIRAL_URL": url})
    assert done.returncode == 3 and f"cannot reach {url} " in done.stderr


@pytest.mark.parametrize("command", ["emit", "listen", "demo", "agent"])
def test_url_and_its_environment_are_documented(command):
    done = spiral(command, "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "--url URL the hub's address (default $SPIRAL_URL" in text
    if command in ("emit", "listen"):
        assert "SPIRAL_URL the hub's address" in text and "SPIRAL_TOKEN" in text


def test_listen_says_it_is_connecting_and_retrying_until_the_hub_is_up(tmp_path):
    server = ServerProcess(tmp_path / "server", env={"SPIRAL_FAKE_CLOCK": "1"})
    listener = subprocess.Popen(
        [sys.executable, "-m", "spiral_web.cli", "listen", "--url", server.url, "--count", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert listener.stderr is not None and listener.stdout is not None
        first = listener.stderr.readline()
        assert first.strip() == f"spiral: connecting to {server.url}/stream …"
        second = listener.stderr.readline()
        assert (
            second.strip() == "spiral: cannot connect (connection refused); retrying every second …"
        )
        server.start()
        third = listener.stderr.readline()
        assert third.strip() == f"spiral: connected to {server.url}/stream"
        greeting = listener.stdout.readline()  # the hub greets every listener with the breath
        assert '"event":"breath"' in greeting
        subprocess.run(
            [sys.executable, "-m", "spiral_web.cli", "emit", "cli.reach", "--url", server.url],
            env=ENV,
            check=True,
            capture_output=True,
            timeout=60,
        )
        assert listener.wait(30) == 0  # it ends by itself after --count 1
        assert '"module":"cli.reach"' in listener.stdout.read()
    finally:
        if listener.poll() is None:
            listener.kill()
        listener.wait(10)
        for stream in (listener.stdout, listener.stderr):
            if stream is not None:
                stream.close()
        server.stop()

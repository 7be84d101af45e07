"""`/ws` against a real `spiral serve` process (gunicorn, gevent worker), with websocket-client."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
import requests
import websocket

from tests.support import ServerProcess, emit

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Iterator[ServerProcess]:
    """One server for the tests that neither stop nor reconfigure it; each uses its own modules."""
    proc = ServerProcess(
        tmp_path_factory.mktemp("ws") / "server", env={"SPIRAL_FAKE_CLOCK": "1"}
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(autouse=True)
def _every_socket_is_cleaned_up(request) -> Iterator[None]:
    """After each test on the shared server, its sockets are closed and no listener is left."""
    yield
    if "hub" in request.fixturenames:
        wait_for_listeners(request.getfixturevalue("hub").url, 0)


class Socket:
    """A websocket-client connection that speaks Spiral's JSON frames."""

    def __init__(self, url: str, **options: Any) -> None:
        self.ws = websocket.create_connection(
            url.replace("http://", "ws://") + "/ws", timeout=TIMEOUT, **options
        )

    def send(self, frame: Any) -> None:
        self.ws.send(frame if isinstance(frame, str) else orjson.dumps(frame).decode())

    def recv(self) -> dict[str, Any]:
        return orjson.loads(self.ws.recv())

    def until(self, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Frames up to and including the first for which `done` is true."""
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                frames.append(self.recv())
            except websocket.WebSocketTimeoutException:
                break
            if done(frames[-1]):
                return frames
        raise AssertionError(f"not seen in {TIMEOUT}s; got {[_brief(f) for f in frames]}")

    def subscribe(self, **fields: Any) -> list[dict[str, Any]]:
        """Subscribe; returns the answer and the breath greeting."""
        self.send({"type": "subscribe", **fields})
        frames = [self.recv(), self.recv()]
        assert frames[0]["type"] == "subscribed", frames
        assert frames[1]["event"] == "breath" and frames[1]["id"] is None, frames
        return frames

    def close_frame(self) -> tuple[int, str]:
        """Read until the server's close frame; its (code, reason)."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            opcode, frame = self.ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else None
                return code, frame.data[2:].decode()
        raise AssertionError("no close frame")

    def close(self) -> None:
        self.ws.close()
        self.ws.shutdown()  # close() skips this once a close frame was read


def _brief(frame: dict[str, Any]) -> Any:
    return frame.get("type") or (frame.get("event"), frame.get("id"))


@contextmanager
def connect(url: str, **options: Any) -> Iterator[Socket]:
    sock = Socket(url, **options)
    try:
        yield sock
    finally:
        sock.close()


def listeners(url: str) -> int:
    return requests.get(f"{url}/api/stats", timeout=TIMEOUT).json()["listeners"]


def wait_for_listeners(url: str, count: int, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while (now := listeners(url)) != count:
        assert time.monotonic() < deadline, f"{now} listeners, expected {count}"
        time.sleep(0.02)


def glint_ids(frames: list[dict[str, Any]]) -> list[str]:
    return [f["data"]["id"] for f in frames if f.get("event") == "glint_emission"]


def test_subscribe_then_emit_on_the_same_socket(hub):
    with connect(hub.url) as ws:
        subscribed, breath = ws.subscribe(module="wsemit.*")
        assert subscribed == {
            "type": "subscribed",
            "ref": None,
            "module": "wsemit.*",
            "phase": [],
            "last_event_id": None,
        }
        assert breath["data"]["phase"] in ("inhale", "hold", "exhale", "return", "night_hold")

        ws.send(
            {
                "type": "emit",
                "ref": "r1",
                "glint": {"module": "wsemit.probe", "phase": "hold", "context": {"n": 1}},
            }
        )
        # the answer and the broadcast travel separately: either may come first
        frames = [ws.recv(), ws.recv()]
        answer = next(f for f in frames if f.get("type") == "emit_result")
        event = next(f for f in frames if f.get("event") == "glint_emission")
        assert answer["ref"] == "r1" and answer["status"] == "glint_broadcast"
        assert answer["listeners"] == 1 and isinstance(answer["seq"], int)
        assert event["id"] == answer["seq"]
        assert event["data"]["id"] == answer["id"]
        assert event["data"]["context"] == {"n": 1} and event["data"]["phase"] == "hold"

        # stored like any other glint, and a repeated id is not broadcast twice
        assert (
            requests.get(f"{hub.url}/api/glints/{answer['id']}", timeout=TIMEOUT).status_code == 200
        )
        retry = {"id": answer["id"], "module": "wsemit.probe", "context": {"n": 1}}
        ws.send({"type": "emit", "ref": "r2", "glint": retry})
        assert ws.recv() == {
            "type": "emit_result",
            "ref": "r2",
            "status": "glint_duplicate",
            "id": answer["id"],
            "seq": answer["seq"],
            "listeners": 1,
        }

        # glints posted over HTTP arrive too
        posted = emit(hub.url, "wsemit.http")
        assert (
            ws.until(lambda f: f.get("event") == "glint_emission")[-1]["data"]["id"] == posted["id"]
        )


def test_answers_come_in_the_order_of_the_frames(hub):
    with connect(hub.url) as ws:
        ws.send({"type": "ping", "ref": 1})
        ws.send({"type": "subscribe", "ref": 2, "module": "wsorder.*"})
        ws.send({"type": "emit", "ref": 3, "glint": {"module": "wsorder.a"}})
        frames = [ws.recv() for _ in range(5)]
    assert [f.get("type") or f["event"] for f in frames[:3]] == ["pong", "subscribed", "breath"]
    assert [f["ref"] for f in frames[:2]] == [1, 2]
    # then the answer to the emit and its broadcast, in either order
    assert sorted(f.get("type") or f["event"] for f in frames[3:]) == [
        "emit_result",
        "glint_emission",
    ]


def test_emit_is_validated_like_the_post(hub):
    with connect(hub.url) as ws:
        ws.send({"type": "emit", "ref": 7, "glint": {"module": "Not A Module", "surprise": 1}})
        error = ws.recv()
        assert error["type"] == "error" and error["ref"] == 7
        assert error["error"] == "invalid_glint"
        assert {d["field"] for d in error["details"]} == {"module", "surprise"}

        ws.send({"type": "emit", "glint": {"module": "wsvalid.x", "parent_id": "no-such-glint"}})
        error = ws.recv()
        assert error["error"] == "invalid_glint" and "parent" in error["message"]

        ws.send({"type": "emit", "ref": "no-glint"})
        assert ws.recv()["message"] == "a glint must be a JSON object"
    assert (
        requests.get(
            f"{hub.url}/api/glints", params={"module": "wsvalid.x"}, timeout=TIMEOUT
        ).json()["glints"]
        == []
    )


def test_reconnecting_with_last_event_id_gets_exactly_what_was_missed(hub):
    with connect(hub.url) as ws:
        ws.subscribe(module="wsresume.*")
        seen = [emit(hub.url, "wsresume.a", context={"n": n}) for n in range(3)]
        frames = ws.until(lambda f: f.get("data", {}).get("id") == seen[-1]["id"])
        assert glint_ids(frames) == [g["id"] for g in seen]
        last = frames[-1]["id"]
    emit(hub.url, "wsother.noise")  # filtered out, on replay as live
    missed = [emit(hub.url, "wsresume.b", context={"n": n}) for n in range(3)]

    with connect(hub.url) as ws:
        subscribed, _ = ws.subscribe(module="wsresume.*", last_event_id=last)
        assert subscribed["last_event_id"] == last
        frames = ws.until(
            lambda f: f.get("event") == "glint_emission" and f["data"]["id"] == missed[-1]["id"]
        )
        marker = emit(hub.url, "wsresume.marker")
        frames += ws.until(lambda f: f.get("data", {}).get("id") == marker["id"])
    assert glint_ids(frames) == [g["id"] for g in missed] + [marker["id"]]
    seqs = [f["id"] for f in frames if f.get("event") == "glint_emission"]
    assert seqs == sorted(seqs) and seqs[0] > last


def test_a_resume_point_given_as_a_string_works_too(hub):
    first = emit(hub.url, "wsresumestr.a")
    second = emit(hub.url, "wsresumestr.a")
    with connect(hub.url) as ws:
        ws.subscribe(module="wsresumestr.*", last_event_id=str(first["seq"]))
        assert ws.recv()["data"]["id"] == second["id"]


def test_filters_by_module_glob_and_phases(hub):
    with connect(hub.url) as ws:
        subscribed, _ = ws.subscribe(module="wsfilter.mem*", phase=["return", "hold"])
        assert subscribed["phase"] == ["hold", "return"]
        emit(hub.url, "wsfilter.memory", "inhale")
        emit(hub.url, "wsfilter.other", "return")
        wanted = [
            emit(hub.url, "wsfilter.memory", "return"),
            emit(hub.url, "wsfilter.memo", "hold"),
        ]
        emit(hub.url, "wsfilter.memory", "night_hold")
        marker = emit(hub.url, "wsfilter.memory", "hold", context={"marker": True})
        frames = ws.until(lambda f: f.get("data", {}).get("id") == marker["id"])
    assert glint_ids(frames) == [g["id"] for g in wanted] + [marker["id"]]


def test_one_phase_as_a_string(hub):
    with connect(hub.url) as ws:
        ws.subscribe(module="wsphase.*", phase="exhale")
        emit(hub.url, "wsphase.a", "inhale")
        marker = emit(hub.url, "wsphase.a", "exhale")
        assert glint_ids(ws.until(lambda f: f.get("event") == "glint_emission")) == [marker["id"]]


def test_a_second_subscribe_replaces_the_first(hub):
    with connect(hub.url) as ws:
        ws.subscribe(module="wsfirst.*")
        wait_for_listeners(hub.url, 1)
        ws.subscribe(module="wssecond.*")
        wait_for_listeners(hub.url, 1)
        emit(hub.url, "wsfirst.a")
        marker = emit(hub.url, "wssecond.a")
        assert glint_ids(ws.until(lambda f: f.get("event") == "glint_emission")) == [marker["id"]]


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        pytest.param("not json", "invalid_json", id="not-json"),
        pytest.param("[1, 2]", "invalid_frame", id="not-an-object"),
        pytest.param({"ref": "x"}, "unknown_type", id="no-type"),
        pytest.param({"type": "shout"}, "unknown_type", id="unknown-type"),
        pytest.param({"type": ["ping"]}, "unknown_type", id="type-not-a-string"),
        pytest.param({"type": "ping", "extra": 1}, "invalid_frame", id="unexpected-field"),
        pytest.param({"type": "ping", "ref": {"a": 1}}, "invalid_frame", id="bad-ref"),
        pytest.param(
            {"type": "subscribe", "module": "a b"}, "invalid_filter", id="bad-module-filter"
        ),
        pytest.param({"type": "subscribe", "phase": "dusk"}, "invalid_filter", id="unknown-phase"),
        pytest.param(
            {"type": "subscribe", "phase": [1]}, "invalid_filter", id="phase-not-a-string"
        ),
        pytest.param(
            {"type": "subscribe", "last_event_id": -1},
            "invalid_last_event_id",
            id="negative-resume",
        ),
        pytest.param(
            {"type": "subscribe", "last_event_id": "ten"}, "invalid_last_event_id", id="word-resume"
        ),
        pytest.param(
            {"type": "subscribe", "last_event_id": 1.5}, "invalid_last_event_id", id="float-resume"
        ),
        pytest.param({"type": "emit", "glint": [1]}, "invalid_glint", id="glint-not-an-object"),
    ],
)
def test_a_bad_frame_gets_an_error_and_the_socket_stays_open(hub, frame, error):
    with connect(hub.url) as ws:
        ws.send(frame)
        answer = ws.recv()
        assert answer["type"] == "error" and answer["error"] == error, answer
        assert answer["message"]
        ws.send({"type": "ping", "ref": "still-there"})
        assert ws.recv() == {"type": "pong", "ref": "still-there"}
    assert listeners(hub.url) == 0  # a refused subscribe does not leave a listener behind


def test_an_oversized_frame_closes_the_socket_with_1009(hub):
    with connect(hub.url) as ws:
        ws.send({"type": "emit", "glint": {"module": "wsbig.x", "context": {"pad": "x" * 17_000}}})
        code, reason = ws.close_frame()
    assert code == 1009 and reason
    assert (
        requests.get(f"{hub.url}/api/glints", params={"module": "wsbig.x"}, timeout=TIMEOUT).json()[
            "glints"
        ]
        == []
    )


def test_a_frame_within_the_bound_is_accepted(hub):
    with connect(hub.url) as ws:
        ws.send(
            {
                "type": "emit",
                "glint": {"module": "wsbig.ok", "context": {"a": "x" * 4000, "b": "y" * 4000}},
            }
        )
        answer = ws.recv()
        assert answer.get("status") == "glint_broadcast", answer


def test_listener_count_goes_up_and_back_down(hub):
    assert listeners(hub.url) == 0
    with connect(hub.url) as ws:
        assert listeners(hub.url) == 0  # connected, not yet subscribed
        ws.subscribe()
        assert listeners(hub.url) == 1
        with connect(hub.url) as other:
            other.subscribe(module="wscount.*")
            assert emit(hub.url, "wscount.a")["listeners"] == 2
        wait_for_listeners(hub.url, 1)
    wait_for_listeners(hub.url, 0)


def test_a_client_that_vanishes_without_a_close_frame_is_cleaned_up(hub):
    ws = Socket(hub.url)
    ws.subscribe()
    assert listeners(hub.url) == 1
    ws.ws.sock.shutdown(socket.SHUT_RDWR)  # the network goes away: no close handshake
    ws.ws.sock.close()
    wait_for_listeners(hub.url, 0)


@pytest.fixture
def tight_server(tmp_path) -> Iterator[Callable[[float], ServerProcess]]:
    """Servers with small socket buffers and a short hub ring, so that stalls show at once."""
    started: list[ServerProcess] = []

    def start(send_timeout: float) -> ServerProcess:
        config = tmp_path / f"spiral-{len(started)}.toml"
        config.write_text(f"[ws]\nsend_timeout = {send_timeout}\nsend_buffer = 4096\n")
        proc = ServerProcess(
            tmp_path / f"server-{len(started)}",
            env={
                "SPIRAL_FAKE_CLOCK": "1",
                "SPIRAL_CONFIG": str(config),
                "SPIRAL_HUB_CAPACITY": "32",
                "SPIRAL_HEARTBEAT_SECONDS": "0.3",
            },
        )
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


class Drain:
    """Reads a healthy socket's glints in a thread, as fast as they come, until one of a module."""

    def __init__(self, sock: Socket, until_module: str) -> None:
        self.sock, self.until_module = sock, until_module
        self.glints: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 3 * TIMEOUT
        while time.monotonic() < deadline:
            try:
                frame = self.sock.recv()
            except (websocket.WebSocketException, OSError):
                return
            if frame.get("event") == "glint_emission":
                self.glints.append(frame["data"]["id"])
                if frame["data"]["module"] == self.until_module:
                    return

    def join(self) -> list[str]:
        self.thread.join(3 * TIMEOUT)
        return self.glints


SMALL_RCVBUF = {"sockopt": ((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)}


def fill(url: str, module: str, n: int) -> None:
    """Post `n` glints of 7 KB: more than a stalled peer's socket buffers hold."""
    with requests.Session() as s:
        for _ in range(n):
            assert (
                s.post(
                    f"{url}/stream/glint",
                    json={"module": module, "context": {"a": "x" * 3500, "b": "y" * 3500}},
                    timeout=TIMEOUT,
                ).status_code
                == 201
            )


def test_a_stalled_socket_is_dropped_without_holding_up_the_others(tight_server):
    url = tight_server(0.5).url
    stalled = Socket(url, **SMALL_RCVBUF)
    try:
        stalled.subscribe()
        with connect(url) as healthy:
            healthy.subscribe()
            reader = Drain(healthy, until_module="wsstall.end")
            fill(url, "wsstall.pad", 20)
            wait_for_listeners(url, 1)  # the stalled one is gone, the healthy one stays
            emit(url, "wsstall.end")
            assert len(reader.join()) == 21
        wait_for_listeners(url, 0)
    finally:
        stalled.ws.sock.close()


def test_a_listener_that_falls_behind_gets_a_dropped_notice_then_a_close(tight_server):
    url = tight_server(10.0).url
    # A second, healthy listener keeps the share of lagging listeners at one half: one lagging
    # alone would count as saturation (usage 1.0) and the throttle would refuse the posts below.
    with connect(url, **SMALL_RCVBUF) as slow, connect(url) as healthy:
        slow.subscribe()
        healthy.subscribe()
        healthy.until(lambda f: f.get("type") == "heartbeat")  # quiet for a while: a heartbeat
        reader = Drain(healthy, until_module="wsdrop.end")
        fill(url, "wsdrop.pad", 6)  # the slow one's sender now waits on its full socket ...
        for n in range(40):  # ... while the hub moves on by more than its ring keeps (32)
            emit(url, "wsdrop.more", context={"n": n})
        emit(url, "wsdrop.end")
        frames = slow.until(lambda f: f.get("event") == "dropped")
        code, reason = slow.close_frame()
        assert len(reader.join()) == 47
    dropped = frames[-1]["data"]
    assert "behind" in dropped["reason"] and isinstance(dropped["last_id"], int)
    assert code == 1008 and "behind" in reason
    seqs = [f["id"] for f in frames if f.get("event") == "glint_emission"]
    assert seqs == sorted(seqs) and seqs[-1] == dropped["last_id"]  # the point to resume from
    wait_for_listeners(url, 0)


def test_a_server_shutdown_sends_closing_then_1001(server):
    with connect(server.url) as ws:
        ws.subscribe()
        server.stop()
        notice = ws.until(lambda f: f.get("event") == "closing")[-1]
        code, reason = ws.close_frame()
    assert notice["id"] is None and "reconnect" in notice["data"]["reason"]
    assert code == 1001 and "shutting down" in reason

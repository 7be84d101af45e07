"""The `spiral` command: serve, emit, listen, demo, agent."""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

DEFAULT_URL = os.environ.get("SPIRAL_URL", "http://127.0.0.1:5056")
URL_HELP = "the hub's address (default $SPIRAL_URL, else http://127.0.0.1:5056; now: %(default)s)"
ENVIRONMENT = """environment:
  SPIRAL_URL     the hub's address for emit, listen, demo and agent (default http://127.0.0.1:5056)
  SPIRAL_TOKEN   the token sent as Authorization: Bearer … (publish for emit, read for listen)
  SPIRAL_*       serve's settings (see the README's Configuration)"""


RAW = argparse.RawDescriptionHelpFormatter

SEED_GLINTS: list[tuple[str, str, dict[str, Any]]] = [
    ("breath.emitter", "inhale", {"intention": "morning_emergence", "saturation": 0.1}),
    ("memory.scroll", "hold", {"action": "reflection", "depth": "contemplative"}),
    ("glint.orchestrator", "exhale", {"route": "stream_sync", "targets": "all_listeners"}),
    ("shrine.system", "return", {"glow": "steady", "resonance": "ceremonial"}),
    ("whisper.steward", "night_hold", {"whisper": "rest", "caesura": True}),
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="spiral",
        description="Spiral: a real-time glint hub",
        epilog=ENVIRONMENT,
        formatter_class=RAW,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the hub and dashboard (gunicorn, gevent worker)")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 5056)")
    p.add_argument(
        "--data-dir", default=None, help="where the SQLite file lives (default ./spiral-data)"
    )
    p.add_argument("--config", default=None, help="TOML configuration file")
    p.add_argument(
        "--workers", type=int, default=None, help="gunicorn workers (default 1; more need Redis)"
    )
    p.add_argument(
        "--open",
        action="store_true",
        help="allow binding a non-loopback address without publish tokens "
        "(SPIRAL_OPEN=1 does the same)",
    )
    p.add_argument("--log-level", default=None, help="default info (SPIRAL_LOG_LEVEL)")

    p = sub.add_parser("emit", help="emit one glint", epilog=ENVIRONMENT, formatter_class=RAW)
    p.add_argument(
        "module", help="who sends it: lowercase words joined by dots, e.g. memory.scroll"
    )
    p.add_argument(
        "--phase", help="inhale, hold, exhale, return or night_hold (default: the hub's)"
    )
    p.add_argument("--context", default="{}", help="a JSON object (at most 8 KiB)")
    p.add_argument("--id", help="an idempotency key: sending the same id again stores it once")
    p.add_argument("--parent-id", help="the stored glint this one answers")
    p.add_argument("--url", default=DEFAULT_URL, help=URL_HELP)
    p.add_argument(
        "--token",
        default=os.environ.get("SPIRAL_TOKEN"),
        help="publish token (default $SPIRAL_TOKEN)",
    )

    p = sub.add_parser(
        "listen",
        help="print the stream (JSON lines), resuming after drops",
        epilog=ENVIRONMENT,
        formatter_class=RAW,
    )
    p.add_argument("--module", help="only glints of this module (a glob: memory.*)")
    p.add_argument("--phase", help="only glints of this phase")
    p.add_argument("--last-event-id", help="start after this event id (a seq)")
    p.add_argument("--count", type=int, default=0, help="stop after this many glints (0: never)")
    p.add_argument("--url", default=DEFAULT_URL, help=URL_HELP)
    p.add_argument(
        "--token",
        default=os.environ.get("SPIRAL_TOKEN"),
        help="read token, when the server asks for one (default $SPIRAL_TOKEN)",
    )

    p = sub.add_parser(
        "demo", help="the seed's glint↔stream synchronization test, against a server"
    )
    p.add_argument("--url", default=DEFAULT_URL, help=URL_HELP)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each step")
    p.add_argument(
        "--token",
        default=os.environ.get("SPIRAL_TOKEN"),
        help="publish token (default $SPIRAL_TOKEN)",
    )

    p = sub.add_parser("agent", help="run an agent (a spiral_web.client.Agent subclass)")
    p.add_argument(
        "target", metavar="module:Class", help="e.g. examples.memory_keeper:MemoryKeeper"
    )
    p.add_argument("--url", default=DEFAULT_URL, help=URL_HELP)
    p.add_argument(
        "--token",
        default=os.environ.get("SPIRAL_TOKEN"),
        help="bearer token for emitting (default $SPIRAL_TOKEN)",
    )
    p.add_argument("--last-event-id", help="resume the stream after this id")
    p.add_argument("--log-level", default="info")

    from .store import copy as db  # `spiral db copy --to postgresql://…`

    db.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":  # before anything imports ssl: gevent patches it in the worker
        return _serve(args)
    import requests

    from .client import SpiralError

    try:
        commands = {"emit": _emit, "listen": _listen, "demo": _demo, "agent": _agent, "db": db.main}
        return commands[args.command](args)
    except SpiralError as exc:
        print(f"spiral: refused: {exc}", file=sys.stderr)
        return 1
    except (requests.ConnectionError, requests.Timeout) as exc:
        # One line, not urllib3's traceback: where, why in a few words, and what to check.
        print(
            f"spiral: cannot reach {args.url} ({unreachable(exc)}). Is `spiral serve` running "
            "there? Set --url or SPIRAL_URL to the hub's address.",
            file=sys.stderr,
        )
        return 3
    except KeyboardInterrupt:
        return 130


def unreachable(exc: BaseException | str) -> str:
    """Why a request did not reach the server, in a few words: "connection refused"."""
    text = str(exc)
    for needle, words in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("Failed to resolve", "unknown host"),
        ("No route to host", "no route to host"),
        ("Connection reset", "connection reset"),
        ("ChunkedEncodingError", "the stream was cut"),
        ("Timeout", "no answer in time"),
        ("timed out", "no answer in time"),
    ):
        if needle in text or needle in type(exc).__name__:
            return words
    return "the connection failed"


def _serve(args: argparse.Namespace) -> int:
    from .config import Config
    from .server import bind_address, serve

    overrides: dict[str, Any] = {
        k: v
        for k, v in (
            ("host", args.host),
            ("port", args.port),
            ("data_dir", args.data_dir),
            ("config_file", args.config),
            ("workers", args.workers),
            ("log_level", args.log_level),
        )
        if v is not None
    }
    if args.open:
        overrides["open"] = True  # the workers' create_app checks again, and must agree
    try:
        config = Config.load(overrides)
    except ValueError as exc:  # ConfigError, or a ritual's RitualConfigError
        print(f"spiral: configuration error: {exc}", file=sys.stderr)
        return 2
    problem = config.exposure_problem()
    if problem:
        print(f"spiral: {problem}", file=sys.stderr)
        return 2
    print(
        f"Spiral dashboard on http://{bind_address(config.host, config.port)}/ "
        f"(data in {config.db_path})",
        flush=True,
    )
    serve(
        config.host,
        config.port,
        workers=config.workers,
        overrides=overrides,
        log_level=config.log_level,
        config=config,
    )
    return 0


def _emit(args: argparse.Namespace) -> int:
    from .client import emit_glint

    try:
        context = orjson.loads(args.context)
    except orjson.JSONDecodeError:
        print("spiral: --context must be a JSON object", file=sys.stderr)
        return 2
    answer = emit_glint(
        args.module,
        args.phase,
        context,
        id=args.id,
        parent_id=args.parent_id,
        url=args.url,
        token=args.token,
    )
    print(orjson.dumps(answer).decode())
    return 0


def _listen(args: argparse.Namespace) -> int:
    """The stream as JSON lines on stdout; on stderr, what the connection is doing (connecting,
    connected, retrying and why), so a hub that is down is not an unexplained silence."""
    from .client import listen

    seen = 0
    for event in listen(
        args.url,
        module=args.module,
        phase=args.phase,
        last_event_id=args.last_event_id,
        token=args.token,
        on_status=ConnectionNotes(),
    ):
        print(
            orjson.dumps({"event": event.event, "id": event.id, "data": event.data}).decode(),
            flush=True,
        )
        if event.event == "glint_emission":
            seen += 1
            if args.count and seen >= args.count:
                return 0
    return 0


class ConnectionNotes:
    """Prints a Listener's connection state to stderr: each change once, and a reminder every
    RETRY_NOTE seconds while it keeps failing (not one line per attempt)."""

    RETRY_NOTE = 10.0

    def __init__(self) -> None:
        self.failing_since: float | None = None
        self.noted = 0.0

    def __call__(self, state: str, detail: str) -> None:
        now = time.monotonic()
        if state == "connecting":
            _note(f"connecting to {detail} …")
        elif state == "connected":
            if self.failing_since is not None or not self.noted:
                _note(f"connected to {detail}")
            self.failing_since, self.noted = None, now
        elif state == "retrying":
            if self.failing_since is None:
                self.failing_since, self.noted = now, now
                _note(f"cannot connect ({unreachable(detail)}); retrying every second …")
            elif now - self.noted >= self.RETRY_NOTE:
                self.noted = now
                waited = round(now - self.failing_since)
                _note(f"still retrying ({unreachable(detail)}, for {waited} s) …")


def _note(text: str) -> None:
    print(f"spiral: {text}", file=sys.stderr, flush=True)


def _agent(args: argparse.Namespace) -> int:
    """Import `module:Class`, check it is an Agent, and run it until SIGINT or SIGTERM."""
    import importlib
    import logging
    import signal

    from .client import Agent
    from .engine.rules import RuleError

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module_name, _, class_name = args.target.partition(":")
    if not module_name or not class_name:
        print(
            "spiral: name the agent as module:Class, e.g. examples.memory_keeper:MemoryKeeper",
            file=sys.stderr,
        )
        return 2
    if os.getcwd() not in sys.path:  # so that `examples.x` imports from a checkout
        sys.path.insert(0, os.getcwd())
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        print(f"spiral: cannot import {args.target}: {exc}", file=sys.stderr)
        return 2
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        print(
            f"spiral: {args.target} is not a subclass of spiral_web.client.Agent", file=sys.stderr
        )
        return 2
    try:
        agent = cls(args.url, token=args.token, last_event_id=args.last_event_id)
    except (ValueError, RuleError) as exc:
        print(f"spiral: {args.target} is not a valid agent: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    print(
        f"{cls.__name__} ({agent.module}) listening to {args.url}, acting in "
        f"{', '.join(sorted(agent.phases))}",
        file=sys.stderr,
        flush=True,
    )
    agent.run()  # Ctrl-C ends it through main()'s KeyboardInterrupt (exit status 130)
    return 0


def _demo(args: argparse.Namespace) -> int:
    """The seed's synchronization test, against a running server, with real ids and figures."""
    from .client import emit_glint, listen

    url = args.url.rstrip("/")
    print("🫧 Spiral Glint↔Stream Synchronization Test")
    print(f"Make sure the Spiral server (spiral serve) is running on {url}")
    print()

    received: queue.Queue[Any] = queue.Queue()
    connected = threading.Event()

    def monitor() -> None:
        try:
            for event in listen(
                url, reconnect=False, read_timeout=args.timeout + 20, token=args.token
            ):
                if event.event == "breath":
                    connected.set()  # the server greets every listener with the breath state
                elif event.event == "glint_emission":
                    received.put(event.data)
        except Exception as exc:  # shown to the user by the main thread
            received.put(exc)
        finally:
            connected.set()

    threading.Thread(target=monitor, name="spiral-demo-monitor", daemon=True).start()
    if not connected.wait(args.timeout):
        print(f"❌ Could not connect to {url}/stream", file=sys.stderr)
        return 1

    print("🧪 Testing Stream Glint Endpoint")
    print("=" * 50)
    test_id = f"test-{uuid.uuid4().hex[:6]}"
    try:
        answer = emit_glint(
            "glint.orchestrator",
            None,
            {"test": "stream_endpoint"},
            id=test_id,
            url=url,
            token=args.token,
        )
    except Exception as exc:
        print(f"❌ Glint failed: {exc}", file=sys.stderr)
        return 1
    print("✅ Glint sent successfully")
    print(f"   Status: {answer['status']}")
    print(f"   ID: {answer['id']}")
    print(f"   Listeners: {answer['listeners']}")
    print()
    if not _await_glint(received, answer["id"], args.timeout):
        print("❌ The stream did not deliver the test glint", file=sys.stderr)
        return 1

    print("🌊 Monitoring Breath Stream for Glint Emissions")
    print("=" * 50)
    print("🔄 Testing Glint↔Stream Synchronization")
    print("=" * 50)
    for module, phase, context in SEED_GLINTS:
        print(f"✨ Emitting glint: {module} | {phase}")
        answer = emit_glint(module, phase, context, id=str(uuid.uuid4()), url=url, token=args.token)
        print(f"   Glint ID: {answer['id']}")
        glint = _await_glint(received, answer["id"], args.timeout)
        if glint is None:
            print(f"❌ The stream did not deliver glint {answer['id']}", file=sys.stderr)
            return 1
        print(f"🔄 Stream received glint: {glint['module']} | {glint['phase']}")
        print(f"   ID: {glint['id']}")
        print(f"   Context: {glint['context']}")
        print()

    import requests

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    stats = requests.get(f"{url}/api/stats", timeout=args.timeout, headers=headers).json()
    print("📊 Glint Statistics:")
    print(f"   Total glints: {stats['total']}")
    print(f"   By phase: {stats['by_phase']}")
    print(f"   By module: {stats['by_module']}")
    print(f"   Stream sync: {stats['stream_sync']}")
    return 0


def _await_glint(received: queue.Queue[Any], gid: str, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            item = received.get(timeout=left)
        except queue.Empty:
            return None
        if isinstance(item, Exception):
            print(f"❌ Stream error: {item}", file=sys.stderr)
            return None
        if item.get("id") == gid:
            return item
    return None


if __name__ == "__main__":
    sys.exit(main())

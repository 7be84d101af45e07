"""The gate every request passes before Flask sees it (a WSGI middleware): the Host it names, and
its body, read whole within a deadline.

**Host names (DNS rebinding).** A page at `rebind.evil.example`, a name its owner then points at
127.0.0.1, is same-origin with itself: the browser lets it send anything to Spiral and read the
answers. Only the Host header gives it away, so a request naming a host that is not allowed is
answered `400 host_not_allowed` before anything else runs. Allowed: `localhost`, any IP address
(a page cannot have an address for its origin and be the attacker's: an address is never
resolved, so nothing can be rebound), and the names of SPIRAL_ALLOWED_HOSTS (`name`, `.name` or
`*.name` for the name and its subdomains, `*` for any). A server beyond loopback is reached by its
address as is; a name for it must be listed. A request without a Host header (HTTP/1.0) passes:
browsers always send one.

**Bodies (slow senders).** gunicorn's gevent worker reads a body only when the app reads
`wsgi.input`, with no deadline: a client that sends its headers and then a byte a second holds a
connection, a greenlet and a file descriptor for as long as it likes. Here the body is read up
front, whole, under one deadline (`body_timeout`, SPIRAL_BODY_TIMEOUT, 10 s); a body that has not
arrived by then is answered `408 request_timeout`, and gunicorn closes the connection after its
keep-alive wait (it cannot tell where the next request would start). The deadline needs gevent's
cooperative sockets (the gevent worker); elsewhere (the test client, `flask run`) the body is
read up front without one. A body larger than `max_body_bytes` is not read: Flask answers 413.

**Then** `POST /stream/glint` goes to web/ingest.py (the same checks and answers as its Flask view,
without Flask's cost per request), and everything else to Flask.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson

from ..config import Config

if TYPE_CHECKING:
    from .ingest import Ingest

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_-]{1,63})*")
_PORT = re.compile(r"\d{1,5}")
_CHUNK = 64 * 1024
_LATE = object()  # _read_body: the body did not arrive within the deadline


class Hosts:
    """Which Host headers a request may carry (see the module's docstring)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        entries = [entry.lower().rstrip(".") for entry in allowed]
        self.any = "*" in entries
        self.exact = {e for e in entries if not e.startswith((".", "*"))} | {"localhost"}
        self.suffixes = tuple(
            "." + e.removeprefix("*.").removeprefix(".")
            for e in entries
            if e.startswith((".", "*."))
        )
        self._seen: dict[str, bool] = {}  # a few Host headers, asked again and again

    def allows(self, header: str) -> bool:
        seen = self._seen.get(header)
        if seen is None:
            seen = self._allows(header)
            if len(self._seen) >= 1024:  # names anyone may send: bounded
                self._seen.clear()
            self._seen[header] = seen
        return seen

    def _allows(self, header: str) -> bool:
        if self.any:
            return True
        name = _host_name(header)
        if name is None:
            return False
        if name.startswith("[") or _is_ipv4(name) or name in self.exact:
            return True
        return any(name.endswith(s) or name == s[1:] for s in self.suffixes)


def _host_name(header: str) -> str | None:
    """The name (or address) of a Host header, lowercased, without its port; None if malformed."""
    host = header.strip().lower()
    if host.startswith("["):  # an IPv6 address, maybe with a port
        address, bracket, port = host[1:].partition("]")
        if not bracket or port and not (port.startswith(":") and _PORT.fullmatch(port[1:])):
            return None
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return None
        return f"[{address}]"
    name, colon, port = host.partition(":")
    if colon and not _PORT.fullmatch(port):
        return None
    name = name.removesuffix(".")
    return name if _NAME.fullmatch(name) and len(name) <= 253 else None


def _is_ipv4(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


class Gate:
    """The WSGI middleware: Host first, then the body, then the app."""

    def __init__(self, app: WSGIApp, config: Config) -> None:
        self.app = app
        self.hosts = Hosts(config.allowed_hosts)
        self.body_timeout = config.body_timeout
        self.max_body = config.max_body_bytes
        self.ingest: Ingest | None = None  # set once the app is built (web/ingest.py: mount)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST")
        if host is not None and not self.hosts.allows(host):
            shown = host if len(host) <= 100 else host[:100] + "…"
            return _refuse(
                start_response,
                "400 Bad Request",
                "host_not_allowed",
                f"this server does not answer for the host {shown!r}: if it should, add the name "
                "to SPIRAL_ALLOWED_HOSTS (localhost and addresses always pass)",
            )
        body = self._read_body(environ)
        if body is _LATE:
            return _refuse(
                start_response,
                "408 Request Timeout",
                "request_timeout",
                f"the request body did not arrive within {self.body_timeout:g} s",
            )
        ingest = self.ingest
        if ingest is not None and ingest.takes(environ, body):
            return ingest(environ, start_response, body)
        return self.app(environ, start_response)

    def _read_body(self, environ: dict[str, Any]) -> Any:
        """Read the body into memory within the deadline: its bytes (b"" for none); None when it
        was not read (larger than allowed, or a Content-Length that is not a number: Flask
        answers); _LATE when it did not arrive in time."""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None  # Flask answers a Content-Length that is not a number
        if chunked:
            length = self.max_body + 1  # at most one byte more than allowed: enough for a 413
        elif length <= 0:
            return b""
        elif length > self.max_body:
            return None  # refused (413) without reading it
        stream = environ["wsgi.input"]
        buffered = not chunked and _buffered(stream, length)
        timeout = None if buffered else _deadline(self.body_timeout)
        body = bytearray()
        try:
            if timeout is not None:
                timeout.start()
            while len(body) < length:
                chunk = stream.read(min(_CHUNK, length - len(body)))
                if not chunk:
                    break  # the client ended early: the app sees what came
                body += chunk
        except BaseException as exc:
            if timeout is not None and exc is timeout:
                return _LATE
            raise
        finally:
            if timeout is not None:
                timeout.close()
        whole = bytes(body)
        environ["wsgi.input"] = io.BytesIO(whole)
        if chunked:
            # Now a body of known length: werkzeug reads a Content-Length only when the request
            # does not say chunked, and one byte over the limit is then a 413 (as an oversized
            # Content-Length is), not a body cut short.
            del environ["HTTP_TRANSFER_ENCODING"]
            environ["CONTENT_LENGTH"] = str(len(whole))
            environ["wsgi.input_terminated"] = True
        return whole


def _buffered(stream: Any, length: int) -> bool:
    """Whether gunicorn already holds the whole body (`length` bytes, not chunked) in memory: a
    small body usually comes in the same packet as the headers, and gunicorn reads it with them.
    Reading it then cannot wait for the client, and needs no deadline (a gevent timer each:
    measurable on the ingest path). Anything else (another server, a body still on its way)
    answers False."""
    buf = getattr(getattr(getattr(stream, "reader", None), "unreader", None), "buf", None)
    return isinstance(buf, io.BytesIO) and buf.seek(0, io.SEEK_END) >= length


def _deadline(seconds: float) -> Any:
    """A gevent.Timeout when sockets are gevent's (the gunicorn gevent worker), else None."""
    timeout = _timeout_class()
    return timeout(seconds) if timeout is not None else None


@functools.cache
def _timeout_class() -> Any:
    """gevent.Timeout when sockets are gevent's, else None (asked once: a worker patches the
    standard library before it loads the app, and never unpatches it)."""
    try:
        from gevent import Timeout, monkey
    except ImportError:
        return None
    return Timeout if monkey.is_module_patched("socket") else None


def _refuse(start_response: StartResponse, status: str, error: str, message: str) -> list[bytes]:
    body = orjson.dumps({"error": error, "message": message})
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )
    return [body]

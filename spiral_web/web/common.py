"""Small helpers every blueprint shares: the hub, who is asking, a JSON answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from flask import Response, current_app, g, request

from ..engine.breath import iso
from ..services import Spiral


def spiral() -> Spiral:
    return current_app.extensions["spiral"]


def source() -> str:
    """Who sent this request, for the glint's `source`, the climate and the rate limits: the name
    of the token it carries (or its signed-in session's), else the client's address."""
    who = g.get("spiral_principal")
    if who is not None:
        return who.name
    return address()


def address() -> str:
    """The client's address, whatever token it carries."""
    return request.remote_addr or "unknown"


def subscriber_info(transport: str) -> dict[str, str]:
    """Who a new subscriber is, for the operators' list of connected clients."""
    return {"transport": transport, "client": source(), "since": iso(spiral().clock.now())}


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return Response(body, status=status, mimetype="application/json", headers=headers)


def cross_origin() -> bool:
    """True for a request a browser sent from a page of another origin. Fetch metadata first
    (every current browser sends it, and it is right behind a proxy); else the Origin header."""
    headers = request.headers
    return is_cross_origin(headers.get("Sec-Fetch-Site"), headers.get("Origin"), _host)


def is_cross_origin(site: str | None, origin: str | None, host: Callable[[], str]) -> bool:
    """cross_origin() for a request with these Sec-Fetch-Site and Origin headers, to `host()`
    (the host it names, asked only when the Origin header decides)."""
    if site:
        return site not in ("same-origin", "none")
    if origin is None:
        return False  # not a browser, or a same-origin GET
    return origin == "null" or urlsplit(origin).netloc != host()


def _host() -> str:
    return request.host


def count_rejection(who: str, status: int = 0, reason: str = "") -> None:
    """Count a refused request against `who` for the climate and the refusals log (with its
    status and reason), unless a page of another origin made a browser send it: any web page can,
    from the very address local publishers share, so counting it would let any site get them
    blocked."""
    if not cross_origin():
        spiral().breath.record_rejection(who, status, reason)

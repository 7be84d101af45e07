"""Small helpers every blueprint shares: the hub, who is asking, a JSON answer."""

from __future__ import annotations

from typing import Any

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

"""Sending to the hub: `emit_glint`, and the error every client call raises when refused."""

from __future__ import annotations

import os
from typing import Any

import orjson
import requests

DEFAULT_URL = os.environ.get("SPIRAL_URL", "http://127.0.0.1:5056")


class SpiralError(Exception):
    """The server refused a request; `status` and `body` say why."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body.get('error', '')}: {body.get('message', body)}")
        self.status = status
        self.body = body


def emit_glint(
    module: str,
    phase: str | None = None,
    context: dict[str, Any] | None = None,
    *,
    id: str | None = None,
    parent_id: str | None = None,
    url: str = DEFAULT_URL,
    token: str | None = None,
    timeout: float = 10.0,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """POST one glint; returns the server's answer (`status`, `id`, `seq`, `listeners`).

    `token` is a publish token (default: $SPIRAL_TOKEN); its name becomes the glint's source."""
    payload: dict[str, Any] = {"module": module, "context": context or {}}
    for key, value in (("phase", phase), ("id", id), ("parent_id", parent_id)):
        if value is not None:
            payload[key] = value
    headers = {"Content-Type": "application/json"}
    token = token if token is not None else os.environ.get("SPIRAL_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    http = session or requests
    resp = http.post(
        f"{url.rstrip('/')}/stream/glint",
        data=orjson.dumps(payload),
        headers=headers,
        timeout=timeout,
    )
    body = resp.json() if resp.content else {}
    if resp.status_code >= 400:
        raise SpiralError(resp.status_code, body)
    return body

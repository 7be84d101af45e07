"""Partials rendered outside a request, and HTML as SSE messages: what the dashboard's stream
and its statistics panels send."""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template
from werkzeug.test import EnvironBuilder


def render(app: Flask, template: str, script_root: str = "", **context: Any) -> str:
    """Render outside the request that opened the stream (it has returned): a request context of
    its own lets the partials build their links with url_for, under the app's script root."""
    environ = EnvironBuilder(path="/", base_url="http://spiral.invalid" + script_root).get_environ()
    with app.request_context(environ):
        return render_template(template, **context)


def html_frame(html: str, seq: int | None = None) -> bytes:
    """An unnamed SSE message whose data is `html`, one `data:` line per line of markup."""
    head = b"id: %d\n" % seq if seq is not None else b""
    lines = html.strip().replace("\r", "").split("\n")
    return head + b"".join(b"data: " + line.encode() + b"\n" for line in lines) + b"\n"

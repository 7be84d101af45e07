"""Partials rendered outside a request, and HTML as SSE messages: what the dashboard's stream
and its statistics panels send."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, render_template
from werkzeug.test import EnvironBuilder


def render(app: Flask, template: str, script_root: str = "", **context: Any) -> str:
    """Render outside the request that opened the stream (it has returned)."""
    with rendering(app, script_root) as render_one:
        return render_one(template, **context)


@contextmanager
def rendering(app: Flask, script_root: str = "") -> Iterator[Callable[..., str]]:
    """A request context of its own, so the partials build their links with url_for under the
    app's script root; one for many renders (pushing a context costs more than a row)."""
    environ = EnvironBuilder(path="/", base_url="http://spiral.invalid" + script_root).get_environ()
    with app.request_context(environ):
        yield render_template


def data_lines(html: str) -> str:
    """`html` as the data lines of an SSE message, one `data:` line per line of markup."""
    lines = html.strip().replace("\r", "").split("\n")
    return "".join(f"data: {line}\n" for line in lines)


def partial(target: str, swap: str, lines: str) -> str:
    """Data lines already made (rows, say) wrapped in one `<hx-partial>`, as data lines."""
    return f'data: <hx-partial hx-target="{target}" hx-swap="{swap}">\n{lines}data: </hx-partial>\n'


def message(lines: str, seq: int | None = None) -> bytes:
    """One unnamed SSE message (htmx 4 swaps unnamed messages) made of data lines."""
    head = f"id: {seq}\n" if seq is not None else ""
    return (head + lines + "\n").encode()


def html_frame(html: str, seq: int | None = None) -> bytes:
    """An unnamed SSE message whose data is `html`."""
    return message(data_lines(html), seq)

"""The dashboard's refusals as a person sees them: a line in the form that was sent, or a page;
never a JSON body in place of the form, never raw JSON in a browser tab.

web/errors.py answers every refusal (ours, the engine's, Flask's 404/405/413) as JSON and counts
it for the climate, wherever it was raised, the guard included. For the dashboard's own URLs, the
answer is turned into HTML here, after the fact:

- to htmx, a short message swapped into the status line of the form or panel that asked
  (`HX-Retarget`), so the form and what was typed into it stay on the page (htmx 4 swaps every
  status but 204 and 304, so a JSON 413 would otherwise replace the form);
- to a browser, an error page with the way back.

The JSON API (/api/, /stream) stays JSON, and so does the dashboard's event stream, and so does
any answer to a client that does not ask for HTML first (scripts, `curl`).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from flask import Response, current_app, render_template, request

from . import bp
from .wording import refusal_words

# The element an htmx request targets (its `HX-Target` header, `tag#id`) -> where a refusal is
# written. The global line (base.html) takes what no form claims.
STATUS_SLOTS = {
    "emit-form": "#emit-form-status",
    "admin": "#admin-status",
    "protection": "#protection-status",
    "glint-actions-status": "#glint-actions-status",
}
PAGE_SLOT = "#page-problem"
_TARGET = re.compile(r"^[a-z0-9-]*#([A-Za-z][\w-]{0,80})$")

TITLES = {
    400: "That request could not be read",
    401: "Sign in first",
    403: "Not allowed",
    404: "Not found",
    405: "Not here",
    413: "Too large",
    415: "Not a form this page sends",
    422: "Not valid",
    429: "Not now",
}


@bp.after_app_request
def _refusals_as_html(response: Response) -> Response:
    if response.status_code < 400 or response.mimetype != "application/json":
        return response  # the usual case, settled in two comparisons
    if not _dashboard_url() or not _wants_html():
        return response
    body = _json(response)
    message = explain(response.status_code, body, response.headers.get("Retry-After"))
    if request.headers.get("HX-Request"):
        html = render_template("dashboard/_problem.html", message=message)
        response.set_data(html)
        response.mimetype = "text/html"
        response.headers["HX-Retarget"] = _slot()
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    html = render_template(
        "errors/page.html",
        status=response.status_code,
        title=TITLES.get(response.status_code, "Something went wrong"),
        message=message,
    )
    response.set_data(html)
    response.mimetype = "text/html"
    return response


def explain(status: int, body: dict[str, Any], retry_after: str | None = None) -> str:
    """A refusal in words a person acts on (the JSON `message` is written for programs)."""
    error = str(body.get("error") or "")
    message = str(body.get("message") or "").strip()
    if status == 413:
        kib = current_app.config["MAX_CONTENT_LENGTH"] // 1024
        return (
            f"That is more than the server takes: a form may send at most {kib} KiB "
            "(a glint's context at most 8 KiB). Shorten the context and send it again."
        )
    if error == "csrf_failed":
        return (
            "This page is out of date (you signed in or out elsewhere?). Reload it and try again."
        )
    if error == "cross_origin":
        return "This form did not come from this dashboard, so it was refused."
    if status == 401:
        return "This needs you to sign in (or an admin token)."
    if status >= 500:
        return "The server failed to handle this (it was logged). Try again in a moment."
    if status == 404 and not message:
        return "There is nothing at this address."
    return refusal_words(status, error, message, body.get("retry_after") or retry_after)


def _dashboard_url() -> bool:
    """The dashboard's pages and forms, and any unknown address under /dashboard/; not its event
    stream (EventSource shows no body) and not the JSON API."""
    if request.endpoint == "dashboard.stream":
        return False
    if request.blueprint == "dashboard":
        return True
    return request.url_rule is None and request.path.startswith("/dashboard/")


def _wants_html() -> bool:
    """A browser (and htmx) asks for text/html before anything else; a script that sends no
    Accept header, or */*, keeps the JSON it was always given."""
    return request.accept_mimetypes.best_match(("application/json", "text/html")) == "text/html"


def _slot() -> str:
    match = _TARGET.match(request.headers.get("HX-Target", ""))
    return STATUS_SLOTS.get(match.group(1), PAGE_SLOT) if match else PAGE_SLOT


def _json(response: Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.get_data())
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}

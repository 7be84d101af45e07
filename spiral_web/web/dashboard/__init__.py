"""The dashboard: a complete server-rendered page, made live by htmx over its own SSE stream.

The stream carries the same events, ids and replay as `/stream`, rendered with the same Jinja
partials as the first page load; htmx swaps them in (`<hx-partial>` targets), so no JavaScript
builds HTML from JSON. Each connection sends at most one message a tick (stream.py): that tick's
rows, then only the newest state of each panel; the statistics are rendered once for every
dashboard.

Ritual runs stream the same way: each `ritual` event is rendered once (a row for the ritual log and
the rituals' state) and shared by every dashboard. Admins invoke rituals from the admin panel, whose
form route calls the same engine method as `POST /api/rituals/<name>/invoke`.

    pages.py     the page, the timeline for a filter, older rows, one glint (and sending it again)
    forms.py     the emit form, the breath controls, the ritual control
    invoking.py  which ritual invocations ask to be confirmed, and what they will do
    wording.py   refusals in words for people
    problems.py  refusals to the dashboard's URLs as HTML: a line in the form, or a page
    console.py   the operator's console: protection and the way out, refusals, clients
    history.py   the stored glints as pages: module, phase, time range, words in the context
    ritual_pages.py  every ritual run; the rule tester (the dry run)
    stream.py    the dashboard's SSE stream: events as HTML
    frames.py    partials rendered outside a request, as SSE messages
    panels.py    the statistics panels, rendered once for every dashboard
    context.py   what the templates are given
    activity.py  the sparkline and heat strip's counts
    filters.py   template filters and globals (times in words: "for 4 more minutes")
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("dashboard", __name__)

# Each registers its views (or filters) on bp.
from . import (  # noqa: E402, F401
    console,
    filters,
    forms,
    history,
    pages,
    panels,
    problems,
    ritual_pages,
    stream,
)

"""The stored record as pages: glints by module, phase, a time range and words in their context,
newest first, a page at a time (the live timeline shows only the newest few hundred).

Searching the context's text is done here, over pages of `store.query`, and bounded: it reads at
most SCAN_LIMIT glints per request and says where it stopped, so a search of a large store is a
series of quick pages rather than one long scan. It belongs in the store (an index, or SQL's
LIKE/ILIKE next to the other filters); until then this keeps it correct and cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import render_template, request

from ...engine.breath import PHASES
from ..access import access
from ..common import spiral
from ..queries import is_module_glob
from . import bp

PAGE = 50
SCAN_PAGE = 500  # glints read per store query while searching text
SCAN_LIMIT = 5000  # glints read per request while searching text
MAX_TEXT = 200


@dataclass
class Search:
    """What the history form asks for, read from the query string; `problems` by field."""

    module: str | None = None
    phase: str | None = None
    text: str = ""
    since: float | None = None
    until: float | None = None
    before: int | None = None
    given: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


@bp.get("/dashboard/history")
@access("read", page=True)
def history():
    search = read_search(request.args)
    found: dict[str, Any] = {"glints": [], "older": None, "scanned": 0, "stopped_at": None}
    if not search.problems:
        found = find(search)
    return render_template(
        "console/history.html", search=search, phases=PHASES, search_args=search_args, **found
    ), (400 if search.problems else 200)


def search_args(s: Search) -> dict[str, str]:
    """The filters as given, for the pager's links (paging keeps them)."""
    return {k: v for k, v in s.given.items() if v}


def read_search(args: Any) -> Search:
    """The filters, each checked: a bad one is named, with what to type instead."""
    s = Search(given={k: str(args.get(k, "")) for k in ("module", "phase", "text", "from", "to")})
    module = s.given["module"].strip()
    if module and not is_module_glob(module):
        s.problems["module"] = "Use letters, digits, dots, _ and the wildcards * and ?."
    s.module = module or None
    phase = s.given["phase"]
    if phase and phase not in PHASES:
        s.problems["phase"] = "Choose one of the five phases."
    s.phase = phase or None
    s.text = s.given["text"].strip()[:MAX_TEXT]
    for name in ("from", "to"):
        raw = s.given[name].strip()
        if not raw:
            continue
        try:
            when = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
        except ValueError:
            s.problems[name] = "A date and time such as 2026-12-01 17:05 (UTC)."
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # the form's fields say UTC
        setattr(s, "since" if name == "from" else "until", when.timestamp())
    if s.since is not None and s.until is not None and s.since > s.until:
        s.problems["to"] = "The end is before the start."
    raw = str(args.get("before", "")).strip()
    if raw:
        if raw.isdigit() and len(raw) < 19:
            s.before = int(raw)
        else:
            s.problems["before"] = "Not a page of this history; start from the newest."
    return s


def find(s: Search) -> dict[str, Any]:
    """A page of matches, newest first; `older` is where the next page starts (a seq), None at
    the end. With text, `scanned` glints were read and `stopped_at` is the seq the search reached
    when it ran out of its budget before filling the page."""
    store = spiral().store
    if not s.text:
        rows = store.query(
            module=s.module,
            phase=s.phase,
            since=s.since,
            until=s.until,
            before_seq=s.before,
            limit=PAGE + 1,
        )
        older = rows[PAGE - 1].seq if len(rows) > PAGE else None
        return {"glints": [g.to_dict() for g in rows[:PAGE]], "older": older, "scanned": 0,
                "stopped_at": None}  # fmt: skip
    needle = s.text.casefold()
    matches: list[dict[str, Any]] = []
    scanned, cursor, exhausted = 0, s.before, False
    while len(matches) < PAGE and scanned < SCAN_LIMIT:
        asked = min(SCAN_PAGE, SCAN_LIMIT - scanned)
        batch = store.query(
            module=s.module,
            phase=s.phase,
            since=s.since,
            until=s.until,
            before_seq=cursor,
            limit=asked,
        )
        for g in batch:
            scanned += 1
            cursor = g.seq
            if needle in orjson.dumps(g.context).decode().casefold():
                matches.append(g.to_dict())
                if len(matches) == PAGE:
                    break
        if len(batch) < asked and len(matches) < PAGE:
            exhausted = True
            break
    if exhausted:
        return {"glints": matches, "older": None, "scanned": scanned, "stopped_at": None}
    stopped = cursor if len(matches) < PAGE else None
    return {"glints": matches, "older": cursor, "scanned": scanned, "stopped_at": stopped}

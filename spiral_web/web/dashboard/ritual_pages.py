"""The rituals' pages: every run, filtered by ritual and status, a page at a time; and the rule
tester, which shows which recent glints a rule would have matched (the dry run: no action runs,
nothing is recorded)."""

from __future__ import annotations

from typing import Any

import orjson
from flask import render_template, request

from ...engine.rituals import STATUSES
from ...engine.rules import MAX_LENGTH, VARIABLES, Rule, RuleError
from ..access import access
from ..common import spiral
from . import bp
from .context import with_triggers

RUNS_PAGE = 50
TEST_SIZES = (100, 500, 1000)  # how many of the latest glints a rule is tried on


@bp.get("/dashboard/rituals")
@access("read", page=True)
def ritual_history():
    """Ritual runs, newest first: by ritual and status, paged by seq."""
    hub = spiral()
    args = request.args
    names = list(hub.rituals.specs)
    given = {k: str(args.get(k, "")) for k in ("ritual", "status")}
    problems: dict[str, str] = {}
    ritual = given["ritual"] or None
    if ritual is not None and ritual not in names:
        problems["ritual"] = "No ritual has that name; choose one from the list."
    status = given["status"] or None
    if status is not None and status not in STATUSES:
        problems["status"] = "Choose one of the statuses from the list."
    before = _seq(args.get("before"))
    runs: list[dict[str, Any]] = []
    older = None
    if not problems:
        raw = hub.store.runs(ritual=ritual, status=status, before_seq=before, limit=RUNS_PAGE + 1)
        runs = with_triggers([orjson.loads(r) for r in raw[:RUNS_PAGE]], hub.store)
        older = runs[-1]["seq"] if len(raw) > RUNS_PAGE else None
    filters = {k: v for k, v in given.items() if v}
    return render_template(
        "console/rituals.html",
        names=names,
        statuses=STATUSES,
        given=given,
        problems=problems,
        ritual_runs=runs,
        before=before,
        older=older,
        filters=filters,
    ), (400 if problems else 200)


@bp.get("/dashboard/rules")
@access("admin", page=True)
def rule_tester():
    """Type a rule (or take a ritual's), see which of the latest glints it would have matched."""
    hub = spiral()
    args = request.args
    specs = hub.rituals.specs
    names = list(specs)
    ritual = str(args.get("ritual") or (names[0] if names else ""))
    problems: dict[str, str] = {}
    if ritual not in specs:
        problems["ritual"] = "No ritual has that name; choose one from the list."
        ritual = names[0] if names else ""
    text = str(args.get("rule", ""))
    try:
        last = int(args.get("last", TEST_SIZES[0]))
    except ValueError:
        last = TEST_SIZES[0]
    if last not in TEST_SIZES:
        last = TEST_SIZES[0]
    tested = "rule" in args or "ritual" in args  # the form was sent: try it
    if not text.strip() and ritual:
        text = specs[ritual].rule.source  # start from the ritual's own rule
    result = None
    if tested and not problems:
        try:
            rule = Rule(text)
        except RuleError as exc:
            problems["rule"] = str(exc)[:1].upper() + str(exc)[1:]
        else:
            result = hub.rituals.dry_run(ritual, hub.store.query(limit=last), rule)
    return render_template(
        "console/rules.html",
        rituals=[specs[n] for n in names],
        ritual=ritual,
        rule_text=text,
        last=last,
        sizes=TEST_SIZES,
        problems=problems,
        result=result,
        variables=VARIABLES,
        max_length=MAX_LENGTH,
    ), (422 if problems else 200)


def _seq(raw: Any) -> int | None:
    text = str(raw or "").strip()
    return int(text) if text.isdigit() and len(text) < 19 else None

"""Template filters and globals: the breath's timing, sparklines, JSON as text, ritual runs in a
few words, and times as people say them ("for 4 more minutes")."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import orjson

from ...engine.breath import CLIMATES, CYCLE, PHASES, iso
from ..common import spiral
from . import bp


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()  # Python 3.11 reads the trailing "Z"


def countdown(seconds: float) -> str:
    """'12s', '3m 05s', '5h 03m': the same format dashboard.js ticks with."""
    s = max(0, math.ceil(seconds))
    if s >= 3600:
        return f"{s // 3600}h {(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def seconds_in_words(seconds: float, prep: str = "for") -> str:
    """'for 40 more seconds', 'for 4 more minutes', 'for 2 more hours' (prep "for"); 'in 40
    seconds' (prep "in"); '5 minutes' (no prep). Minutes are rounded: nobody says "3 m 58 s"."""
    s = max(0, math.ceil(seconds))
    if s < 60:
        n, unit = s, "second"
    elif s < 3600:
        n, unit = max(1, round(s / 60)), "minute"
    else:
        n, unit = max(1, round(s / 3600)), "hour"
    words = f"{n} {unit}{'s' if n != 1 else ''}"
    if prep == "for":
        return f"for {n} more {words.split(' ', 1)[1]}"
    return f"{prep} {words}" if prep else words


@bp.app_template_filter("words_for")
def words_for(seconds: float) -> str:
    """'for 4 more minutes', from a number of seconds."""
    return seconds_in_words(seconds)


@bp.app_template_filter("span")
def span(seconds: float) -> str:
    """'5 minutes', from a number of seconds."""
    return seconds_in_words(seconds, "")


@bp.app_template_filter("time_left")
def time_left(until: str | None, now: str | float | None = None, prep: str = "for") -> str:
    """How long until `until` (ISO 8601), from `now` (ISO, epoch seconds, default the hub's
    clock), in words: "for 4 more minutes"."""
    if not until:
        return ""
    if now is None:
        start = spiral().clock.now()
    elif isinstance(now, str):
        start = _ts(now)
    else:
        start = float(now)
    return seconds_in_words(_ts(until) - start, prep)


@bp.app_template_global()
def hub_now() -> str:
    """The hub's clock now (ISO 8601): pages count "for N more minutes" from it."""
    return iso(spiral().clock.now())


@bp.app_template_filter("clock_time")
def clock_time(iso: str | None, seconds: bool = True) -> str:
    """'17:05:12 UTC' from an ISO 8601 UTC time: what the pages show, with its zone."""
    if not iso:
        return ""
    return f"{iso[11:19] if seconds else iso[11:16]} UTC"


@bp.app_template_filter("date_time")
def date_time(iso: str | None) -> str:
    """'2026-12-01 17:05:12 UTC'."""
    return f"{iso[:10]} {iso[11:19]} UTC" if iso else ""


@bp.app_template_global()
def breath_timing(breath: dict[str, Any]) -> dict[str, Any]:
    """Where the breath is within its phase, as the server saw it when the state was taken: the
    first render and every swap start the glyph's animations at the right point, before any
    script runs; dashboard.js then keeps them in step with the server's clock."""
    start, end, now = (
        _ts(breath["phase_started_at"]),
        _ts(breath["phase_ends_at"]),
        _ts(breath["server_time"]),
    )
    length = max(0.001, end - start)
    elapsed = min(length, max(0.0, now - start))
    reason = breath.get("phase_reason", "cycle")
    if reason == "cycle" and breath["phase"] in CYCLE:
        upcoming = CYCLE[(CYCLE.index(breath["phase"]) + 1) % len(CYCLE)].replace("_", " ")
    else:
        upcoming = "the cycle"
    return {
        "ms": int(length * 1000),
        "elapsed_ms": int(elapsed * 1000),
        "progress": round(elapsed / length, 4),
        "left": countdown(end - now),
        "next": upcoming,
    }


@bp.app_template_global()
def spark_path(values: list[int], width: float, height: float, peak: int) -> dict[str, str]:
    """An SVG line and area for a sparkline, oldest value at the left."""
    if not values:
        return {"line": "", "area": ""}
    top = max(peak, 1)
    step = width / max(1, len(values) - 1)
    pts = [
        (round(i * step, 1), round(height - 2 - (v / top) * (height - 6), 1))
        for i, v in enumerate(values)
    ]
    line = "M" + " L".join(f"{x},{y}" for x, y in pts)
    area = f"{line} L{pts[-1][0]},{height} L0,{height} Z"
    return {"line": line, "area": area}


@bp.app_template_filter("pretty_json")
def pretty_json(value: Any) -> str:
    """Readable JSON as plain text: autoescaping then shows any markup in it as text."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


@bp.app_template_filter("compact_json")
def compact_json(value: Any, limit: int = 160) -> str:
    """One line of JSON for a timeline row, cut at `limit` characters (autoescaped by Jinja)."""
    text = orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


@bp.app_template_filter("ritual_name")
def ritual_name(context: Any) -> str | None:
    """The ritual that produced a glint, where its context says so (`"ritual": name`/`{name}`)."""
    if not isinstance(context, dict):
        return None
    ritual = context.get("ritual")
    if isinstance(ritual, dict):
        ritual = ritual.get("name")
    return ritual if isinstance(ritual, str) and ritual else None


_STATUS_LABELS = {
    "ok": "ok",
    "error": "error",
    "deferred": "deferred",
    "skipped_cooldown": "cooldown",
}


@bp.app_template_filter("run_status")
def run_status(status: str) -> str:
    """A run's status as the log labels it."""
    return _STATUS_LABELS.get(status, status.replace("_", " "))


@bp.app_template_filter("run_trigger")
def run_trigger(run: dict[str, Any]) -> str:
    """What set a run off, in a few words: the glint's module and seq, a breath change, an admin."""
    glint = run.get("trigger")
    named = f"{glint['module']} #{glint['seq']}" if glint else run.get("trigger_id")
    event = run.get("trigger_event")
    if event == "invoke":
        return f"invoked by an admin on {named}" if named else "invoked by an admin"
    if event == "phase_change":
        return "a phase change"
    if event == "climate_change":
        return "a climate change"
    return named or "a glint"


@bp.app_template_filter("run_summary")
def run_summary(run: dict[str, Any]) -> str:
    """A run's result in one line for the log; the full result is one click away."""
    raw = run.get("result")
    result: dict[str, Any] = raw if isinstance(raw, dict) else {}
    status, action = run.get("status"), run.get("action")
    if status == "deferred":
        return "caesura: waits for the next inhale"
    if status == "skipped_cooldown":
        until = str(result.get("cooldown_until") or "")
        return (
            f"matched in its cooldown (until {until[11:19]}): not run"
            if until
            else "matched in its cooldown: not run"
        )
    if status == "error":
        return str(result.get("error") or "failed")
    try:
        text = _ok_summary(action, result)
    except (TypeError, ValueError):  # a record of another shape (an older version): show it as is
        text = compact_json(result)
    if run.get("deferred_from") is not None:
        n = run.get("coalesced") or 1
        text = f"after the caesura ({n} match{'es' if n != 1 else ''}): {text}"
    return text


def _ok_summary(action: Any, r: dict[str, Any]) -> str:
    if "message" in r and action not in ("caesura",):
        return str(r["message"])
    if action == "archive":
        moved, days = r.get("moved", 0), r.get("retention_days", 0)
        if not moved:
            return f"nothing older than {days:g} days to archive"
        return f"archived {moved} glint{'s' if moved != 1 else ''} older than {days:g} days"
    if action == "throttle":
        return (
            f"input paused at {round(100 * float(r.get('usage') or 0))}% usage; "
            f"resumes below {round(100 * float(r.get('release_below') or 0))}%"
        )
    if action == "caesura":
        until = str(r.get("until") or "")
        return f"the hub rests until {until[11:19]}" if until else "the hub rests"
    if action == "emit":
        return f"emitted {r.get('module', 'a glint')}"
    if action == "webhook":
        attempts = r.get("attempts", 1)
        plural = "s" if attempts != 1 else ""
        return f"answered {r.get('status_code')} after {attempts} attempt{plural}"
    if action == "set_climate":
        until = str(r.get("until") or "")
        return (
            f"climate {r.get('climate')} until {until[11:16]}"
            if until
            else f"climate {r.get('climate')}"
        )
    return compact_json(r)


@bp.app_template_filter("duration")
def duration(ms: Any) -> str:
    """'<1 ms', '42 ms', '1.3 s'."""
    try:
        ms = float(ms)
    except (TypeError, ValueError):
        return ""
    if ms < 1:
        return "<1 ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


@bp.app_context_processor
def _constants() -> dict[str, Any]:
    return {"phases": PHASES, "cycle": CYCLE, "climates": CLIMATES}

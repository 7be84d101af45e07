"""Refusals in words for people. The API's messages are written for programs ("String should match
pattern '^[a-z]…'"); a form says what to do instead, in the field that needs it."""

from __future__ import annotations

import re
from typing import Any

import orjson

from ...engine.glints import MAX_CONTEXT_DEPTH, MAX_CONTEXT_KEYS, MAX_STRING
from .filters import seconds_in_words

_WHERE = re.compile(r"line (\d+) column (\d+)")


def for_people(detail: dict[str, Any]) -> dict[str, str]:
    """One `{"field", "problem"}` of a 422, the problem reworded for the emit form."""
    field = str(detail.get("field") or "")
    problem = str(detail.get("problem") or "")
    top = field.split(".")[0]
    if top == "module":
        if "at least 1" in problem or "required" in problem.lower():
            problem = "Name the module this glint comes from, such as memory.scroll."
        elif "at most" in problem:
            problem = "A module name has at most 100 characters."
        elif "pattern" in problem:
            problem = (
                "Module names follow the pattern word.word: lowercase words joined by dots, such "
                "as memory.scroll (each word starts with a letter, then letters, digits or _)."
            )
    elif top == "phase":
        problem = "Choose one of the five phases, or current (the breath's phase now)."
    elif top == "context":
        problem = _context_problem(problem)
    return {"field": field, "problem": problem}


def _context_problem(problem: str) -> str:
    text = problem.removeprefix("Value error, ")
    if "valid dictionary" in text or "object" in text and "must" in text:
        return 'The context must be a JSON object, in braces: {"mood": "calm"}.'
    if "bytes" in text:
        return f"{text[:1].upper()}{text[1:]} (8 KiB). Shorten it, or send less."
    if "nested deeper" in text:
        return f"The context may be at most {MAX_CONTEXT_DEPTH} levels deep."
    if "keys" in text or "items" in text:
        return f"{text[:1].upper()}{text[1:]}: at most {MAX_CONTEXT_KEYS} in each object or list."
    if "string longer" in text:
        return f"A text in the context is longer than {MAX_STRING:,} characters."
    if "control characters" in text:
        return "The context holds control characters (invisible ones); remove them."
    return text[:1].upper() + text[1:]


def json_problem(exc: orjson.JSONDecodeError) -> str:
    """Where a context stops being JSON, as an editor would say it."""
    found = _WHERE.search(str(exc))
    where = f" at line {found.group(1)}, column {found.group(2)}" if found else ""
    return (
        f"This is not valid JSON{where}. Use double quotes around keys and texts, and no "
        'trailing comma: {"mood": "calm"}.'
    )


def refusal_words(status: int, error: str, message: str, wait: Any = None) -> str:
    """A refusal that is not about one field (429: blocked, throttled, too fast; or the API's
    message), with its wait in words."""
    try:
        seconds = max(1, int(wait))
    except (TypeError, ValueError):
        seconds = 1
    if error == "source_blocked":
        return (
            f"Your input is blocked {seconds_in_words(seconds)}: too many refused requests made "
            "the climate suspicious. An admin can lift the block in the console."
        )
    if error == "throttled":
        return (
            "The hub is saturated and has paused input from its heaviest sources; try again "
            f"{seconds_in_words(seconds, 'in')}."
        )
    if status == 429:
        return f"Too many requests just now; try again {seconds_in_words(seconds, 'in')}."
    if not message:
        return "That was refused."
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")

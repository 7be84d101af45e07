"""Rule expressions (rituals and agents) in CEL, the Common Expression Language, compiled once.

A rule sees one activation per event: the glint's fields (`module`, `phase`, `context`, `id`,
`parent_id`, `source`), the breath (`climate`, `usage`, `breath_phase`), and `event` — `"glint"` for
a glint, `"phase_change"` or `"climate_change"` for a change of the breath itself. Examples:

    module == "memory.scroll" && phase == "return"
    usage > 0.8
    event == "phase_change" && phase == "return"
    has(context.depth) && context.depth == "contemplative"
    context.readings.exists(r, r > 40)

Every rule has a bounded cost, because the hub evaluates it on every glint and a CEL evaluation
holds the interpreter until it ends (it cannot be preempted or moved off the event loop). So a rule
is at most MAX_LENGTH characters and MAX_DEPTH brackets deep, and its comprehensions are tests over
one list at a time: `all`, `exists` and `exists_one`, never one inside another, and never reaching
for `context` inside one (a comprehension that copies the context on every turn, or that builds
lists with `map`/`filter`, can run for a second over an 8 KiB context: measured in
bench/rules_cost.py). Within those bounds an evaluation over the largest context a glint may carry
stays around a millisecond.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import cel

from .glints import Glint

VARIABLES = (
    "module",
    "phase",
    "context",
    "id",
    "parent_id",
    "source",
    "climate",
    "usage",
    "breath_phase",
    "event",
)


_SPACE_NAME_COMMA = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")
MAX_LENGTH = 1000
MAX_DEPTH = 32
COMPREHENSIONS = frozenset({"all", "exists", "exists_one"})
REFUSED_MACROS = frozenset({"map", "filter", "transformList", "transformMap"})


class RuleError(ValueError):
    """A rule that does not compile, uses a name a rule cannot see, or could cost too much."""


class Rule:
    __slots__ = ("source", "reads", "_program", "_answers")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise RuleError("the rule is empty")
        bound = check_cost(source)
        try:
            self._program = cel.compile(source)
        except ValueError as exc:
            raise RuleError(str(exc)) from None
        names = set(self._program.variables())
        unknown = sorted(names - set(VARIABLES) - bound)
        if unknown:
            raise RuleError(f"unknown name {unknown[0]!r}; a rule can use {', '.join(VARIABLES)}")
        self.source = source
        self.reads = tuple(name for name in VARIABLES if name in names)
        # A CEL program is a pure function of the names it reads: a rule that does not read the
        # context (a dict) remembers its answer for each combination of the values it read.
        self._answers: dict[tuple[Any, ...], bool] | None = None if "context" in names else {}

    def matches(self, activation: Mapping[str, Any] | cel.Context | Activation) -> bool:
        """True only when the rule evaluates to true; a missing key or a type error is a no-match.

        Pass an `Activation` when several rules see the same event: each rule then converts only
        the names it reads, and a rule that does not read the context answers from what it
        remembers of the same values."""
        if isinstance(activation, Activation):
            return activation.test(self)
        return self._run(activation if isinstance(activation, cel.Context) else dict(activation))

    def _run(self, activation: dict[str, Any] | cel.Context) -> bool:
        try:
            return self._program.execute(activation) is True
        except (KeyError, TypeError, ValueError, RuntimeError):
            return False

    def __repr__(self) -> str:
        return f"Rule({self.source!r})"


def activation(
    glint: Mapping[str, Any] | None, breath: Mapping[str, Any], event: str = "glint"
) -> dict[str, Any]:
    """The names a rule can see, for one glint (or a breath change when `glint` is None)."""
    g = glint or {}
    return {
        "module": g.get("module", ""),
        "phase": g.get("phase", breath.get("phase", "")),
        "context": g.get("context", {}),
        "id": g.get("id", ""),
        "parent_id": g.get("parent_id") or "",
        "source": g.get("source", ""),
        "climate": breath.get("climate", "clear"),
        "usage": float(breath.get("usage", 0.0)),
        "breath_phase": breath.get("phase", ""),
        "event": event,
    }


def glint_fields(glint: Glint) -> dict[str, Any]:
    """A stored glint's part of a rule's activation."""
    return {
        "module": glint.module,
        "phase": glint.phase,
        "context": glint.context,
        "id": glint.id,
        "parent_id": glint.parent_id,
        "source": glint.source,
    }


def prepare(activation: Mapping[str, Any]) -> cel.Context:
    """The activation converted to CEL once, for evaluating many rules on the same event.

    Not thread-safe (a cel.Context is not): prepare one per event, in the thread evaluating it."""
    return cel.Context(variables=dict(activation))


REMEMBERED = 4096  # answers a rule keeps (then it forgets them all and starts again)


class Activation:
    """One event's activation (every name a rule can see), for the rules that look at it.

    A rule that does not read the context answers from the values it reads: remembered, or run
    on those values alone (a handful of strings and a number: cheap to convert). The rules that
    read the context share one CEL context, converted on first use with the names they read
    (`names`; all of them when not given). The four built-in rituals never read the context, so
    a glint's context is never converted for them. Not thread-safe: one per event."""

    __slots__ = ("values", "names", "_prepared")

    def __init__(self, values: Mapping[str, Any], names: tuple[str, ...] | None = None) -> None:
        self.values = values
        self.names = names
        self._prepared: cel.Context | None = None

    def test(self, rule: Rule) -> bool:
        answers = rule._answers
        values = self.values
        if answers is None:  # reads the context
            if self._prepared is None:
                names = self.names if self.names is not None else tuple(values)
                self._prepared = cel.Context(variables={n: values[n] for n in names if n in values})
            return rule._run(self._prepared)
        try:
            key = tuple([values[n] for n in rule.reads])
            answer = answers.get(key)
        except (KeyError, TypeError):  # a name missing, a value that cannot be a key
            return rule._run({n: values[n] for n in rule.reads if n in values})
        if answer is None:
            answer = rule._run({n: values[n] for n in rule.reads})
            if len(answers) >= REMEMBERED:
                answers.clear()
            answers[key] = answer
        return answer


def check_cost(source: str) -> set[str]:
    """Refuse a rule whose evaluation could be costly (see the module's docstring): too long, too
    deep, a comprehension inside another, one that reaches for `context`, or map/filter. Answers
    the names its comprehensions bind (`r` in `context.readings.exists(r, r > 40)`)."""
    bound: set[str] = set()
    if len(source) > MAX_LENGTH:
        raise RuleError(f"the rule is {len(source)} characters; at most {MAX_LENGTH} are allowed")
    stack: list[bool] = []  # one entry per open bracket: does it open a comprehension's arguments?
    previous = ""  # the last significant character before the current token
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c in "\"'":
            i = _skip_string(source, i)
            previous = '"'
            continue
        if c == "/" and source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        if c.isalpha() or c == "_":
            j = i
            while j < n and (source[j].isalnum() or source[j] == "_"):
                j += 1
            word, selected = source[i:j], previous == "."
            k = j
            while k < n and source[k].isspace():
                k += 1
            if k < n and source[k] in "\"'" and word.lower() in ("r", "b", "rb", "br"):
                i = _skip_string(source, k)  # a prefixed string literal: r"…", b'…'
                previous = '"'
                continue
            calls = k < n and source[k] == "("
            inside = any(stack)
            if selected and calls and word in REFUSED_MACROS:
                raise RuleError(
                    f"{word}() builds a list on every evaluation; a rule is a test: use "
                    "exists(), all() or exists_one()"
                )
            if selected and calls and word in COMPREHENSIONS:
                if inside:
                    raise RuleError(f"{word}() inside another comprehension: at most one level")
                stack.append(True)
                i, previous = k + 1, "("
                variable = _SPACE_NAME_COMMA.match(source, i)
                if variable:
                    bound.add(variable.group(1))
                continue
            if inside and not selected and word == "context":
                raise RuleError(
                    "inside a comprehension, use its variable, not `context` (it would be "
                    "copied on every turn); compare with a literal instead"
                )
            i, previous = j, "a"
            continue
        if c in "([{":
            stack.append(False)
            if len(stack) > MAX_DEPTH:
                raise RuleError(f"the rule nests brackets more than {MAX_DEPTH} deep")
        elif c in ")]}" and stack:
            stack.pop()
        if not c.isspace():
            previous = c
        i += 1
    return bound


def _skip_string(source: str, i: int) -> int:
    """The index just past the string literal starting at `i` (or the end of the source)."""
    quote = source[i]
    triple = source.startswith(quote * 3, i)
    close = quote * 3 if triple else quote
    j = i + len(close)
    while j < len(source):
        if source[j] == "\\":
            j += 2
            continue
        if source.startswith(close, j):
            return j + len(close)
        j += 1
    return len(source)

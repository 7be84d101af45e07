"""Cost of rule evaluation: CEL (the library Spiral uses) against rule-engine.

Run: python -m bench.rules_cost   (rule-engine is only needed for the comparison and is not a
dependency of Spiral; its column is skipped when it is not installed).

Most of a CEL evaluation is converting the activation (the glint and the breath) into CEL values.
`rules.prepare()` does that once per event, and every ritual's rule then runs on the prepared
context: that is what the ritual engine does for each glint.
"""

from __future__ import annotations

import timeit

from spiral_web.engine.rules import Rule, activation, prepare

GLINT = {
    "id": "g-1",
    "seq": 1,
    "module": "memory.scroll",
    "phase": "return",
    "context": {"depth": "contemplative", "action": "reflection", "n": 3},
    "parent_id": None,
    "source": "127.0.0.1",
}
BREATH = {"phase": "return", "climate": "clear", "usage": 0.42}

CASES = [  # name, CEL, rule-engine
    (
        "simple",
        'module == "memory.scroll" && phase == "return"',
        'module == "memory.scroll" and phase == "return"',
    ),
    ("number", "usage > 0.8", "usage > 0.8"),
    (
        "context",
        'has(context.depth) && context.depth == "contemplative"',
        'context.depth == "contemplative"',
    ),
]
BUILTIN_RULES = [
    'module == "memory.scroll" && phase == "return"',
    "usage > 0.8",
    'climate == "suspicious"',
    'breath_phase == "night_hold"',
]


def us(fn, number: int = 20_000, repeat: int = 7) -> float:
    """Best of `repeat` runs, in microseconds per call (the least disturbed by other work)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    try:
        import rule_engine
    except ImportError:
        rule_engine = None
    act = activation(GLINT, BREATH)
    ctx = prepare(act)
    print("µs per evaluation (best of 7 × 20 000)")
    print(f"{'rule':8} {'CEL, dict':>10} {'CEL, prepared':>14} {'rule-engine':>12}")
    for name, cel_text, re_text in CASES:
        rule = Rule(cel_text)
        expected = name != "number"
        assert rule.matches(act) is expected and rule.matches(ctx) is expected
        plain = us(lambda r=rule: r.matches(act))
        prepared = us(lambda r=rule: r.matches(ctx))
        other = "-"
        if rule_engine is not None:
            compiled = rule_engine.Rule(re_text, context=rule_engine.Context(default_value=None))
            assert compiled.matches(act) is expected
            other = f"{us(lambda c=compiled: c.matches(act)):.1f}"
        print(f"{name:8} {plain:10.1f} {prepared:14.2f} {other:>12}")
    print(
        f"building the activation: {us(lambda: activation(GLINT, BREATH)):.1f}; "
        f"preparing it for CEL: {us(lambda: prepare(act)):.1f}"
    )

    rules = [Rule(t) for t in BUILTIN_RULES]

    def per_glint() -> None:  # what RitualEngine.on_glint does before any action runs
        c = prepare(activation(GLINT, BREATH))
        for r in rules:
            r.matches(c)

    print(f"the four built-in rules on one glint (one prepared activation): {us(per_glint):.1f}")
    if rule_engine is not None:
        others = [
            rule_engine.Rule(
                t.replace("&&", "and"), context=rule_engine.Context(default_value=None)
            )
            for t in BUILTIN_RULES
        ]

        def per_glint_rule_engine() -> None:
            a = activation(GLINT, BREATH)
            for r in others:
                r.matches(a)

        print(f"the same four with rule-engine: {us(per_glint_rule_engine):.1f}")


if __name__ == "__main__":
    main()

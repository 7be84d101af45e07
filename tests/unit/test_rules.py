"""Rules: what they can see, and the bounds that keep every evaluation cheap (a CEL evaluation holds
the worker until it ends, so a costly rule would stall every stream)."""

from __future__ import annotations

import pytest

from spiral_web.engine.rules import MAX_DEPTH, MAX_LENGTH, Rule, RuleError, activation


def matches(rule: str, context: dict, module: str = "a.b") -> bool:
    return Rule(rule).matches(activation({"module": module, "context": context}, {}))


def test_a_comprehension_tests_one_list_with_its_own_variable():
    assert matches("context.readings.exists(r, r > 40)", {"readings": [3, 41]})
    assert not matches("context.readings.all(r, r > 40)", {"readings": [3, 41]})
    assert matches("context.tags.exists_one(t, t == 'hot')", {"tags": ["hot", "cold"]})
    assert matches(
        "context.items.exists(i, i.kind == 'x') && context.b.all(v, v < 2)",
        {"items": [{"kind": "x"}], "b": [1]},
    )


def test_a_missing_key_or_a_type_error_is_no_match():
    assert not matches("context.readings.exists(r, r > 40)", {})
    assert not matches("context.readings.exists(r, r > 40)", {"readings": "nope"})


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        pytest.param(
            "context.a.exists(x, context.b.exists(y, x == y))",
            "use its variable, not `context`",
            id="context-inside",
        ),
        pytest.param("[1, 2].exists(x, [3].exists(y, x == y))", "at most one level", id="nested"),
        pytest.param("context.a.map(x, x * 2).size() > 0", "map() builds a list", id="map"),
        pytest.param(
            "context.a.filter(x, x > 1).size() > 2", "filter() builds a list", id="filter"
        ),
        pytest.param(
            "context.a.exists(x, x == context.limit)", "use its variable, not", id="context-ref"
        ),
        pytest.param(
            "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1) + " == 1", "deep", id="deep"
        ),
        pytest.param("module == '" + "a" * MAX_LENGTH + "'", "characters", id="long"),
        pytest.param("x > 1", "unknown name 'x'", id="unbound"),
    ],
)
def test_a_rule_that_could_cost_too_much_is_refused_at_load(rule, says):
    with pytest.raises(RuleError, match=".*") as refused:
        Rule(rule)
    assert says in str(refused.value)


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param('context.a.exists(x, x == "context.map(y, y)")', id="in-a-string"),
        pytest.param("context.a.all(x, x.context == 1)", id="a-field-named-context"),
        pytest.param("r'exists(' == module // map( in a comment", id="raw-string-and-comment"),
        pytest.param('"""a "quoted" (bracket""" != module', id="triple-quoted"),
    ],
)
def test_strings_comments_and_field_names_do_not_trip_the_bounds(rule):
    Rule(rule)

"""Glint validation: every refusal is a GlintError with the right status, naming the field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from spiral_web.engine.glints import (
    MAX_CONTEXT_DEPTH,
    MAX_CONTEXT_KEYS,
    MAX_STRING,
    Glint,
    GlintDraft,
    GlintError,
    GlintIn,
    parse_glint,
    validate_glint,
)


def nested(levels: int) -> dict[str, Any]:
    """A context `levels` objects deep, with a scalar at the bottom."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"inner": value}
    return value


BAD = [
    pytest.param({"module": "a.b", "phase": "dusk"}, "phase", "", id="unknown-phase"),
    pytest.param({"module": "a.b", "phase": 3}, "phase", "", id="phase-not-a-string"),
    pytest.param({"phase": "hold"}, "module", "required", id="missing-module"),
    pytest.param({"module": "Memory.Scroll"}, "module", "pattern", id="module-uppercase"),
    pytest.param({"module": "memory..scroll"}, "module", "pattern", id="module-empty-part"),
    pytest.param({"module": "1memory"}, "module", "pattern", id="module-leading-digit"),
    pytest.param({"module": "<script>"}, "module", "pattern", id="module-markup"),
    pytest.param({"module": ""}, "module", "", id="module-empty"),
    pytest.param({"module": "a" * 101}, "module", "100", id="module-too-long"),
    pytest.param({"module": 7}, "module", "string", id="module-not-a-string"),
    pytest.param(
        {"module": "a.b", "context": [1, 2]}, "context", "object|dictionary", id="context-array"
    ),
    pytest.param(
        {"module": "a.b", "context": "hello"}, "context", "object|dictionary", id="context-string"
    ),
    pytest.param(
        {"module": "a.b", "context": None}, "context", "object|dictionary", id="context-null"
    ),
    pytest.param(
        {"module": "a.b", "context": nested(MAX_CONTEXT_DEPTH + 1)},
        "context",
        "deeper than 8",
        id="context-too-deep",
    ),
    pytest.param(
        {"module": "a.b", "context": {"a": [[[[[[[[1]]]]]]]]}},
        "context",
        "deeper than 8",
        id="context-too-deep-arrays",
    ),
    pytest.param(
        {"module": "a.b", "context": {k: "x" * 3000 for k in "abc"}},
        "context",
        "bytes",
        id="context-too-large",
    ),
    pytest.param(
        {"module": "a.b", "context": {f"k{i}": i for i in range(MAX_CONTEXT_KEYS + 1)}},
        "context",
        "keys",
        id="context-too-many-keys",
    ),
    pytest.param(
        {"module": "a.b", "context": {"a": list(range(MAX_CONTEXT_KEYS + 1))}},
        "context",
        "items",
        id="context-array-too-long",
    ),
    pytest.param(
        {"module": "a.b", "context": {"a": "x" * (MAX_STRING + 1)}},
        "context",
        "longer",
        id="context-string-too-long",
    ),
    pytest.param(
        {"module": "a.b", "context": {"a": "nul\x00"}}, "context", "control", id="context-nul"
    ),
    pytest.param(
        {"module": "a.b", "context": {"a": "\x1b[31mred"}},
        "context",
        "control",
        id="context-ansi-escape",
    ),
    pytest.param(
        {"module": "a.b", "context": {"a": "\x7f"}}, "context", "control", id="context-del"
    ),
    pytest.param(
        {"module": "a.b", "context": {"a": "\x85"}}, "context", "control", id="context-c1"
    ),
    pytest.param(
        {"module": "a.b", "context": {"a": "abc\u202edcb"}},
        "context",
        "control",
        id="context-bidi-override",
    ),
    pytest.param(
        {"module": "a.b", "context": {"a": ["ok", {"b": "\x07"}]}},
        "context",
        "control",
        id="context-control-nested",
    ),
    pytest.param(
        {"module": "a.b", "context": {"key\x00": 1}},
        "context",
        "control",
        id="context-control-in-key",
    ),
    pytest.param(
        {"module": "a.b", "context": {"n": float("nan")}}, "context", "finite", id="context-nan"
    ),
    pytest.param(
        {"module": "a.b", "context": {"n": float("inf")}},
        "context",
        "finite",
        id="context-infinity",
    ),
    pytest.param(
        {"module": "a.b", "context": {"n": 2**70}}, "context", "64-bit", id="context-huge-integer"
    ),
    pytest.param({"module": "a.b", "colour": "red"}, "colour", "extra", id="extra-field"),
    pytest.param({"module": "a.b", "seq": 5}, "seq", "extra", id="client-may-not-set-seq"),
    pytest.param({"module": "a.b", "id": "-leading-dash"}, "id", "pattern", id="id-leading-dash"),
    pytest.param({"module": "a.b", "id": "has space"}, "id", "pattern", id="id-space"),
    pytest.param({"module": "a.b", "id": "<b>"}, "id", "pattern", id="id-markup"),
    pytest.param({"module": "a.b", "id": "x" * 129}, "id", "pattern", id="id-too-long"),
    pytest.param({"module": "a.b", "id": 123}, "id", "string", id="id-not-a-string"),
    pytest.param({"module": "a.b", "parent_id": "a/b"}, "parent_id", "pattern", id="bad-parent-id"),
]


@pytest.mark.parametrize(("data", "field", "hint"), BAD)
def test_bad_glints_are_refused_naming_the_field(data, field, hint):
    with pytest.raises(GlintError) as refused:
        validate_glint(data)
    err = refused.value
    assert (err.status, err.error) == (422, "invalid_glint")
    assert err.message.startswith(f"{field}:"), err.message
    assert any(h in err.message.lower() for h in hint.lower().split("|")), err.message
    assert err.details[0]["field"] == field
    assert err.to_dict() == {
        "error": "invalid_glint",
        "message": err.message,
        "details": err.details,
    }


@pytest.mark.parametrize(
    ("data", "field", "hint"),
    [p for p in BAD if p.id not in ("context-nan", "context-infinity", "context-huge-integer")],
)
def test_raw_bodies_are_refused_the_same_way(data, field, hint):
    with pytest.raises(GlintError) as refused:
        parse_glint(orjson.dumps(data))
    assert refused.value.status == 422
    assert refused.value.message.startswith(f"{field}:")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"module": "a.b", "context": {"n": NaN}}', id="nan"),
        pytest.param(b'{"module": "a.b", "context": {"n": Infinity}}', id="infinity"),
        pytest.param(b'{"module": "a.b", "context": {"n": 1e999}}', id="overflow-to-infinity"),
        pytest.param(
            b'{"module": "a.b", "context": {"n": 123456789012345678901234567890}}',
            id="huge-integer",
        ),
    ],
)
def test_numbers_json_cannot_hold_are_refused_not_silently_changed(body):
    with pytest.raises(GlintError) as refused:
        parse_glint(body)
    assert refused.value.status == 422
    assert refused.value.message.startswith("context:")


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        pytest.param(b"{", 400, "invalid_json", id="truncated"),
        pytest.param(b"", 400, "invalid_json", id="empty"),
        pytest.param(b"module=a.b", 400, "invalid_json", id="form-encoded"),
        pytest.param(b"[]", 422, "invalid_glint", id="array"),
        pytest.param(b'"a.b"', 422, "invalid_glint", id="string"),
        pytest.param(b"null", 422, "invalid_glint", id="null"),
    ],
)
def test_bodies_that_are_not_a_json_object(body, status, error):
    with pytest.raises(GlintError) as refused:
        parse_glint(body)
    assert (refused.value.status, refused.value.error) == (status, error)


@pytest.mark.parametrize("data", [pytest.param([], id="list"), pytest.param("x", id="string")])
def test_decoded_values_that_are_not_an_object(data):
    with pytest.raises(GlintError) as refused:
        validate_glint(data)
    assert (refused.value.status, refused.value.message) == (422, "a glint must be a JSON object")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"module": "breath.emitter"}, id="module-only"),
        pytest.param(
            {
                "module": "memory.scroll",
                "phase": "night_hold",
                "id": "test-123",
                "parent_id": "550e8400-e29b-41d4-a716-446655440000",
                "context": {"intention": "morning_emergence", "saturation": 0.1},
            },
            id="everything",
        ),
        pytest.param({"module": "a.b", "context": nested(MAX_CONTEXT_DEPTH)}, id="deepest-allowed"),
        pytest.param(
            {"module": "a.b", "context": {f"k{i}": i for i in range(MAX_CONTEXT_KEYS)}},
            id="most-keys-allowed",
        ),
        pytest.param({"module": "a.b", "context": {"s": "x" * MAX_STRING}}, id="longest-string"),
        pytest.param(
            {"module": "a.b", "context": {"s": "tab\tnew\nline\r\n", "e": "🫧 ünïcode"}},
            id="whitespace-and-unicode",
        ),
        pytest.param(
            {"module": "a.b", "context": {"n": 2**63 - 1, "f": -1.5e300}},
            id="big-but-storable-numbers",
        ),
        pytest.param({"module": "a_1.b_2.c3", "id": "A.b:c-d_e"}, id="id-punctuation"),
    ],
)
def test_good_glints_pass(data):
    parsed = validate_glint(data)
    assert isinstance(parsed, GlintIn)
    assert parsed.module == data["module"]
    assert parse_glint(orjson.dumps(data)) == parsed


def test_a_built_glint_round_trips_through_its_one_serialization():
    data = validate_glint(
        {"module": "memory.scroll", "phase": "return", "context": {"a": [1, "b"]}}
    )
    g = GlintDraft.stamp(
        "g-7",
        data,
        "return",
        "2027-01-15T08:00:00.000Z",
        1_800_000_000.0,
        {"phase": "return", "climate": "clear", "usage": 0.0},
        "127.0.0.1",
    ).glint(7)
    assert Glint.from_json(g.json) == g
    assert g.to_dict() == {
        "id": "g-7",
        "seq": 7,
        "module": "memory.scroll",
        "phase": "return",
        "context": {"a": [1, "b"]},
        "parent_id": None,
        "received_at": "2027-01-15T08:00:00.000Z",
        "breath": {"phase": "return", "climate": "clear", "usage": 0.0},
        "source": "127.0.0.1",
    }

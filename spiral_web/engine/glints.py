"""Glints: the validated shape a client sends, and the stamped record the hub keeps."""

from __future__ import annotations

import math
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .breath import Phase
from .validation import explain

MAX_CONTEXT_BYTES = 8 * 1024
MAX_CONTEXT_DEPTH = 8
MAX_CONTEXT_KEYS = 128
MAX_STRING = 4096

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
MODULE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
# C0 controls except tab, newline and carriage return; DEL; C1 controls; bidi overrides.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class GlintIn(BaseModel):
    """A glint as an outside module emits it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    module: str = Field(
        min_length=1,
        max_length=100,
        pattern=MODULE_PATTERN,
        description="Dotted lowercase source name, e.g. `memory.scroll`.",
        examples=["breath.emitter"],
    )
    phase: Phase | None = Field(
        default=None, description="One of the five phases; defaults to the current breath phase."
    )
    context: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            f"Free JSON object: at most {MAX_CONTEXT_BYTES} bytes, depth {MAX_CONTEXT_DEPTH}."
        ),
        examples=[{"intention": "morning_emergence", "saturation": 0.1}],
    )
    id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Client-chosen id (idempotency key); generated when absent.",
    )
    parent_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="The glint this one answers (lineage)."
    )

    @field_validator("context")
    @classmethod
    def _bounded_context(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_json(value, depth=1)
        try:
            size = len(orjson.dumps(value))
        except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits: a 422, not a 500
            raise ValueError(f"context cannot be stored as JSON: {exc}") from None
        if size > MAX_CONTEXT_BYTES:
            raise ValueError(f"context is {size} bytes; at most {MAX_CONTEXT_BYTES} are allowed")
        return value


def new_glint_id() -> str:
    """An id for a glint sent without one: a UUID of version 7 (RFC 9562), the time in
    milliseconds and then 74 random bits.

    Ids made one after another sort together, so the record's unique index of ids grows at its
    end; with random (version 4) UUIDs every glint wrote another page of that index (measured:
    15 µs a glint in SQLite). The random bytes come from a buffer filled 4 KiB at a time (a
    `getrandom` call per glint cost more than the rest of the id)."""
    global _random, _used
    with _random_lock:
        if _used + 10 > len(_random):
            _random, _used = os.urandom(4096), 0
        b = _random[_used : _used + 10]
        _used += 10
    t = f"{time.time_ns() // 1_000_000:012x}"
    r = b.hex()
    # version 7, then 12 random bits; the variant (binary 10) and 2 random bits, then 60 more
    return f"{t[:8]}-{t[8:]}-7{r[:3]}-{'89ab'[b[1] & 3]}{r[4:7]}-{r[7:19]}"


def _forget_random() -> None:
    global _random, _used
    _random, _used = b"", 0  # a forked worker must not hand out its parent's next ids


_random, _used = b"", 0
_random_lock = threading.Lock()
os.register_at_fork(after_in_child=_forget_random)


def _check_json(value: Any, depth: int) -> None:
    # depth counts objects and arrays; a scalar inside the deepest allowed one is fine
    if depth > MAX_CONTEXT_DEPTH and isinstance(value, (dict, list)):
        raise ValueError(f"context is nested deeper than {MAX_CONTEXT_DEPTH} levels")
    if isinstance(value, dict):
        if len(value) > MAX_CONTEXT_KEYS:
            raise ValueError(f"context object has {len(value)} keys; at most {MAX_CONTEXT_KEYS}")
        for key, item in value.items():
            _check_text(key)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_CONTEXT_KEYS:
            raise ValueError(f"context array has {len(value)} items; at most {MAX_CONTEXT_KEYS}")
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, str):
        _check_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        # NaN/Infinity are not JSON; orjson would silently store them as null
        raise ValueError("context numbers must be finite (no NaN or Infinity)")


def _check_text(text: str) -> None:
    if len(text) > MAX_STRING:
        raise ValueError(f"context string longer than {MAX_STRING} characters")
    if _CONTROL.search(text):
        raise ValueError("context contains control characters")


class GlintError(Exception):
    """A glint was refused; `status` is the HTTP status that says why, and `retry_after` (whole
    seconds) when trying again later will do."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.details = details or []
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.details:
            out["details"] = self.details
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        return out


def parse_glint(body: bytes) -> GlintIn:
    """Validate a raw JSON body; raise GlintError (400 bad JSON, 422 bad shape)."""
    try:
        return GlintIn.model_validate_json(body)
    except ValidationError as exc:
        return _raise_from(exc)


def validate_glint(data: Any) -> GlintIn:
    """Validate an already-decoded object (WebSocket frame, Python API)."""
    if not isinstance(data, dict):
        raise GlintError(422, "invalid_glint", "a glint must be a JSON object")
    try:
        return GlintIn.model_validate(data)
    except ValidationError as exc:
        return _raise_from(exc)


def _raise_from(exc: ValidationError) -> GlintIn:
    raise GlintError(*explain(exc, "invalid_glint", "a glint must be a JSON object")) from None


@dataclass(frozen=True, slots=True)
class Glint:
    """A stamped, stored glint. `json` is its one serialization, shared by store, API and stream."""

    seq: int
    id: str
    module: str
    phase: str
    context: dict[str, Any]
    parent_id: str | None
    received_at: str
    breath: dict[str, Any]
    source: str
    json: bytes

    @classmethod
    def from_json(cls, raw: bytes | str) -> Glint:
        d = orjson.loads(raw)
        raw_bytes = raw.encode() if isinstance(raw, str) else raw
        return cls(
            d["seq"],
            d["id"],
            d["module"],
            d["phase"],
            d["context"],
            d.get("parent_id"),
            d["received_at"],
            d["breath"],
            d.get("source", ""),
            raw_bytes,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = orjson.loads(self.json)
        return out


@dataclass(frozen=True, slots=True)
class GlintDraft:
    """A glint the domain decided to store, lacking only its seq.

    `tail` is its JSON body after `{"seq":N,`: a record (SQLite in Python, PostgreSQL in the
    statement that allocates the seq) puts the seq in front without parsing or re-serializing."""

    id: str
    module: str
    phase: str
    context: dict[str, Any]
    parent_id: str | None
    received_at: str
    received_ts: float
    breath: dict[str, Any]
    source: str
    phase_given: bool  # the publisher named the phase (else it is the breath's at receipt)
    tail: bytes
    id_given: bool = True  # the publisher chose the id (else the hub made a new random one)

    @classmethod
    def stamp(
        cls,
        gid: str,
        data: GlintIn,
        phase: str,
        received_at: str,
        received_ts: float,
        breath: dict[str, Any],
        source: str,
    ) -> GlintDraft:
        """The draft of a validated glint, stamped with its receipt (serialized here, once)."""
        record = {
            "id": gid,
            "module": data.module,
            "phase": phase,
            "context": data.context,
            "parent_id": data.parent_id,
            "received_at": received_at,
            "breath": breath,
            "source": source,
        }
        return cls(
            gid,
            data.module,
            phase,
            data.context,
            data.parent_id,
            received_at,
            received_ts,
            breath,
            source,
            data.phase is not None,
            orjson.dumps(record)[1:],
            data.id is not None,
        )

    def body(self, seq: int) -> bytes:
        """The stored JSON body under `seq` (what `seq_prefix` + `tail` make)."""
        return seq_prefix(seq) + self.tail

    def glint(self, seq: int) -> Glint:
        return Glint(
            seq,
            self.id,
            self.module,
            self.phase,
            self.context,
            self.parent_id,
            self.received_at,
            self.breath,
            self.source,
            self.body(seq),
        )


def seq_prefix(seq: int) -> bytes:
    """The start of every stored body: `{"seq":N,` (a body's fields follow in its tail)."""
    return b'{"seq":%d,' % seq

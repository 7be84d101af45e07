"""Pydantic models for what the API answers. Requests are validated by engine.glints.GlintIn; the
OpenAPI document is generated from these models and that one, so the schema is written once."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ..engine.breath import Climate, Phase


class BreathStamp(BaseModel):
    phase: Phase
    climate: Climate
    usage: float = Field(ge=0, le=1)


class GlintOut(BaseModel):
    id: str
    seq: int
    module: str
    phase: Phase
    context: dict[str, Any]
    parent_id: str | None
    received_at: str = Field(description="ISO 8601 UTC time of receipt")
    breath: BreathStamp
    source: str


class EmitAnswer(BaseModel):
    status: Literal["glint_broadcast", "glint_duplicate"]
    id: str
    seq: int
    listeners: int


class GlintPage(BaseModel):
    glints: list[GlintOut]
    next_before_seq: int | None = Field(description="Pass as before_seq to get the next (older) page")


class LineageNode(GlintOut):
    children: list["LineageNode"] = []


class Lineage(BaseModel):
    glint: GlintOut
    ancestors: list[GlintOut] = Field(description="Nearest first, up to the root")
    descendants: list[LineageNode]
    truncated: bool


class Rates(BaseModel):
    per_second_10s: float
    per_second_60s: float


class StatsOut(BaseModel):
    total: int
    by_phase: dict[str, int]
    by_module: dict[str, int]
    stream_sync: bool
    listeners: int
    last_seq: int
    rates: Rates


class BreathOut(BaseModel):
    phase: Phase
    phase_started_at: str
    phase_ends_at: str
    phase_reason: Literal["cycle", "quiet_hours", "override"]
    climate: Climate
    climate_reason: str
    usage: float
    resting: bool
    server_time: str


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorOut(BaseModel):
    error: str
    message: str
    details: list[ErrorDetail] | None = None

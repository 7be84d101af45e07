"""Pydantic models for what the API answers. Requests are validated by engine.glints.GlintIn; the
OpenAPI document is generated from these models and that one, so the schema is written once."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    next_before_seq: int | None = Field(
        description="Pass as before_seq to get the next (older) page"
    )


class LineageNode(GlintOut):
    children: list[LineageNode] = []


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


class AlertOut(BaseModel):
    kind: str = Field(description="e.g. `suspicion` (raised by the suspicion watcher)")
    sources: list[str] = Field(description="The sources it names (client addresses)")
    since: str
    until: str
    message: str


class BreathOut(BaseModel):
    phase: Phase
    phase_started_at: str
    phase_ends_at: str
    phase_reason: Literal["cycle", "quiet_hours", "override"]
    climate: Climate
    climate_reason: str
    usage: float
    resting: bool = Field(description="night_hold: agents should rest")
    caesura: bool = Field(False, description="The caesura ritual declared the soft shutdown")
    throttled: bool = Field(False, description="Input is paused (POST /stream/glint answers 429)")
    alerts: list[AlertOut] = []
    server_time: str


# -- rituals -------------------------------------------------------------------------------------

RunStatus = Literal["ok", "error", "deferred", "skipped_cooldown"]
TriggerEvent = Literal["glint", "phase_change", "climate_change", "invoke"]


class RitualWindow(BaseModel):
    count: int = Field(ge=1)
    seconds: float = Field(gt=0)


class RitualState(BaseModel):
    last_run_at: str | None
    last_status: RunStatus | None
    last_seq: int | None
    cooldown_until: str | None = Field(description="Set while a cooldown is running")
    deferred: int = Field(description="Matches waiting for the next inhale (caesura), coalesced")
    runs: int = Field(description="Runs (ok or error) since this process started")
    skipped_cooldown: int = Field(description="Matches skipped for the cooldown since start")


class RitualOut(BaseModel):
    name: str
    description: str
    builtin: bool
    rule: str = Field(description="CEL expression over the glint and the breath")
    action: Literal["archive", "throttle", "watch", "caesura", "emit", "webhook", "set_climate"]
    params: dict[str, Any]
    phases: list[Phase] = Field(description="Breath phases in which it may run")
    cooldown: float
    window: RitualWindow | None
    essential: bool = Field(description="Essential rituals are not deferred by the caesura")
    enabled: bool
    background: bool = Field(description="Runs on the background worker (never delays ingest)")
    state: RitualState


class RitualList(BaseModel):
    rituals: list[RitualOut]


class RitualRun(BaseModel):
    seq: int = Field(description="From the same sequence as glints: the stream's event id")
    ritual: str
    action: str
    trigger_id: str | None
    trigger_event: TriggerEvent
    rule: str
    status: RunStatus
    result: dict[str, Any]
    duration_ms: float
    at: str
    emitted_id: str | None = Field(
        description="The glint the run emitted (its parent is the trigger)"
    )
    deferred_from: int | None = Field(None, description="The deferred run this one completes")
    coalesced: int | None = Field(None, description="Matches deferred into this one run")


class RunPage(BaseModel):
    runs: list[RitualRun]
    next_before_seq: int | None


class InvokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    glint_id: str | None = Field(
        None, max_length=128, description="A stored glint to act on: the trigger and parent"
    )


class InvokeOut(BaseModel):
    run: RitualRun


class DryRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    last: int = Field(100, ge=1, le=1000, description="How many of the latest glints to examine")
    rule: str | None = Field(
        None, max_length=2000, description="Try this rule instead of the ritual's own"
    )


class DryRunMatch(BaseModel):
    id: str
    seq: int
    module: str
    phase: Phase
    received_at: str


class DryRunOut(BaseModel):
    ritual: str
    rule: str
    examined: int
    matched_count: int
    matched: list[DryRunMatch]


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorOut(BaseModel):
    error: str
    message: str
    details: list[ErrorDetail] | None = None
    retry_after: int | None = Field(None, description="With 429: seconds to wait (as Retry-After)")

"""Admin actions on the breath: set the phase or the climate for a limited time.

`POST /api/admin/phase` and `POST /api/admin/climate` take and answer JSON and need the admin token
when one is configured. The dashboard's breath controls post a form to its own route, which calls
the same functions here. After every change the breath is published at once, so every dashboard
and listener sees it without waiting for the next tick.
"""

from __future__ import annotations

from typing import Literal

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field

from ..engine.breath import CLIMATES, PHASES, iso
from .access import access
from .common import json_response, spiral
from .errors import Invalid
from .queries import json_object
from .schemas import BreathOut

bp = Blueprint("admin", __name__, url_prefix="/api/admin")

MAX_SECONDS = 24 * 3600.0

Phase = Literal["inhale", "hold", "exhale", "return", "night_hold"]
Climate = Literal["clear", "unsettled", "suspicious"]


class PhaseOverrideIn(BaseModel):
    """Hold the breath in one phase for a while, or release it (`phase: null`)."""

    model_config = ConfigDict(extra="forbid")

    phase: Phase | None = Field(description="The phase to hold; null releases an override.")
    seconds: float = Field(
        default=300.0,
        gt=0,
        le=MAX_SECONDS,
        description="How long the override lasts (ignored when releasing).",
    )


class ClimateOverrideIn(BaseModel):
    """Set the climate for a while, or let traffic decide again (`climate: null`)."""

    model_config = ConfigDict(extra="forbid")

    climate: Climate | None = Field(description="The climate to set; null releases an override.")
    seconds: float = Field(
        default=300.0,
        gt=0,
        le=MAX_SECONDS,
        description="How long the override lasts (ignored when releasing).",
    )


class OverrideAnswer(BaseModel):
    status: Literal["phase_set", "phase_released", "climate_set", "climate_released"]
    until: str | None = Field(description="When the override ends (ISO 8601), null when released.")
    breath: BreathOut = Field(description="The breath state after the change (as /api/breath).")


@bp.post("/phase")
@access("admin", json_only=True)
def phase():
    body = json_object(PhaseOverrideIn, "invalid_override")
    until = set_phase(body.phase, body.seconds)
    return _answer("phase_set" if body.phase else "phase_released", until)


@bp.post("/climate")
@access("admin", json_only=True)
def climate():
    body = json_object(ClimateOverrideIn, "invalid_override")
    until = set_climate(body.climate, body.seconds)
    return _answer("climate_set" if body.climate else "climate_released", until)


# -- shared with the dashboard's form --------------------------------------------------------------


def set_phase(phase: str | None, seconds: float) -> float | None:
    """Override the phase for `seconds` (None releases), publish the breath; the end or None."""
    return _override("phase", PHASES, phase, seconds)


def set_climate(climate: str | None, seconds: float) -> float | None:
    """Override the climate for `seconds` (None releases), publish the breath; the end or None."""
    return _override("climate", CLIMATES, climate, seconds)


def _override(
    kind: str, allowed: tuple[str, ...], value: str | None, seconds: float
) -> float | None:
    if value is not None:
        if value not in allowed:
            raise Invalid(
                "invalid_override",
                f"{kind} must be one of {', '.join(allowed)}",
                [{"field": kind, "problem": f"choose one of {', '.join(allowed)}"}],
            )
        _check_seconds(seconds)
    hub = spiral()
    getattr(hub.breath, f"override_{kind}")(value, seconds)
    hub.orchestrator.publish_breath(force=True)
    return hub.clock.now() + seconds if value is not None else None


# -- helpers ---------------------------------------------------------------------------------------


def _check_seconds(seconds: float) -> None:
    if not (0 < seconds <= MAX_SECONDS):
        raise Invalid(
            "invalid_override",
            f"duration must be between 1 second and {MAX_SECONDS / 3600:g} hours",
            [{"field": "minutes", "problem": "choose a duration up to 24 hours"}],
        )


def _answer(status: str, until: float | None):
    return json_response(
        {
            "status": status,
            "until": iso(until) if until is not None else None,
            "breath": spiral().breath.state().to_dict(),
        }
    )

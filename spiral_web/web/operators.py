"""What operators read and lift, as JSON under /api/operators/: the blocked sources and the
throttle (and the way out of both), who was refused and why, and who is connected.

The dashboard's console (web/dashboard/console.py) shows the same data as pages and calls the
same functions here to act, so a page and a script see one truth.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from pydantic import BaseModel, ConfigDict, Field

from .access import access
from .common import json_response, spiral
from .queries import json_object, whole_number
from .schemas import ErrorOut

bp = Blueprint("operators", __name__, url_prefix="/api/operators")

MAX_REFUSALS = 500  # what the engine keeps


# -- what the routes take and answer (also the OpenAPI document's schemas) -----------------------


class BlockOut(BaseModel):
    source: str = Field(description="A token's name or a client address")
    since: str | None = Field(description="When the alert that blocked it was raised")
    until: str = Field(description="When the block lifts by itself (ISO 8601 UTC)")
    seconds_left: int
    reason: str


class ProtectionOut(BaseModel):
    throttled: bool = Field(description="Input is paused: heavy sources get 429")
    climate: str
    blocks: list[BlockOut] = Field(description="Blocked sources, soonest lifted first")


class UnblockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=200, description="The blocked source to let in")


class UnblockOut(BaseModel):
    source: str
    unblocked: bool = Field(description="False when the source was not blocked")
    blocks: list[BlockOut] = Field(description="What is still blocked")


class ThrottleEndOut(BaseModel):
    ended: bool = Field(description="False when input was not paused")
    throttled: bool


class RefusalOut(BaseModel):
    at: str
    source: str
    status: int = Field(description="The HTTP status answered (0 when not known)")
    reason: str = Field(description="The error code answered, e.g. invalid_glint, rate_limited")


class RefusalsOut(BaseModel):
    window_seconds: float = Field(description="The climate's window, which the counts cover")
    total: int = Field(description="Refusals within the window")
    by_source: dict[str, int] = Field(description="The 20 most refused sources in the window")
    by_reason: dict[str, int]
    recent: list[RefusalOut] = Field(description="The newest refusals, newest first")


class SubscriberOut(BaseModel):
    transport: str | None = Field(None, description="sse, websocket, dashboard…")
    client: str | None = Field(None, description="A token's name or a client address")
    since: str | None = None
    module: str | None = Field(description="The module filter (a glob), if any")
    phases: list[str] = Field(description="The phase filter; empty for every phase")
    lag: int = Field(description="Events published that it has not taken yet")


class WorkerOut(BaseModel):
    worker: str
    this: bool = Field(description="The worker that answered this request")
    listeners: int
    subscribers: list[SubscriberOut] = Field(description="The furthest behind first (at most 100)")


class ClientsOut(BaseModel):
    total: int = Field(description="Subscribers across every live worker")
    workers: list[WorkerOut]


MODELS: list[type[BaseModel]] = [
    ProtectionOut,
    UnblockIn,
    UnblockOut,
    ThrottleEndOut,
    RefusalsOut,
    ClientsOut,
]


def openapi_paths() -> dict[str, Any]:
    """The routes below for the OpenAPI document (web/openapi.py adds them to its own)."""

    def answer(model: type[BaseModel], text: str) -> dict[str, Any]:
        schema = {"$ref": f"#/components/schemas/{model.__name__}"}
        return {"description": text, "content": {"application/json": {"schema": schema}}}

    def refused(*codes: int) -> dict[str, Any]:
        return {str(c): answer(ErrorOut, "Refused: the body says why") for c in codes}

    admin: list[dict[str, list[str]]] = [{"adminToken": []}]
    return {
        "/api/operators/protection": {
            "get": {
                "summary": "The throttle, the climate and every blocked source",
                "operationId": "getProtection",
                "responses": {"200": answer(ProtectionOut, "What keeps input out now")},
            }
        },
        "/api/operators/unblock": {
            "post": {
                "summary": "Let a blocked source in again, on every worker (admin)",
                "operationId": "unblockSource",
                "security": admin,
                "requestBody": {"required": True, "content": answer(UnblockIn, "")["content"]},
                "responses": {
                    "200": answer(UnblockOut, "Done, or it was not blocked (`unblocked`)"),
                    **refused(400, 415, 422),
                },
            }
        },
        "/api/operators/throttle/end": {
            "post": {
                "summary": "Lift the throttle now, on every worker (admin)",
                "operationId": "endThrottle",
                "security": admin,
                "responses": {"200": answer(ThrottleEndOut, "Done, or it was not on (`ended`)")},
            }
        },
        "/api/operators/refusals": {
            "get": {
                "summary": "Who was refused and why: counts and the newest refusals (admin)",
                "operationId": "getRefusals",
                "security": admin,
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "How many of the newest refusals",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_REFUSALS},
                    }
                ],
                "responses": {"200": answer(RefusalsOut, "Refusals"), **refused(400)},
            }
        },
        "/api/operators/clients": {
            "get": {
                "summary": "Connected clients per worker and in total: filters, lag (admin)",
                "operationId": "getClients",
                "security": admin,
                "responses": {"200": answer(ClientsOut, "Every live worker's subscribers")},
            }
        },
    }


# -- routes ---------------------------------------------------------------------------------------


@bp.get("/protection")
@access("read")
def get_protection():
    """The breath already names blocked sources to readers (its alerts); this says more."""
    return json_response(protection())


@bp.post("/unblock")
@access("admin", json_only=True)
def post_unblock():
    body = json_object(UnblockIn, "invalid_request")
    done = unblock(body.source)
    return json_response(
        {"source": body.source, "unblocked": done, "blocks": protection()["blocks"]}
    )


@bp.post("/throttle/end")
@access("admin")
def post_end_throttle():
    done = end_throttle()
    return json_response({"ended": done, "throttled": spiral().breath.state().throttled})


@bp.get("/refusals")
@access("admin")
def get_refusals():
    """Refusals name client addresses and tokens: for admins only."""
    return json_response(refusals(whole_number(request.args, "limit", 50, 1, MAX_REFUSALS) or 50))


@bp.get("/clients")
@access("admin")
def get_clients():
    """Connected clients name their addresses and tokens: for admins only."""
    return json_response(clients())


# -- shared with the dashboard's console ----------------------------------------------------------


def protection() -> dict[str, Any]:
    """The throttle, the climate and the blocked sources, now."""
    hub = spiral()
    state = hub.breath.state()
    return {"throttled": state.throttled, "climate": state.climate, "blocks": hub.breath.blocks()}


def unblock(source: str) -> bool:
    """Let `source` in again, on every worker (and later ones); publish the breath at once, so
    its alert leaves every dashboard. True when it was blocked."""
    hub = spiral()
    done = hub.breath.unblock(source)
    if done:
        hub.orchestrator.publish_breath(force=True)
    return done


def end_throttle() -> bool:
    """Lift the throttle now, on every worker; publish the breath. True when input was paused."""
    hub = spiral()
    done = hub.breath.end_throttle()
    if done:
        hub.orchestrator.publish_breath(force=True)
    return done


def refusals(limit: int = 50) -> dict[str, Any]:
    """Who was refused and why: counts over the climate's window and the newest refusals."""
    return spiral().breath.rejections(limit)


def clients() -> dict[str, Any]:
    """Every live worker's subscribers (this one's read now, the others' last report)."""
    hub = spiral()
    here = hub.cluster.worker_id
    reports = {**hub.cluster.workers(), here: hub.report()}  # this worker's now, not as last told
    workers = [
        {
            "worker": worker,
            "this": worker == here,
            "listeners": int(report.get("listeners", 0)),
            "subscribers": [_subscriber(s) for s in report.get("subscribers", [])],
        }
        for worker, report in sorted(reports.items(), key=lambda kv: (kv[0] != here, kv[0]))
    ]
    return {"total": sum(w["listeners"] for w in workers), "workers": workers}


def _subscriber(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "transport": raw.get("transport"),
        "client": raw.get("client"),
        "since": raw.get("since"),
        "module": raw.get("module"),
        "phases": list(raw.get("phases") or []),
        "lag": int(raw.get("lag") or 0),
    }

"""The OpenAPI 3.1 document, generated from the pydantic models that validate and describe the
API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ..engine.glints import GlintIn
from . import operators
from . import schemas as s
from .admin import ClimateOverrideIn, OverrideAnswer, PhaseOverrideIn

MODELS: list[type[BaseModel]] = [
    GlintIn,
    s.GlintOut,
    s.EmitAnswer,
    s.GlintPage,
    s.Lineage,
    s.StatsOut,
    s.BreathOut,
    s.ErrorOut,
    s.RitualList,
    s.RunPage,
    s.InvokeIn,
    s.InvokeOut,
    s.DryRunIn,
    s.DryRunOut,
    s.RitualRun,
    PhaseOverrideIn,
    ClimateOverrideIn,
    OverrideAnswer,
    *operators.MODELS,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _json(s.ErrorOut, "Refused: the body says why") for c in codes}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def build_openapi(version: str) -> dict[str, Any]:
    _, defs = models_json_schema(
        [(m, "validation") for m in MODELS], ref_template="#/components/schemas/{model}"
    )
    phase = {"type": "string", "enum": ["inhale", "hold", "exhale", "return", "night_hold"]}
    module = {"type": "string", "maxLength": 100, "pattern": r"^[a-z0-9_.*?]+$"}
    gid = {
        "name": "glint_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "maxLength": 128},
    }
    ritual = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,63}$"},
    }
    # epoch seconds, or an ISO 8601 time with its offset (what api._time accepts)
    when = {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}
    # Tokens are needed only once configured (a local hub runs open): hence the `{}` alternative.
    reader: list[dict[str, list[str]]] = [
        {"readToken": []},
        {"publishToken": []},
        {"adminToken": []},
        {},
    ]
    throttled = {
        "description": "Input paused (throttle) or this source blocked (suspicion watcher)",
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
        "content": {"application/json": {"schema": _ref(s.ErrorOut)}},
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Spiral",
            "version": version,
            "description": "Real-time glint hub: emit glints, read them back, follow the breath.",
        },
        "paths": {
            "/stream/glint": {
                "post": {
                    "summary": "Emit a glint",
                    "operationId": "emitGlint",
                    "description": "With publish tokens configured, needs one (Bearer); the "
                    "token's name becomes the glint's source. A parent_id must name a stored "
                    "glint.",
                    "security": [{"publishToken": []}, {"adminToken": []}, {}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(GlintIn)}},
                    },
                    "responses": {
                        "201": _json(s.EmitAnswer, "Stored and broadcast"),
                        "200": _json(
                            s.EmitAnswer, "Already stored under this id; not broadcast again"
                        ),
                        **_errors(400, 401, 403, 413, 415, 422),
                        "409": _json(
                            s.ErrorOut,
                            "The id names a stored glint with another body, or one another "
                            "publisher sent (`glint_conflict`, `id_taken`)",
                        ),
                        "429": throttled,
                    },
                }
            },
            "/stream": {
                "get": {
                    "summary": "Server-Sent Events: glint_emission, breath (and ritual) events",
                    "operationId": "stream",
                    "parameters": [
                        _query("module", "Module glob, e.g. memory.*", module),
                        _query(
                            "phase", "Phase (repeatable or comma-separated)", {"type": "string"}
                        ),
                        _query(
                            "lastEventId",
                            "Resume after this seq (first connection)",
                            {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "An event stream",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **_errors(400),
                    },
                }
            },
            "/api/glints": {
                "get": {
                    "summary": "Glints, newest first",
                    "operationId": "listGlints",
                    "parameters": [
                        _query("module", "Module or glob", module),
                        _query("phase", "Phase", phase),
                        _query("since", "ISO time or epoch seconds", when),
                        _query("until", "ISO time or epoch seconds", when),
                        _query(
                            "before_seq",
                            "Paging cursor",
                            {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                        ),
                        _query(
                            "limit", "Page size", {"type": "integer", "minimum": 1, "maximum": 500}
                        ),
                    ],
                    "responses": {"200": _json(s.GlintPage, "A page of glints"), **_errors(400)},
                }
            },
            "/api/glints/{glint_id}": {
                "get": {
                    "summary": "One glint",
                    "operationId": "getGlint",
                    "parameters": [gid],
                    "responses": {"200": _json(s.GlintOut, "The glint"), **_errors(404)},
                }
            },
            "/api/glints/{glint_id}/lineage": {
                "get": {
                    "summary": "Ancestors to the root and the descendant tree",
                    "operationId": "getLineage",
                    "parameters": [gid],
                    "responses": {"200": _json(s.Lineage, "The lineage"), **_errors(404)},
                }
            },
            "/api/archive": {
                "get": {
                    "summary": "Archived glints, newest first (filters and paging as /api/glints)",
                    "operationId": "listArchive",
                    "parameters": [
                        _query("module", "Module or glob", module),
                        _query("phase", "Phase", phase),
                        _query("since", "ISO time or epoch seconds", when),
                        _query("until", "ISO time or epoch seconds", when),
                        _query(
                            "before_seq",
                            "Paging cursor",
                            {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                        ),
                        _query(
                            "limit", "Page size", {"type": "integer", "minimum": 1, "maximum": 500}
                        ),
                    ],
                    "responses": {
                        "200": _json(s.GlintPage, "A page of archived glints"),
                        **_errors(400),
                    },
                }
            },
            "/api/rituals": {
                "get": {
                    "summary": "Every ritual: its definition and state",
                    "operationId": "listRituals",
                    "responses": {"200": _json(s.RitualList, "The rituals, in evaluation order")},
                }
            },
            "/api/rituals/history": {
                "get": {
                    "summary": "Ritual runs, newest first",
                    "operationId": "ritualHistory",
                    "parameters": [
                        _query(
                            "ritual",
                            "Only this ritual",
                            {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,63}$"},
                        ),
                        _query(
                            "status",
                            "Only this status",
                            {
                                "type": "string",
                                "enum": ["ok", "error", "deferred", "skipped_cooldown"],
                            },
                        ),
                        _query(
                            "before_seq",
                            "Paging cursor",
                            {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                        ),
                        _query(
                            "limit", "Page size", {"type": "integer", "minimum": 1, "maximum": 500}
                        ),
                    ],
                    "responses": {"200": _json(s.RunPage, "A page of runs"), **_errors(400)},
                }
            },
            "/api/rituals/{name}/invoke": {
                "post": {
                    "summary": "Run a ritual now, whatever its rule, phases or cooldown (admin)",
                    "operationId": "invokeRitual",
                    "parameters": [ritual],
                    "security": [{"adminToken": []}],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref(s.InvokeIn)}},
                    },
                    "responses": {
                        "200": _json(s.InvokeOut, "The recorded run"),
                        **_errors(400, 401, 403, 404, 415, 422),
                    },
                }
            },
            "/api/rituals/{name}/dry-run": {
                "post": {
                    "summary": (
                        "Which recent glints the ritual's rule (or a given one) matches (admin)"
                    ),
                    "operationId": "dryRunRitual",
                    "parameters": [ritual],
                    "security": [{"adminToken": []}],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref(s.DryRunIn)}},
                    },
                    "responses": {
                        "200": _json(s.DryRunOut, "The matches; nothing was run or recorded"),
                        **_errors(400, 401, 403, 404, 415, 422),
                    },
                }
            },
            "/api/admin/phase": {
                "post": {
                    "summary": "Hold the breath in one phase for a while, or release it (admin)",
                    "operationId": "overridePhase",
                    "security": [{"adminToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(PhaseOverrideIn)}},
                    },
                    "responses": {
                        "200": _json(
                            OverrideAnswer, "Done; the breath was published to every listener"
                        ),
                        **_errors(400, 401, 403, 415, 422),
                    },
                }
            },
            "/api/admin/climate": {
                "post": {
                    "summary": "Set the climate for a while, or let traffic decide again (admin)",
                    "operationId": "overrideClimate",
                    "security": [{"adminToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(ClimateOverrideIn)}},
                    },
                    "responses": {
                        "200": _json(
                            OverrideAnswer, "Done; the breath was published to every listener"
                        ),
                        **_errors(400, 401, 403, 415, 422),
                    },
                }
            },
            "/api/stats": {
                "get": {
                    "summary": "Statistics",
                    "operationId": "getStats",
                    "responses": {"200": _json(s.StatsOut, "Statistics")},
                }
            },
            "/api/breath": {
                "get": {
                    "summary": "The breath state",
                    "operationId": "getBreath",
                    "responses": {"200": _json(s.BreathOut, "Phase, climate, usage")},
                }
            },
        },
        "security": reader,
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin token (SPIRAL_ADMIN_TOKEN)",
                },
                "publishToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A publish token ([tokens.publish])",
                },
                "readToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A read token ([tokens.read]); the stream "
                    "also takes it as ?token=",
                },
            },
        },
    }
    doc["paths"].update(operators.openapi_paths())
    for item in doc["paths"].values():  # any operation may meet the token checks (web/auth/)
        for op in item.values():
            for code in (401, 403):
                refused = _json(s.ErrorOut, "Refused: the body says why")
                op["responses"].setdefault(str(code), refused)
    doc["paths"]["/stream"]["get"]["responses"]["503"] = {
        "description": "This server has its maximum of listeners; try again after Retry-After",
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        },
        "content": {"application/json": {"schema": _ref(s.ErrorOut)}},
    }
    return doc

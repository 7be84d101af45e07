"""The OpenAPI 3.1 document, generated from the pydantic models that validate and describe the API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ..engine.glints import GlintIn
from . import schemas as s

MODELS: list[type[BaseModel]] = [
    GlintIn, s.GlintOut, s.EmitAnswer, s.GlintPage, s.Lineage, s.StatsOut, s.BreathOut, s.ErrorOut,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _json(s.ErrorOut, "Refused: the body says why") for c in codes}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def build_openapi(version: str) -> dict[str, Any]:
    _, defs = models_json_schema([(m, "validation") for m in MODELS],
                                 ref_template="#/components/schemas/{model}")
    phase = {"type": "string", "enum": ["inhale", "hold", "exhale", "return", "night_hold"]}
    module = {"type": "string", "maxLength": 100, "pattern": r"^[a-z0-9_.*?]+$"}
    gid = {"name": "glint_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 128}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Spiral", "version": version,
                 "description": "Real-time glint hub: emit glints, read them back, follow the breath."},
        "paths": {
            "/stream/glint": {"post": {
                "summary": "Emit a glint", "operationId": "emitGlint",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(GlintIn)}}},
                "responses": {"201": _json(s.EmitAnswer, "Stored and broadcast"),
                              "200": _json(s.EmitAnswer, "Already stored under this id; not broadcast again"),
                              **_errors(400, 413, 415, 422)},
            }},
            "/stream": {"get": {
                "summary": "Server-Sent Events: glint_emission, breath (and ritual) events",
                "operationId": "stream",
                "parameters": [_query("module", "Module glob, e.g. memory.*", module),
                               _query("phase", "Phase (repeatable or comma-separated)", {"type": "string"}),
                               _query("lastEventId", "Resume after this seq (first connection)",
                                      {"type": "integer", "minimum": 0})],
                "responses": {"200": {"description": "An event stream",
                                      "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                              **_errors(400)},
            }},
            "/api/glints": {"get": {
                "summary": "Glints, newest first", "operationId": "listGlints",
                "parameters": [_query("module", "Module or glob", module), _query("phase", "Phase", phase),
                               _query("since", "ISO time or epoch seconds", {"type": "string"}),
                               _query("until", "ISO time or epoch seconds", {"type": "string"}),
                               _query("before_seq", "Paging cursor", {"type": "integer", "minimum": 0}),
                               _query("limit", "Page size", {"type": "integer", "minimum": 1, "maximum": 500})],
                "responses": {"200": _json(s.GlintPage, "A page of glints"), **_errors(400)},
            }},
            "/api/glints/{glint_id}": {"get": {
                "summary": "One glint", "operationId": "getGlint", "parameters": [gid],
                "responses": {"200": _json(s.GlintOut, "The glint"), **_errors(404)},
            }},
            "/api/glints/{glint_id}/lineage": {"get": {
                "summary": "Ancestors to the root and the descendant tree", "operationId": "getLineage",
                "parameters": [gid],
                "responses": {"200": _json(s.Lineage, "The lineage"), **_errors(404)},
            }},
            "/api/stats": {"get": {"summary": "Statistics", "operationId": "getStats",
                                   "responses": {"200": _json(s.StatsOut, "Statistics")}}},
            "/api/breath": {"get": {"summary": "The breath state", "operationId": "getBreath",
                                    "responses": {"200": _json(s.BreathOut, "Phase, climate, usage")}}},
        },
        "components": {"schemas": defs["$defs"]},
    }

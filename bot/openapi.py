"""The OpenAPI 3.0 description of the bot's HTTP API, served at `/api/openapi.json`.

Built in code, from the same constants the handlers check against (keypad keys, text
length, slot parsers, teams), so that it cannot drift from a YAML file nobody reruns;
tests/test_fuzz.py checks every route of `bot.server.create_app` against it and every
answer of the fuzzed API against its schemas. Error bodies are always `{"error": str}`
(`bot.chat.json_error`, and the `json_errors` middleware for aiohttp's own 404/405/413).
"""

from __future__ import annotations

import copy
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from flows.engine import MAX_KEYS
from flows.schema import TEAMS
from flows.slots import PARSERS

# Mirrors bot/chat.py `_read_message` (its limits are literals there).
MAX_TEXT_CHARS = 2000
CHANNELS = ("text", "webrtc", "sip")
JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _obj(properties: dict[str, Any], *, required: tuple[str, ...] | None = None, **extra: Any) -> dict[str, Any]:
    """A closed object: a field the spec does not name is a drift the fuzzer reports."""
    return {"type": "object", "properties": properties,
            "required": list(properties if required is None else required),
            "additionalProperties": False, **extra}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _schemas() -> dict[str, Any]:
    strings = {"type": "array", "items": {"type": "string"}}
    team = {"type": "string", "enum": list(TEAMS)}
    # Not `format: date-time`: RFC 3339 wants an offset, and SQLite gives the UTC time without one.
    timestamp = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}",
                 "description": "ISO 8601, UTC (no offset when the store is SQLite)"}
    return {
        "Error": _obj({"error": {"type": "string"}}, description="Every error the API answers."),
        "Health": _obj({
            "status": {"type": "string", "enum": ["ok"]},
            "voice": _nullable({"type": "string", "description": "speech engine; null: text only"}),
            "question_types": {"type": "integer", "minimum": 0},
        }),
        "ChatOpened": _obj({
            "session_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "call_id": {"type": "string", "minLength": 1},
            "replies": {**strings, "minItems": 1, "description": "the greeting"},
        }),
        "ChatMessage": {
            "type": "object",
            "description": "Exactly one of `text` and `dtmf` (null counts as absent). Keys typed in a "
                           "flow that asks for a value are collected up to '#'.",
            "properties": {
                "text": _nullable({"type": "string", "maxLength": MAX_TEXT_CHARS}),
                "dtmf": _nullable({"type": "string", "pattern": f"^[0-9*#]{{1,{MAX_KEYS}}}$"}),
            },
        },
        "ChatReply": _obj({
            "replies": {**strings, "description": "empty only after the end, with an agent, or while "
                                                  "keys are collected up to '#'"},
            "intent": _nullable({"type": "string"}),
            "team": _nullable(team),
            # Inline: in OpenAPI 3.0 a `nullable` beside a `$ref` is ignored.
            "handoff": _nullable(_obj({"team": team, "reason": {"type": "string", "minLength": 1}})),
            "awaiting": _nullable({"type": "string", "enum": ["confirmation", "choice", *sorted(PARSERS)]}),
            "ended": {"type": "boolean"},
            "sources": {**strings, "description": "pages a fallback answer rests on"},
            "slow": {"type": "boolean", "description": "slow-speech mode is on"},
        }),
        "Offer": {
            "type": "object",
            "required": ["sdp"],
            "properties": {
                "sdp": {"type": "string", "description": "starts with 'v=0', has an 'm=audio' line"},
                "type": {"type": "string", "enum": ["offer"], "default": "offer"},
            },
        },
        "Answer": _obj({
            "sdp": {"type": "string"},
            "type": {"type": "string", "enum": ["answer"]},
            "pc_id": {"type": "string"},
            "call_id": {"type": "string", "minLength": 1},
        }),
        "Turn": _obj({
            "index": {"type": "integer", "minimum": 0},
            "speaker": {"type": "string", "enum": ["caller", "bot"]},
            "text": {"type": "string"},
            "start_ms": _nullable({"type": "integer"}),
            "end_ms": _nullable({"type": "integer"}),
            "asr_confidence": _nullable({"type": "number"}),
            "intent": _nullable({"type": "string"}),
            "intent_score": _nullable({"type": "number"}),
            "stt_ms": _nullable({"type": "integer"}),
            "dialogue_ms": _nullable({"type": "integer"}),
            "tts_ms": _nullable({"type": "integer"}),
            "total_ms": _nullable({"type": "integer"}),
        }),
        "Event": _obj({
            "at_ms": {"type": "integer"},
            "kind": {"type": "string"},
            "data": {"type": "object", "additionalProperties": True},
        }),
        "Call": _obj({
            "id": {"type": "string", "minLength": 1},
            "channel": {"type": "string", "enum": list(CHANNELS)},
            "started_at": timestamp,
            "ended_at": _nullable(timestamp),
            "outcome": _nullable({"type": "string"}),
            "team": _nullable(team),
            "region": _nullable({"type": "string"}),
            "recording_url": _nullable({"type": "string", "description": "GET it with the same token"}),
            "turns": {"type": "array", "items": _ref("Turn")},
            "events": {"type": "array", "items": _ref("Event")},
        }),
    }


def _call_id() -> dict[str, Any]:
    return {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _paths() -> dict[str, Any]:
    admin = [{"bearerAuth": []}]
    unauthorized = _error("no `Authorization: Bearer` credentials")
    forbidden = _error("wrong token, or no CALLBOT_ADMIN_TOKEN configured")
    return {
        "/health": {"get": {
            "operationId": "health", "summary": "The server is up; what it serves.",
            "responses": {"200": _json(_ref("Health"), "up")},
        }},
        "/api/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This description.",
            "responses": {"200": _json({"type": "object"}, "the OpenAPI description")},
        }},
        "/api/chat": {"post": {
            "operationId": "openChat", "summary": "Open a text session; the body is not read.",
            "responses": {
                "201": _json(_ref("ChatOpened"), "opened, with the greeting"),
                "503": _error("too many open sessions"),
            },
        }},
        "/api/chat/{session_id}/messages": {"post": {
            "operationId": "postChatMessage", "summary": "One caller turn: words or keypad keys.",
            "parameters": [{"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("ChatMessage")}}},
            "responses": {
                "200": _json(_ref("ChatReply"), "the bot's reply"),
                "400": _error("not JSON, not UTF-8, not an object, neither or both fields, bad keys"),
                "404": _error("unknown or expired session"),
                "413": _error(f"body over the byte limit, or text over {MAX_TEXT_CHARS} characters"),
            },
        }},
        "/api/offer": {"post": {
            "operationId": "webrtcOffer", "summary": "A WebRTC call: SDP offer in, SDP answer out.",
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("Offer")}}},
            "responses": {
                "200": _json(_ref("Answer"), "the SDP answer; the call runs until the caller hangs up"),
                "400": _error("not an SDP offer with audio, or it could not be negotiated"),
                "413": _error("body too large"),
                "503": _error("voice calls disabled on this server, or all lines busy"),
            },
        }},
        "/api/calls/{call_id}": {"get": {
            "operationId": "getCall", "summary": "A call's record: turns, events, latency.",
            "security": admin, "parameters": [_call_id()],
            "responses": {
                "200": _json(_ref("Call"), "the record"),
                "401": unauthorized, "403": forbidden, "404": _error("unknown call"),
            },
        }},
        "/api/calls/{call_id}/recording": {"get": {
            "operationId": "getRecording", "summary": "The call's stereo WAV (caller left, bot right).",
            "security": admin, "parameters": [_call_id()],
            "responses": {
                "200": {"description": "the recording",
                        "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
                "401": unauthorized, "403": forbidden, "404": _error("unknown call, or no recording"),
            },
        }},
    }


def _version() -> str:
    try:
        return version("callbot")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0.0.0"


@cache
def _spec() -> dict[str, Any]:
    from bot import __doc__ as about

    return {
        "openapi": "3.0.3",
        "info": {"title": "callbot", "version": _version(), "description": (about or "").strip(),
                 "license": {"name": "GPL-3.0-or-later"}},
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "CALLBOT_ADMIN_TOKEN"}},
        },
    }


def openapi_spec() -> dict[str, Any]:
    """The description as a fresh dict (the cached one stays untouched by callers)."""
    return copy.deepcopy(_spec())


async def openapi_handler(request: web.Request) -> web.Response:
    return web.json_response(_spec())

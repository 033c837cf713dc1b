"""The OpenAPI 3.0 description of the bot's HTTP API, served at `/api/openapi.json`.

Built in code, from the same constants the handlers check against (keypad keys, text
length, slot parsers, teams, roles, wrap-up outcomes), so that it cannot drift from a YAML
file nobody reruns; tests/test_fuzz.py checks every route of `bot.server.create_app`
against it and every answer of the fuzzed API against its schemas. Error bodies are
`{"error": str}` (`bot.chat.json_error`, and the `json_errors` middleware for aiohttp's
own 404/405/413 and the handlers' raised 4xx), but for a locked sign-in (429), which also
says when to try again.

Who may call what: the call records take the admin bearer token (machine clients) or a
signed-in session of role supervisor or above; the agent console's routes (/api/agent/...)
and /api/me, /api/logout a session of any role (`require_role` in bot/agents/access.py:
401 without a valid session, 403 for a role too low and, on POST, without the session's
X-CSRF-Token).
"""

from __future__ import annotations

import copy
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from bot.agents.access import CSRF_HEADER, SESSION_COOKIE
from bot.agents.accounts import ROLES
from bot.agents.console import MAX_BODY, MAX_NOTE, OUTCOMES
from bot.supervision.audit import ACTIONS as AUDIT_ACTIONS
from bot.supervision.routes import MAX_REASON
from flows.engine import MAX_KEYS
from flows.schema import TEAMS
from flows.slots import PARSERS

# Mirrors bot/chat.py `_read_message` (its limits are literals there).
MAX_TEXT_CHARS = 2000
CHANNELS = ("text", "webrtc", "sip")
JSON = "application/json"
# `require_role("agent")` refuses a session only when its role is none of ROLES.
ROLE_UNKNOWN = "the session's role is none the hub knows"


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
    # "agent": what a human agent said, transcribed once they have the call.
    speaker = {"type": "string", "enum": ["caller", "bot", "agent"]}
    said = _obj({"speaker": speaker, "text": {"type": "string"}})
    device = {"type": "string", "enum": ["browser", "phone"]}
    call_id = {"type": "string", "minLength": 1}
    call_fields = {
        "id": call_id,
        "channel": {"type": "string", "enum": list(CHANNELS)},
        "caller": _nullable({"type": "string", "description": "the caller's number; masked for a session"}),
        "started_at": timestamp,
        "ended_at": _nullable(timestamp),
        "outcome": _nullable({"type": "string"}),
        "team": _nullable(team),
        "region": _nullable({"type": "string", "description": "the regional office"}),
        "recording_url": _nullable({"type": "string", "description": "GET it with the same credentials"}),
        "turns": {"type": "array", "items": _ref("Turn")},
        "events": {"type": "array", "items": _ref("Event")},
    }
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
            "speaker": speaker,
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
            "end_of_turn": _nullable(_obj({
                "probability": _nullable({"type": "number", "description": "smart-turn's, on the audio"}),
                "words_probability": _nullable({"type": "number", "description": "the completeness "
                                                "model's, on the words"}),
                "turn_probability": _nullable({"type": "number", "description": "all signals weighed"}),
                "wait_ms": {"type": "integer", "description": "silence the policy waited for"},
                "decided_ms": {"type": "integer", "description": "end of speech -> turn ended"},
                "reason": {"type": "string"},
            }, description="on a supervised call's caller turns: how the end of the turn was decided")),
        }, required=("index", "speaker", "text", "start_ms", "end_ms", "asr_confidence", "intent",
                     "intent_score", "stt_ms", "dialogue_ms", "tts_ms", "total_ms")),
        "Event": _obj({
            "at_ms": {"type": "integer"},
            "kind": {"type": "string"},
            "data": {"type": "object", "additionalProperties": True},
        }),
        "Call": _obj(call_fields),
        "SupervisedCall": _obj({
            **call_fields,
            "masked": {"type": "boolean", "description": "identifiers masked (false only for an admin's "
                                                         "audited unmasking)"},
            "timeline": {"type": "array", "items": _ref("Event"), "description": "the events a supervisor "
                         "reads, in time order"},
        }),
        "CallList": _obj({
            "total": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1},
            "page_size": {"type": "integer", "minimum": 1, "description": "200 at most"},
            "calls": {"type": "array", "items": _obj({
                "id": call_id,
                "channel": {"type": "string", "enum": list(CHANNELS)},
                "caller": _nullable({"type": "string", "description": "masked"}),
                "started_at": timestamp,
                "ended_at": _nullable(timestamp),
                "duration_s": _nullable({"type": "number"}),
                "outcome": _nullable({"type": "string"}),
                "team": _nullable(team),
                "office": _nullable({"type": "string"}),
                "question_type": _nullable({"type": "string"}),
                "transferred": {"type": "boolean"},
                "slow": {"type": "boolean"},
                "turns": {"type": "integer", "minimum": 0},
                "first_question": _nullable({"type": "string", "description": "masked, cut at 140 characters"}),
            })},
        }),
        "Unmask": {"type": "object", "required": ["reason"],
                   "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON}}},
        "AuditLog": _obj({"entries": {"type": "array", "items": _obj({
            "id": {"type": "integer"},
            "at": timestamp,
            "username": {"type": "string"},
            "role": {"type": "string", "enum": list(ROLES)},
            "action": {"type": "string", "enum": list(AUDIT_ACTIONS)},
            "call_id": call_id,
            "reason": _nullable({"type": "string"}),
            "detail": _nullable({"type": "string"}),
        })}}),
        "Indicators": {"type": "object", "required": ["from", "to", "calls", "answered", "by_hour", "per_day"],
                       "description": "definitions in bot/supervision/indicators.py",
                       "properties": {"from": {"type": "string", "format": "date"},
                                      "to": {"type": "string", "format": "date"},
                                      "calls": {"type": "integer", "minimum": 0},
                                      "answered": {"type": "integer", "minimum": 0},
                                      "by_hour": {"type": "array", "items": {"type": "object"}},
                                      "per_day": {"type": "array", "items": {"type": "object"}}}},
        # ---------------------------------------------------------------- sign-in
        "Login": {
            "type": "object",
            "required": ["username", "password"],
            "properties": {
                "username": {"type": "string", "description": "case and surrounding spaces do not matter"},
                "password": {"type": "string", "format": "password"},
            },
        },
        "Me": _obj({
            "username": {"type": "string", "minLength": 1},
            "role": {"type": "string", "enum": list(ROLES)},
            "teams": {**strings, "description": "the routing teams the user serves (supervisors and "
                                                "admins see every team whatever this says)"},
            "csrf_token": {"type": "string", "minLength": 1,
                           "description": f"send it back in {CSRF_HEADER} on every POST of this session"},
        }, description="The signed-in user."),
        "LoginLocked": _obj({
            "error": {"type": "string"},
            "retry_after_s": {"type": "integer", "minimum": 1, "description": "as the Retry-After header"},
        }, description="Too many failed sign-ins in a row for this name: no password is checked until then."),
        # ---------------------------------------------------------------- the agent console
        "Presence": _obj({
            "status": {"type": "string", "enum": ["available", "paused", "busy"],
                       "description": "paused until the agent says otherwise; in a call: see call_id"},
            "teams": {**strings, "description": "the teams chosen when last available"},
            "device": device,
            "call_id": _nullable({"type": "string", "description": "the call the agent has now"}),
            "has_phone": {"type": "boolean", "description": "a desk phone is set for the agent"},
        }),
        "PresenceUpdate": {
            "type": "object",
            "required": ["status", "teams"],
            "properties": {
                "status": {"type": "string", "enum": ["available", "paused"]},
                "teams": {"type": "array", "items": team,
                          "description": "among those the user serves (every team for a supervisor)"},
                "device": {**device, "default": "browser", "description": "phone: the user's desk phone must be set"},
            },
        },
        "PresenceSet": _obj({
            "status": {"type": "string", "enum": ["available", "paused"]},
            "teams": {"type": "array", "items": team},
            "device": device,
        }),
        "Card": _obj({
            "question_type": _nullable({"type": "string", "description": "null: the bot settled on none"}),
            "question": _nullable({"type": "string"}),
            "team": team,
            "team_name": {"type": "string"},
            "reason": {"type": "string"},
            "reason_text": {"type": "string"},
            "identified": {"type": "boolean"},
            "account": _nullable({"type": "string", "description": "the SIRET, masked; null unless identified"}),
            "slots": {"type": "array", "items": _obj({"name": {"type": "string"}, "value": {"type": "string"}}),
                      "description": "what the caller gave; identifiers masked"},
            "slow": {"type": "boolean", "description": "the caller needs to be spoken to slowly"},
            "summary": {"type": "string", "minLength": 1},
            "transcript": {"type": "array", "items": said, "description": "the last turns"},
            "suggestion": _nullable(_obj({"text": {"type": "string"}, "source": {"type": "string"},
                                          "title": {"type": "string"}}, description="an aid, never an instruction")),
            "caller": _nullable({"type": "string", "description": "the caller's number, masked"}),
        }, description="What the agent reads before taking the caller (bot/agents/card.py)."),
        "QueueEntry": _obj({
            "call_id": call_id,
            "channel": {"type": "string", "enum": list(CHANNELS)},
            "team": team,
            "reason": {"type": "string", "description": "why the bot handed the caller over"},
            "waiting_s": {"type": "number", "minimum": 0},
            "priority": {"type": "integer", "minimum": 0, "description": "0 first (difficultes), then by waiting time"},
            "card": _ref("Card"),
        }),
        "Accept": {
            "type": "object",
            "description": "browser (the default): the console's SDP offer; phone: the gateway rings the "
                           "user's desk phone (a SIP call only).",
            "properties": {
                "device": {**device, "default": "browser"},
                "sdp": {"type": "string", "description": "starts with 'v=0', has an 'm=audio' line"},
                "type": {"type": "string", "enum": ["offer"], "default": "offer"},
            },
        },
        "Accepted": _obj({
            "call_id": call_id,
            "sdp": {"type": "string", "description": "browser: the SDP answer"},
            "type": {"type": "string", "enum": ["answer"]},
            "device": {"type": "string", "enum": ["phone"], "description": "phone: the desk phone rings"},
        }, required=("call_id",), description="browser: sdp, type and call_id; phone: device and call_id"),
        "Declined": _obj({"declined": call_id}),
        "AgentCall": _obj({
            "call_id": call_id,
            "state": {"type": "string", "enum": ["briefing", "connected", "ended"],
                      "description": "briefing: the agent hears the briefing alone"},
            "transcript": {"type": "array", "items": said},
            "card": _ref("Card"),
        }),
        "HungUp": _obj({"call_id": call_id, "state": {"type": "string", "enum": ["ended"]}}),
        "Wrapup": {
            "type": "object",
            "required": ["outcome"],
            "properties": {
                "outcome": {"type": "string", "enum": list(OUTCOMES)},
                "note": {"type": "string", "maxLength": MAX_NOTE, "default": ""},
            },
        },
        "WrappedUp": _obj({"call_id": call_id, "outcome": {"type": "string", "enum": list(OUTCOMES)}}),
        "Callback": _obj({
            "id": {"type": "integer"},
            "call_id": call_id,
            "team": team,
            "team_name": {"type": "string"},
            "phone": {"type": "string", "description": "the number to call back"},
            "time_slot": {"type": "string", "description": "e.g. matin, apres_midi"},
            "topic": {"type": "string"},
            "created_at": timestamp,
            "done_at": _nullable(timestamp),
        }, description="A caller to call back (no agent in time, or outside opening hours)."),
        "CallbackDone": _obj({"id": {"type": "integer"}, "done": {"type": "boolean", "enum": [True]}}),
    }


def _call_id() -> dict[str, Any]:
    return {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _csrf() -> dict[str, Any]:
    return {"name": CSRF_HEADER, "in": "header", "required": True, "schema": {"type": "string"},
            "description": "the session's csrf_token (from /api/login or /api/me)"}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": _ref(name)}}}


def _console(method: str, operation_id: str, summary: str, responses: dict[str, Any], *,
             call: bool = False, path_parameter: dict[str, Any] | None = None,
             body: dict[str, Any] | None = None) -> dict[str, Any]:
    """An operation behind `require_role("agent")`: a session of any role; a POST also
    needs the session's CSRF token. `call`: a call of the user's teams named in the path
    (404 otherwise: an agent does not learn of other teams' callers)."""
    parameters = [p for p in (_call_id() if call else path_parameter,
                              _csrf() if method == "post" else None) if p is not None]
    forbidden = ROLE_UNKNOWN if method == "get" else f"{ROLE_UNKNOWN}, or {CSRF_HEADER} missing or wrong"
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary,
                                 "security": [{"sessionCookie": []}]}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = {"401": _error("no session, or it expired"), "403": _error(forbidden), **responses}
    if call:
        operation["responses"]["404"] = _error("no such call in the user's queues")
    operation["responses"] = dict(sorted(operation["responses"].items()))
    return {method: operation}


def _supervisor(operation_id: str, summary: str, responses: dict[str, Any], *, role: str = "supervisor",
                call: bool = True, query: tuple[str, ...] = (), content: str = JSON,
                body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A supervisor console operation (`require_role(role)`): 401 without a session, 403 for
    a lower role (and on POST without the CSRF header), 404 for an unknown call."""
    parameters = [*([_call_id()] if call else []), *([_csrf()] if body is not None else []),
                  *({"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in query)]
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary, "security": [{"sessionCookie": []}],
                                 "parameters": parameters}
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = dict(sorted({
        "401": _error("no session, or it expired"),
        "403": _error(f"the session's role is below {role}" + (f", or {CSRF_HEADER} missing or wrong" if body else "")),
        **({"404": _error("unknown call (or deleted at its retention)")} if call else {}),
        **responses}.items()))
    return {"post" if body is not None else "get": operation}


def _paths() -> dict[str, Any]:
    # Either: the admin token (machine clients) or a supervisor's (or admin's) session.
    records = [{"bearerAuth": []}, {"sessionCookie": []}]
    unauthorized = _error("neither `Authorization: Bearer` credentials nor a session")
    forbidden = _error("wrong token, or no CALLBOT_ADMIN_TOKEN configured; or the session's role is "
                       "below supervisor")
    body_errors = f"body over {MAX_BODY} bytes"
    # An agent acts on their own call only; a supervisor (or admin) on any.
    not_theirs = f"the call is another agent's, or {ROLE_UNKNOWN}"
    not_theirs_post = f"the call is another agent's, {ROLE_UNKNOWN}, or {CSRF_HEADER} missing or wrong"
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
            "security": records, "parameters": [_call_id()],
            "responses": {
                "200": _json(_ref("Call"), "the record"),
                "401": unauthorized, "403": forbidden, "404": _error("unknown call"),
            },
        }},
        "/api/calls/{call_id}/recording": {"get": {
            "operationId": "getRecording", "summary": "The call's stereo WAV (caller left, bot right).",
            "security": records, "parameters": [_call_id()],
            "responses": {
                "200": {"description": "the recording",
                        "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
                "401": unauthorized, "403": forbidden, "404": _error("unknown call, or no recording"),
            },
        }},
        # ---------------------------------------------------------------- sign-in
        "/api/login": {"post": {
            "operationId": "login", "summary": "Sign in: the user, their CSRF token, and the session cookie.",
            "requestBody": _body("Login"),
            "responses": {
                "200": {**_json(_ref("Me"), "signed in (a session this browser had is closed)"),
                        "headers": {"Set-Cookie": {
                            "description": f"{SESSION_COOKIE}=...; HttpOnly; SameSite=Strict; Path=/",
                            "schema": {"type": "string"}}}},
                "400": _error("not JSON, or not an object with string username and password"),
                "401": _error("wrong username or password (the same answer whether the name exists or not)"),
                "413": _error("body over the server's byte limit"),
                "415": _error("Content-Type is not application/json"),
                "429": {**_json(_ref("LoginLocked"), "too many failed sign-ins in a row"),
                        "headers": {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}},
            },
        }},
        "/api/logout": _console("post", "logout", "Sign out: the session is closed and the cookie cleared.", {
            # No body: an empty content map (OpenAPI 3.0 allows it; the tests read every response's content).
            "204": {"description": "signed out; Set-Cookie clears the session cookie", "content": {}},
        }),
        "/api/me": _console("get", "me", "Who is signed in, with the CSRF token the page sends back on changes.", {
            "200": _json(_ref("Me"), "the signed-in user"),
        }),
        # ---------------------------------------------------------------- the agent console
        "/api/agent/presence": {
            **_console("get", "getPresence", "The user's availability, teams and device.", {
                "200": _json(_ref("Presence"), "paused for no team on the browser until first set"),
            }),
            **_console("post", "setPresence", "Available or paused, for which teams, on which device.", {
                "200": _json(_ref("PresenceSet"), "set"),
                "400": _error("not JSON, not an object, a field missing or wrong, or device phone without a "
                              "desk phone"),
                "403": _error(f"a team the user does not serve, {ROLE_UNKNOWN}, or {CSRF_HEADER} missing or wrong"),
                "413": _error(body_errors),
            }, body=_body("PresenceUpdate")),
        },
        "/api/agent/queue": _console("get", "getQueue", "Waiting callers of the user's teams, the one to take "
                                     "first first (the teams chosen when available, else all theirs).", {
            "200": _json({"type": "array", "items": _ref("QueueEntry")}, "the waiting callers"),
        }),
        "/api/agent/calls/{call_id}/accept": _console(
            "post", "acceptCall", "Take the caller: exactly one agent gets them; then they are connected to "
            "this user's browser (the SDP answer) or desk phone.", {
                "200": _json(_ref("Accepted"), "the caller is the user's"),
                "400": _error("not JSON, not an object, no SDP offer with audio for a browser, no desk phone "
                              "set, an unknown device, or the offer could not be negotiated"),
                "409": _error("already taken by another agent, held by another node of the cluster, or not a "
                              "SIP call for a desk phone"),
                "410": _error("the caller is no longer waiting"),
                "413": _error(body_errors),
                "500": _error("no SDP answer could be produced for the user's audio (the caller waits again)"),
            }, call=True, body=_body("Accept")),
        "/api/agent/calls/{call_id}/decline": _console("post", "declineCall", "Pass on a caller (noted on the "
                                                       "call's record); the body is not read.", {
            "200": _json(_ref("Declined"), "declined"),
        }, call=True),
        "/api/agent/calls/{call_id}": _console("get", "getAgentCall", "The call the user has: where it stands, "
                                               "the transcript, the card.", {
            "200": _json(_ref("AgentCall"), "the call"),
            "403": _error(not_theirs),
        }, call=True),
        "/api/agent/calls/{call_id}/hangup": _console("post", "hangUp", "End the conversation with the caller; "
                                                      "the body is not read.", {
            "200": _json(_ref("HungUp"), "ended"),
            "403": _error(not_theirs_post),
        }, call=True),
        "/api/agent/calls/{call_id}/wrapup": _console("post", "wrapUp", "The user's note and outcome code, on "
                                                      "the call's record; the user takes calls again.", {
            "200": _json(_ref("WrappedUp"), "noted"),
            "400": _error(f"not JSON, not an object, no known outcome, or a note that is not a string or "
                          f"is over {MAX_NOTE} characters"),
            "403": _error(not_theirs_post),
            "413": _error(body_errors),
        }, call=True, body=_body("Wrapup")),
        "/api/agent/callbacks": _console("get", "listCallbacks", "Callers to call back, of the user's teams, "
                                         "oldest first.", {
            "200": _json({"type": "array", "items": _ref("Callback")}, "the callbacks not yet made"),
        }),
        # ---------------------------------------------------------------- the supervisor console
        "/api/supervisor/calls": _supervisor("listCalls", "Calls matching the filters, masked, paged.", {
            "200": _json(_ref("CallList"), "one page"),
            "400": _error("a filter, a date (YYYY-MM-DD), the sort or the page is not valid"),
        }, call=False, query=("q", "from", "to", "channel", "outcome", "team", "question_type", "transferred",
                              "slow", "office", "sort", "order", "page", "page_size")),
        "/api/supervisor/calls/{call_id}": _supervisor("getSupervisedCall", "A call's record, masked, with its "
                                                       "timeline (the opening is audited).", {
            "200": _json(_ref("SupervisedCall"), "the call"),
        }),
        "/api/supervisor/calls/{call_id}/recording": _supervisor("getSupervisedRecording", "The stereo WAV; "
                                                                 "listening is audited.", {
            "200": {"description": "the recording",
                    "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
        }),
        "/api/supervisor/calls/{call_id}/export": _supervisor("exportCall", "The masked call as a JSON file "
                                                              "(audited).", {
            "200": _json(_ref("SupervisedCall"), "the call, as an attachment"),
        }),
        "/api/supervisor/calls/{call_id}/transcript.vtt": _supervisor("exportSubtitles", "The masked turns as "
                                                                      "WebVTT subtitles (audited).", {
            "200": {"description": "one cue per timed turn",
                    "content": {"text/vtt": {"schema": {"type": "string"}}}},
        }),
        "/api/supervisor/calls/{call_id}/unmask": _supervisor("unmaskCall", "The call unmasked; admins only, "
                                                              "with a reason kept in the audit log.", {
            "200": _json(_ref("SupervisedCall"), "the call, unmasked"),
            "400": _error(f"not JSON, or no reason (at most {MAX_REASON} characters)"),
            "413": _error("body over the server's byte limit"),
        }, role="admin", body=_body("Unmask")),
        "/api/supervisor/audit": _supervisor("auditLog", "Who viewed, listened to, exported or unmasked which "
                                             "call (newest first).", {
            "200": _json(_ref("AuditLog"), "the entries"),
            "400": _error("limit is not an integer"),
        }, role="admin", call=False, query=("call_id", "limit")),
        "/api/supervisor/indicators": _supervisor("indicators", "The indicators over local days from..to (the "
                                                  "last 7 by default).", {
            "200": _json(_ref("Indicators"), "the indicators"),
            "400": _error("a date is not YYYY-MM-DD, to is before from, or the range is over 366 days"),
        }, call=False, query=("from", "to")),
        "/api/agent/callbacks/{callback_id}/done": _console("post", "callbackDone", "The callback is made; the "
                                                            "body is not read.", {
            "200": _json(_ref("CallbackDone"), "done"),
            "404": _error("no such callback still to make in the user's teams"),
        }, path_parameter={"name": "callback_id", "in": "path", "required": True, "schema": {"type": "integer"}}),
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
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "CALLBOT_ADMIN_TOKEN"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                                  "description": "set by POST /api/login; POST requests also need the "
                                                 f"session's {CSRF_HEADER} header"},
            },
        },
    }


def openapi_spec() -> dict[str, Any]:
    """The description as a fresh dict (the cached one stays untouched by callers)."""
    return copy.deepcopy(_spec())


async def openapi_handler(request: web.Request) -> web.Response:
    return web.json_response(_spec())

"""The agent console: its page and API (/agent, /api/agent/...). Every route needs a
signed-in user of the agent role or above; an agent sees and takes only callers of the
teams they serve, supervisors and admins those of every team."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.agents.access import require_role
from bot.agents.accounts import TEAMS, SessionInfo, role_at_least
from bot.agents.hub import AcceptError, AgentHub
from bot.chat import json_error

log = logging.getLogger("callbot.agents.console")
STATIC = Path(__file__).resolve().parent.parent / "static"
hub_key = web.AppKey("agent_hub", AgentHub)
OUTCOMES = ("resolu", "information_donnee", "rappel_necessaire", "reclamation", "transfert_autre_service", "autre")
MAX_NOTE = 2000
MAX_BODY = 64 * 1024   # an SDP offer is a few kB


def allowed_teams(user: SessionInfo) -> list[str]:
    return list(TEAMS) if role_at_least(user.role, "supervisor") else [t for t in user.teams if t in TEAMS]


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(raw))
    if not raw:
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as e:
        raise web.HTTPBadRequest(reason="body is not JSON this server reads") from e
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="body must be a JSON object")
    return body


async def _entry_for(request: web.Request) -> dict[str, Any]:
    """The queue entry named in the path, if the user's teams may see it (else 404: an
    agent does not learn of other teams' callers)."""
    entry = await request.app[hub_key].queue.entry(request.match_info["call_id"])
    if entry is None or entry["team"] not in allowed_teams(request["user"]):
        raise web.HTTPNotFound(reason="no such call in your queues")
    return entry


@require_role("agent")
async def console_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "agent.html", headers={"Cache-Control": "no-store"})


@require_role("agent")
async def get_presence(request: web.Request) -> web.Response:
    user: SessionInfo = request["user"]
    presence = await request.app[hub_key].queue.presence(user.username)
    return web.json_response({**presence, "has_phone": bool(user.sip_uri)})


@require_role("agent")
async def set_presence(request: web.Request) -> web.Response:
    user: SessionInfo = request["user"]
    body = await _body(request)
    status, teams, device = body.get("status"), body.get("teams"), body.get("device", "browser")
    allowed = allowed_teams(user)
    if status not in ("available", "paused") or device not in ("browser", "phone") \
            or not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
        raise web.HTTPBadRequest(reason='expected {"status": "available"|"paused", "teams": [...], '
                                        '"device": "browser"|"phone"}')
    if any(t not in allowed for t in teams):
        raise web.HTTPForbidden(reason="a team you do not serve")
    if device == "phone" and not user.sip_uri:
        raise web.HTTPBadRequest(reason="no desk phone is set for you (callbot users add ... --sip)")
    await request.app[hub_key].queue.set_presence(user.username, status=status, teams=teams, device=device)
    log.info("agent %s is %s for %s on %s", user.username, status, ",".join(teams) or "-", device)
    return web.json_response({"status": status, "teams": teams, "device": device})


@require_role("agent")
async def get_queue(request: web.Request) -> web.Response:
    """Waiting callers of the agent's teams (those chosen when available, else all theirs)."""
    user: SessionInfo = request["user"]
    hub = request.app[hub_key]
    presence = await hub.queue.presence(user.username)
    teams = [t for t in presence["teams"] if t in allowed_teams(user)] or allowed_teams(user)
    entries = await hub.queue.waiting(teams)
    return web.json_response([{k: e[k] for k in ("call_id", "channel", "team", "reason", "waiting_s", "priority",
                                                 "card")} for e in entries])


@require_role("agent")
async def accept_call(request: web.Request) -> web.Response:
    """Exactly one agent gets the caller: the store decides; then the caller is connected
    to this agent's browser (SDP answer) or desk phone."""
    user: SessionInfo = request["user"]
    hub = request.app[hub_key]
    entry = await _entry_for(request)
    body = await _body(request)
    device = body.get("device", "browser")
    if device == "browser" and not (isinstance(body.get("sdp"), str) and body.get("type", "offer") == "offer"
                                    and body["sdp"].startswith("v=0") and "\nm=audio " in body["sdp"]):
        raise web.HTTPBadRequest(reason="a browser accept needs an SDP offer with audio")
    if device == "phone" and not user.sip_uri:
        raise web.HTTPBadRequest(reason="no desk phone is set for you")
    if device not in ("browser", "phone"):
        raise web.HTTPBadRequest(reason="device must be browser or phone")
    call_id = entry["call_id"]
    if entry["state"] != "waiting":
        return _gone_or_taken(entry)
    seat = hub.seats.get(call_id)
    if seat is None:
        return json_error(409, "this caller is held by another node of the cluster")
    if not await hub.queue.accept(call_id, user.username):
        return _gone_or_taken(await hub.queue.entry(call_id) or entry)
    try:
        result = await seat.accept(user.username, device, sip_uri=user.sip_uri,
                                   offer={"sdp": body.get("sdp"), "type": "offer"} if device == "browser" else None)
    except AcceptError as e:
        await hub.queue.release(call_id)   # back in the queue, at their place
        return json_error(e.status, str(e))
    await hub.queue.set_busy(user.username, call_id)
    log.info("call %s: accepted by %s (%s)", call_id, user.username, device)
    return web.json_response(result)


def _gone_or_taken(entry: dict[str, Any]) -> web.Response:
    if entry["state"] == "accepted":
        return json_error(409, "already taken by another agent")
    return json_error(410, "the caller is no longer waiting")


@require_role("agent")
async def decline_call(request: web.Request) -> web.Response:
    entry = await _entry_for(request)
    seat = request.app[hub_key].seats.get(entry["call_id"])
    if seat is not None:
        await seat.call.event("agent_declined", {"agent": request["user"].username})
    return web.json_response({"declined": entry["call_id"]})


def _own_call(request: web.Request, entry: dict[str, Any]) -> None:
    user: SessionInfo = request["user"]
    if entry["agent"] != user.username and not role_at_least(user.role, "supervisor"):
        raise web.HTTPForbidden(reason="this call is another agent's")


@require_role("agent")
async def get_agent_call(request: web.Request) -> web.Response:
    """The call the agent has: where it stands, the transcript, the card."""
    hub = request.app[hub_key]
    entry = await _entry_for(request)
    _own_call(request, entry)
    record = await hub.queue.store.get_call(entry["call_id"])
    seat = hub.seats.get(entry["call_id"])
    if record is None or record["ended_at"] or seat is None:
        state = "ended"
    else:
        leg = seat.accepted.leg if seat.accepted else None
        state = "briefing" if leg is not None and not leg.bridged else "connected"
    turns = [{"speaker": t["speaker"], "text": t["text"]} for t in (record or {}).get("turns", [])]
    return web.json_response({"call_id": entry["call_id"], "state": state, "transcript": turns,
                              "card": entry["card"]})


@require_role("agent")
async def hang_up(request: web.Request) -> web.Response:
    hub = request.app[hub_key]
    entry = await _entry_for(request)
    _own_call(request, entry)
    seat = hub.seats.get(entry["call_id"])
    if seat is not None:
        await seat.agent_hung_up()
    return web.json_response({"call_id": entry["call_id"], "state": "ended"})


@require_role("agent")
async def wrap_up(request: web.Request) -> web.Response:
    """The agent's note and outcome code, on the call's record."""
    user: SessionInfo = request["user"]
    hub = request.app[hub_key]
    entry = await _entry_for(request)
    _own_call(request, entry)
    body = await _body(request)
    note, outcome = body.get("note", ""), body.get("outcome")
    if not isinstance(note, str) or len(note) > MAX_NOTE or outcome not in OUTCOMES:
        raise web.HTTPBadRequest(reason=f"expected a note (at most {MAX_NOTE} characters) and an outcome "
                                        f"among {', '.join(OUTCOMES)}")
    await hub.queue.store.add_event(entry["call_id"], 0, "agent_wrapup",
                                    {"agent": user.username, "outcome": outcome, "note": note})
    await hub.queue.set_busy(user.username, None)
    return web.json_response({"call_id": entry["call_id"], "outcome": outcome})


@require_role("agent")
async def list_callbacks(request: web.Request) -> web.Response:
    hub = request.app[hub_key]
    names = hub.knowledge.prompts["team_names"]
    callbacks = await hub.queue.callbacks(allowed_teams(request["user"]))
    return web.json_response([{**c, "team_name": names.get(c["team"], c["team"])} for c in callbacks])


@require_role("agent")
async def callback_done(request: web.Request) -> web.Response:
    raw = request.match_info["callback_id"]
    if not raw.isdigit() or len(raw) > 18:   # an id the store can hold (64-bit)
        raise web.HTTPNotFound(reason="no such callback")
    callback_id = int(raw)
    user: SessionInfo = request["user"]
    if not await request.app[hub_key].queue.callback_done(callback_id, user.username, allowed_teams(user)):
        raise web.HTTPNotFound(reason="no such callback to make in your teams")
    return web.json_response({"id": callback_id, "done": True})


def add_console_routes(app: web.Application) -> None:
    app.router.add_get("/agent", console_page)
    app.router.add_get("/api/agent/presence", get_presence)
    app.router.add_post("/api/agent/presence", set_presence)
    app.router.add_get("/api/agent/queue", get_queue)
    app.router.add_post("/api/agent/calls/{call_id}/accept", accept_call)
    app.router.add_post("/api/agent/calls/{call_id}/decline", decline_call)
    app.router.add_get("/api/agent/calls/{call_id}", get_agent_call)
    app.router.add_post("/api/agent/calls/{call_id}/hangup", hang_up)
    app.router.add_post("/api/agent/calls/{call_id}/wrapup", wrap_up)
    app.router.add_get("/api/agent/callbacks", list_callbacks)
    app.router.add_post("/api/agent/callbacks/{callback_id}/done", callback_done)

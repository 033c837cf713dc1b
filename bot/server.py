"""The bot's HTTP server: caller page, WebRTC signalling, text channel, media stream, the
agent hub (sign-in, agent console), the supervisor console (bot/supervision/), and call
records and recordings (supervisors, or the admin token for machine clients)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path

from aiohttp import web

from bot.admission import Admission
from bot.agents.access import accounts_key, add_access_routes, require_role
from bot.agents.accounts import Accounts
from bot.agents.console import add_console_routes, hub_key
from bot.agents.hub import AgentHub
from bot.agents.queue import AgentQueue
from bot.chat import ChatChannel, json_error
from bot.config import Settings
from bot.media_stream import MediaStreamCalls
from bot.openapi import openapi_handler
from bot.retention import sweep_forever
from bot.services import BotServices, speech_style
from bot.supervision.masking import mask_call
from bot.supervision.routes import Supervision, add_supervision_routes, supervision_key
from bot.webrtc import WebRTCCalls

log = logging.getLogger("callbot.server")
STATIC = Path(__file__).resolve().parent / "static"

services_key = web.AppKey("services", BotServices)
chat_key = web.AppKey("chat", ChatChannel)
webrtc_key = web.AppKey("webrtc", WebRTCCalls)
media_key = web.AppKey("media", MediaStreamCalls)


@web.middleware
async def json_errors(request: web.Request, handler):
    """API errors as JSON, never a traceback page."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if request.path.startswith("/api/") and e.status >= 400:
            return json_error(e.status, e.reason)
        raise
    except Exception:  # the edge: one bad request must not show a traceback or touch others
        log.exception("unhandled error on %s %s", request.method, request.path)
        if request.path.startswith("/api/"):
            return json_error(500, "internal error, the request was not processed")
        raise


async def caller_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "caller.html")


async def health(request: web.Request) -> web.Response:
    services = request.app[services_key]
    return web.json_response({
        "status": "ok",
        "voice": services.renderer.engine.name if services.renderer else None,
        "question_types": len(services.knowledge.question_types),
    })


def _admin_token(request: web.Request) -> str:
    return request.app[services_key].settings.admin_token


@require_role("supervisor", token=_admin_token)
async def get_call(request: web.Request) -> web.Response:
    """A call's record; the recording is reached through its own route, never by path.
    Masked for a signed-in supervisor (the console's routes are the audited way to more);
    whole for the machine client holding the admin token (benches, tests, exports)."""
    call = await request.app[services_key].store.get_call(request.match_info["call_id"])
    if call is None:
        return json_error(404, "unknown call")
    if request["user"] is not None:
        call = mask_call(call)
    recording = call.pop("recording")
    call["recording_url"] = f"/api/calls/{call['id']}/recording" if recording else None
    return web.json_response(call)


@require_role("supervisor", token=_admin_token)
async def get_recording(request: web.Request) -> web.StreamResponse:
    """The call's stereo WAV (caller left, bot right), streamed from disk; only a file
    inside the recordings folder is ever served."""
    services = request.app[services_key]
    call = await services.store.get_call(request.match_info["call_id"])
    if call is None or not call["recording"]:
        return json_error(404, "no recording for this call")
    root = services.settings.recordings_dir.resolve()
    path = Path(call["recording"]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return json_error(404, "no recording for this call")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "no-store"})


async def open_chat(request: web.Request) -> web.Response:
    return await request.app[chat_key].open_session(request)


async def post_chat_message(request: web.Request) -> web.Response:
    return await request.app[chat_key].post_message(request)


async def webrtc_offer(request: web.Request) -> web.Response:
    return await request.app[webrtc_key].offer(request)


async def media_stream(request: web.Request) -> web.WebSocketResponse:
    return await request.app[media_key].handle(request)


def create_app(settings: Settings, *, voice: bool = True) -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=settings.max_body_bytes * 64)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        services = await BotServices.create(settings, voice=voice)
        app[services_key] = services
        app[accounts_key] = accounts = Accounts(services.store, settings.agents)
        await accounts.purge_expired_sessions()   # those left by a stop (each is also checked when used)
        app[hub_key] = hub = services.hub = AgentHub(
            settings.agents, AgentQueue(services.store), services.knowledge,
            retriever=services.fallback.retriever if services.fallback else None,
            renderer=services.renderer, style=speech_style(settings))
        app[supervision_key] = Supervision(services.store, settings.supervision, hub.hours, settings.recordings_dir)
        app[chat_key] = chat = ChatChannel(services)
        # One admission for both kinds of voice call: max_calls counts them together.
        admission = Admission(settings.max_calls)
        app[webrtc_key] = WebRTCCalls(services, admission)
        app[media_key] = MediaStreamCalls(services, admission)
        sweeper = asyncio.create_task(
            sweep_forever(services.store, settings.recordings_dir, settings.retention), name="retention")
        log.info("callbot ready on http://%s:%d (%d question types)", settings.host, settings.port,
                 len(services.knowledge.question_types))
        yield
        sweeper.cancel()
        with suppress(asyncio.CancelledError):
            await sweeper
        await admission.close_all()
        await hub.close_all()
        await chat.close_all()
        await services.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/", caller_page)
    app.router.add_get("/health", health)
    app.router.add_get("/api/calls/{call_id}", get_call)
    app.router.add_get("/api/calls/{call_id}/recording", get_recording)
    app.router.add_post("/api/chat", open_chat)
    app.router.add_post("/api/chat/{session_id}/messages", post_chat_message)
    app.router.add_post("/api/offer", webrtc_offer)
    app.router.add_get("/ws/media", media_stream)
    app.router.add_get("/api/openapi.json", openapi_handler)
    add_access_routes(app)
    add_console_routes(app)
    add_supervision_routes(app)
    app.router.add_static("/static", STATIC)
    return app

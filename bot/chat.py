"""Text channel: the same dialogue as voice, over JSON (contract in README)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from bot.agents.hub import TextDesk
from bot.call_log import CallLog
from bot.services import BotServices
from flows.engine import Conversation, Reply

log = logging.getLogger("callbot.chat")


@dataclass
class ChatSession:
    conversation: Conversation
    call: CallLog
    last_seen: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def reply_body(reply: Reply) -> dict:
    return {
        "replies": reply.texts,
        "intent": reply.intent,
        "team": reply.team,
        "handoff": None if reply.handoff is None else {"team": reply.handoff.team, "reason": reply.handoff.reason},
        "awaiting": reply.awaiting,
        "ended": reply.ended,
        "sources": reply.fallback.sources if reply.fallback else [],
        "slow": reply.slow,
    }


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ChatChannel:
    def __init__(self, services: BotServices) -> None:
        self.services = services
        self.sessions: dict[str, ChatSession] = {}
        self._ttl = services.settings.chat_session_ttl_s
        self.max_sessions = services.settings.max_chat_sessions

    async def open_session(self, request: web.Request) -> web.Response:
        await self.expire()
        if len(self.sessions) >= self.max_sessions:
            return json_error(503, "too many open sessions, try again later")
        session_id = uuid.uuid4().hex
        call_id = await self.services.store.open_call("text")
        call = CallLog(self.services.store, call_id, office_rule=self.services.settings.supervision.office_rule)
        # No agent answers in writing: a caller asking for one is offered a callback.
        conversation = self.services.conversation(session_id, agents=TextDesk(self.services.knowledge))
        session = ChatSession(conversation=conversation, call=call)
        self.sessions[session_id] = session
        reply = conversation.start()
        await call.turn("bot", " ".join(reply.texts), start_ms=call.now_ms())
        log.info("chat session %s opened (call %s)", session_id, call_id)
        return web.json_response({"session_id": session_id, "call_id": call_id, "replies": reply.texts}, status=201)

    async def _read_message(self, request: web.Request) -> dict | web.Response:
        limit = self.services.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return json_error(413, f"body too large (limit {limit} bytes)")
        raw = await request.content.read(limit + 1)
        if len(raw) > limit:
            return json_error(413, f"body too large (limit {limit} bytes)")
        try:
            body = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return json_error(400, "body is not valid UTF-8")
        except json.JSONDecodeError as e:
            return json_error(400, f"body is not valid JSON: {e.msg} at position {e.pos}")
        except (RecursionError, ValueError):  # nested too deep, an integer too long to read
            return json_error(400, "body is not JSON this server reads")
        if not isinstance(body, dict):
            return json_error(400, "body must be a JSON object with 'text' or 'dtmf'")
        text, dtmf = body.get("text"), body.get("dtmf")
        if (text is None) == (dtmf is None):
            return json_error(400, "give exactly one of 'text' or 'dtmf'")
        if text is not None and not isinstance(text, str):
            return json_error(400, "'text' must be a string")
        if dtmf is not None and (not isinstance(dtmf, str) or not dtmf or len(dtmf) > 32
                                 or any(c not in "0123456789*#" for c in dtmf)):
            return json_error(400, "'dtmf' must be 1 to 32 keys among 0-9, * and #")
        if text is not None and len(text) > 2000:
            return json_error(413, "'text' is longer than 2000 characters")
        if text is not None and not _encodable(text):   # a lone surrogate cannot be stored
            return json_error(400, "'text' is not valid Unicode text")
        return body

    async def post_message(self, request: web.Request) -> web.Response:
        await self.expire()
        session = self.sessions.get(request.match_info["session_id"])
        if session is None:
            return json_error(404, "unknown or expired session")
        body = await self._read_message(request)
        if isinstance(body, web.Response):
            return body
        async with session.lock:
            session.last_seen = time.monotonic()
            call, conversation = session.call, session.conversation
            start = call.now_ms()
            text = body.get("text")
            said = text if text is not None else f"[touches {body['dtmf']}]"
            if text is not None:
                reply = await conversation.on_text(text)
            else:
                reply = await conversation.on_dtmf(body["dtmf"])
                await call.event("dtmf", {"keys": body["dtmf"]})
            await reply.collect()
            done = call.now_ms()
            await call.turn("caller", said, start_ms=start, end_ms=start, intent=reply.intent,
                            intent_score=reply.score)
            await call.set_team(reply.team)
            await call.note_actions(reply.actions, conversation.slots.get("office"))
            if reply.handoff:
                await call.event("handoff", {"team": reply.handoff.team, "reason": reply.handoff.reason})
            if reply.fallback:
                await call.event("fallback", reply.fallback.record())
            if reply.callback is not None and self.services.hub is not None:
                c = reply.callback
                callback_id = await self.services.hub.queue.add_callback(
                    call.call_id, team=c.team, phone=c.phone, time_slot=c.time_slot, topic=c.topic)
                await call.event("callback_booked", {"id": callback_id, "team": c.team, "time_slot": c.time_slot})
            if reply.slow_reason:
                await call.event("slow_speech", {"on": reply.slow, "reason": reply.slow_reason})
            if reply.texts:
                await call.turn("bot", " ".join(reply.texts), start_ms=done, intent=reply.intent,
                                dialogue_ms=done - start, total_ms=done - start)
            if reply.ended:
                await call.close("completed")
        return web.json_response(reply_body(reply))

    async def expire(self) -> None:
        deadline = time.monotonic() - self._ttl
        for session_id, session in list(self.sessions.items()):
            if session.last_seen < deadline:
                self.sessions.pop(session_id, None)
                await session.call.close("handoff" if session.conversation.state.value == "handoff" else "expired")

    async def close_all(self) -> None:
        for session in self.sessions.values():
            await session.call.close("server_stopped")
        self.sessions.clear()

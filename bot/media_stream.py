"""Media-stream WebSocket (`/ws/media`): calls from the SIP gateway, and from any CPaaS
that speaks Twilio's media-stream JSON (Twilio, Telnyx, jambonz...).

Messages in: `connected`, `start` (customParameters: caller, called), `media`
(8 kHz mu-law, base64; track `outbound`: what the caller hears from an agent after a
bridged transfer, recorded), `dtmf`, `mark`, `stop`, and from our own gateway
`transfer` (`{"team": ..., "status": "bridged" | "failed"}`). Messages out: `media`,
`mark`, `clear` (drop queued audio at once: barge-in), and to our own gateway only (it
says so in `start`), `transfer` (`{"team": ..., "mode": "blind" | "bridged", "whisper":
base64 mu-law briefing for the agent}`, after the words before it).
A message that is not valid JSON, has an unknown event or bad base64 closes that
stream with a logged reason; other calls carry on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web
from pipecat.frames.frames import Frame, OutputTransportMessageFrame, OutputTransportMessageUrgentFrame
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from starlette.datastructures import Headers
from starlette.websockets import WebSocketState

from bot.call_log import CallLog
from bot.pipeline import build_voice_call
from bot.preferences import caller_key
from bot.processors.frames import AgentAudioFrame, CallConnectedFrame, TransferStatusFrame
from bot.services import BotServices
from voice.codecs import StreamResampler, ulaw_to_pcm16
from voice.speech_renderer import PIPELINE_RATE

log = logging.getLogger("callbot.media")

EVENTS = {"connected", "start", "media", "dtmf", "mark", "stop", "transfer"}
TRANSFER_STATUSES = {"bridged", "failed"}
DTMF_KEYS = set("0123456789*#ABCD")
MAX_MESSAGE = 64 * 1024


class ProtocolError(ValueError):
    """A media-stream message breaks the protocol: the stream is closed."""


def parse_message(raw: str) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ProtocolError(f"not JSON ({e.msg})") from e
    if not isinstance(message, dict):
        raise ProtocolError("not a JSON object")
    event = message.get("event")
    if event not in EVENTS:
        raise ProtocolError(f"unknown event {str(event)[:40]!r}")
    if event == "media":
        payload = message.get("media", {}).get("payload") if isinstance(message.get("media"), dict) else None
        if not isinstance(payload, str):
            raise ProtocolError("media without a payload")
        try:
            base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ProtocolError("media payload is not base64") from e
    elif event == "dtmf":
        digit = message.get("dtmf", {}).get("digit") if isinstance(message.get("dtmf"), dict) else None
        if not isinstance(digit, str) or digit not in DTMF_KEYS:
            raise ProtocolError(f"bad dtmf digit {str(digit)[:8]!r}")
    elif event == "start" and not isinstance(message.get("start"), dict):
        raise ProtocolError("start without its 'start' object")
    elif event == "transfer":
        transfer = message.get("transfer")
        if not isinstance(transfer, dict) or transfer.get("status") not in TRANSFER_STATUSES:
            raise ProtocolError("transfer without a known status")
    return message


class MediaStreamSerializer(TwilioFrameSerializer):
    """Twilio's serializer, without hang-up through Twilio's REST API (the gateway hangs
    up when the stream closes) and without the caller page's transcript messages."""

    def __init__(self, stream_sid: str) -> None:
        super().__init__(stream_sid, params=TwilioFrameSerializer.InputParams(
            auto_hang_up=False, sample_rate=PIPELINE_RATE))
        self._agent_resampler = StreamResampler(8000, PIPELINE_RATE)

    async def deserialize(self, data: str | bytes) -> Frame | None:
        # Already validated by AiohttpMediaSocket: only our own additions are handled here.
        message = json.loads(data)
        if message["event"] == "transfer":
            t = message["transfer"]
            return TransferStatusFrame(team=str(t.get("team", ""))[:32], status=t["status"])
        if message["event"] == "media" and message["media"].get("track") == "outbound":
            pcm = ulaw_to_pcm16(base64.b64decode(message["media"]["payload"]))
            return AgentAudioFrame(audio=self._agent_resampler.process(pcm), sample_rate=PIPELINE_RATE)
        return await super().deserialize(data)

    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, (OutputTransportMessageFrame, OutputTransportMessageUrgentFrame)):
            message = frame.message if isinstance(frame.message, dict) else {}
            if message.get("event") != "transfer":
                return None
            return json.dumps({**message, "streamSid": self._stream_sid})
        return await super().serialize(frame)


class AiohttpMediaSocket:
    """The face of a starlette WebSocket that pipecat's websocket transport uses, over an
    aiohttp WebSocketResponse; every incoming message is checked against the protocol."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, call: CallLog) -> None:
        self._ws = ws
        self._call = call
        self.headers = Headers(raw=[(k.lower().encode(), v.encode()) for k, v in request.headers.items()])
        self.closed_reason: str | None = None

    @property
    def client_state(self) -> WebSocketState:
        return WebSocketState.DISCONNECTED if self._ws.closed else WebSocketState.CONNECTED

    application_state = client_state

    async def receive(self) -> dict[str, Any]:
        msg = await self._ws.receive()
        if msg.type != WSMsgType.TEXT:
            if msg.type == WSMsgType.BINARY:
                await self.refuse("binary message")
            return {"type": "websocket.disconnect"}
        try:
            message = parse_message(msg.data)
        except ProtocolError as e:
            await self.refuse(str(e))
            return {"type": "websocket.disconnect"}
        if message["event"] == "stop":
            await self._ws.close()
            return {"type": "websocket.disconnect"}
        return {"type": "websocket.receive", "text": msg.data}

    async def refuse(self, reason: str) -> None:
        self.closed_reason = reason
        log.warning("call %s: media stream closed: %s", self._call.call_id, reason)
        await self._call.event("error", {"media_stream": reason})
        await self._ws.close(code=1008, message=reason[:100].encode())

    async def send_text(self, data: str) -> None:
        await self._ws.send_str(data)

    async def send_bytes(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def close(self, code: int = 1000) -> None:
        await self._ws.close(code=code)


async def _read_start(ws: web.WebSocketResponse, timeout_s: float) -> dict[str, Any]:
    """`connected` (optional) then `start`."""
    async with asyncio.timeout(timeout_s):
        while True:
            msg = await ws.receive()
            if msg.type != WSMsgType.TEXT:
                raise ProtocolError("stream closed before 'start'")
            message = parse_message(msg.data)
            if message["event"] == "start":
                return message
            if message["event"] != "connected":
                raise ProtocolError(f"'{message['event']}' before 'start'")


class MediaStreamCalls:
    def __init__(self, services: BotServices, calls: dict[str, asyncio.Task]) -> None:
        self.services = services
        self.calls = calls  # shared with the WebRTC calls: one count of calls in progress

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, heartbeat=20)
        await ws.prepare(request)
        try:
            start = await _read_start(ws, timeout_s=10)
        except (ProtocolError, TimeoutError) as e:
            log.warning("media stream refused: %s", e or "no 'start' within 10 s")
            await ws.close(code=1008, message=str(e or "no start")[:100].encode())
            return ws
        if len(self.calls) >= self.services.settings.max_calls or self.services.renderer is None:
            log.warning("media stream refused: lines busy")
            await ws.close(code=1013, message=b"busy")
            return ws
        details = start["start"]
        params = details.get("customParameters") if isinstance(details.get("customParameters"), dict) else {}
        stream_sid = str(details.get("streamSid") or start.get("streamSid") or "")
        caller = str(params.get("caller", ""))[:64] or None
        call_id = await self.services.store.open_call("sip", caller=caller)
        call = CallLog(self.services.store, call_id)
        await call.event("media_stream_start", {"called": str(params.get("called", ""))[:64]})
        socket = AiohttpMediaSocket(ws, request, call)
        transport = FastAPIWebsocketTransport(
            websocket=socket,  # type: ignore[arg-type]
            params=FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                audio_in_sample_rate=PIPELINE_RATE,
                audio_out_sample_rate=PIPELINE_RATE,
                add_wav_header=False,
                serializer=MediaStreamSerializer(stream_sid),
            ),
        )
        # Only our own gateway understands the (non-Twilio) 'transfer' event.
        settings = self.services.settings
        voice_call = await build_voice_call(
            self.services, transport, call, can_transfer=params.get("gateway") == "callbot",
            slow_line=settings.slow.line_is_slow(str(params.get("called", ""))[:64]),
            preference_key=caller_key(caller, settings.preference_secret))

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport, _ws) -> None:
            await voice_call.worker.cancel()

        log.info("call %s: SIP call on the media stream", call_id)
        await voice_call.worker.queue_frames([CallConnectedFrame()])
        task = asyncio.current_task()
        assert task is not None
        self.calls[call_id] = task
        try:
            await voice_call.run()
        finally:
            self.calls.pop(call_id, None)
            await socket.close()
        return ws

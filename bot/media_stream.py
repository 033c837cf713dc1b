"""Media-stream WebSocket (`/ws/media`): calls from the SIP gateway, and from any CPaaS
that speaks Twilio's media-stream JSON (Twilio, Telnyx, jambonz...).

Who connects is decided at the WebSocket handshake: our gateway presents
`Authorization: Bearer <CALLBOT_GATEWAY_TOKEN>`; Twilio signs the upgrade request
(`X-Twilio-Signature`, checked with CALLBOT_TWILIO_AUTH_TOKEN); anyone else gets HTTP 401
and no upgrade. A Twilio signature carries no nonce: a captured handshake can be replayed
for that URL, so it only ever opens a call without transfers.

Messages in: `connected`, `start` (customParameters: caller, called), `media`
(8 kHz mu-law, base64; track `outbound`: what the caller hears from an agent after a
bridged transfer, recorded), `dtmf`, `mark`, `stop`, and from our own gateway
`transfer` (`{"team": ..., "status": "bridged" | "failed"}`). Messages out: `media`,
`mark`, `clear` (drop queued audio at once: barge-in), and to our own gateway only
(known by its token, never by anything said in `start`), `transfer` (`{"team": ...,
"mode": "blind" | "bridged", "whisper": base64 mu-law briefing for the agent}`, after the
words before it); a `transfer` from any other stream closes it.
A message that is not valid JSON, has an unknown event or bad base64 closes that
stream with a logged reason; other calls carry on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web
from pipecat.frames.frames import (
    Frame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
)
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketOutputTransport,
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from starlette.datastructures import Headers
from starlette.websockets import WebSocketState

from bot.admission import Admission, Slot
from bot.auth import bearer_token, token_matches, twilio_signature_ok
from bot.call_log import CallLog
from bot.pipeline import build_voice_call
from bot.preferences import caller_key
from bot.processors.frames import AgentAudioFrame, CallConnectedFrame, LiveAudioFrame, TransferStatusFrame
from bot.services import BotServices
from flows.offices import office_for
from voice.codecs import SerializerResampler, StreamResampler, ulaw_to_pcm16
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
    except (RecursionError, ValueError) as e:   # nested too deep, an integer too long to read
        raise ProtocolError("JSON this server does not read") from e
    if not isinstance(message, dict):
        raise ProtocolError("not a JSON object")
    event = message.get("event")
    if not isinstance(event, str) or event not in EVENTS:
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
        status = transfer.get("status") if isinstance(transfer, dict) else None
        if not isinstance(status, str) or status not in TRANSFER_STATUSES:
            raise ProtocolError("transfer without a known status")
    return message


class MediaStreamSerializer(TwilioFrameSerializer):
    """Twilio's serializer, without hang-up through Twilio's REST API (the gateway hangs
    up when the stream closes) and without the caller page's transcript messages."""

    def __init__(self, stream_sid: str) -> None:
        super().__init__(stream_sid, params=TwilioFrameSerializer.InputParams(
            auto_hang_up=False, sample_rate=PIPELINE_RATE))
        # pipecat's default (soxr VHQ) holds back 52 ms each way: the caller's end of
        # speech is heard that much later, and the bot's first word leaves that much later.
        self._input_resampler = SerializerResampler()
        self._output_resampler = SerializerResampler()
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


# A live voice (a browser agent's) older than this when its turn to be sent comes is dropped.
LIVE_MAX_AGE_S = 0.3


class LiveOutput(FastAPIWebsocketOutputTransport):
    """pipecat's websocket output sends audio at the pace of playback from one queue: audio
    that arrives while it is behind waits, and everything after it with it, for good.
    Measured with a browser agent's voice on 2 loaded cores: 1.2 s of delay from the moment
    the agent joined. A live voice (LiveAudioFrame) that waited longer than LIVE_MAX_AGE_S is
    dropped instead; the bot's own speech is never dropped."""

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if isinstance(frame, LiveAudioFrame) and time.monotonic() - frame.received > LIVE_MAX_AGE_S:
            return True
        return await super().write_audio_frame(frame)


class MediaStreamTransport(FastAPIWebsocketTransport):
    """pipecat's websocket transport with the live-voice output."""

    def __init__(self, websocket: Any, params: FastAPIWebsocketParams) -> None:
        super().__init__(websocket=websocket, params=params)
        self._output = LiveOutput(self, self._client, self._params, name=self._output_name)


class AiohttpMediaSocket:
    """The face of a starlette WebSocket that pipecat's websocket transport uses, over an
    aiohttp WebSocketResponse; every incoming message is checked against the protocol."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, call: CallLog, *,
                 can_transfer: bool = False) -> None:
        self._ws = ws
        self._call = call
        self._can_transfer = can_transfer
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
        if message["event"] == "transfer" and not self._can_transfer:
            # "an agent has the call" turns recognition off: only our gateway may say it.
            await self.refuse("transfer from a stream that cannot transfer")
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
    """Who may open a stream is decided at the handshake, before the upgrade, as an HTTP
    answer: 401 for an unknown client, 503 "busy" when every line is in use (our gateway
    answers the caller SIP 486 Busy Here)."""

    def __init__(self, services: BotServices, admission: Admission) -> None:
        self.services = services
        self.admission = admission  # shared with the WebRTC calls: one count of lines in use
        settings = services.settings
        if not settings.gateway_token and not settings.twilio_auth_token:
            log.warning("the media stream (/ws/media) is closed: every stream is refused until "
                        "CALLBOT_GATEWAY_TOKEN or CALLBOT_TWILIO_AUTH_TOKEN is set")

    def client(self, request: web.Request) -> str | None:
        """'gateway' (our SIP gateway: it may transfer), 'cpaas' (a Twilio-signed stream),
        None for anyone else."""
        settings = self.services.settings
        if token_matches(bearer_token(request), settings.gateway_token):
            return "gateway"
        if settings.twilio_auth_token and twilio_signature_ok(
                request, settings.twilio_auth_token, signed_url(request, settings.media_public_url)):
            return "cpaas"
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        client = self.client(request)
        if client is None:
            log.warning("media stream refused from %s: no valid gateway token or Twilio signature",
                        request.remote)
            return refusal(401, "unauthorized", "credentials required (Authorization: Bearer <gateway token> "
                                                "or X-Twilio-Signature)",
                           {"WWW-Authenticate": 'Bearer realm="callbot"'})
        if self.services.renderer is None or self.services.transcriber is None:
            return refusal(503, "voice_disabled", "voice calls are disabled on this server")
        slot = self.admission.take(f"media stream from {request.remote}")
        if slot is None:
            # Our gateway answers the caller SIP 486 Busy Here for this one 503.
            return refusal(503, "busy", "busy", {"Retry-After": "5"})
        with slot:
            task = asyncio.current_task()
            assert task is not None
            slot.attach(task)
            return await self._serve(request, slot, can_transfer=client == "gateway")

    async def _serve(self, request: web.Request, slot: Slot, *, can_transfer: bool) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, heartbeat=20)
        await ws.prepare(request)
        try:
            start = await _read_start(ws, timeout_s=10)
        except (ProtocolError, TimeoutError) as e:
            log.warning("media stream refused: %s", e or "no 'start' within 10 s")
            await ws.close(code=1008, message=str(e or "no start")[:100].encode())
            return ws
        details = start["start"]
        params = details.get("customParameters") if isinstance(details.get("customParameters"), dict) else {}
        stream_sid = str(details.get("streamSid") or start.get("streamSid") or "")
        caller = str(params.get("caller", ""))[:64] or None
        rule = self.services.settings.supervision.office_rule
        # Until an identification says which account it is, the call is the number's area's.
        call_id = await self.services.store.open_call("sip", caller=caller,
                                                      region=office_for(postcode=None, caller=caller, rule=rule))
        slot.label = f"call {call_id}"
        call = CallLog(self.services.store, call_id, office_rule=rule)
        await call.event("media_stream_start", {"called": str(params.get("called", ""))[:64],
                                                "client": "gateway" if can_transfer else "cpaas"})
        socket = AiohttpMediaSocket(ws, request, call, can_transfer=can_transfer)
        transport = MediaStreamTransport(
            websocket=socket,
            params=FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                audio_in_sample_rate=PIPELINE_RATE,
                audio_out_sample_rate=PIPELINE_RATE,
                add_wav_header=False,
                serializer=MediaStreamSerializer(stream_sid),
            ),
        )
        settings = self.services.settings
        try:
            # Only our own gateway (its token, not anything the stream says of itself)
            # understands the non-Twilio 'transfer' event.
            voice_call = await build_voice_call(
                self.services, transport, call, can_transfer=can_transfer,
                channel="sip" if can_transfer else "cpaas", caller=caller,
                slow_line=settings.slow.line_is_slow(str(params.get("called", ""))[:64]),
                preference_key=caller_key(caller, settings.preference_secret))
        except BaseException:
            await call.close("error")
            await socket.close()
            raise

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport, _ws) -> None:
            await voice_call.worker.cancel()

        log.info("call %s: SIP call on the media stream (%s)", call_id,
                 "gateway" if can_transfer else "CPaaS")
        try:
            await voice_call.worker.queue_frames([CallConnectedFrame()])
            await voice_call.run()
        finally:
            await socket.close()
        return ws


def refusal(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """A handshake refused as plain HTTP. The reason is in the reason phrase, the JSON body
    and `X-Callbot-Reason`: a WebSocket client library often shows only the status and
    headers of a failed upgrade (aiohttp's WSServerHandshakeError)."""
    return web.json_response({"error": message, "reason": reason}, status=status, reason=reason,
                             headers={"X-Callbot-Reason": reason, **(headers or {})})


def signed_url(request: web.Request, public_url: str) -> str:
    """The URL Twilio signed: the stream URL it was given (`media_public_url`, behind a
    proxy), else this request's own URL in its WebSocket scheme (ws://, wss://)."""
    if public_url:
        return public_url
    url = request.url
    return str(url.with_scheme("wss" if url.scheme == "https" else "ws"))

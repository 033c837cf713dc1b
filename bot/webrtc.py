"""WebRTC calls from the caller page: SDP offer/answer over HTTP, one pipeline per call."""

from __future__ import annotations

import asyncio
import json
import logging

import aioice.ice
from aiohttp import web
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

from bot.call_log import CallLog
from bot.chat import json_error
from bot.pipeline import VoiceCall, build_voice_call
from bot.processors.frames import CallConnectedFrame
from bot.services import BotServices
from voice.speech_renderer import PIPELINE_RATE

log = logging.getLogger("callbot.webrtc")


def offer_loopback_candidates() -> None:
    """aioice leaves 127.0.0.1 out of its host candidates; a browser on the same host
    (tests, a demo on a laptop without network) needs it."""
    original = aioice.ice.get_host_addresses

    def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = original(use_ipv4, use_ipv6)
        return (["127.0.0.1"] if use_ipv4 else []) + addresses

    if getattr(aioice.ice.get_host_addresses, "__name__", "") != "with_loopback":
        aioice.ice.get_host_addresses = with_loopback


class WebRTCCalls:
    def __init__(self, services: BotServices) -> None:
        self.services = services
        self.calls: dict[str, asyncio.Task] = {}
        if services.settings.webrtc_loopback:
            offer_loopback_candidates()

    async def offer(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text())
            sdp, kind = body["sdp"], body.get("type", "offer")
            if not isinstance(sdp, str) or kind != "offer":
                raise ValueError("expected an SDP offer")
            if not sdp.startswith("v=0") or "\nm=audio " not in sdp:
                raise ValueError("the SDP offer has no audio")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
            return json_error(400, f"bad offer: {e}")
        if self.services.transcriber is None or self.services.renderer is None:
            return json_error(503, "voice calls are disabled on this server")
        if len(self.calls) >= self.services.settings.max_calls:
            log.warning("call refused: %d calls in progress (max_calls)", len(self.calls))
            return json_error(503, "all lines are busy")
        connection = SmallWebRTCConnection()
        try:
            await connection.initialize(sdp=sdp, type=kind)
        except (ValueError, RuntimeError) as e:
            return json_error(400, f"could not negotiate: {e}")
        call_id = await self.services.store.open_call("webrtc")
        call = CallLog(self.services.store, call_id)
        transport = SmallWebRTCTransport(
            webrtc_connection=connection,
            params=TransportParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                audio_in_sample_rate=PIPELINE_RATE,
                audio_out_sample_rate=PIPELINE_RATE,
            ),
        )
        voice_call = await build_voice_call(self.services, transport, call)

        @transport.event_handler("on_client_connected")
        async def on_connected(_transport, _client) -> None:
            log.info("call %s: caller connected over WebRTC", call_id)
            await voice_call.worker.queue_frames([CallConnectedFrame()])

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport, _client) -> None:
            log.info("call %s: caller disconnected", call_id)
            await voice_call.worker.cancel()

        task = asyncio.create_task(self._run(call_id, voice_call, connection), name=f"call-{call_id}")
        self.calls[call_id] = task
        answer = connection.get_answer()
        if answer is None:
            return json_error(500, "no SDP answer produced")
        return web.json_response({**answer, "call_id": call_id})

    async def _run(self, call_id: str, voice_call: VoiceCall, connection: SmallWebRTCConnection) -> None:
        try:
            await voice_call.run()
        finally:
            await connection.disconnect()
            self.calls.pop(call_id, None)

    async def close_all(self) -> None:
        tasks = list(self.calls.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

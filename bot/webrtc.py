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

from bot.admission import Admission, Slot
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
    def __init__(self, services: BotServices, admission: Admission) -> None:
        self.services = services
        self.admission = admission  # shared with the media-stream calls: one count of lines in use
        if services.settings.webrtc_loopback:
            offer_loopback_candidates()

    async def offer(self, request: web.Request) -> web.Response:
        # The body is read and checked before a line is taken: a slow or malformed
        # request never holds one.
        try:
            body = json.loads(await request.text())
            sdp, kind = body["sdp"], body.get("type", "offer")
            if not isinstance(sdp, str) or kind != "offer":
                raise ValueError("expected an SDP offer")
            if not sdp.startswith("v=0") or "\nm=audio " not in sdp:
                raise ValueError("the SDP offer has no audio")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, RecursionError) as e:
            return json_error(400, f"bad offer: {e}")
        if self.services.transcriber is None or self.services.renderer is None:
            return json_error(503, "voice calls are disabled on this server")
        slot = self.admission.take(f"WebRTC offer from {request.remote}")
        if slot is None:
            return json_error(503, "all lines are busy")
        try:
            return await self._start_call(sdp, kind, slot)
        finally:
            # Held from here on by the call's task (attached), else given back now.
            if slot.task is None:
                slot.release()

    async def _start_call(self, sdp: str, kind: str, slot: Slot) -> web.Response:
        connection = SmallWebRTCConnection()
        try:
            await connection.initialize(sdp=sdp, type=kind)
        except (ValueError, RuntimeError) as e:
            return json_error(400, f"could not negotiate: {e}")
        call_id = await self.services.store.open_call("webrtc")
        slot.label = f"call {call_id}"
        call = CallLog(self.services.store, call_id, office_rule=self.services.settings.supervision.office_rule)
        transport = SmallWebRTCTransport(
            webrtc_connection=connection,
            params=TransportParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                audio_in_sample_rate=PIPELINE_RATE,
                audio_out_sample_rate=PIPELINE_RATE,
            ),
        )
        try:
            voice_call = await build_voice_call(self.services, transport, call)
        except BaseException:
            await call.close("error")
            await connection.disconnect()
            raise
        connected = asyncio.Event()

        @transport.event_handler("on_client_connected")
        async def on_connected(_transport, _client) -> None:
            log.info("call %s: caller connected over WebRTC", call_id)
            connected.set()
            await voice_call.worker.queue_frames([CallConnectedFrame()])

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport, _client) -> None:
            log.info("call %s: caller disconnected", call_id)
            await voice_call.worker.cancel()

        answer = connection.get_answer()
        if answer is None:
            await call.close("error")
            await connection.disconnect()
            return json_error(500, "no SDP answer produced")
        task = asyncio.create_task(self._run(voice_call, connection, connected), name=f"call-{call_id}")
        slot.attach(task)
        return web.json_response({**answer, "call_id": call_id})

    async def _run(self, voice_call: VoiceCall, connection: SmallWebRTCConnection,
                   connected: asyncio.Event) -> None:
        watchdog = asyncio.create_task(self._drop_if_never_connected(voice_call, connected))
        try:
            await voice_call.run()
        finally:
            watchdog.cancel()
            await connection.disconnect()

    async def _drop_if_never_connected(self, voice_call: VoiceCall, connected: asyncio.Event) -> None:
        """An offer whose caller never completes the connection (left the page, ICE blocked)
        would hold its line until the idle timeout: it is dropped after connect_timeout_s."""
        timeout_s = self.services.settings.call.connect_timeout_s
        try:
            await asyncio.wait_for(connected.wait(), timeout_s)
        except TimeoutError:
            log.warning("call %s: the caller's media never connected within %g s: dropped, line given back",
                        voice_call.call.call_id, timeout_s)
            await voice_call.call.close("not_connected")  # first close wins: run() keeps this outcome
            await voice_call.worker.cancel()

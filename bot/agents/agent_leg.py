"""A browser agent's leg: the console's WebRTC connection to the caller's call. The agent
first hears the spoken briefing alone (at most `briefing_max_s`); then the caller's voice
goes to the agent and the agent's voice to the caller (and so onto the call's recording)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat.workers.runner import WorkerRunner

from bot.processors.frames import AgentVoiceFrame, TransferStatusFrame
from voice.speech_engines import SpeechStyle
from voice.speech_renderer import PIPELINE_RATE, SpeechRenderer

if TYPE_CHECKING:
    from bot.agents.hub import Seat

log = logging.getLogger("callbot.agents.leg")


class AgentMic(FrameProcessor):
    """The agent's microphone, to the caller once the briefing is over."""

    def __init__(self, leg: BrowserAgentLeg, **kwargs) -> None:
        super().__init__(**kwargs)
        self._leg = leg

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            if self._leg.bridged:
                await self._leg.seat.notify(AgentVoiceFrame(audio=frame.audio, sample_rate=frame.sample_rate))
            return
        await self.push_frame(frame, direction)


class CallerToAgent(FrameProcessor):
    """In the caller's pipeline, right after the transport in: once a browser agent is
    bridged, the caller's voice also goes to the agent."""

    def __init__(self, seat: Seat, **kwargs) -> None:
        super().__init__(**kwargs)
        self._seat = seat

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        accepted = self._seat.accepted
        if isinstance(frame, InputAudioRawFrame) and accepted is not None and accepted.leg is not None \
                and accepted.leg.bridged:
            await accepted.leg.to_agent(frame.audio, frame.sample_rate)
        await self.push_frame(frame, direction)


class BrowserAgentLeg:
    def __init__(self, seat: Seat, agent: str, *, renderer: SpeechRenderer, style: SpeechStyle, briefing: str,
                 briefing_max_s: float) -> None:
        self.seat = seat
        self.agent = agent
        self.bridged = False
        self._renderer = renderer
        self._style = style
        self._briefing = briefing
        self._briefing_max_s = briefing_max_s
        self._closing = False
        self._connection: SmallWebRTCConnection | None = None
        self._worker: PipelineWorker | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self, offer: dict) -> dict:
        """The SDP answer to the console's offer; the briefing starts once media flows."""
        from bot.agents.hub import AcceptError

        connection = SmallWebRTCConnection()
        try:
            await connection.initialize(sdp=offer["sdp"], type=offer.get("type", "offer"))
        except (ValueError, RuntimeError, KeyError) as e:
            raise AcceptError(400, f"could not negotiate the agent's audio: {e}") from e
        transport = SmallWebRTCTransport(webrtc_connection=connection, params=TransportParams(
            audio_in_enabled=True, audio_out_enabled=True,
            audio_in_sample_rate=PIPELINE_RATE, audio_out_sample_rate=PIPELINE_RATE))
        self._connection = connection
        self._worker = PipelineWorker(
            Pipeline([transport.input(), AgentMic(self), transport.output()]),
            params=PipelineParams(audio_in_sample_rate=PIPELINE_RATE, audio_out_sample_rate=PIPELINE_RATE),
            idle_timeout_secs=None, enable_rtvi=False)

        @transport.event_handler("on_client_connected")
        async def on_connected(_transport, _client) -> None:
            log.info("call %s: agent %s connected", self.seat.call_id, self.agent)
            self._tasks.append(asyncio.create_task(self._brief(), name=f"briefing-{self.seat.call_id}"))

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport, _client) -> None:
            if not self._closing:
                log.info("call %s: agent %s left", self.seat.call_id, self.agent)
                await self.seat.agent_hung_up()

        answer = connection.get_answer()
        if answer is None:
            raise AcceptError(500, "no SDP answer produced for the agent's audio")
        self._tasks.append(asyncio.create_task(self._run(), name=f"agent-leg-{self.seat.call_id}"))
        return {"sdp": answer["sdp"], "type": answer["type"]}

    async def _run(self) -> None:
        assert self._worker is not None
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self._worker)
        try:
            await runner.run()
        except Exception:  # the agent's leg failing must not take the caller's call down
            log.exception("call %s: agent leg failed", self.seat.call_id)
            if not self._closing:
                await self.seat.agent_hung_up()

    async def _brief(self) -> None:
        """The briefing to the agent alone, then caller and agent hear each other."""
        assert self._worker is not None
        seconds = 0.0
        if self._briefing:
            pcm = await asyncio.to_thread(self._renderer.render, self._briefing, self._style)
            pcm = pcm[: int(self._briefing_max_s * PIPELINE_RATE) * 2]
            seconds = len(pcm) / 2 / PIPELINE_RATE
            await self._worker.queue_frames([OutputAudioRawFrame(audio=pcm, sample_rate=PIPELINE_RATE,
                                                                 num_channels=1)])
            await asyncio.sleep(seconds + 0.3)
        if self._closing:
            return
        self.bridged = True
        await self.seat.call.event("agent_connected", {"agent": self.agent, "briefing_s": round(seconds, 2)})
        team = self.seat.handoff.team if self.seat.handoff else ""
        await self.seat.notify(TransferStatusFrame(team=team, status="bridged"))

    async def to_agent(self, pcm: bytes, sample_rate: int) -> None:
        if self._worker is not None and not self._closing:
            await self._worker.queue_frames([OutputAudioRawFrame(audio=pcm, sample_rate=sample_rate, num_channels=1)])

    async def close(self) -> None:
        self._closing = True
        self.bridged = False
        for task in self._tasks:
            if not task.done() and task is not asyncio.current_task() and task.get_name().startswith("briefing"):
                task.cancel()
        if self._worker is not None:
            await self._worker.cancel()
        if self._connection is not None:
            await self._connection.disconnect()

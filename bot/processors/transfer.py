"""Transfers to a human, on the media stream of our own SIP gateway: the request (after
the bot's last words, with the agent's spoken briefing for a bridged transfer) and the
agent's voice into the call's recording."""

from __future__ import annotations

import asyncio
import base64
import logging

import numpy as np
from pipecat.frames.frames import Frame, OutputAudioRawFrame, OutputTransportMessageFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from bot.processors.frames import AgentAudioFrame, AgentVoiceFrame, LiveAudioFrame, TransferRequestFrame
from voice.codecs import pcm16_to_ulaw, resample
from voice.speech_engines import SpeechStyle
from voice.speech_renderer import PIPELINE_RATE, SpeechRenderer

log = logging.getLogger("callbot.transfer")
GATEWAY_RATE = 8000


class TransferRequester(FrameProcessor):
    """Turns a TransferRequestFrame into the gateway's `transfer` message, in order behind
    the speech before it. The briefing is rendered here, while the caller hears the bot's
    last words, so that the agent hears it the moment they answer."""

    def __init__(self, *, renderer: SpeechRenderer, style: SpeechStyle, **kwargs) -> None:
        super().__init__(**kwargs)
        self._renderer = renderer
        self._style = style

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, TransferRequestFrame):
            await self.push_frame(frame, direction)
            return
        transfer: dict[str, str] = {"team": frame.team, "mode": frame.mode}
        if frame.target:
            transfer["target"] = frame.target
        if frame.mode == "bridged" and frame.briefing:
            pcm = await asyncio.to_thread(self._renderer.render, frame.briefing, self._style)
            samples = np.frombuffer(pcm, dtype=np.int16)
            at_8k = resample(samples, PIPELINE_RATE, GATEWAY_RATE).tobytes()
            transfer["whisper"] = base64.b64encode(pcm16_to_ulaw(at_8k)).decode()
        await self.push_frame(OutputTransportMessageFrame(message={"event": "transfer", "transfer": transfer}))


class AgentVoicePlayer(FrameProcessor):
    """Just before the transport out: a browser agent's voice is played to the caller."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AgentVoiceFrame):
            await self.push_frame(LiveAudioFrame(audio=frame.audio, sample_rate=frame.sample_rate, num_channels=1))
            return
        await self.push_frame(frame, direction)


class AgentLegRecorder(FrameProcessor):
    """Just before the recorder: the agent's voice goes on the bot's side of the recording."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AgentAudioFrame):
            await self.push_frame(OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate,
                                                      num_channels=1))
            return
        await self.push_frame(frame, direction)

"""Barge-in: caller speech over the bot holds the bot at once; sustained speech stops
it and gives the caller the floor, a short backchannel ("oui", "hmm") lets it go on."""

from __future__ import annotations

import logging
import time

import webrtcvad
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from bot.call_log import CallLog
from bot.processors.frames import BackchannelFrame
from voice.output_pacer import HoldAudioFrame, ReleaseAudioFrame

log = logging.getLogger("callbot.bargein")
FRAME_MS = 20


class BargeInGate(FrameProcessor):
    """When the VAD confirms speech while the bot talks, the bot's audio is held (about
    0.2-0.3 s after the caller's first sound). Then, on 20 ms frames:
    `confirm_s` of voiced speech in all -> interruption (the rest of the reply is dropped);
    `release_after_s` of silence first -> a backchannel: the bot goes on where it stopped.
    """

    def __init__(self, *, call: CallLog, confirm_s: float = 0.6, release_after_s: float = 0.3,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._call = call
        self._confirm_ms = int(confirm_s * 1000)
        self._release_ms = int(release_after_s * 1000)
        self._vad = webrtcvad.Vad(2)
        self._bot_speaking = False
        self._holding = False
        self._onset = 0.0
        self._voiced_ms = 0
        self._silent_ms = 0
        self._pcm = b""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        elif isinstance(frame, VADUserStartedSpeakingFrame) and self._bot_speaking and not self._holding:
            self._holding = True
            self._onset = time.monotonic() - frame.start_secs
            self._voiced_ms, self._silent_ms, self._pcm = int(frame.start_secs * 1000), 0, b""
            await self.push_frame(HoldAudioFrame())
        await self.push_frame(frame, direction)
        if self._holding and isinstance(frame, InputAudioRawFrame):
            await self._follow(frame)

    async def _follow(self, frame: InputAudioRawFrame) -> None:
        self._pcm += frame.audio
        size = frame.sample_rate * FRAME_MS // 1000 * 2
        while self._holding and len(self._pcm) >= size:
            chunk, self._pcm = self._pcm[:size], self._pcm[size:]
            if self._vad.is_speech(chunk, frame.sample_rate):
                self._voiced_ms, self._silent_ms = self._voiced_ms + FRAME_MS, 0
            else:
                self._silent_ms += FRAME_MS
            if self._voiced_ms >= self._confirm_ms:
                self._holding = False
                log.info("call %s: caller barged in, bot stops", self._call.call_id)
                await self.broadcast_interruption()
                await self._call.event("barge_in", {"after_ms": int((time.monotonic() - self._onset) * 1000)})
            elif self._silent_ms >= self._release_ms:
                self._holding = False
                log.debug("call %s: backchannel, bot goes on", self._call.call_id)
                await self.push_frame(ReleaseAudioFrame())
                await self.push_frame(BackchannelFrame())

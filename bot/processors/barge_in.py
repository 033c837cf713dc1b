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
from voice.turn_transcriber import RecognitionOffFrame

log = logging.getLogger("callbot.bargein")
FRAME_MS = 20


class BargeInGate(FrameProcessor):
    """While the bot talks, the caller's audio is watched on 20 ms frames.

    Holding is cheap and undone without a trace, so the bot's audio is held early: after
    `early_hold_s` of voiced frames (webrtcvad, most aggressive) or when the main VAD
    (Silero) confirms speech, whichever comes first. Then:
    `confirm_s` of voiced speech, Silero having confirmed it -> interruption (the rest of
    the reply is dropped); `release_after_s` of silence first -> the bot goes on where it
    stopped (a backchannel when Silero heard speech, a false alarm otherwise). Speech that
    Silero has not confirmed after `unconfirmed_s` is noise: the bot goes on, and for
    `noisy_for_s` only Silero may hold it again (a noisy room must not make it stutter).
    """

    def __init__(self, *, call: CallLog, confirm_s: float = 0.6, release_after_s: float = 0.3,
                 early_hold_s: float = 0.08, unconfirmed_s: float = 0.4, noisy_for_s: float = 10.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._call = call
        self._confirm_ms = int(confirm_s * 1000)
        self._release_ms = int(release_after_s * 1000)
        self._early_ms = int(early_hold_s * 1000)
        self._unconfirmed_ms = int(unconfirmed_s * 1000)
        self._noisy_for_s = noisy_for_s
        self._vad = webrtcvad.Vad(3)
        self._bot_speaking = False
        self._early_after = 0.0   # monotonic time from which early holds are allowed
        self._holding = False
        self._confirmed = False
        self._onset = 0.0
        self._run_ms = 0          # voiced frames in a row while the bot speaks, not held
        self._voiced_ms = 0
        self._silent_ms = 0
        self._pcm = b""
        self._off = False         # a human has the call: their voice is not the bot's to stop

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, RecognitionOffFrame):
            if self._holding:
                await self.push_frame(ReleaseAudioFrame())
            self._off, self._holding, self._bot_speaking = True, False, False
            return
        if self._off:
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        elif isinstance(frame, VADUserStartedSpeakingFrame) and (self._bot_speaking or self._holding):
            self._confirmed = True
            if not self._holding:
                await self._hold(int(frame.start_secs * 1000))
        await self.push_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and (self._bot_speaking or self._holding):
            await self._follow(frame)
        elif isinstance(frame, InputAudioRawFrame):
            self._pcm, self._run_ms = b"", 0

    async def _hold(self, voiced_ms: int) -> None:
        self._holding = True
        self._onset = time.monotonic() - voiced_ms / 1000
        self._voiced_ms, self._silent_ms, self._run_ms = voiced_ms, 0, 0
        await self.push_frame(HoldAudioFrame())

    async def _follow(self, frame: InputAudioRawFrame) -> None:
        self._pcm += frame.audio
        size = frame.sample_rate * FRAME_MS // 1000 * 2
        while len(self._pcm) >= size:
            chunk, self._pcm = self._pcm[:size], self._pcm[size:]
            voiced = self._vad.is_speech(chunk, frame.sample_rate)
            if self._holding:
                await self._while_held(voiced)
            elif self._bot_speaking and time.monotonic() >= self._early_after:
                self._run_ms = self._run_ms + FRAME_MS if voiced else 0
                if self._run_ms >= self._early_ms:
                    self._confirmed = False
                    await self._hold(self._run_ms)

    async def _while_held(self, voiced: bool) -> None:
        if voiced:
            self._voiced_ms, self._silent_ms = self._voiced_ms + FRAME_MS, 0
        else:
            self._silent_ms += FRAME_MS
        if self._confirmed and self._voiced_ms >= self._confirm_ms:
            self._holding = False
            log.info("call %s: caller barged in, bot stops", self._call.call_id)
            await self.broadcast_interruption()
            await self._call.event("barge_in", {"after_ms": int((time.monotonic() - self._onset) * 1000)})
        elif self._silent_ms >= self._release_ms:
            self._holding = False
            await self.push_frame(ReleaseAudioFrame())
            if self._confirmed:
                log.debug("call %s: backchannel, bot goes on", self._call.call_id)
                await self.push_frame(BackchannelFrame())
            else:
                log.debug("call %s: short noise over the bot, it goes on", self._call.call_id)
        elif not self._confirmed and self._voiced_ms + self._silent_ms >= self._unconfirmed_ms:
            self._holding, self._early_after = False, time.monotonic() + self._noisy_for_s
            log.debug("call %s: sound over the bot that is not speech, it goes on", self._call.call_id)
            await self.push_frame(ReleaseAudioFrame())

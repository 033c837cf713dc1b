"""Barge-in: caller speech over the bot stops the bot, unless it is a short backchannel."""

from __future__ import annotations

import logging
import time

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

log = logging.getLogger("callbot.bargein")


class BargeInGate(FrameProcessor):
    """Interrupts the bot once the caller's speech over it has lasted `min_speech_s`.

    Counted from the speech onset (VAD confirmation time minus its start delay), so
    "oui" or "hmm" said while the bot talks does not cut it, and a real barge-in
    stops it about `min_speech_s` after the caller starts.
    """

    def __init__(self, *, min_speech_s: float = 0.3, call_id: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._min_speech_s = min_speech_s
        self._call_id = call_id
        self._bot_speaking = False
        self._speech_onset: float | None = None
        self._interrupted = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._speech_onset = time.monotonic() - frame.start_secs
            self._interrupted = False
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._speech_onset = None
        await self.push_frame(frame, direction)
        if (
            isinstance(frame, InputAudioRawFrame)
            and self._bot_speaking
            and self._speech_onset is not None
            and not self._interrupted
            and time.monotonic() - self._speech_onset >= self._min_speech_s
        ):
            self._interrupted = True
            log.info("call %s: caller barged in, bot stops", self._call_id)
            await self.broadcast_interruption()

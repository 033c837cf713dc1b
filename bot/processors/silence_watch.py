"""No-input detection: the caller says nothing after the bot has finished speaking."""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from bot.processors.frames import CallerSilentFrame
from voice.slow_speech import SlowSpeechFrame
from voice.turn_transcriber import UnheardSpeechFrame


class SilenceWatch(FrameProcessor):
    def __init__(self, *, timeout_s: float = 8.0, slow_timeout_s: float | None = None, **kwargs) -> None:
        """`slow_timeout_s`: the wait in slow-speech mode (SlowSpeechFrame)."""
        super().__init__(**kwargs)
        self.timeout_s = self._normal_timeout_s = timeout_s
        self._slow_timeout_s = slow_timeout_s or timeout_s
        self._timer: asyncio.Task | None = None
        self._caller_speaking = False
        self._bot_speaking = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, SlowSpeechFrame):
            self.timeout_s = self._slow_timeout_s if frame.on else self._normal_timeout_s
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._caller_speaking = True
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._caller_speaking = False
        if isinstance(frame, (BotStartedSpeakingFrame, BotStoppedSpeakingFrame)):
            self._bot_speaking = isinstance(frame, BotStartedSpeakingFrame)
        # A turn that left no words (a cough) stopped the wait: it starts again, or a caller
        # who then says nothing would never be asked whether they are still there.
        restart = isinstance(frame, BotStoppedSpeakingFrame) or \
            (isinstance(frame, UnheardSpeechFrame) and not self._bot_speaking)
        if restart and not self._caller_speaking:
            await self._restart()
        elif isinstance(frame, (BotStartedSpeakingFrame, VADUserStartedSpeakingFrame, EndFrame, CancelFrame)):
            await self._stop()
        await self.push_frame(frame, direction)

    async def _restart(self) -> None:
        await self._stop()
        self._timer = self.create_task(self._wait())

    async def _stop(self) -> None:
        if self._timer is not None:
            await self.cancel_task(self._timer)
            self._timer = None

    async def _wait(self) -> None:
        await asyncio.sleep(self.timeout_s)
        self._timer = None
        await self.push_frame(CallerSilentFrame(seconds=self.timeout_s))

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._stop()

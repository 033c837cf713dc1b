"""Releases the bot's audio in real time, a little ahead of playback, so that it can be
held (the caller starts speaking) and resumed or dropped within a frame or two.

Without it the TTS pushes whole clauses at once into the transport's queue and a
pause would have nothing left to hold.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from pipecat.frames.frames import Frame, InterruptionFrame, SystemFrame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


@dataclass
class HoldAudioFrame(SystemFrame):
    """Stop releasing the bot's audio, keep what is queued."""


@dataclass
class ReleaseAudioFrame(SystemFrame):
    """Go on releasing the bot's audio where it stopped."""


class OutputPacer(FrameProcessor):
    def __init__(self, *, lead_s: float = 0.06, **kwargs) -> None:
        super().__init__(**kwargs)
        self._lead_s = lead_s
        self._released = asyncio.Event()
        self._released.set()
        self._play_until = 0.0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, HoldAudioFrame):
            self._released.clear()
            return
        if isinstance(frame, ReleaseAudioFrame):
            self._released.set()
            return
        if isinstance(frame, InterruptionFrame):
            # pipecat drops our queued frames on interruption; the clock restarts.
            self._released.set()
            self._play_until = 0.0
        elif isinstance(frame, TTSAudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            await self._pace(frame)
        await self.push_frame(frame, direction)

    async def _pace(self, frame: TTSAudioRawFrame) -> None:
        # Runs in this processor's frame task: waiting here holds every later frame in order.
        if not self._released.is_set():
            await self._released.wait()
            self._play_until = 0.0
        now = time.monotonic()
        self._play_until = max(self._play_until, now)
        ahead = self._play_until - now - self._lead_s
        if ahead > 0:
            await asyncio.sleep(ahead)
        self._play_until += len(frame.audio) / (2 * frame.num_channels * frame.sample_rate)

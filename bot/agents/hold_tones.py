"""What a caller waiting for an agent hears between the bot's words: a soft two-note
chime every few seconds, so that a long wait never sounds like a dropped line. Generated
here (no audio file), quiet, and only while nothing else is being said."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from pipecat.frames.frames import Frame, InterruptionFrame, SystemFrame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voice.speech_renderer import PIPELINE_RATE

FRAME_SAMPLES = PIPELINE_RATE // 50


@dataclass
class HoldFrame(SystemFrame):
    """From the dialogue: the caller is waiting for an agent (on), or no longer (off)."""

    on: bool = False


def chime(rate: int = PIPELINE_RATE, level: float = 0.1) -> np.ndarray:
    """Two decaying bell-like notes (E5 then C5), int16 at `rate`."""
    notes = []
    for hz in (659.25, 523.25):
        t = np.arange(int(0.45 * rate)) / rate
        tone = np.sin(2 * np.pi * hz * t) + 0.3 * np.sin(2 * np.pi * 2 * hz * t)
        envelope = np.exp(-t * 5.0) * np.minimum(1.0, t / 0.01)
        notes.append(tone * envelope)
    audio = np.concatenate(notes) / 1.3 * level
    return (audio * 32767).astype(np.int16)


class HoldTones(FrameProcessor):
    """Right after the TTS: the chime goes out like the bot's speech (paced, held and
    dropped with it when the caller speaks), `every_s` after the bot's last words (their
    audio passes here on its way out) while the caller waits."""

    def __init__(self, *, every_s: float = 4.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self._every_s = every_s
        self._chime = chime().tobytes()
        self._task: asyncio.Task | None = None
        self._busy_until = 0.0   # when the audio sent so far will have been played out

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, HoldFrame):
            await self._stop()
            if frame.on:
                self._task = self.create_task(self._play(), "hold-tones")
            return
        now = asyncio.get_running_loop().time()
        if isinstance(frame, TTSAudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            self._busy_until = max(self._busy_until, now) + len(frame.audio) / 2 / frame.sample_rate
        elif isinstance(frame, InterruptionFrame):
            self._busy_until = now
        await self.push_frame(frame, direction)

    async def _play(self) -> None:
        loop = asyncio.get_running_loop()
        self._busy_until = max(self._busy_until, loop.time())
        while True:
            await asyncio.sleep(0.25)
            if loop.time() - self._busy_until < self._every_s:
                continue
            for i in range(0, len(self._chime), FRAME_SAMPLES * 2):
                await self.push_frame(TTSAudioRawFrame(audio=self._chime[i:i + FRAME_SAMPLES * 2],
                                                       sample_rate=PIPELINE_RATE, num_channels=1, context_id="hold"))
            self._busy_until = loop.time() + len(self._chime) / 2 / PIPELINE_RATE

    async def _stop(self) -> None:
        if self._task is not None:
            await self.cancel_task(self._task)
            self._task = None

    async def cleanup(self) -> None:
        await self._stop()
        await super().cleanup()

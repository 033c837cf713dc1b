"""The transcript goes on once a human agent has the call: what the caller and the agent
say is transcribed for the call record (speakers "caller" and "agent"), never for the
dialogue, which only listens by then. Each side is cut into utterances at its pauses
(webrtcvad, 0.8 s of silence) and decoded on the Whisper executor, after the bot's own
turns, so a live bot call on the same server never waits behind it for long."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import webrtcvad
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from bot.call_log import CallLog
from bot.processors.frames import AgentAudioFrame, AgentVoiceFrame, TransferStatusFrame
from voice.speech_renderer import PIPELINE_RATE
from voice.stt import Transcriber

log = logging.getLogger("callbot.agents.transcript")
FRAME_BYTES = PIPELINE_RATE * 20 // 1000 * 2
PAUSE_S = 0.8
MIN_SPEECH_S = 0.3
MAX_UTTERANCE_S = 25.0   # a long monologue is cut: Whisper's window, and a turn a reader can follow


@dataclass
class _Side:
    speaker: str
    vad: webrtcvad.Vad = field(default_factory=lambda: webrtcvad.Vad(2))
    pending: bytes = b""
    audio: bytearray = field(default_factory=bytearray)
    voiced_s: float = 0.0
    silent_s: float = 0.0
    started: float | None = None


class HumanPartTranscriber(FrameProcessor):
    def __init__(self, *, transcriber: Transcriber, call: CallLog, **kwargs) -> None:
        super().__init__(**kwargs)
        self._transcriber = transcriber
        self._call = call
        self._on = False
        self._sides = {"caller": _Side("caller"), "agent": _Side("agent")}
        self._tasks: set[asyncio.Task] = set()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TransferStatusFrame) and frame.status == "bridged":
            self._on = True
        elif self._on and isinstance(frame, InputAudioRawFrame):
            self._hear(self._sides["caller"], frame.audio)
        elif self._on and isinstance(frame, (AgentVoiceFrame, AgentAudioFrame)):
            self._hear(self._sides["agent"], frame.audio)
        await self.push_frame(frame, direction)

    def _hear(self, side: _Side, pcm: bytes) -> None:
        side.pending += pcm
        while len(side.pending) >= FRAME_BYTES:
            chunk, side.pending = side.pending[:FRAME_BYTES], side.pending[FRAME_BYTES:]
            voiced = side.vad.is_speech(chunk, PIPELINE_RATE)
            if voiced and side.started is None:
                side.started = time.monotonic()
            if side.started is None:
                continue
            side.audio += chunk
            side.voiced_s, side.silent_s = (side.voiced_s + 0.02, 0.0) if voiced else (side.voiced_s, side.silent_s + 0.02)
            if side.silent_s >= PAUSE_S or len(side.audio) >= MAX_UTTERANCE_S * PIPELINE_RATE * 2:
                self._flush(side)

    def _flush(self, side: _Side) -> None:
        audio, started, voiced = bytes(side.audio), side.started, side.voiced_s
        side.audio, side.started, side.voiced_s, side.silent_s = bytearray(), None, 0.0, 0.0
        if started is None or voiced < MIN_SPEECH_S:
            return
        task = asyncio.get_running_loop().create_task(self._transcribe(side.speaker, audio, started))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _transcribe(self, speaker: str, audio: bytes, started: float) -> None:
        samples = np.frombuffer(audio, dtype=np.int16).astype(np.float32) / 32768.0
        try:
            transcript = await self._transcriber.transcribe_async(samples)
        except Exception:  # the record loses one utterance, the call goes on
            log.exception("call %s: an utterance of the %s could not be transcribed", self._call.call_id, speaker)
            return
        if transcript.text.strip():
            end = started + len(audio) / 2 / PIPELINE_RATE
            await self._call.turn(speaker, transcript.text.strip(), start_ms=self._call.ms_at(started),
                                  end_ms=self._call.ms_at(end), asr_confidence=transcript.confidence)

    async def cleanup(self) -> None:
        for side in self._sides.values():
            if self._on:
                self._flush(side)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await super().cleanup()

"""The pipeline's speech recognition: whole caller turns, transcribed with the shared Transcriber."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator

import numpy as np
import webrtcvad
from pipecat.frames.frames import ErrorFrame, Frame, TranscriptionFrame
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from voice.stt import Transcriber, Transcript

log = logging.getLogger("callbot.voice.stt")


class FrenchWhisperSTTService(WhisperSTTService):
    """pipecat's Whisper service on the shared Transcriber and its decoding options.

    Speculative decoding: the end of a turn is only confirmed after the VAD's stop
    delay (0.5 s of silence), but Whisper needs ~0.6 s. So once the caller has been
    silent for `speculate_after_s`, the segment so far is transcribed in the background;
    if the caller stays silent until the VAD confirms the end, that transcript is used,
    if they speak again it is dropped.

    The transcript frame carries {'confidence', 'stt_ms'} in `result`.
    """

    def __init__(self, *, transcriber: Transcriber, speculate_after_s: float = 0.2, **kwargs) -> None:
        self._transcriber = transcriber
        self._speculate_after_ms = int(speculate_after_s * 1000)
        self._silence_vad = webrtcvad.Vad(2)
        self._silent_ms = 0
        self._speculation: asyncio.Task | None = None
        super().__init__(
            settings=WhisperSTTService.Settings(model=transcriber.settings.model, language=Language.FR),
            **kwargs,
        )

    def _load(self) -> None:
        self._model = self._transcriber.model

    def _transcribe_pcm(self, pcm: bytes) -> Transcript:
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        return self._transcriber.transcribe(samples)

    async def process_audio_frame(self, frame, direction) -> None:
        await super().process_audio_frame(frame, direction)
        if not self._user_speaking:
            return
        step = frame.sample_rate // 50 * 2  # webrtcvad wants 10/20/30 ms frames
        for start in range(0, len(frame.audio) - step + 1, step):
            if self._silence_vad.is_speech(frame.audio[start:start + step], frame.sample_rate):
                self._silent_ms = 0
                await self._drop_speculation()
            else:
                self._silent_ms += 20
        if self._silent_ms >= self._speculate_after_ms and self._speculation is None:
            pcm = bytes(self._audio_buffer) + self._trailing_silence()
            self._speculation = self.create_task(asyncio.to_thread(self._transcribe_pcm, pcm))

    async def _drop_speculation(self) -> None:
        if self._speculation is not None:
            await self.cancel_task(self._speculation)
            self._speculation = None

    async def _handle_user_started_speaking(self, frame) -> None:
        await self._drop_speculation()
        self._silent_ms = 0
        await super()._handle_user_started_speaking(frame)

    async def _handle_user_stopped_speaking(self, frame) -> None:
        # The queued segment will use the speculation, if any (see run_stt).
        self._silent_ms = 0
        await super()._handle_user_stopped_speaking(frame)

    async def cleanup(self) -> None:
        await self._drop_speculation()
        await super().cleanup()

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        speculation, self._speculation = self._speculation, None
        try:
            if speculation is not None:
                result = await speculation
            else:
                result = await asyncio.to_thread(self._transcribe_pcm, audio)
        except RuntimeError as e:
            yield ErrorFrame(error=f"transcription failed: {e}")
            return
        if not result.text:
            return  # noise or breath: nothing was said
        # The text may hold personal data: it goes to the call record, never to the logs.
        log.debug("transcript of %d words (confidence %.2f, %d ms)", len(result.text.split()),
                  result.confidence, result.duration_ms)
        yield TranscriptionFrame(
            result.text,
            self._user_id,
            time_now_iso8601(),
            Language.FR,
            result={"confidence": result.confidence, "stt_ms": result.duration_ms},
        )

"""French speech recognition with faster-whisper: one shared model, production decoding."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import numpy as np
import webrtcvad
from pipecat.frames.frames import ErrorFrame, Frame, TranscriptionFrame
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

log = logging.getLogger("callbot.voice.stt")

# Biases spelling towards the helpline's vocabulary; also keeps Whisper base out of
# the repetition loops it falls into on telephone-band audio.
DOMAIN_PROMPT = (
    "Appel à l'Urssaf. Auto-entrepreneur, micro-entreprise, chiffre d'affaires, "
    "cotisations, déclaration, attestation de vigilance, SIRET, ACRE, conseiller."
)


# What Whisper writes on noise, music or silence: subtitles credits learnt from its
# training data. Such a transcript means nothing was said.
HALLUCINATIONS = re.compile(
    r"sous-titr|amara\.org|merci d'avoir regard|abonnez-vous|radio-canada|"
    r"n'oubliez pas de vous abonner|www\.|\.com\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class STTSettings:
    model: str = "base"               # 'base' (shipped) or a CTranslate2 model folder
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 2
    beam_size: int = 1
    no_repeat_ngram_size: int = 3
    repetition_penalty: float = 1.1
    no_speech_threshold: float = 0.6
    initial_prompt: str = DOMAIN_PROMPT


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float        # exp(mean log-probability of the tokens), 0..1
    duration_ms: int         # decoding time


class Transcriber:
    """Owns the Whisper model; thread-safe, shared by every call."""

    def __init__(self, settings: STTSettings) -> None:
        from faster_whisper import WhisperModel

        from models.whisper import resolve_whisper_model

        self.settings = settings
        self.model = WhisperModel(
            resolve_whisper_model(settings.model),
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
        )

    def transcribe(self, audio: np.ndarray, *, vad_filter: bool = False) -> Transcript:
        """16 kHz float32 mono in, French text out (blocking)."""
        s = self.settings
        started = time.perf_counter()
        segments, _ = self.model.transcribe(
            audio,
            language="fr",
            task="transcribe",
            beam_size=s.beam_size,
            temperature=0.0,
            no_repeat_ngram_size=s.no_repeat_ngram_size,
            repetition_penalty=s.repetition_penalty,
            initial_prompt=s.initial_prompt,
            condition_on_previous_text=False,
            vad_filter=vad_filter,
            without_timestamps=True,
        )
        kept = [seg for seg in segments
                if seg.no_speech_prob < s.no_speech_threshold and not HALLUCINATIONS.search(seg.text)]
        text = " ".join(seg.text.strip() for seg in kept).strip()
        logprob = (sum(seg.avg_logprob for seg in kept) / len(kept)) if kept else -math.inf
        return Transcript(
            text=text,
            confidence=round(math.exp(logprob), 3) if kept else 0.0,
            duration_ms=int((time.perf_counter() - started) * 1000),
        )


def load_audio_16k(path: str) -> np.ndarray:
    """Any audio file (any rate, any format ffmpeg/libsndfile reads) as 16 kHz float32 mono."""
    import soundfile as sf

    from voice.codecs import resample

    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError):
        from faster_whisper.audio import decode_audio

        return decode_audio(path, sampling_rate=16000)
    mono = data.mean(axis=1)
    return resample(mono, rate, 16000).astype(np.float32)


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

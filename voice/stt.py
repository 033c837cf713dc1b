"""French speech recognition with faster-whisper: one shared model, production decoding."""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass

import numpy as np

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

"""The two speech engines behind one interface: Piper (production, French voice) and
Kokoro-82M driven with French espeak-ng phonemes (offline default)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from models.kokoro import SAMPLE_RATE as KOKORO_RATE
from models.kokoro import KokoroFiles


@dataclass(frozen=True)
class SpeechStyle:
    """How fast and with which pauses to speak; the slow-speech mode changes it."""

    speed: float = 1.0
    sentence_pause_s: float = 0.25    # after each clause
    figure_pause_s: float = 0.0       # before each figure in a clause ("le plafond est de ... 77 700 euros")

    def __post_init__(self) -> None:
        if not 0.5 <= self.speed <= 2.0:
            raise ValueError(f"speed must be within 0.5..2.0, got {self.speed}")
        if not 0.0 <= self.sentence_pause_s <= 3.0:
            raise ValueError(f"sentence_pause_s must be within 0..3 s, got {self.sentence_pause_s}")
        if not 0.0 <= self.figure_pause_s <= 2.0:
            raise ValueError(f"figure_pause_s must be within 0..2 s, got {self.figure_pause_s}")


class SpeechEngine(Protocol):
    name: str
    sample_rate: int

    def synthesize(self, text: str, style: SpeechStyle) -> np.ndarray:
        """int16 mono samples at `sample_rate` for one clause of speakable text."""
        ...


def _session(model: Path, threads: int) -> ort.InferenceSession:
    # One intra-op thread per session: faster on 2 cores and lets calls synthesise side by side.
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])


class FrenchPhonemizer:
    """espeak-ng French IPA through the library bundled with piper-tts.

    espeak-ng is one global state per process (initialising it twice crashes, two
    threads phonemizing at once crash): share Piper's own instance and lock, so that
    Kokoro and Piper voices can live in one process.
    """

    def __init__(self, voice: str = "fr") -> None:
        self._voice = voice

    def __call__(self, text: str) -> str:
        import piper.voice as piper_voice
        from piper.phonemize_espeak import ESPEAK_DATA_DIR, EspeakPhonemizer

        with piper_voice._ESPEAK_PHONEMIZER_LOCK:
            if piper_voice._ESPEAK_PHONEMIZER is None:
                piper_voice._ESPEAK_PHONEMIZER = EspeakPhonemizer(ESPEAK_DATA_DIR)
            sentences = piper_voice._ESPEAK_PHONEMIZER.phonemize(self._voice, text)
        return " ".join("".join(s) for s in sentences).replace("-", "")


class KokoroEngine:
    max_tokens = 500

    def __init__(self, files: KokoroFiles, voice: str, *, threads: int = 1) -> None:
        if voice not in files.styles:
            raise ValueError(f"unknown Kokoro voice '{voice}', choose one of {sorted(files.styles)}")
        self.name = f"kokoro-{voice}"
        self.sample_rate = KOKORO_RATE
        self._vocab = files.vocab
        self._style = files.styles[voice]
        self._session = _session(files.model, threads)
        self._phonemize = FrenchPhonemizer()

    def synthesize(self, text: str, style: SpeechStyle) -> np.ndarray:
        phonemes = unicodedata.normalize("NFC", self._phonemize(text))
        ids = [self._vocab[c] for c in phonemes if c in self._vocab][: self.max_tokens - 2]
        if not ids:
            return np.zeros(0, dtype=np.int16)
        ref = self._style[min(len(ids), len(self._style)) - 1]
        audio = self._session.run(
            None,
            {
                "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
                "style": np.asarray(ref, dtype=np.float32).reshape(1, 256),
                "speed": np.array([style.speed], dtype=np.float32),
            },
        )[0]
        return _to_int16(_trim(np.asarray(audio, dtype=np.float32).ravel(), self.sample_rate))


class PiperEngine:
    def __init__(self, onnx_path: Path, *, threads: int = 1) -> None:
        from piper import PiperVoice

        self.name = f"piper-{onnx_path.name.removesuffix('.onnx')}"
        self._voice = PiperVoice.load(onnx_path)
        self._voice.session = _session(onnx_path, threads)
        self.sample_rate = self._voice.config.sample_rate

    def synthesize(self, text: str, style: SpeechStyle) -> np.ndarray:
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=1.0 / style.speed)
        chunks = [c.audio_int16_array for c in self._voice.synthesize(text, syn_config=config)]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def _trim(audio: np.ndarray, rate: int, threshold: float = 0.01) -> np.ndarray:
    voiced = np.nonzero(np.abs(audio) > threshold)[0]
    if len(voiced) == 0:
        return audio[:0]
    pad = int(0.03 * rate)
    return audio[max(0, voiced[0] - pad) : voiced[-1] + pad]


def _to_int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)

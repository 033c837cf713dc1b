"""VAD analyzers behind pipecat's VADAnalyzer: webrtcvad (light) and Silero (pipecat)."""

from __future__ import annotations

from dataclasses import dataclass

import webrtcvad
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams


class WebRTCVADAnalyzer(VADAnalyzer):
    """webrtcvad on 20 ms frames; its yes/no becomes a 0/1 confidence."""

    def __init__(self, *, aggressiveness: int = 2, sample_rate: int | None = None,
                 params: VADParams | None = None) -> None:
        super().__init__(sample_rate=sample_rate, params=params)
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError("webrtcvad aggressiveness must be 0..3")
        self._vad = webrtcvad.Vad(aggressiveness)

    def set_sample_rate(self, sample_rate: int) -> None:
        rate = self._init_sample_rate or sample_rate
        if rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"webrtcvad does not support {rate} Hz")
        super().set_sample_rate(sample_rate)

    def num_frames_required(self) -> int:
        return int(self.sample_rate * 0.02)

    def voice_confidence(self, buffer: bytes) -> float:
        return 1.0 if self._vad.is_speech(buffer, self.sample_rate) else 0.0


@dataclass(frozen=True)
class VADSettings:
    engine: str = "silero"          # "silero" or "webrtc"
    start_secs: float = 0.2
    # A pause after this much silence: the end-of-turn decision (voice/end_of_turn.py)
    # then says whether the caller has finished.
    stop_secs: float = 0.2
    confidence: float = 0.6
    min_volume: float = 0.4
    webrtc_aggressiveness: int = 2

    def __post_init__(self) -> None:
        if self.engine not in ("silero", "webrtc"):
            raise ValueError(f"VAD engine must be 'silero' or 'webrtc', got '{self.engine}'")


def make_vad_analyzer(settings: VADSettings) -> VADAnalyzer:
    params = VADParams(confidence=settings.confidence, start_secs=settings.start_secs,
                       stop_secs=settings.stop_secs, min_volume=settings.min_volume)
    if settings.engine == "webrtc":
        return WebRTCVADAnalyzer(aggressiveness=settings.webrtc_aggressiveness, params=params)
    return SileroVADAnalyzer(params=params)

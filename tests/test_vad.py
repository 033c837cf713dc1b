"""voice/vad.py: both VAD engines on generated French speech, silence and noise.

The speech is Kokoro with 'jm_kumo' (the bot speaks with 'jf_gongitsune'),
resampled to the pipeline's 16 kHz (and to 8 kHz for the telephone case).
"""

from __future__ import annotations

import numpy as np
import pytest
from pipecat.audio.vad.vad_analyzer import VADState

from voice.codecs import resample
from voice.vad import VADSettings, WebRTCVADAnalyzer, make_vad_analyzer

ENGINES = ["webrtc", "silero"]
LEAD_S = 1.0
TAIL_S = 2.0


@pytest.fixture(scope="module")
def speech_24k() -> np.ndarray:
    from models.kokoro import kokoro_files
    from voice.speech_engines import KokoroEngine, SpeechStyle

    engine = KokoroEngine(kokoro_files(), "jm_kumo", threads=2)
    audio = engine.synthesize(
        "Bonjour, je voudrais déclarer mon chiffre d'affaires du trimestre.", SpeechStyle()
    )
    assert len(audio) > 24_000  # more than a second of speech
    return audio


def padded(speech_24k: np.ndarray, rate: int) -> tuple[np.ndarray, float, float]:
    speech = resample(speech_24k, 24_000, rate)
    lead = np.zeros(int(LEAD_S * rate), dtype=np.int16)
    tail = np.zeros(int(TAIL_S * rate), dtype=np.int16)
    return np.concatenate([lead, speech, tail]), LEAD_S, LEAD_S + len(speech) / rate


async def run_states(engine: str, audio: np.ndarray, rate: int) -> list[tuple[float, VADState]]:
    """The analyzer's state after each 20 ms chunk, as (end time of the chunk, state)."""
    analyzer = make_vad_analyzer(VADSettings(engine=engine))
    analyzer.set_sample_rate(rate)
    step = rate // 50
    states = []
    try:
        for start in range(0, len(audio) - step + 1, step):
            state = await analyzer.analyze_audio(audio[start : start + step].tobytes())
            states.append(((start + step) / rate, state))
    finally:
        await analyzer.cleanup()
    return states


@pytest.mark.parametrize("rate", [16_000, 8_000])
@pytest.mark.parametrize("engine", ENGINES)
async def test_speech_is_detected_then_ends(engine, rate, speech_24k):
    audio, speech_start, speech_end = padded(speech_24k, rate)
    states = await run_states(engine, audio, rate)
    stop_s = VADSettings().stop_secs

    before = [s for t, s in states if t <= speech_start]
    assert set(before) == {VADState.QUIET}

    speaking = [t for t, s in states if s is VADState.SPEAKING]
    assert speaking, "never went SPEAKING"
    # SPEAKING within half a second of the first word, and only while there is speech
    # (plus the stop delay during which it may still hold the state).
    assert speech_start < speaking[0] < speech_start + 0.6
    assert speaking[-1] <= speech_end + stop_s + 0.1
    # Most of the speech is covered by SPEAKING/STOPPING (pauses between words are short).
    during = [s for t, s in states if speech_start + 0.5 < t < speech_end]
    active = sum(s in (VADState.SPEAKING, VADState.STOPPING) for s in during)
    assert active / len(during) > 0.9

    # Back to QUIET after the speech ends, within stop_secs plus a little, and stays there.
    quiet_again = [t for t, s in states if t > speech_end and s is VADState.QUIET]
    assert quiet_again, "never went back to QUIET"
    assert quiet_again[0] <= speech_end + stop_s + 0.3
    assert all(s is VADState.QUIET for t, s in states if t > quiet_again[0])


@pytest.mark.parametrize("engine", ENGINES)
async def test_pure_silence_stays_quiet(engine):
    states = await run_states(engine, np.zeros(3 * 16_000, dtype=np.int16), 16_000)
    assert {s for _, s in states} == {VADState.QUIET}


@pytest.mark.parametrize("engine", ENGINES)
async def test_low_white_noise_stays_quiet(engine):
    rng = np.random.default_rng(1234)
    noise = np.clip(rng.normal(0, 100, 3 * 16_000), -32768, 32767).astype(np.int16)  # about -50 dBFS
    states = await run_states(engine, noise, 16_000)
    assert {s for _, s in states} == {VADState.QUIET}


async def test_speech_over_low_noise_is_still_detected(speech_24k):
    audio, speech_start, speech_end = padded(speech_24k, 16_000)
    rng = np.random.default_rng(99)
    noisy = np.clip(audio + rng.normal(0, 100, len(audio)), -32768, 32767).astype(np.int16)
    for engine in ENGINES:
        states = await run_states(engine, noisy, 16_000)
        assert all(s is VADState.QUIET for t, s in states if t <= speech_start), engine
        assert any(s is VADState.SPEAKING for t, s in states if speech_start < t < speech_end), engine
        assert states[-1][1] is VADState.QUIET, engine


def test_make_vad_analyzer_picks_the_engine():
    from pipecat.audio.vad.silero import SileroVADAnalyzer

    webrtc = make_vad_analyzer(VADSettings(engine="webrtc", stop_secs=0.8, webrtc_aggressiveness=3))
    assert isinstance(webrtc, WebRTCVADAnalyzer)
    assert webrtc.params.stop_secs == 0.8
    assert isinstance(make_vad_analyzer(VADSettings(engine="silero")), SileroVADAnalyzer)


def test_invalid_settings_raise_value_error():
    with pytest.raises(ValueError, match="silero"):
        VADSettings(engine="energy")
    with pytest.raises(ValueError, match="aggressiveness"):
        WebRTCVADAnalyzer(aggressiveness=4)
    with pytest.raises(ValueError, match="aggressiveness"):
        make_vad_analyzer(VADSettings(engine="webrtc", webrtc_aggressiveness=-1))
    with pytest.raises(ValueError, match="44100"):
        WebRTCVADAnalyzer().set_sample_rate(44_100)
    with pytest.raises(ValueError, match="22050"):
        WebRTCVADAnalyzer(sample_rate=22_050).set_sample_rate(16_000)

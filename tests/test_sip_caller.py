"""telephony.sip_caller against real baresip callees on loopback: audio both ways through
G.711, RFC 4733 DTMF, remote hang-up, simultaneous calls."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from telephony.sip_caller import SipCallee, place_call, place_calls, read_wav, write_wav
from voice.codecs import resample

pytestmark = pytest.mark.skipif(
    shutil.which("baresip") is None or shutil.which("espeak-ng") is None,
    reason="needs Debian baresip and espeak-ng",
)

RATE = 8000  # G.711


def _espeak(text: str, path: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", "fr", "-s", "160", "-w", str(path), text], check=True)
    return path


def _tone(freq: float, seconds: float, rate: int, path: Path) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    write_wav(path, (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16), rate)
    return path


def _reference(path: Path) -> np.ndarray:
    samples, rate = read_wav(path)
    return resample(samples, rate, RATE).astype(np.float64)


def _best_correlation(signal: np.ndarray, reference: np.ndarray) -> float:
    """Highest normalized correlation of `reference` with a same-length window of
    `signal`, over all lags (1.0 = identical up to gain)."""
    sig = signal.astype(np.float64)
    ref = reference.astype(np.float64)
    m = len(ref)
    if len(sig) < m:
        sig = np.concatenate([sig, np.zeros(m - len(sig))])
    n = 1 << int(np.ceil(np.log2(len(sig) + m)))
    xcorr = np.fft.irfft(np.fft.rfft(sig, n) * np.conj(np.fft.rfft(ref, n)), n)[: len(sig) - m + 1]
    energy = np.concatenate([[0.0], np.cumsum(sig**2)])
    window = np.sqrt(np.maximum(energy[m:] - energy[:-m], 1e-9))
    return float(np.max(xcorr / (window * np.linalg.norm(ref) + 1e-9)))


def _dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("voices")
    callee = _espeak("Bienvenue au service client. Que puis-je faire pour vous ?", d / "callee.wav")
    caller_22k = _espeak("Bonjour, je voudrais connaître le solde de mon compte.", d / "caller22k.wav")
    samples, rate = read_wav(caller_22k)
    caller = d / "caller16k.wav"  # another rate, to exercise the resampling
    write_wav(caller, resample(samples, rate, 16000), 16000)
    return {"callee": callee, "caller": caller}


def test_call_audio_both_ways_and_dtmf(tmp_path: Path, voices: dict[str, Path]) -> None:
    duration = 5.0
    started = time.monotonic()
    with SipCallee(voices["callee"], workdir=tmp_path / "callee") as callee:
        result = place_call(callee.uri, voices["caller"], workdir=tmp_path / "caller",
                            duration_s=duration, dtmf=[(1.0, "5"), (1.6, "#")])
    elapsed = time.monotonic() - started
    peer = callee.stop()

    assert result.established, result.log
    assert peer.established, peer.log
    assert not result.closed_by_remote, result.log          # we hung up after duration_s
    assert peer.closed_by_remote, peer.log                  # ... and the callee saw our BYE
    assert duration <= elapsed < duration + 4
    assert result.sample_rate == RATE and peer.sample_rate == RATE

    callee_ref, caller_ref = _reference(voices["callee"]), _reference(voices["caller"])
    heard, rate = read_wav(result.recording)
    assert rate == RATE
    assert abs(len(heard) / rate - duration) < 0.7, len(heard) / rate
    # the callee's prompt (about 3 s) came through: loud while it plays, then silence
    speech = np.sqrt(np.mean(heard[: len(callee_ref)].astype(np.float64) ** 2))
    tail = np.sqrt(np.mean(heard[len(callee_ref) + RATE // 2 :].astype(np.float64) ** 2))
    assert speech > 500 and tail < 50, (speech, tail)
    # same waveform through the mu-law round trip, not the caller's own voice
    assert _best_correlation(heard, callee_ref) > 0.9
    assert _best_correlation(heard, caller_ref) < 0.5

    heard_by_callee, _ = read_wav(peer.recording)
    assert abs(len(heard_by_callee) / RATE - duration) < 0.7
    assert _best_correlation(heard_by_callee, caller_ref) > 0.9
    assert _best_correlation(heard_by_callee, callee_ref) < 0.5

    assert result.dtmf_sent == ["5", "#"], result.log
    assert peer.dtmf_received == ["5", "#"], peer.log       # RFC 4733 telephone-event


def test_remote_hangup_ends_the_call_early(tmp_path: Path, voices: dict[str, Path]) -> None:
    started = time.monotonic()
    with SipCallee(voices["callee"], workdir=tmp_path / "callee", hangup_after_s=1.5) as callee:
        result = place_call(callee.uri, voices["caller"], workdir=tmp_path / "caller", duration_s=10.0)
    elapsed = time.monotonic() - started
    assert result.established, result.log
    assert result.closed_by_remote, result.log
    assert not callee.stop().closed_by_remote
    assert 1.5 <= elapsed < 4.0, elapsed
    heard, rate = read_wav(result.recording)
    assert 1.0 < len(heard) / rate < 2.5


def test_unanswered_call(tmp_path: Path, voices: dict[str, Path]) -> None:
    with SipCallee(voices["callee"], workdir=tmp_path / "callee") as callee:
        uri = callee.uri
    # nobody listens there any more: no answer, no crash, an empty recording
    result = place_call(uri, voices["caller"], workdir=tmp_path / "caller", duration_s=2.0,
                        answer_timeout_s=2.0)
    assert not result.established and not result.closed_by_remote
    assert read_wav(result.recording)[0].size == 0


def test_simultaneous_calls(tmp_path: Path) -> None:
    n, duration = 5, 3.0
    callee_hz = [400.0, 600.0, 850.0, 1200.0, 1700.0]
    caller_hz = [500.0, 750.0, 1000.0, 1400.0, 2000.0]
    callees = [
        SipCallee(_tone(callee_hz[i], 2.0, 16000, tmp_path / f"callee{i}.wav"),
                  workdir=tmp_path / f"callee{i}").start()
        for i in range(n)
    ]
    try:
        started = time.monotonic()
        results = place_calls([
            {"uri": callees[i].uri, "wav": _tone(caller_hz[i], 2.0, 8000, tmp_path / f"caller{i}.wav"),
             "workdir": tmp_path / f"caller{i}", "duration_s": duration, "dtmf": [(0.5, str(i))]}
            for i in range(n)
        ])
        elapsed = time.monotonic() - started
    finally:
        peers = [c.stop() for c in callees]
    assert elapsed < duration + 4, elapsed
    for i, (result, peer) in enumerate(zip(results, peers, strict=True)):
        assert result.established and peer.established, result.log
        heard, rate = read_wav(result.recording)
        heard_by_callee, _ = read_wav(peer.recording)
        # each caller hears its own callee's tone, each callee its own caller's
        assert abs(_dominant_hz(heard[: rate * 2], rate) - callee_hz[i]) < 5
        assert abs(_dominant_hz(heard_by_callee[: rate * 2], rate) - caller_hz[i]) < 5
        assert peer.dtmf_received == [str(i)], peer.log

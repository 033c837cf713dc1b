"""G.711 (mu-law, A-law) and resampling, in one place: telephony edges convert once."""

from __future__ import annotations

import math

import numpy as np
import soxr
from pipecat.audio.resamplers.base_audio_resampler import BaseAudioResampler


def _ulaw_encode(samples: np.ndarray) -> np.ndarray:
    # Same arithmetic as CCITT G.711 / audioop.lin2ulaw, on 14-bit magnitudes.
    x = samples.astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), 8159) + (0x84 >> 2)
    seg_ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    seg = np.searchsorted(seg_ends, mag)
    uval = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (seg + 1)) & 0x0F))
    return ((uval ^ mask) & 0xFF).astype(np.uint8)


def _ulaw_decode(codes: np.ndarray) -> np.ndarray:
    u = ~codes.astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    mag = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -mag, mag).astype(np.int16)


def _alaw_encode(samples: np.ndarray) -> np.ndarray:
    x = samples.astype(np.int32) >> 3
    sign = np.where(x >= 0, 0x80, 0)
    mag = np.where(x >= 0, x, -x - 1)
    mag = np.minimum(mag, 0xFFF)
    exponent = np.zeros_like(mag)
    for e in range(1, 8):
        exponent = np.where(mag >= (0x10 << e), e, exponent)
    mantissa = np.where(exponent == 0, mag >> 1, mag >> exponent) & 0x0F
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)


def _alaw_decode(codes: np.ndarray) -> np.ndarray:
    a = codes.astype(np.int32) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    mag = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1))
    return np.where(sign != 0, mag, -mag).astype(np.int16)


# Full tables: encoding is one indexing operation per frame.
_ALL = np.arange(-32768, 32768, dtype=np.int32)
ULAW_ENCODE = _ulaw_encode(_ALL)
ALAW_ENCODE = _alaw_encode(_ALL)
ULAW_DECODE = _ulaw_decode(np.arange(256))
ALAW_DECODE = _alaw_decode(np.arange(256))


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    return ULAW_ENCODE[np.frombuffer(pcm, dtype=np.int16).astype(np.int32) + 32768].tobytes()


def ulaw_to_pcm16(data: bytes) -> bytes:
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].tobytes()


def pcm16_to_alaw(pcm: bytes) -> bytes:
    return ALAW_ENCODE[np.frombuffer(pcm, dtype=np.int16).astype(np.int32) + 32768].tobytes()


def alaw_to_pcm16(data: bytes) -> bytes:
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)].tobytes()


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Whole-buffer resampling of int16 or float32 mono audio."""
    if from_rate == to_rate:
        return samples
    out = soxr.resample(samples, from_rate, to_rate, quality="HQ")
    return out.astype(samples.dtype, copy=False)


class StreamResampler:
    """Chunk-by-chunk int16 resampling for one audio stream, with little delay.

    soxr's stream resampler holds back 52-66 ms of audio in its filter (VHQ, HQ): on a
    phone call, the end of the caller's speech is heard that much later, and the bot's
    first word leaves that much later. This polyphase Kaiser-windowed sinc holds back 3 ms
    (8 <-> 16 kHz; 1.5 ms from 48 or 24 kHz), is flat to 3.3 kHz and rejects images and
    aliases by more than 80 dB. The stream is aligned with its input (the delay is dropped
    at the start and flushed by `last=True`), so chunked output matches whole-buffer
    resampling."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, not {from_rate} -> {to_rate}")
        g = math.gcd(from_rate, to_rate)
        self._up, self._down = to_rate // g, from_rate // g
        self._identity = from_rate == to_rate
        # Group delay in samples at the high rate (from_rate * up): 3 ms at 16 kHz.
        self._delay = 24 * max(self._up, self._down)
        self._phases = _polyphase_filter(self._up, self._down, self._delay)
        taps = self._phases.shape[1]
        self._history = np.zeros(taps, dtype=np.float64)  # the last inputs, oldest first
        self._received = 0        # input samples so far
        self._emitted = 0         # output samples so far

    def process(self, pcm: bytes, *, last: bool = False) -> bytes:
        if self._identity:
            return pcm
        x = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
        self._received += len(x)
        buffer = np.concatenate([self._history, x])
        # Global index of buffer[0]: inputs before the stream began read as silence.
        start = self._received - len(buffer)
        self._history = buffer[len(buffer) - len(self._history):]
        if last:
            # The inputs after the end read as silence: every output the input accounts for.
            buffer = np.concatenate([buffer, np.zeros(self._delay // self._up + len(self._history))])
            available = (self._received * self._up) // self._down
        else:
            # An output sample needs every input up to high-rate index n = j * down + delay.
            available = ((self._received - 1) * self._up - self._delay) // self._down + 1
        count = max(0, available - self._emitted)
        out = self._compute(buffer, start, self._emitted + np.arange(count))
        self._emitted += count
        return np.clip(np.round(out), -32768, 32767).astype(np.int16).tobytes()

    def _compute(self, buffer: np.ndarray, start: int, outputs: np.ndarray) -> np.ndarray:
        if not len(outputs):
            return np.zeros(0)
        n = outputs * self._down + self._delay          # high-rate index in the causal output
        phase, newest = n % self._up, n // self._up      # newest input the filter reaches
        taps = self._phases.shape[1]
        window = newest[:, None] - np.arange(taps)[None, :] - start
        return np.einsum("jk,jk->j", self._phases[phase], buffer[window])


class SerializerResampler(BaseAudioResampler):
    """pipecat's resampler interface (its serializers resample through one) over a
    StreamResampler: the stream restarts when the rates change."""

    def __init__(self) -> None:
        self._stream: StreamResampler | None = None
        self._rates: tuple[int, int] | None = None

    async def resample(self, audio: bytes, in_rate: int, out_rate: int) -> bytes:
        if in_rate == out_rate:
            return audio
        if self._stream is None or self._rates != (in_rate, out_rate):
            self._stream, self._rates = StreamResampler(in_rate, out_rate), (in_rate, out_rate)
        return self._stream.process(audio)

    async def flush(self) -> bytes:
        stream, self._stream = self._stream, None
        return stream.process(b"", last=True) if stream is not None else b""

    async def reset(self) -> None:
        self._stream = None


def _polyphase_filter(up: int, down: int, delay: int) -> np.ndarray:
    """(up, taps) phases of a lowpass for resampling by up/down, centred on `delay`
    high-rate samples: phase p, tap k multiplies input newest - k for output index
    n with n % up == p."""
    length = 2 * delay + 1
    cutoff = 0.45 / max(up, down)            # of the high rate: 3.6 kHz for 8 <-> 16 kHz
    t = np.arange(length) - delay
    h = up * 2 * cutoff * np.sinc(2 * cutoff * t) * np.kaiser(length, 7.0)
    taps = -(-length // up)
    padded = np.zeros(taps * up)
    padded[:length] = h
    return padded.reshape(taps, up).T.copy()     # phases[p, k] = h[p + k * up]

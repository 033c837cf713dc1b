"""G.711 (mu-law, A-law) and resampling, in one place: telephony edges convert once."""

from __future__ import annotations

import numpy as np
import soxr


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
    """Chunk-by-chunk int16 resampling for one audio stream (keeps filter state)."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self._identity = from_rate == to_rate
        self._stream = None if self._identity else soxr.ResampleStream(
            from_rate, to_rate, 1, dtype="int16"
        )

    def process(self, pcm: bytes, *, last: bool = False) -> bytes:
        if self._stream is None:
            return pcm
        return self._stream.resample_chunk(np.frombuffer(pcm, dtype=np.int16), last=last).tobytes()

"""voice/codecs.py: G.711 tables against the reference implementation, resampling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from voice import codecs

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # deprecated (removed in 3.13) but the reference G.711 on 3.11

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))

G711 = [
    pytest.param(codecs.pcm16_to_ulaw, codecs.ulaw_to_pcm16, audioop.lin2ulaw, audioop.ulaw2lin, id="mu-law"),
    pytest.param(codecs.pcm16_to_alaw, codecs.alaw_to_pcm16, audioop.lin2alaw, audioop.alaw2lin, id="a-law"),
]


@pytest.mark.parametrize(("encode", "decode", "ref_encode", "ref_decode"), G711)
def test_encoder_matches_audioop_on_every_int16(encode, decode, ref_encode, ref_decode):
    pcm = ALL_INT16.tobytes()
    ours = np.frombuffer(encode(pcm), dtype=np.uint8)
    theirs = np.frombuffer(ref_encode(pcm, 2), dtype=np.uint8)
    assert len(ours) == 65536
    mismatches = np.nonzero(ours != theirs)[0]
    assert mismatches.size == 0, f"first differing input: {int(ALL_INT16[mismatches[0]])}"


@pytest.mark.parametrize(("encode", "decode", "ref_encode", "ref_decode"), G711)
def test_decoder_matches_audioop_on_every_code(encode, decode, ref_encode, ref_decode):
    assert decode(ALL_CODES) == ref_decode(ALL_CODES, 2)


@pytest.mark.parametrize(
    ("encode", "decode", "max_relative", "max_small"),
    [
        # mu-law: 4 mantissa bits per segment -> at most ~1/16 of the value (worst at
        # segment edges) and a few LSBs near zero; A-law: 1/32 and 8 LSBs near zero.
        (codecs.pcm16_to_ulaw, codecs.ulaw_to_pcm16, 0.06, 8),
        (codecs.pcm16_to_alaw, codecs.alaw_to_pcm16, 0.035, 8),
    ],
    ids=["mu-law", "a-law"],
)
def test_round_trip_error_is_bounded(encode, decode, max_relative, max_small):
    x = ALL_INT16.astype(np.int64)
    codes = encode(ALL_INT16.tobytes())
    y = np.frombuffer(decode(codes), dtype=np.int16).astype(np.int64)
    err = np.abs(y - x)
    # Clipping at full scale aside (mu-law tops out at 32124), the error is relative.
    big = np.abs(x) > 256
    assert (err[big] / np.abs(x[big])).max() <= max_relative
    assert err[np.abs(x) < 32].max() <= max_small
    assert err.max() <= 1024
    # Decoding then re-encoding is lossless: every code is a fixed point.
    assert encode(decode(codes)) == codes
    # Sign is preserved outside the dead zone.
    assert np.all(np.sign(y[np.abs(x) > 16]) == np.sign(x[np.abs(x) > 16]))


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(codecs.pcm16_to_ulaw, codecs.ulaw_to_pcm16), (codecs.pcm16_to_alaw, codecs.alaw_to_pcm16)],
    ids=["mu-law", "a-law"],
)
def test_round_trip_snr_on_a_tone(encode, decode):
    t = np.arange(8000) / 8000
    tone = (10000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    back = np.frombuffer(decode(encode(tone.tobytes())), dtype=np.int16).astype(np.float64)
    noise = back - tone
    snr_db = 10 * np.log10(np.sum(tone.astype(np.float64) ** 2) / np.sum(noise**2))
    assert snr_db > 30  # G.711 gives about 38 dB on a mid-level signal


def test_empty_input():
    assert codecs.pcm16_to_ulaw(b"") == b""
    assert codecs.ulaw_to_pcm16(b"") == b""
    assert codecs.pcm16_to_alaw(b"") == b""
    assert codecs.alaw_to_pcm16(b"") == b""


def _chirp(rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    # 200 Hz -> 3 kHz: inside the telephone band, so 8k->16k->8k keeps it all.
    return (8000 * np.sin(2 * np.pi * (200 * t + 700 * t**2))).astype(np.int16)


def _stream(resampler: codecs.StreamResampler, pcm: bytes, chunk_bytes: int) -> bytes:
    out = []
    for start in range(0, len(pcm), chunk_bytes):
        last = start + chunk_bytes >= len(pcm)
        out.append(resampler.process(pcm[start : start + chunk_bytes], last=last))
    return b"".join(out)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n].astype(np.float64), b[:n].astype(np.float64))[0, 1])


@pytest.mark.parametrize("chunk_ms", [20, 37])
def test_stream_resampler_chunked_matches_whole_buffer(chunk_ms):
    x = _chirp(8000, 2.0)
    up = _stream(codecs.StreamResampler(8000, 16000), x.tobytes(), 8000 * chunk_ms // 1000 * 2)
    up16 = np.frombuffer(up, dtype=np.int16)
    whole_up = codecs.resample(x, 8000, 16000)
    assert whole_up.dtype == np.int16
    assert abs(len(up16) - 2 * len(x)) <= 2
    assert abs(len(up16) - len(whole_up)) <= 2
    assert _corr(up16, whole_up) > 0.999

    down = _stream(codecs.StreamResampler(16000, 8000), up, 16000 * chunk_ms // 1000 * 2)
    back = np.frombuffer(down, dtype=np.int16)
    whole_back = codecs.resample(whole_up, 16000, 8000)
    assert abs(len(back) - len(x)) <= 2
    assert abs(len(back) - len(whole_back)) <= 2
    assert _corr(back, whole_back) > 0.999
    # In-band content survives 8k -> 16k -> 8k, and the stream adds no delay.
    assert _corr(back, x) > 0.99


def test_resampler_identity_and_float():
    x = _chirp(16000, 0.1)
    r = codecs.StreamResampler(16000, 16000)
    assert r.process(x.tobytes()) == x.tobytes()
    assert codecs.resample(x, 16000, 16000) is x
    f = x.astype(np.float32) / 32768
    out = codecs.resample(f, 16000, 8000)
    assert out.dtype == np.float32 and abs(len(out) - len(f) // 2) <= 1


@pytest.mark.parametrize("rates", [(8000, 16000), (16000, 8000), (48000, 16000), (24000, 16000)])
def test_stream_resampler_holds_back_a_few_milliseconds(rates):
    """Every 20 ms chunk comes out at once but for the filter's delay: soxr's stream held
    back 52-66 ms, heard on a call as that much later an end of speech and a first word."""
    from_rate, to_rate = rates
    r = codecs.StreamResampler(from_rate, to_rate)
    x = _chirp(from_rate, 1.0)
    chunk = from_rate // 50
    emitted = 0
    for start in range(0, len(x), chunk):
        emitted += len(r.process(x[start:start + chunk].tobytes())) // 2
        expected = (start + chunk) * to_rate // from_rate
        assert 0 <= expected - emitted <= 0.005 * to_rate


def _level_db(y: np.ndarray, rate: int, freq: float) -> float:
    y = y[len(y) // 10: -len(y) // 10].astype(np.float64)
    t = np.arange(len(y)) / rate
    return float(20 * np.log10(max(2 * abs(np.dot(y, np.exp(-2j * np.pi * freq * t))) / len(y), 1e-9) / 10000))


@pytest.mark.parametrize("freq", [300, 1000, 3000, 3300])
def test_stream_resampler_keeps_the_telephone_band_and_rejects_images(freq):
    t = np.arange(8000) / 8000
    tone = (10000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    up = np.frombuffer(codecs.StreamResampler(8000, 16000).process(tone.tobytes(), last=True), dtype=np.int16)
    assert abs(_level_db(up, 16000, freq)) < 0.2
    assert _level_db(up, 16000, 8000 - freq) < -60     # the image above 4 kHz
    t16 = np.arange(16000) / 16000
    high = (10000 * np.sin(2 * np.pi * (8000 - freq) * t16)).astype(np.int16)
    down = np.frombuffer(codecs.StreamResampler(16000, 8000).process(high.tobytes(), last=True), dtype=np.int16)
    assert _level_db(down, 8000, freq) < -60            # 8 kHz - f would alias onto f


def test_serializer_resampler_restarts_on_new_rates():
    import asyncio

    r = codecs.SerializerResampler()
    x = _chirp(8000, 0.2).tobytes()

    async def run() -> tuple[bytes, bytes, bytes, bytes]:
        up = await r.resample(x, 8000, 16000)
        same = await r.resample(x, 16000, 16000)
        down = await r.resample(x, 16000, 8000)
        return up, same, down, await r.flush()

    up, same, down, tail = asyncio.run(run())
    assert same == x
    assert abs(len(up) - 2 * len(x)) <= 0.005 * 32000
    assert abs(len(down) + len(tail) - len(x) // 2) <= 2

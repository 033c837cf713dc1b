"""A call's stereo recording (caller left, bot right), written to disk as the call goes.

The WAV's sizes are rewritten after every append, so the file on disk is a valid WAV of
everything written so far even if the server is killed mid-call; audio is held in memory
for a second or two at most. Sample 0 is the call record's t0 (`CallLog`), so a turn's
`start_ms / 1000` is its position in the file.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import struct
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from bot.call_log import CallLog
from voice.speech_renderer import PIPELINE_RATE

log = logging.getLogger("callbot.recording")

HEADER_BYTES = 44
MAX_DATA_BYTES = 0xFFFFFFFF - 36  # the RIFF size field is 32 bits


class IncrementalWav:
    """A 16-bit PCM WAV whose header always matches the data written so far: each append
    writes the frames first and the sizes after, so a process killed between the two
    leaves a shorter, still valid file. Unbuffered (positioned writes straight to the OS):
    a failed write leaves nothing pending behind it."""

    def __init__(self, path: Path, *, sample_rate: int = PIPELINE_RATE, channels: int = 2) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self.data_bytes = 0
        self._fd: int | None = None

    @property
    def frame_bytes(self) -> int:
        return 2 * self.channels

    @property
    def duration_s(self) -> float:
        return self.data_bytes / self.frame_bytes / self.sample_rate

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        byte_rate = self.sample_rate * self.frame_bytes
        try:
            self._write_at(0, b"RIFF" + struct.pack("<I", 36) + b"WAVE"
                           + b"fmt " + struct.pack("<IHHIIHH", 16, 1, self.channels, self.sample_rate,
                                                   byte_rate, self.frame_bytes, 16)
                           + b"data" + struct.pack("<I", 0))
        except OSError:
            self.close()
            raise

    def append(self, frames: bytes) -> None:
        """Interleaved 16-bit little-endian frames."""
        if len(frames) % self.frame_bytes:
            raise ValueError(f"{len(frames)} bytes is not a whole number of {self.channels}-channel frames")
        if self.data_bytes + len(frames) > MAX_DATA_BYTES:
            raise OSError(errno.EFBIG, "a WAV file holds at most 4 GiB", str(self.path))
        # Once written, the data is the OS's: a killed process loses none of it. No fsync,
        # which only a power cut would need, at a disk round trip a second per call.
        self._write_at(HEADER_BYTES + self.data_bytes, frames)
        self.data_bytes += len(frames)
        self._write_at(4, struct.pack("<I", 36 + self.data_bytes))
        self._write_at(40, struct.pack("<I", self.data_bytes))

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _write_at(self, offset: int, data: bytes) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path} is not open")
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written


@dataclass
class _Gap:
    at: int       # sample where the caller's audio stopped arriving
    lag: int      # least delay of the audio since, in samples: the silence, if it lasts
    since: int    # when it was seen


class StereoTimeline:
    """Where each piece of audio goes in the recording, both channels on the call's clock
    (seconds since the call record's t0), until `take` hands it over for the file.

    The caller's audio is a continuous real-time stream (a frame every 20 ms, silence
    included), so it is laid end to end; a frame that comes late is most often the first
    of a burst after a stall of the event loop, which catches up, and only a delay that
    lasts (`settle_s`) is taken as a real gap in the stream and filled with silence.
    The bot's audio comes only when it speaks, paced in real time by the output: a frame
    that comes after more than `gap_s` without any starts a new run at its own time.
    Audio is kept `hold_s` behind the clock before it may be taken, so that a caller's gap
    can still be filled where it began; audio that came more than `ahead_s` before its time
    (a stream sent faster than it is spoken) is taken anyway: what is held stays bounded.
    """

    CALLER, BOT = 0, 1

    def __init__(self, sample_rate: int = PIPELINE_RATE, *, gap_s: float = 0.2, settle_s: float = 0.25,
                 hold_s: float = 0.5, ahead_s: float = 10.0) -> None:
        self.sample_rate = sample_rate
        self._gap = int(gap_s * sample_rate)
        self._settle = int(settle_s * sample_rate)
        self._hold = int(hold_s * sample_rate)
        self._ahead = int(ahead_s * sample_rate)
        self.written = 0                    # samples per channel handed over so far
        self._cursor = [0, 0]               # where each channel's next sample goes
        self._pending = [bytearray(), bytearray()]  # each channel from `written` to its cursor
        self._caller_gap: _Gap | None = None

    @property
    def pending_s(self) -> float:
        return max(len(p) for p in self._pending) / 2 / self.sample_rate

    def _sample(self, at_s: float) -> int:
        return round(at_s * self.sample_rate)

    def caller(self, pcm: bytes, at_s: float) -> None:
        """`pcm`: mono 16-bit at the timeline's rate, received at `at_s` (its last sample)."""
        now = self._sample(at_s)
        self._settle_gap(now)
        cursor = max(self._cursor[self.CALLER], self.written)
        lag = now - len(pcm) // 2 - cursor
        if self._caller_gap is not None:
            self._caller_gap.lag = min(self._caller_gap.lag, lag)
        elif lag > self._gap:
            self._caller_gap = _Gap(at=cursor, lag=lag, since=now)
        self._put(self.CALLER, cursor, pcm)

    def bot(self, pcm: bytes, at_s: float) -> None:
        """`pcm`: mono 16-bit at the timeline's rate, played from `at_s`."""
        now = self._sample(at_s)
        self._settle_gap(now)
        cursor = max(self._cursor[self.BOT], self.written)
        if now - cursor > self._gap:
            cursor = now
        self._put(self.BOT, cursor, pcm)

    def take(self, at_s: float | None = None) -> bytes:
        """Interleaved stereo frames from `written` up to `hold_s` before `at_s` (held back
        where a caller's gap is still unsettled), or everything when `at_s` is None: the end."""
        if at_s is None:
            self._settle_gap(None)
            upto = max(self._cursor[self.CALLER], self._cursor[self.BOT])
        else:
            now = self._sample(at_s)
            self._settle_gap(now)
            upto = now - self._hold
            if self._caller_gap is not None:
                upto = min(upto, self._caller_gap.at)
            if max(self._cursor) - self._ahead > upto:
                self._settle_gap(None)
                upto = max(self._cursor) - self._ahead
        count = upto - self.written
        if count <= 0:
            return b""
        stereo = np.zeros((count, 2), dtype="<i2")
        for channel, pending in enumerate(self._pending):
            n = min(len(pending) // 2, count)
            stereo[:n, channel] = np.frombuffer(bytes(pending[:2 * n]), dtype="<i2")
            del pending[:2 * n]
        self.written = upto
        return stereo.tobytes()

    def _put(self, channel: int, at: int, pcm: bytes) -> None:
        pending = self._pending[channel]
        missing = at - self.written - len(pending) // 2
        if missing > 0:
            pending.extend(bytes(2 * missing))
        pending.extend(pcm)
        self._cursor[channel] = at + len(pcm) // 2

    def _settle_gap(self, now: int | None) -> None:
        gap = self._caller_gap
        if gap is None or (now is not None and now - gap.since < self._settle):
            return
        self._caller_gap = None
        if gap.lag > self._gap:
            offset = 2 * (gap.at - self.written)
            self._pending[self.CALLER][offset:offset] = bytes(2 * gap.lag)
            self._cursor[self.CALLER] += gap.lag


class CallRecorder(FrameProcessor):
    """Last in the pipeline: the caller's audio as it came in, the bot's (and an agent's)
    as it went out, appended to `path` every `flush_s`. The file is opened, and the call
    record points at it, when the pipeline starts. A disk error is logged once and the
    call goes on unrecorded from there (what was written stays valid)."""

    def __init__(self, *, path: Path, call: CallLog, flush_s: float = 1.0, max_queued_s: float = 30.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.recording: str | None = None   # the path, once the file exists
        self._call = call
        self._flush_s = flush_s
        self._max_queued_bytes = int(max_queued_s * PIPELINE_RATE) * 4
        self._wav = IncrementalWav(path, sample_rate=PIPELINE_RATE, channels=2)
        self._timeline = StereoTimeline(PIPELINE_RATE)
        self._resamplers = {StereoTimeline.CALLER: create_stream_resampler(),
                            StereoTimeline.BOT: create_stream_resampler()}
        self._active = False
        self._last_flush = 0.0
        # Chunks go to the file in the order they were taken, by one writer at a time: the
        # caller's audio (system frames) and the bot's are processed on different tasks.
        self._queued: deque[bytes] = deque()
        self._queued_bytes = 0
        self._writer: asyncio.Task | None = None

    def _now_s(self) -> float:
        return self._call.ms_at(time.monotonic()) / 1000

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self._open()
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._finish()
        elif self._active and direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, InputAudioRawFrame):
                self._timeline.caller(await self._mono(frame, StereoTimeline.CALLER), self._now_s())
                self._flush_due()
            elif isinstance(frame, OutputAudioRawFrame):
                self._timeline.bot(await self._mono(frame, StereoTimeline.BOT), self._now_s())
                self._flush_due()
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        await self._finish()
        await super().cleanup()

    async def _open(self) -> None:
        if self._active or self.recording is not None:
            return
        try:
            await asyncio.to_thread(self._wav.open)
        except OSError as e:
            log.error("call %s: not recorded, %s cannot be written: %s", self._call.call_id, self.path, e)
            return
        self._active = True
        self._last_flush = time.monotonic()
        self.recording = str(self.path)
        await self._call.set_recording(self.recording)

    async def _mono(self, frame: InputAudioRawFrame | OutputAudioRawFrame, channel: int) -> bytes:
        audio = frame.audio
        if frame.num_channels > 1:
            samples = np.frombuffer(audio, dtype="<i2").reshape(-1, frame.num_channels)
            audio = samples.mean(axis=1).astype("<i2").tobytes()
        if frame.sample_rate != PIPELINE_RATE:
            audio = await self._resamplers[channel].resample(audio, frame.sample_rate, PIPELINE_RATE)
        return audio

    def _flush_due(self) -> None:
        now = time.monotonic()
        if now - self._last_flush >= self._flush_s:
            self._last_flush = now
            self._queue(self._timeline.take(self._now_s()))

    def _queue(self, chunk: bytes) -> None:
        if not chunk or not self._active:
            return
        self._queued.append(chunk)
        self._queued_bytes += len(chunk)
        if self._queued_bytes > self._max_queued_bytes:
            self._fail(OSError(errno.EIO, f"the disk fell more than {self._max_queued_bytes // 64000} s "
                                          "of audio behind"))
        elif self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name=f"recording-{self._call.call_id}")

    async def _drain(self) -> None:
        while self._queued and self._active:
            chunk = self._queued.popleft()
            self._queued_bytes -= len(chunk)
            try:
                await asyncio.to_thread(self._wav.append, chunk)
            except (OSError, ValueError) as e:
                self._fail(e)

    async def _finish(self) -> None:
        """The rest of the audio written, the file closed: on EndFrame or CancelFrame, before
        the frame goes on, so that the file is whole once the pipeline has stopped."""
        if self._active:
            self._queue(self._timeline.take(None))
        if self._writer is not None:
            # A write runs in a thread that cannot be interrupted: it is waited for (the file
            # is never closed under it), within reason: a hung disk must not hold the call's end.
            done, _ = await asyncio.wait({self._writer}, timeout=5.0)
            if not done:
                self._fail(OSError(errno.ETIMEDOUT, "writes still pending 5 s after the end of the call"))
                self._writer.add_done_callback(lambda _task: self._wav.close())
                return
            self._writer = None
        if self._active:
            self._active = False
            log.info("call %s: recorded %.1f s", self._call.call_id, self._wav.duration_s)
        try:
            await asyncio.to_thread(self._wav.close)
        except OSError as e:
            log.error("call %s: recording %s not closed cleanly: %s", self._call.call_id, self.path, e)

    def _fail(self, error: BaseException) -> None:
        """Logged once; the file stays as it is, valid up to its last write."""
        if not self._active:
            return
        self._active = False
        log.error("call %s: recording stopped after %.1f s, the call goes on: %s", self._call.call_id,
                  self._wav.duration_s, error)
        self._queued.clear()
        self._queued_bytes = 0
        self._timeline = StereoTimeline(PIPELINE_RATE)  # drops what was held

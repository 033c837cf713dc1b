"""Call recordings written to disk as the call goes: a valid stereo WAV at every moment
(caller left, bot right), on the call record's clock, that survives the server being
killed mid-call."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import shutil
import signal
import sqlite3
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pipecat.frames.frames import EndFrame, InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.workers.runner import WorkerRunner

from bot.call_log import CallLog
from bot.caller_sim import CallerVoice, bot_server, media_stream_call
from bot.recording import CallRecorder, IncrementalWav, StereoTimeline
from bot.store import Store
from tests.provisioned import provisioned_var

RATE = 16000
FRAME = 320  # 20 ms at 16 kHz
QUESTION = "Quel est le plafond de chiffre d'affaires ?"


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, np.ndarray]:
    """A caller's question (the simulated caller's voice) and a bot's sentence (the bot's
    TTS), 16 kHz int16, each cut to whole 20 ms frames."""
    from bot.config import load_settings
    from bot.services import make_speech_engine, speech_style
    from voice.speech_renderer import SpeechRenderer

    settings = load_settings()
    renderer = SpeechRenderer(make_speech_engine(settings), settings.audio_cache_dir)
    question = CallerVoice().say(QUESTION)
    answer = np.frombuffer(renderer.render("Merci de votre appel. Au revoir, et bonne journée.",
                                           speech_style(settings)), dtype=np.int16)
    return tuple(a[: len(a) // FRAME * FRAME].astype(np.int16) for a in (question, answer))


def read_stereo(path: Path) -> tuple[np.ndarray, np.ndarray, Any]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, params.nchannels)
    return data[:, 0], data[:, 1], params


def frames_of(audio: np.ndarray) -> list[bytes]:
    return [audio[i:i + FRAME].tobytes() for i in range(0, len(audio), FRAME)]


# ---------------------------------------------------------------- the file


def test_the_wav_on_disk_is_whole_after_every_append(tmp_path, speech):
    caller, bot = speech
    n = min(len(caller), len(bot))
    stereo = np.column_stack((caller[:n], bot[:n])).astype("<i2")
    wav = IncrementalWav(tmp_path / "recordings" / "call.wav")
    wav.open()
    appended = 0
    for i, start in enumerate(range(0, n, RATE)):  # a second at a time, as in a call
        chunk = stereo[start:start + RATE]
        wav.append(chunk.tobytes())
        appended += len(chunk)
        # what a reader (or the next server, after a crash) finds while the call goes on
        snapshot = shutil.copy(wav.path, tmp_path / f"snapshot-{i}.wav")
        left, right, params = read_stereo(snapshot)
        assert (params.nchannels, params.sampwidth, params.framerate) == (2, 2, RATE)
        assert params.nframes == appended == len(left)
        assert np.array_equal(left, caller[:appended]) and np.array_equal(right, bot[:appended])
    wav.close()
    left, right, params = read_stereo(wav.path)
    assert params.nframes == n and wav.duration_s == pytest.approx(n / RATE)
    assert np.array_equal(left, caller[:n]) and np.array_equal(right, bot[:n])
    assert wav.path.stat().st_size == 44 + 4 * n


def test_a_wav_with_nothing_appended_is_empty_and_valid(tmp_path):
    wav = IncrementalWav(tmp_path / "empty.wav")
    wav.open()
    _, _, params = read_stereo(wav.path)
    assert (params.nchannels, params.framerate, params.nframes) == (2, RATE, 0)
    with pytest.raises(ValueError):
        wav.append(b"\x01\x02")  # half a stereo frame
    wav.close()


# ---------------------------------------------------------------- the time line


def play(timeline: StereoTimeline, events: list[tuple[float, str, bytes]], every_s: float = 1.0,
         ahead_s: float = 0.0) -> np.ndarray:
    """Feeds (arrival time, 'caller' | 'bot', pcm) in time order, taking audio every
    `every_s` as the recorder does; returns what was taken, (samples, 2). `ahead_s`: the
    most audio that came ahead of its time (held until then)."""
    taken, next_take, most_held = [], every_s, 0.0
    for at, who, pcm in sorted(events, key=lambda e: e[0]):
        getattr(timeline, who)(pcm, at)
        if at >= next_take:
            taken.append(timeline.take(at))
            next_take += every_s
            most_held = max(most_held, timeline.pending_s)
    taken.append(timeline.take(None))
    assert most_held < 2.0 + ahead_s  # never more than a second or two in memory
    return np.frombuffer(b"".join(taken), dtype="<i2").reshape(-1, 2)


def test_a_stalled_caller_stream_catches_up_without_drifting(speech):
    """The event loop stalls 0.6 s: the caller's frames come late, then all at once. They
    are laid end to end where they belong, not pushed later by the stall."""
    caller, _ = speech
    start = 0.5  # the pipeline starts half a second after the call record
    events = []
    for k, pcm in enumerate(frames_of(caller)):
        due = start + (k + 1) * 0.02
        events.append((max(due, 1.6) if 1.0 < due <= 1.6 else due, "caller", pcm))
    out = play(StereoTimeline(), events)
    offset = int(start * RATE)
    assert len(out) == offset + len(caller)
    assert not out[:offset].any() and np.array_equal(out[offset:, 0], caller)
    assert not out[:, 1].any()


def test_a_real_gap_in_the_caller_stream_is_kept_as_silence(speech):
    first, second = speech
    events = [((k + 1) * 0.02, "caller", pcm) for k, pcm in enumerate(frames_of(first))]
    resume = len(first) / RATE + 1.0  # nothing came for a second
    events += [(resume + (k + 1) * 0.02, "caller", pcm) for k, pcm in enumerate(frames_of(second))]
    out = play(StereoTimeline(), events)
    at = int(resume * RATE)
    assert np.array_equal(out[:len(first), 0], first)
    assert not out[len(first):at, 0].any()
    assert np.array_equal(out[at:at + len(second), 0], second) and len(out) == at + len(second)


def test_the_bot_speaks_where_its_audio_went_out(speech):
    """The caller's stream goes on throughout; the bot's first reply goes out in real
    time from 0.5 s, its second all at once at 3 s: each starts where it went out."""
    bot = speech[1]
    silence = np.zeros(FRAME, dtype=np.int16).tobytes()
    end = 3.0 + len(bot) / RATE + 0.5
    events = [((k + 1) * 0.02, "caller", silence) for k in range(int(end / 0.02))]
    reply = bot[: RATE]
    events += [(0.5 + k * 0.02, "bot", pcm) for k, pcm in enumerate(frames_of(reply))]
    events += [(3.0, "bot", pcm) for pcm in frames_of(bot)]
    out = play(StereoTimeline(), events, ahead_s=len(bot) / RATE)
    first, second = int(0.5 * RATE), int(3.0 * RATE)
    assert not out[:first, 1].any()
    assert np.array_equal(out[first:first + len(reply), 1], reply)
    assert not out[first + len(reply):second, 1].any()
    assert np.array_equal(out[second:second + len(bot), 1], bot)
    assert not out[:, 0].any()


def test_a_stream_sent_faster_than_spoken_is_kept_whole_in_bounded_memory(speech):
    """A client sends a minute of audio all at once: it is recorded in order, end to end,
    without a minute of it waiting in memory."""
    caller = np.tile(speech[0], int(60 * RATE / len(speech[0])) + 1)[: 60 * RATE]
    events = [(1.0 + k * 0.001, "caller", pcm) for k, pcm in enumerate(frames_of(caller))]
    out = play(StereoTimeline(ahead_s=10.0), events, every_s=0.2, ahead_s=10.0)
    start = np.flatnonzero(out[:, 0])[0]
    assert np.array_equal(out[start:start + len(np.trim_zeros(caller, "f")), 0], np.trim_zeros(caller, "f"))


# ---------------------------------------------------------------- the recorder in a pipeline


async def run_recorder(recorder: CallRecorder, call: CallLog, caller: np.ndarray, bot: np.ndarray) -> None:
    """A real pipeline with the recorder: the caller's audio in real time from 0.3 s after
    the call record, the bot's reply after it, then the end of the call."""
    worker = PipelineWorker(Pipeline([recorder]), params=PipelineParams(
        audio_in_sample_rate=RATE, audio_out_sample_rate=RATE), enable_rtvi=False)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def on_started(_worker, _frame) -> None:
        started.set()

    async def speak() -> None:
        await started.wait()
        loop = asyncio.get_running_loop()
        t0 = loop.time() - call.now_ms() / 1000  # the call record's t0 on this loop's clock
        for k, pcm in enumerate(frames_of(caller)):  # in real time, as a phone line brings it
            await asyncio.sleep(max(0.0, t0 + 0.3 + (k + 1) * 0.02 - loop.time()))
            await worker.queue_frame(InputAudioRawFrame(audio=pcm, sample_rate=RATE, num_channels=1))
        bot_from = loop.time()
        for k, pcm in enumerate(frames_of(bot)):
            await worker.queue_frame(OutputAudioRawFrame(audio=pcm, sample_rate=RATE, num_channels=1))
            await asyncio.sleep(max(0.0, bot_from + (k + 1) * 0.02 - loop.time()))
        await worker.queue_frame(EndFrame())

    await asyncio.gather(runner.run(), speak())


async def test_the_recorder_writes_the_call_as_it_goes(tmp_path, speech):
    caller, bot = speech[0][: 2 * RATE], speech[1][: RATE]
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'calls.sqlite3'}")
    await store.create_schema()
    try:
        call = CallLog(store, await store.open_call("sip"))
        path = tmp_path / "recordings" / f"{call.call_id}.wav"
        recorder = CallRecorder(path=path, call=call)
        sizes: list[int] = []
        pointed: list[str | None] = []

        async def watch() -> None:
            while not recorder.recording:
                await asyncio.sleep(0.01)
            pointed.append((await store.get_call(call.call_id))["recording"])
            while True:
                sizes.append(path.stat().st_size)
                await asyncio.sleep(0.1)

        watcher = asyncio.create_task(watch())
        await run_recorder(recorder, call, caller, bot)
        watcher.cancel()
        # the record points at the file from the start, and the file grows during the call
        assert recorder.recording == str(path) and pointed == [str(path)]
        assert len({s for s in sizes if s > 44}) >= 2
        left, right, params = read_stereo(path)
        assert (params.nchannels, params.framerate) == (2, RATE)
        # sample 0 is the call record's t0: the caller's first sample lies 0.3 s in
        onset = int(np.argmax(np.abs(left) > 0))
        assert abs(onset - (0.3 * RATE + np.argmax(np.abs(caller) > 0))) < 0.1 * RATE
        assert np.array_equal(left[onset:onset + len(np.trim_zeros(caller, "f"))], np.trim_zeros(caller, "f"))
        bot_at = int(np.argmax(np.abs(right) > 0))
        assert bot_at > onset + len(np.trim_zeros(caller, "f")) - 0.1 * RATE
        assert np.array_equal(right[bot_at:bot_at + len(np.trim_zeros(bot, "fb"))], np.trim_zeros(bot, "fb"))
    finally:
        await store.close()


async def test_a_disk_error_leaves_the_call_unrecorded_not_broken(tmp_path, speech, caplog):
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'calls.sqlite3'}")
    await store.create_schema()
    try:
        call = CallLog(store, await store.open_call("sip"))
        recorder = CallRecorder(path=Path("/dev/full"), call=call)  # every write: no space left
        await asyncio.wait_for(run_recorder(recorder, call, speech[0][: RATE], speech[1][: RATE // 2]), 20)
        assert recorder.recording is None
        assert (await store.get_call(call.call_id))["recording"] is None
        errors = [r for r in caplog.records if r.name == "callbot.recording" and r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "not recorded" in errors[0].getMessage()
    finally:
        await store.close()


async def test_a_disk_that_fails_mid_call_stops_the_recording_not_the_call(tmp_path, speech, caplog):
    """The file may not grow past 100 kB (RLIMIT_FSIZE: the kernel refuses the write, as on
    a full disk): the recording stops at its second write with one error logged, the file
    keeps what was written before, and the call goes on to its end."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'calls.sqlite3'}")
    await store.create_schema()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        call = CallLog(store, await store.open_call("sip"))
        path = tmp_path / "recordings" / f"{call.call_id}.wav"
        recorder = CallRecorder(path=path, call=call)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))  # Python ignores SIGXFSZ: EFBIG
        try:
            await asyncio.wait_for(run_recorder(recorder, call, speech[0], speech[1][: RATE]), 20)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        errors = [r for r in caplog.records if r.name == "callbot.recording" and r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "recording stopped" in errors[0].getMessage(), [r.getMessage() for r in errors]
        _, _, params = read_stereo(path)
        assert 0 < 44 + 4 * params.nframes <= 100_000
        assert (await store.get_call(call.call_id))["recording"] == str(path)
    finally:
        await store.close()


# ---------------------------------------------------------------- a real call, a killed server


def rms_frames(channel: np.ndarray, n: int = FRAME) -> np.ndarray:
    frames = channel[: len(channel) // n * n].astype(np.float64).reshape(-1, n)
    return np.sqrt((frames ** 2).mean(axis=1))


@pytest.mark.slow
def test_a_server_killed_mid_call_leaves_a_readable_aligned_recording(tmp_path, speech):
    """A caller on the media stream asks their question over the greeting (4 s in: the
    call stays short); once their turn and the bot's reply are in the store, the server is
    killed (SIGKILL) mid-reply. Its recording is a whole WAV, and each side's speech lies
    where the call record's turns put it."""
    question = speech[0]
    db = tmp_path / "calls.sqlite3"
    var = provisioned_var(tmp_path / "var")
    with bot_server(tmp_path, CALLBOT_VAR_DIR=str(var)) as server:
        ws_url = server.url.replace("http://", "ws://") + "/ws/media"
        caller_failed: list[BaseException] = []

        def caller() -> None:
            # It listens long after the reply: the server is killed before it hangs up, and
            # the connection dies with it, as it should.
            try:
                asyncio.run(media_stream_call(ws_url, question, "MZrec", greeting_timeout_s=4.0,
                                              listen_after_s=30.0))
            except Exception as e:  # noqa: BLE001 - reported if it happens before the kill
                caller_failed.append(e)

        thread = threading.Thread(target=caller, daemon=True)
        thread.start()

        def turns() -> tuple[str | None, str | None, list[tuple]]:
            if not db.exists():
                return None, None, []
            with sqlite3.connect(db) as conn:
                row = conn.execute("select id, recording from calls order by started_at desc limit 1").fetchone()
                if row is None:
                    return None, None, []
                rows = conn.execute('select "index", speaker, start_ms, end_ms, text from turns '
                                    'where call_id = ? order by "index"', (row[0],)).fetchall()
                return row[0], row[1], rows

        deadline = time.monotonic() + 90
        while True:
            call_id, recording, rows = turns()
            said = [r for r in rows if r[1] == "caller"]
            if said and any(r[1] == "bot" and r[0] > said[0][0] for r in rows):
                break
            assert time.monotonic() < deadline and thread.is_alive(), \
                f"no caller turn and reply: {rows}\ncaller: {caller_failed!r}\n" \
                f"{server.log_path.read_text()[-3000:]}"
            time.sleep(0.2)
        time.sleep(2.5)  # some of the reply is said (and on disk, a second or two behind)
        assert server.process.poll() is None, "the call must still be going on"
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        thread.join(15)
        _, recording, rows = turns()

    assert recording == str(var / "recordings" / f"{call_id}.wav")
    left, right, params = read_stereo(Path(recording))
    assert (params.nchannels, params.sampwidth, params.framerate) == (2, 2, RATE)
    greeting = rows[0]
    said = next(r for r in rows if r[1] == "caller")
    reply = next(r for r in rows if r[1] == "bot" and r[0] > said[0])
    assert greeting[1] == "bot" and greeting[2] is not None
    duration = len(left) / RATE
    assert duration >= reply[2] / 1000 + 0.5, (duration, rows)

    # the caller's speech lies where their turn says it does
    loud = np.nonzero(rms_frames(left) > 300)[0]
    assert len(loud), "no caller speech in the left channel"
    heard_from, heard_to = loud[0] * FRAME / RATE, (loud[-1] + 1) * FRAME / RATE
    start_s, end_s = said[2] / 1000, said[3] / 1000
    assert abs(heard_from - start_s) < 0.3 and abs(heard_to - end_s) < 0.3, \
        (heard_from, heard_to, start_s, end_s)
    # the bot's greeting starts where its turn says it does; after the caller's turn, the
    # bot's first sound is its reply, where that turn says it starts
    bot_loud = rms_frames(right) > 300
    greeting_loud = np.nonzero(bot_loud[: int(start_s * RATE / FRAME)])[0]
    assert len(greeting_loud) and abs(greeting_loud[0] * FRAME / RATE - greeting[2] / 1000) < 0.3
    reply_loud = np.nonzero(bot_loud[int(end_s * RATE / FRAME):])[0]
    assert len(reply_loud)
    assert abs(end_s + reply_loud[0] * FRAME / RATE - reply[2] / 1000) < 0.3

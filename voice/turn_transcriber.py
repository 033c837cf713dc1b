"""Caller audio in, one transcript per caller turn out: the turn ends when the caller has
finished (voice/end_of_turn.py), not at their first pause, and a caller who goes on right
after the bot began answering is heard as one question.

The VAD marks pauses (0.2 s of silence). At each pause the whole turn so far is
transcribed and scored by smart-turn at once, and its words by the completeness model the
bot provides; the policy then says how long a silence this turn needs. Speech before that deadline cancels the pending decision (its transcript
is dropped with it: a result is only ever used for the audio it was made from) and the
turn goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import webrtcvad
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    SystemFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from voice.end_of_turn import Decision, EndOfTurnSettings, SmartTurnModel, decide
from voice.slow_speech import SlowSpeechFrame, voiced_seconds
from voice.stt import Transcriber, Transcript

log = logging.getLogger("callbot.voice.turns")

RATE = 16_000
BYTES_PER_S = RATE * 2
JOIN_GAP_S = 0.3  # silence put between two pieces of one question before decoding them together
# The VAD confirms speech 0.2 s after it starts; a turn is not ended while speech this
# long (voiced 20 ms frames in a row) is starting again, confirmed or not yet.
ONSET_FRAMES = 3
ONSET_WAIT_S = 0.3


@dataclass
class RecognitionOffFrame(SystemFrame):
    """Sent upstream to this processor: stop transcribing the caller (a human has the call)."""


@dataclass
class UnheardSpeechFrame(SystemFrame):
    """Pushed downstream for a caller turn that left no words (noise, a cough, or speech
    Whisper could not read): the caller may be waiting for the bot. `voiced_s`: seconds of
    speech-like audio in the turn, for the listener to tell a breath from a sentence."""

    voiced_s: float = 0.0


@dataclass
class AnswerExpectedFrame(SystemFrame):
    """Sent upstream to this processor after each reply: whether the bot asked for a short
    answer (yes/no, a choice, a value), in which case a turn of a few words is whole."""

    short: bool


@dataclass
class _Turn:
    audio: bytearray
    started: float                  # monotonic time the caller started speaking
    speech_end: float | None = None
    continues: _Committed | None = None


@dataclass
class _Committed:
    audio: bytes
    text: str
    started: float
    committed_at: float
    bot_started_at: float | None = None
    bot_stopped: bool = False


class TurnTranscriber(FrameProcessor):
    """TranscriptionFrame.result carries {'confidence', 'stt_ms', 'speech_start',
    'speech_end' (monotonic seconds), 'end_of_turn': {'probability', 'words_probability',
    'turn_probability', 'wait_ms', 'decided_ms', 'reason'},
    'continues': the text of the turn this one completes, or None, 'voiced_s': seconds of
    speech in this turn's own audio}."""

    def __init__(self, *, transcriber: Transcriber, smart_turn: SmartTurnModel | None,
                 completeness: Callable[[str], float] | None = None,
                 settings: EndOfTurnSettings | None = None, slow_settings: EndOfTurnSettings | None = None,
                 preroll_s: float = 0.5, call_id: str = "", **kwargs) -> None:
        """`completeness`: the probability that words make a whole request (blocking, about
        10 ms, run in a worker thread after the transcript); None: word rules only.
        `slow_settings`: the more patient decision of slow-speech mode (SlowSpeechFrame)."""
        super().__init__(**kwargs)
        self._transcriber = transcriber
        self._smart_turn = smart_turn
        self._completeness = completeness
        self._short_answer = False
        self._settings = self._normal_settings = settings or EndOfTurnSettings()
        self._slow_settings = slow_settings or self._settings
        self._call_id = call_id
        self._preroll: deque[bytes] = deque()
        self._preroll_bytes = 0
        self._preroll_max = int(preroll_s * BYTES_PER_S)
        self._turn: _Turn | None = None
        self._last: _Committed | None = None
        self._pending: asyncio.Task | None = None
        self._speaking = False
        self._off = False
        self._onset_vad = webrtcvad.Vad(3)
        self._voiced_run = 0      # voiced 20 ms frames in a row, the latest audio
        self._pcm_tail = b""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await self._on_audio(frame.audio)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._speaking = True
            await self._on_speech_start(time.monotonic() - frame.start_secs)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._speaking = False
            self._on_pause(time.monotonic() - frame.stop_secs)
        elif isinstance(frame, BotStartedSpeakingFrame):
            if self._last is not None and self._last.bot_started_at is None:
                self._last.bot_started_at = time.monotonic()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            if self._last is not None and self._last.bot_started_at is not None:
                self._last.bot_stopped = True
        elif isinstance(frame, EndFrame):
            await self._finish_turn()
        elif isinstance(frame, AnswerExpectedFrame):
            self._short_answer = frame.short
            return
        elif isinstance(frame, SlowSpeechFrame):
            self._settings = self._slow_settings if frame.on else self._normal_settings
        elif isinstance(frame, RecognitionOffFrame):
            log.info("call %s: a human has the call, recognition off", self._call_id)
            self._off = True
            await self._cancel_pending()
            self._turn = self._last = None
            await self.push_frame(frame, direction)   # on to the barge-in gate
            return
        await self.push_frame(frame, direction)

    async def _on_audio(self, pcm: bytes) -> None:
        if self._off:
            return
        self._follow_onset(pcm)
        if self._turn is None:
            self._preroll.append(pcm)
            self._preroll_bytes += len(pcm)
            while self._preroll_bytes - len(self._preroll[0]) >= self._preroll_max:
                self._preroll_bytes -= len(self._preroll.popleft())
            return
        self._turn.audio += pcm
        if len(self._turn.audio) >= self._settings.max_turn_s * BYTES_PER_S and self._pending is None:
            log.info("call %s: caller turn reached %.0f s, transcribed as it is", self._call_id,
                     self._settings.max_turn_s)
            self._turn.speech_end = time.monotonic()
            self._pending = self.create_task(self._decide(self._turn, force=True))

    async def _on_speech_start(self, started: float) -> None:
        if self._off:
            return
        await self._cancel_pending()
        if self._turn is not None:
            self._turn.speech_end = None  # the caller goes on: same turn
            return
        self._turn = _Turn(audio=bytearray(b"".join(self._preroll)), started=started)
        self._preroll.clear()
        self._preroll_bytes = 0
        if self._continues_last(time.monotonic()):
            # The caller had not finished: the bot stops and both pieces are heard as one question.
            log.info("call %s: caller goes on as the bot begins to answer: one question", self._call_id)
            self._turn.continues = self._last
            self._turn.started = self._last.started
            await self.broadcast_interruption()

    def _continues_last(self, now: float) -> bool:
        """Speech that starts before the reply to the last turn is heard, or in its first
        `continuation_s`, goes on with that turn; once the bot has said its whole reply
        (a short question, say), the caller is answering it."""
        last = self._last
        if last is None or last.bot_stopped:
            return False
        if last.bot_started_at is None:
            return now - last.committed_at <= self._settings.continuation_s
        return now - last.bot_started_at <= self._settings.continuation_s

    def _follow_onset(self, pcm: bytes) -> None:
        self._pcm_tail += pcm
        size = RATE // 50 * 2
        while len(self._pcm_tail) >= size:
            chunk, self._pcm_tail = self._pcm_tail[:size], self._pcm_tail[size:]
            self._voiced_run = self._voiced_run + 1 if self._onset_vad.is_speech(chunk, RATE) else 0

    def _on_pause(self, speech_end: float) -> None:
        if self._off or self._turn is None or self._pending is not None:
            return
        self._turn.speech_end = speech_end
        self._pending = self.create_task(self._decide(self._turn))

    async def _finish_turn(self) -> None:
        """The call ends (the caller hung up) while a turn is open: what they said is still
        transcribed and committed, not lost with the call."""
        turn = self._turn
        if self._off or turn is None or (turn.speech_end is None and not self._speaking):
            return
        await self._cancel_pending()
        if turn.speech_end is None:
            turn.speech_end = time.monotonic()
        await self._decide(turn, force=True)

    async def _cancel_pending(self) -> None:
        if self._pending is not None:
            task, self._pending = self._pending, None
            await self.cancel_task(task)

    def _audio_of(self, turn: _Turn) -> bytes:
        if turn.continues is None:
            return bytes(turn.audio)
        gap = bytes(int(JOIN_GAP_S * BYTES_PER_S))
        return turn.continues.audio + gap + bytes(turn.audio)

    async def _decide(self, turn: _Turn, force: bool = False) -> None:
        """Transcribes and scores the turn as it is now; after the silence it needs, commits it."""
        pcm = self._audio_of(turn)
        samples = np.frombuffer(pcm, dtype=np.int16)
        loop = asyncio.get_running_loop()
        probability = None
        scoring = None
        if self._smart_turn is not None and self._settings.engine == "smart":
            scoring = loop.run_in_executor(self._smart_turn.executor, self._smart_turn.probability, samples)
        words_probability = None
        try:
            transcript = await self._transcriber.transcribe_async(samples.astype(np.float32) / 32768.0)
            if self._completeness is not None and transcript.text and not force:
                words_probability = await asyncio.to_thread(self._completeness, transcript.text)
            if scoring is not None:
                probability = await scoring
        except RuntimeError as e:
            self._pending = None
            self._turn = None
            await self.push_error(f"transcription failed: {e}")
            return
        decision = Decision(0.0, "forced", probability) if force else replace(
            decide(self._settings, probability, transcript.text, words_probability, short_answer=self._short_answer),
            words_probability=words_probability)
        speech_end = turn.speech_end or time.monotonic()
        remaining = speech_end + decision.wait_s - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)
        waited = 0.0
        while not force and self._voiced_run >= ONSET_FRAMES and waited < ONSET_WAIT_S:
            await asyncio.sleep(0.02)  # the caller is speaking again: the VAD will confirm it
            waited += 0.02
        self._pending = None
        # A turn cut at its longest while the caller still speaks: the rest is a new turn.
        self._turn = _Turn(audio=bytearray(), started=time.monotonic()) if force and self._speaking else None
        await self._commit(turn, pcm, transcript, decision, speech_end)

    async def _commit(self, turn: _Turn, pcm: bytes, transcript: Transcript, decision: Decision,
                      speech_end: float) -> None:
        if not transcript.text:
            voiced_s = round(voiced_seconds(bytes(turn.audio)), 2)
            log.info("call %s: a turn with %.2f s of voiced audio left no words", self._call_id, voiced_s)
            await self.push_frame(UnheardSpeechFrame(voiced_s=voiced_s))
            return
        now = time.monotonic()
        # The text may hold personal data: it goes to the call record, never to the logs.
        log.info("call %s: caller turn of %d words (confidence %.2f, stt %d ms); end of turn after %d ms "
                 "(wait %d ms: %s, smart-turn %s, words %s, turn %s)%s", self._call_id, len(transcript.text.split()),
                 transcript.confidence, transcript.duration_ms, (now - speech_end) * 1000, decision.wait_s * 1000,
                 decision.reason, _rounded(decision.probability, 2), _rounded(decision.words_probability, 2),
                 _rounded(decision.turn_probability, 2),
                 ", goes on with the last turn" if turn.continues else "")
        self._last = _Committed(audio=pcm, text=transcript.text, started=turn.started, committed_at=now)
        await self.push_frame(TranscriptionFrame(
            transcript.text, "caller", time_now_iso8601(), Language.FR,
            result={
                "confidence": transcript.confidence,
                "stt_ms": transcript.duration_ms,
                "speech_start": turn.started,
                "speech_end": speech_end,
                "end_of_turn": {
                    "probability": _rounded(decision.probability, 3),
                    "words_probability": _rounded(decision.words_probability, 3),
                    "turn_probability": _rounded(decision.turn_probability, 3),
                    "wait_ms": int(decision.wait_s * 1000),
                    "decided_ms": int((now - speech_end) * 1000),
                    "reason": decision.reason,
                },
                "continues": turn.continues.text if turn.continues else None,
                "voiced_s": round(voiced_seconds(bytes(turn.audio)), 2),  # the caller's pace
            },
        ))

    async def cleanup(self) -> None:
        await self._cancel_pending()
        await super().cleanup()


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)

"""No-input detection, frame by frame with a short timeout: the wait starts when the bot
stops speaking, stops when the caller speaks, and starts again after a caller turn that
left no words (a cough), or a caller who then says nothing would never be asked again."""

from __future__ import annotations

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from bot.processors.frames import CallerSilentFrame
from bot.processors.silence_watch import SilenceWatch
from voice.turn_transcriber import UnheardSpeechFrame

TIMEOUT_S = 0.3


def _silent_frames(down) -> list[CallerSilentFrame]:
    return [f for f in down if isinstance(f, CallerSilentFrame)]


async def test_silence_after_the_bot_stops_is_reported():
    down, _ = await run_test(SilenceWatch(timeout_s=TIMEOUT_S), frames_to_send=[
        BotStartedSpeakingFrame(), BotStoppedSpeakingFrame(), SleepFrame(sleep=TIMEOUT_S + 0.2)])
    assert [f.seconds for f in _silent_frames(down)] == [TIMEOUT_S]


async def test_a_turn_that_left_no_words_starts_the_wait_again():
    down, _ = await run_test(SilenceWatch(timeout_s=TIMEOUT_S), frames_to_send=[
        BotStartedSpeakingFrame(), BotStoppedSpeakingFrame(),
        VADUserStartedSpeakingFrame(), SleepFrame(sleep=TIMEOUT_S + 0.1),   # speaking: no re-prompt
        VADUserStoppedSpeakingFrame(), UnheardSpeechFrame(voiced_s=0.3), SleepFrame(sleep=TIMEOUT_S + 0.2)])
    assert len(_silent_frames(down)) == 1


async def test_caller_speech_stops_the_wait_and_a_noise_over_the_bot_does_not_start_it():
    down, _ = await run_test(SilenceWatch(timeout_s=TIMEOUT_S), frames_to_send=[
        BotStartedSpeakingFrame(), BotStoppedSpeakingFrame(), VADUserStartedSpeakingFrame(),
        VADUserStoppedSpeakingFrame(), SleepFrame(sleep=TIMEOUT_S + 0.2),   # a transcript is on its way
        BotStartedSpeakingFrame(), UnheardSpeechFrame(voiced_s=0.3), SleepFrame(sleep=TIMEOUT_S + 0.2)])
    assert _silent_frames(down) == []

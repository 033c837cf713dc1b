"""End of turn: the policy on scripted timelines (fast, exact), then the pipeline's
TurnTranscriber with the real VAD, Whisper and smart-turn on speech with pauses."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    TranscriptionFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from bot.bench_turns import Item, Pause, Renderer, Scored, outcome
from voice.end_of_turn import EndOfTurnSettings, TurnWeights, decide, text_ending
from voice.vad import VADSettings, make_vad_analyzer

SETTINGS = EndOfTurnSettings()
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("text", "ending"), [
    ("Pour l'attestation de", "open"),
    ("Je vous appelle parce que", "open"),
    ("Alors euh", "open"),
    ("Alors euh ?", "open"),
    ("Je voudrais savoir le plafond et", "open"),
    ("mon problème c'est", "open"),
    ("Il y a", "closed"),              # "il y a" ends a sentence ("qu'est-ce qu'il y a")
    ("Bonjour, je voudrais savoir", "open"),
    ("Est-ce que je peux ?", "closed"),
    ("Quel est le plafond ?", "closed"),
    ("C'est quoi le plafond ?", "closed"),
    ("Qu'est-ce que c'est ?", "closed"),
    ("Je suis là", "closed"),
    ("C'est pour aller à", "open"),
    ("Mon SIRET c'est 732 829 320", "number"),
    ("Le temps d'attente est évalué à vingt", "number"),
    ("je voudrais savoir le plafond quand on fait les deux", "closed"),
    ("on est associés tous les trois", "closed"),
    ("Pour l'attestation de vigilance...", "trailing"),
    ("", "closed"),
])
def test_text_ending(text, ending):
    assert text_ending(text) == ending


def test_decision_waits_longer_when_the_turn_is_not_finished():
    s = SETTINGS
    assert decide(s, 0.95, "Je voudrais savoir pour le").wait_s == s.max_wait_s  # words win over audio
    assert decide(s, 0.95, "Je voudrais savoir pour le", 0.99).wait_s == s.max_wait_s  # ... and over the model
    assert decide(s, 0.95, "Mon numéro c'est 12 34").wait_s == s.likely_s  # digits being dictated
    assert decide(s, None, "Le plafond.").wait_s == s.unsure_s
    silence = replace(s, engine="silence", silence_s=0.5)
    assert decide(silence, 0.01, "parce que").wait_s == 0.5
    assert s.max_wait_s <= 2.0  # the "up to about 2 s"


def test_the_turn_probability_picks_the_wait():
    # weights that read the completeness model alone: the turn probability is the model's
    words_only = replace(SETTINGS, weights=TurnWeights(**{f.name: 0.0 for f in fields(TurnWeights)} | {"words": 1.0}))
    for words, wait in ((0.95, words_only.complete_s), (0.5, words_only.likely_s), (0.1, words_only.unsure_s)):
        decision = decide(words_only, 0.5, "Le plafond.", words)
        assert decision.turn_probability == pytest.approx(words, abs=1e-9)
        assert decision.wait_s == wait, (words, decision)


@pytest.mark.parametrize("text", ["Quel est le plafond ?", "Je voudrais une attestation de vigilance.",
                                  "Je suis kiné depuis vingt ans et je ne comprends pas mon échéancier."])
def test_every_signal_of_a_finished_turn_shortens_the_wait(text):
    s = SETTINGS
    waits = [decide(s, audio, text, words).wait_s for audio in (0.01, 0.5, 0.97) for words in (0.05, 0.5, 0.97)]
    grid = np.array(waits).reshape(3, 3)
    assert (np.diff(grid, axis=0) <= 0).all() and (np.diff(grid, axis=1) <= 0).all(), grid
    assert grid[-1, -1] == s.complete_s  # a whole request, said with a falling voice: answered at once
    assert grid[0, 0] > s.complete_s
    assert decide(s, 0.97, text.rstrip(" ?.") + "...", 0.97).wait_s >= grid[-1, -1]  # trailing off


def test_context_alone_is_not_a_finished_turn():
    s = SETTINGS
    # callers give their situation first and ask last: the model reads the request is to come
    context = "Je suis kiné depuis vingt ans et j'ai toujours payé."
    request = "Je suis kiné depuis vingt ans et je ne comprends pas mon échéancier."
    assert decide(s, 0.97, context, 0.1).wait_s >= s.likely_s
    assert decide(s, 0.01, context, 0.1).wait_s == s.unsure_s
    assert decide(s, 0.97, request, 0.95).wait_s == s.complete_s  # a request needs no question word
    assert decide(s, 0.97, "Je suis auto-entrepreneur depuis deux ans.").wait_s >= s.likely_s  # word rule
    # short answers to the bot's questions are not held back
    for answer in ("Oui.", "Non merci.", "D'accord"):
        assert decide(s, 0.2, answer, 0.05, short_answer=True).wait_s == s.complete_s
    # ... but asked "how can I help?", "oui bonjour" and a pause is the start of the turn
    assert decide(s, 0.97, "Oui bonjour.", 0.05).wait_s >= s.likely_s
    assert decide(s, 0.97, "Oui, alors voilà, je suis retraité.", 0.05, short_answer=True).wait_s >= s.likely_s


def test_the_weights_and_thresholds_come_from_the_environment():
    from bot.config import load_settings

    turn = load_settings({"CALLBOT_TURN_WEIGHTS_WORD_COUNT": "0.5", "CALLBOT_TURN_COMPLETE_PROBABILITY": "0.8"}).turn
    assert turn.weights == replace(TurnWeights(), word_count=0.5) and turn.complete_probability == 0.8


def test_settings_are_checked():
    with pytest.raises(ValueError):
        EndOfTurnSettings(engine="magic")
    with pytest.raises(ValueError):
        EndOfTurnSettings(complete_s=1.5, likely_s=0.6)
    with pytest.raises(ValueError):
        EndOfTurnSettings(complete_probability=0.4, likely_probability=0.6)


def _pause(end, resumes, probability, text, final=False):
    return Pause(speech_end=end, reported_at=end + 0.2, resumes_at=None if resumes is None else resumes + 0.2,
                 probability=probability, text=text, compute_s=0.5, final=final)


def test_scripted_timeline_pause_mid_question_is_not_an_end():
    # speech 0.5-1.8 s, pause 0.7 s, speech 2.5-3.1 s, then silence
    scored = Scored(Item("t", "clauses", "x", ("a", "b")), [
        _pause(1.8, 2.5, 0.3, "Pour l'attestation de vigilance,"),
        _pause(3.1, None, 0.93, "Pour l'attestation de vigilance, elle dure combien de temps ?", final=True),
    ], true_end=3.1)
    cut, delay, _ = outcome(SETTINGS, scored)
    assert not cut
    assert delay == pytest.approx(SETTINGS.complete_s)
    # silence alone (0.5 s) answers the fragment; the caller goes on 0.2 s later: merged back
    assert outcome(replace(SETTINGS, engine="silence", silence_s=0.5), scored) == (True, None, False)


def test_scripted_timeline_open_phrase_waits_for_a_long_pause():
    scored = Scored(Item("t", "clauses", "x", ("a", "b")), [
        _pause(1.8, 3.5, 0.9, "Je vous appelle parce que"),  # a 1.7 s pause after "parce que"
        _pause(5.0, None, 0.9, "Je vous appelle parce que j'ai reçu une mise en demeure.", final=True),
    ], true_end=5.0)
    assert outcome(SETTINGS, scored)[0] is False
    # a pause longer than the longest wait does end the turn
    long_pause = Scored(scored.item, [replace(scored.pauses[0], resumes_at=1.8 + SETTINGS.max_wait_s + 0.5),
                                      scored.pauses[1]], 5.0)
    assert outcome(SETTINGS, long_pause)[0] is True
    # and a caller who goes on 3 s after the answer began is not heard as going on
    very_long = Scored(scored.item, [replace(scored.pauses[0], resumes_at=1.8 + SETTINGS.max_wait_s + 3.5),
                                     scored.pauses[1]], 5.0)
    assert outcome(SETTINGS, very_long)[::2] == (True, True)


def test_scripted_timeline_decision_is_never_before_the_vad_reports_the_pause():
    scored = Scored(Item("t", "whole", "x", ("a",)), [_pause(2.0, None, 0.99, "Le plafond ?", final=True)], 2.0)
    assert outcome(replace(SETTINGS, complete_s=0.05, likely_s=0.05, unsure_s=0.05, max_wait_s=0.05), scored)[1] \
        == pytest.approx(0.2)


# ------------------------------------------------------------ the live processor


class _Collector(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[tuple[float, Frame]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.frames.append((asyncio.get_running_loop().time(), frame))
        await self.push_frame(frame, direction)

    def transcripts(self) -> list[TranscriptionFrame]:
        return [f for _, f in self.frames if isinstance(f, TranscriptionFrame)]


@pytest.fixture(scope="module")
def models():
    from voice.end_of_turn import SmartTurnModel
    from voice.stt import STTSettings, Transcriber

    transcriber, smart_turn = Transcriber(STTSettings()), SmartTurnModel()
    yield transcriber, smart_turn
    transcriber.close()
    smart_turn.close()


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    return Renderer(tmp_path_factory.mktemp("turn-audio"))


async def _play(models, audio: np.ndarray, *, during=None, transcripts: int = 1, completeness=None,
                first: Frame | None = None, slow_settings: EndOfTurnSettings | None = None) -> _Collector:
    """Plays 16 kHz audio in real time through VAD -> TurnTranscriber, then silence until
    `transcripts` transcripts came out (at most 40 s more: Whisper is slow on a busy
    machine). `during(collector, worker, say)` runs beside it to act as the bot would;
    `say(samples)` makes the caller say that next, at once. `first` is queued before the
    audio (what the dialogue would have sent)."""
    from voice.turn_transcriber import TurnTranscriber

    transcriber, smart_turn = models
    collector = _Collector()
    worker = PipelineWorker(
        Pipeline([VADProcessor(vad_analyzer=make_vad_analyzer(VADSettings())),
                  TurnTranscriber(transcriber=transcriber, smart_turn=smart_turn, settings=SETTINGS,
                                  slow_settings=slow_settings, completeness=completeness),
                  collector]),
        params=PipelineParams(audio_in_sample_rate=16000), enable_rtvi=False, cancel_on_idle_timeout=False)
    started = asyncio.Event()
    step = 320
    chunks = deque(audio[i:i + step] for i in range(0, len(audio) - step + 1, step))

    def say(samples: np.ndarray) -> None:
        chunks.extendleft(reversed([samples[i:i + step] for i in range(0, len(samples) - step + 1, step)]))

    @worker.event_handler("on_pipeline_started")
    async def _on_started(_worker, _frame):
        started.set()

    async def feed():
        await asyncio.wait_for(started.wait(), 10)
        if first is not None:
            await worker.queue_frame(first)
        loop = asyncio.get_running_loop()
        t0, n, extra = loop.time(), 0, 0
        silence = np.zeros(step, dtype=np.int16)
        while chunks or (len(collector.transcripts()) < transcripts and extra < 2000):
            if chunks:
                chunk = chunks.popleft()
            else:
                chunk, extra = silence, extra + 1
            await worker.queue_frame(InputAudioRawFrame(audio=chunk.tobytes(), sample_rate=16000, num_channels=1))
            n += 1
            await asyncio.sleep(max(0.0, t0 + n * 0.02 - loop.time()))
        await asyncio.sleep(0.5)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    side = [asyncio.ensure_future(during(collector, worker, say))] if during else []
    await asyncio.gather(runner.run(), feed())
    for task in side:
        task.cancel()
    return collector


def test_question_with_two_pauses_is_one_turn(models, renderer):
    item = Item("two-pauses", "clauses", "jm_kumo",
                ("Bonjour, alors voilà, pour l'attestation de vigilance", "euh", "elle dure combien de temps ?"),
                pauses=(0.8, 0.7))
    rendered = renderer.render(item, tail_s=3.0)
    collector = asyncio.run(_play(models, rendered.audio))
    transcripts = collector.transcripts()
    assert len(transcripts) == 1, [t.text for t in transcripts]
    text = transcripts[0].text.lower()
    assert "vigilance" in text and "combien" in text, text
    result = transcripts[0].result
    assert result["continues"] is None
    assert result["speech_start"] < result["speech_end"]


@pytest.fixture(scope="module")
def completeness():
    from flows.knowledge import load_knowledge
    from flows.turn_completeness import build_completeness

    return build_completeness(load_knowledge(), ROOT / "var" / "router").probability


def test_context_then_question_is_one_turn_with_the_completeness_model(models, renderer, completeness):
    """The context is a finished sentence with a falling voice; what is said shows the
    request is still to come: the bot waits through the 1 s pause, and answers the request
    quickly once it is said."""
    item = Item("context-first", "clauses", "jm_kumo",
                ("Je suis auto-entrepreneur depuis deux ans.", "Quel est le plafond de chiffre d'affaires ?"),
                pauses=(1.0,))
    collector = asyncio.run(_play(models, renderer.render(item, tail_s=3.0).audio, completeness=completeness))
    transcripts = collector.transcripts()
    assert len(transcripts) == 1, [t.text for t in transcripts]
    assert "plafond" in transcripts[0].text.lower(), transcripts[0].text
    end = transcripts[0].result["end_of_turn"]
    assert end["turn_probability"] >= SETTINGS.likely_probability, end
    assert end["wait_ms"] <= SETTINGS.likely_s * 1000, end


@pytest.mark.parametrize("short", [True, False])
def test_a_few_words_are_a_whole_turn_when_the_bot_asked_for_a_short_answer(models, renderer, completeness, short):
    from voice.turn_transcriber import AnswerExpectedFrame

    audio = np.concatenate([np.zeros(8000, dtype=np.int16), renderer.piece("jf_nezumi", "Oui, d'accord."),
                            np.zeros(16000 * 3, dtype=np.int16)])
    collector = asyncio.run(_play(models, audio, completeness=completeness, first=AnswerExpectedFrame(short=short)))
    transcripts = collector.transcripts()
    assert len(transcripts) == 1, [t.text for t in transcripts]
    # asked "how can I help?", "oui d'accord" and a pause is the start of the turn, not all of it
    assert (transcripts[0].result["end_of_turn"]["reason"] == "short answer") is short, transcripts[0].result


def test_caller_going_on_as_the_bot_answers_is_merged(models, renderer):
    """The bot answers the first piece (the policy found it complete); the caller goes on
    0.6 s into the reply: the bot is interrupted and the two pieces come as one question."""
    first = renderer.piece("jf_nezumi", "Je voudrais une attestation de vigilance.")
    second = renderer.piece("jf_nezumi", "Pour un marché public.")
    silence = np.zeros(16000 * 3, dtype=np.int16)
    audio = np.concatenate([np.zeros(8000, dtype=np.int16), first, silence])

    async def bot(collector, worker, say):
        while not collector.transcripts():
            await asyncio.sleep(0.02)
        await worker.queue_frame(BotStartedSpeakingFrame())
        await asyncio.sleep(0.6)
        say(second)  # the caller goes on

    collector = asyncio.run(_play(models, audio, during=bot, transcripts=2))
    transcripts = collector.transcripts()
    assert len(transcripts) == 2, [t.text for t in transcripts]
    merged = transcripts[1]
    assert merged.result["continues"] == transcripts[0].text
    assert "vigilance" in merged.text.lower() and "march" in merged.text.lower(), merged.text
    interrupted = [t for t, f in collector.frames if isinstance(f, InterruptionFrame)]
    assert interrupted, "the bot was not stopped"


def test_speech_that_leaves_no_words_is_reported_not_dropped_in_silence(models, renderer):
    """A hum (a caller mumbling away from the phone): the VAD hears speech, Whisper reads no
    word. No transcript, but the turn is reported with its voiced time, for the bot to ask
    again rather than leave the caller waiting."""
    from voice.turn_transcriber import UnheardSpeechFrame

    hum = renderer.piece("espeak", "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm")
    audio = np.concatenate([np.zeros(8000, dtype=np.int16), hum, np.zeros(16000 * 4, dtype=np.int16)])
    collector = asyncio.run(_play(models, audio, transcripts=0))
    assert collector.transcripts() == []
    unheard = [f for _, f in collector.frames if isinstance(f, UnheardSpeechFrame)]
    assert len(unheard) == 1 and unheard[0].voiced_s >= 1.0, unheard

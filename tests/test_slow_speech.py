"""Slow-speech mode: how it is turned on and off (text conversations with the real router),
what it changes in the wording, and in the audio (real Kokoro renders measured on their
samples: speech rate and pauses), the replay of the last answer, the end-of-turn patience
(the real VAD, Whisper and smart-turn on a caller who pauses 1.2 s), and a call over the
media stream."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

from bot.bench_slow import audio_stats
from bot.config import SlowSpeechSettings, load_settings
from flows.engine import Conversation, DialogueSettings, Keywords, State
from flows.slow_wording import MAX_WORDS, figures, short_sentences, slow_wording
from voice.slow_speech import speech_rate, syllables

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "je voudrais fermer ma micro-entreprise, quelles sont les démarches"  # its answer holds "30 jours"
GARBLED = ("blouf tagada pim", "zorglub mirliton")


@pytest.fixture
def conv(knowledge, router):
    return Conversation(session_id="slow", knowledge=knowledge, router=router, keywords=Keywords(), actions=None,
                        settings=DialogueSettings())


def _said(reply) -> str:
    return " ".join(reply.texts)


# ------------------------------------------------------------------ turning it on and off


@pytest.mark.parametrize("ask", ["parlez plus lentement s'il vous plaît", "moins vite", "je n'entends pas bien",
                                 "j'ai pas compris", "vous parlez trop vite madame"])
async def test_asking_turns_it_on_and_says_the_last_answer_again_slowly(conv, knowledge, ask):
    conv.start()
    answer = await conv.on_text(QUESTION)
    assert answer.intent == "cesser_activite" and not answer.slow
    reply = await conv.on_text(ask)
    assert reply.slow and reply.slow_reason == "asked" and conv.slow
    assert reply.texts[0] == knowledge.prompts["slow_speech"]["on"]
    assert "30 jours" in _said(reply) and "Je répète : 30 jours." in reply.texts
    # the mode stays on for what follows, and is reported once
    following = await conv.on_text("et pour déclarer mon chiffre d'affaires, c'est quand")
    assert following.slow and following.slow_reason is None


async def test_asking_for_the_normal_pace_turns_it_off(conv, knowledge):
    conv.start()
    await conv.on_text(QUESTION)
    await conv.on_text("parlez plus lentement")
    reply = await conv.on_text("vous pouvez parler normalement")
    assert not reply.slow and reply.slow_reason == "asked"
    assert reply.texts[0] == knowledge.prompts["slow_speech"]["off"]
    again = await conv.on_text(QUESTION)
    assert "Je répète" not in _said(again)
    # "plus vite" means nothing when the mode is off: a question like any other
    assert (await conv.on_text("plus vite")).slow_reason is None


async def test_a_long_question_that_mentions_it_is_a_question(conv):
    conv.start()
    reply = await conv.on_text("j'ai pas compris pourquoi on me prélève plus ce mois-ci alors que mon chiffre "
                               "d'affaires a baissé")
    assert not reply.slow


async def test_the_key_announced_in_the_greeting_turns_it_on(conv, knowledge):
    greeting = conv.start()
    assert knowledge.prompts["greeting"]["slow"] in greeting.texts
    await conv.on_text(QUESTION)
    reply = await conv.on_dtmf("*")
    assert reply.slow and reply.slow_reason == "key"
    assert "Je répète : 30 jours." in reply.texts


async def test_the_key_is_part_of_a_number_being_typed(conv):
    conv.start()
    await conv.on_text("je voudrais savoir combien je dois à l'urssaf en ce moment")
    assert conv.state is State.FLOW and conv.flow is not None and conv.flow.keypad_entry
    await conv.on_dtmf("*")
    assert not conv.slow


async def test_two_failed_turns_in_a_row_turn_it_on(conv, knowledge):
    conv.start()
    first = await conv.on_text(GARBLED[0])
    assert not first.slow
    second = await conv.on_text(GARBLED[1])
    assert second.slow and second.slow_reason == "failed_turns"
    assert second.texts[0] == knowledge.prompts["slow_speech"]["auto"]


async def test_failures_must_follow_each_other(conv):
    conv.start()
    await conv.on_text(GARBLED[0])
    await conv.on_text(QUESTION)            # understood: the count starts again
    assert not (await conv.on_text(GARBLED[1])).slow
    assert not conv.slow


async def test_silence_counts_as_a_failed_turn_and_gets_a_gentle_reprompt(conv, knowledge):
    conv.start()
    assert not (await conv.on_no_input()).slow
    second = await conv.on_no_input()
    assert second.slow and second.slow_reason == "failed_turns"
    conv2 = Conversation(session_id="s2", knowledge=knowledge, router=conv.router, keywords=conv.keywords)
    conv2.set_slow(True, "line")
    conv2.start()
    assert (await conv2.on_no_input()).texts[0] == knowledge.prompts["slow_speech"]["no_input"]


async def test_repeat_replays_the_last_reply_word_for_word_then_speaks_slowly(conv):
    conv.start()
    answer = await conv.on_text(QUESTION)
    again = await conv.on_text("répétez")
    assert again.verbatim and again.texts == answer.texts     # its audio can be replayed as it is
    assert again.slow and again.slow_reason == "repeat"
    assert (await conv.on_text("répétez")).texts == answer.texts


async def test_a_slow_line_greets_slowly_without_announcing_the_key(conv, knowledge):
    conv.set_slow(True, "line")
    greeting = conv.start()
    assert greeting.slow and greeting.slow_reason == "line"
    assert knowledge.prompts["greeting"]["slow"] not in greeting.texts
    assert SlowSpeechSettings(lines="39 57, 0800 000 111").line_is_slow("+33 800 000 111")
    assert not SlowSpeechSettings(lines="3957").line_is_slow("3958")
    assert not SlowSpeechSettings().line_is_slow("3957")


async def test_numbers_asked_for_offer_the_keypad(conv, knowledge):
    conv.set_slow(True, "line")
    conv.start()
    reply = await conv.on_text("je voudrais savoir combien je dois à l'urssaf en ce moment")
    assert conv.flow is not None and conv.flow.keypad_entry
    assert knowledge.prompt("value_keys") in reply.texts


# ------------------------------------------------------------------ wording


async def test_the_data_s_short_sentence_variant_is_said_where_it_exists(conv, knowledge):
    answer = knowledge.question_types["cesser_activite"].answer
    assert answer.slow and knowledge.slow_variant(answer.text) == answer.slow
    conv.set_slow(True, "line")
    conv.start()
    reply = await conv.on_text(QUESTION)
    assert "Puis payez les dernières cotisations." in reply.texts and "Je répète : 30 jours." in reply.texts


def test_short_sentences_are_cut_between_clauses_never_in_a_figure():
    text = ("Vous déclarez votre chiffre d'affaires chaque mois sur le site de l'Urssaf, et vous payez "
            "les cotisations de 12,3 % sur 77 700 € au plus tard le 30 du mois suivant.")
    sentences = short_sentences(text)
    assert len(sentences) == 2 and all(s.endswith(".") for s in sentences)
    assert sentences[1].startswith("Et vous payez")
    assert "12,3 %" in sentences[1] and "77 700 €" in sentences[1]
    # a condition stays with what it conditions; a list is not cut
    kept = "Si vous travaillez dans un autre pays européen, en Suisse ou au Royaume-Uni, vous restez affilié."
    assert short_sentences(kept) == [kept]
    assert all(len(s.split()) <= MAX_WORDS for s in short_sentences(
        "Connectez-vous à votre espace en ligne ; ouvrez la rubrique Messagerie, puis choisissez votre motif."))


def test_figures_are_said_twice_but_not_identifiers_or_keys():
    said = slow_wording(["Le plafond est de 77 700 € pour les services. Votre SIRET est 73282932000074.",
                         "Dites oui ou non, ou tapez 1 pour oui, 2 pour non."], "Je répète :")
    assert said[:2] == ["Le plafond est de 77 700 € pour les services.", "Je répète : 77 700 €."]
    assert not any("73282932000074" in s and s.startswith("Je répète") for s in said)
    assert said[-1] == "Dites oui ou non, ou tapez 1 pour oui, 2 pour non."
    assert figures("Appelez le 39 57 avant le 15 mars 2025, soit 30 jours.") == ["39 57", "15 mars 2025", "30 jours"]


def test_syllables_and_pace():
    assert syllables("Bonjour madame") == 4
    assert syllables("Elles parlent de l'entreprise") == 6   # elles parlent de l'en-tre-prise: mute endings
    assert syllables("12 euros") == 3                          # dou-zeu-ros
    assert speech_rate("bonjour", 0.5) is None                 # too little said to tell
    assert speech_rate("je voudrais savoir le plafond", 2.0) == pytest.approx(4.0)


# ------------------------------------------------------------------ audio


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    from bot.services import make_speech_engine
    from voice.speech_renderer import SpeechRenderer

    return SpeechRenderer(make_speech_engine(load_settings()), tmp_path_factory.mktemp("slow-audio"))


def test_the_same_answer_rendered_slow_is_slower_with_more_and_longer_pauses(renderer, knowledge):
    from bot.services import slow_speech_style, speech_style

    settings = load_settings()
    # the start of an answer, to keep the test short: two sentences, one figure
    answer = " ".join(re.split(r"(?<=\.)\s+", knowledge.question_types["cesser_activite"].answer.text)[:2])
    assert "30 jours" in answer
    normal_text = answer
    slow_text = " ".join(slow_wording([answer], knowledge.prompts["slow_speech"]["repeat"]))
    assert "Je répète : 30 jours." in slow_text
    normal_span, normal_pauses = audio_stats(renderer.render(normal_text, speech_style(settings)))
    slow_span, slow_pauses = audio_stats(renderer.render(slow_text, slow_speech_style(settings)))
    normal_rate = syllables(normal_text) / normal_span
    slow_rate = syllables(slow_text) / slow_span
    # lower, within the configured change: the voice at 0.85 and pauses, not a drawl
    assert 0.55 * normal_rate <= slow_rate <= 0.9 * normal_rate, (normal_rate, slow_rate)
    # more pauses, longer ones, a larger share of the time: within the configured ones
    assert len(slow_pauses) > len(normal_pauses), (normal_pauses, slow_pauses)
    assert np.median(slow_pauses) >= np.median(normal_pauses) + 0.1, (normal_pauses, slow_pauses)
    assert sum(slow_pauses) / slow_span > sum(normal_pauses) / normal_span, (normal_pauses, slow_pauses)
    assert max(slow_pauses) <= settings.slow.sentence_pause_s + settings.slow.figure_pause_s + 0.6


async def test_repeat_replays_the_audio_at_once(renderer):
    """The TTS service replays the last text said whole from memory, without the renderer:
    its first audio leaves within 50 ms of the frame's arrival."""
    from pipecat.frames.frames import TTSAudioRawFrame, TTSSpeakFrame, TTSStoppedFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.workers.runner import WorkerRunner

    from voice.speech_engines import SpeechStyle
    from voice.tts import RenderedTTSService

    class Clock(FrameProcessor):
        def __init__(self) -> None:
            super().__init__()
            self.first_audio: dict[str, float] = {}   # by TTS context, in order
            self.stopped = asyncio.Event()

        async def process_frame(self, frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, TTSAudioRawFrame):
                self.first_audio.setdefault(frame.context_id, asyncio.get_running_loop().time())
            elif isinstance(frame, TTSStoppedFrame):
                self.stopped.set()
            await self.push_frame(frame, direction)

    text = "Faites-le dans les trente jours qui suivent l'arrêt de votre activité."
    renderer.render(text, SpeechStyle())   # the first time from the disk cache: no render timing in the way
    streams = []
    original = renderer.stream

    def counted(*args, **kwargs):
        streams.append(args)
        return original(*args, **kwargs)

    renderer.stream = counted
    clock = Clock()
    worker = PipelineWorker(Pipeline([RenderedTTSService(renderer=renderer), clock]),
                            params=PipelineParams(audio_out_sample_rate=16000), enable_rtvi=False,
                            cancel_on_idle_timeout=False)
    sent: list[float] = []

    async def drive() -> None:
        await asyncio.sleep(0.5)
        for _ in range(2):
            clock.stopped.clear()
            sent.append(asyncio.get_running_loop().time())
            await worker.queue_frame(TTSSpeakFrame(text))
            await asyncio.wait_for(clock.stopped.wait(), 30)   # said to the end
            await asyncio.sleep(0.3)
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    try:
        await runner.add_workers(worker)
        await asyncio.gather(runner.run(), drive())
    finally:
        del renderer.stream
    assert len(clock.first_audio) == 2 and len(streams) == 1   # the second time, not rendered at all
    replay = list(clock.first_audio.values())[1] - sent[1]
    assert replay <= 0.05, replay


def test_a_pause_of_1_2_s_is_waited_through_in_slow_mode():
    from bot.bench_turns import Item, Renderer
    from tests.test_end_of_turn import _play
    from voice.end_of_turn import SmartTurnModel
    from voice.slow_speech import SlowSpeechFrame
    from voice.stt import STTSettings, Transcriber

    settings = load_settings()
    transcriber, smart_turn = Transcriber(STTSettings()), SmartTurnModel()
    try:
        item = Item("slow-pause", "clauses", "jm_kumo",
                    ("Je voudrais savoir le plafond de chiffre d'affaires.", "Pour une activité de services."),
                    pauses=(1.2,))
        audio = Renderer(ROOT / "var" / "bench-turns" / "audio").render(item, tail_s=4.0).audio
        slow = settings.slow.end_of_turn(settings.turn)
        heard = asyncio.run(_play((transcriber, smart_turn), audio, transcripts=1,
                                  first=SlowSpeechFrame(on=True), slow_settings=slow))
        texts = [t.text for t in heard.transcripts()]
        assert len(texts) == 1 and "services" in texts[0].lower(), texts
        # the normal pace answers the first sentence: the caller would be cut (and merged back)
        normal = asyncio.run(_play((transcriber, smart_turn), audio, transcripts=2))
        assert len(normal.transcripts()) == 2, [t.text for t in normal.transcripts()]
    finally:
        transcriber.close()
        smart_turn.close()


def test_slow_settings_are_more_patient_than_the_normal_ones():
    settings = load_settings()
    slow = settings.slow.end_of_turn(settings.turn)
    assert slow.complete_s >= 1.2 + 0.2 and slow.max_wait_s >= settings.turn.max_wait_s
    assert settings.slow.no_input_s > settings.call.no_input_s
    assert 1.1 <= 1 / settings.slow.speed <= 1.2   # the length scale the research advises
    assert re.fullmatch(r"[0-9*#]", DialogueSettings().slow_key)


@pytest.mark.parametrize(("speed", "slow"), [(1.0, False), (0.65, True)])
async def test_a_caller_who_speaks_slowly_is_spoken_to_slowly(conv, tmp_path, speed, slow):
    """Two turns voiced by Kokoro voices the bot does not use, at their own pace and about
    half as fast: the pace is measured on the audio (voiced seconds) and the transcript,
    as the turn transcriber and the dialogue processor measure it."""
    from bot.call_log import CallLog
    from bot.processors.dialogue import DialogueProcessor
    from bot.store import Store
    from models.kokoro import kokoro_files
    from voice.codecs import resample
    from voice.slow_speech import voiced_seconds
    from voice.speech_engines import KokoroEngine, SpeechStyle
    from voice.text_for_speech import speakable

    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'calls.sqlite3'}")
    await store.create_schema()
    call = CallLog(store, await store.open_call("sip", caller=None))
    processor = DialogueProcessor(conversation=conv, call=call)
    conv.start()
    turns = ["je voudrais savoir quel est le plafond de chiffre d'affaires",
             "et pour une activité de vente de marchandises c'est combien"]
    for voice, text in zip(("jm_kumo", "jf_nezumi"), turns, strict=True):
        engine = KokoroEngine(kokoro_files(), voice, threads=2)
        audio = resample(engine.synthesize(speakable(text), SpeechStyle(speed=speed)), engine.sample_rate, 16000)
        processor._follow_pace(text, {"voiced_s": voiced_seconds(audio.astype(np.int16).tobytes())})
    assert conv.slow is slow
    if slow:
        assert (await conv.on_text(turns[0])).slow_reason == "caller_pace"
    await store.close()


# ------------------------------------------------------------------ a preference kept, with consent


async def test_a_caller_who_needed_it_is_asked_once_before_goodbye(conv, knowledge):
    conv.may_remember_slow = True
    conv.start()
    await conv.on_text(QUESTION)
    await conv.on_text("parlez plus lentement")
    asked = await conv.on_text("merci, au revoir")
    assert conv.state is State.REMEMBER_SLOW and not asked.ended and asked.awaiting == "confirmation"
    assert "prochains appels" in _said(asked)
    kept = await conv.on_text("oui s'il vous plaît")
    assert kept.ended and kept.remember_slow is True


@pytest.mark.parametrize("answer", ["non merci", "euh je sais pas", "2"])
async def test_nothing_is_kept_without_a_clear_yes(conv, answer):
    conv.may_remember_slow = True
    conv.start()
    await conv.on_dtmf("*")
    await conv.on_text("au revoir")
    assert conv.state is State.REMEMBER_SLOW
    reply = await (conv.on_dtmf(answer) if answer.isdigit() else conv.on_text(answer))
    assert reply.ended and reply.remember_slow is None


async def test_not_asked_when_the_mode_was_not_needed_or_cannot_be_kept(conv, knowledge, router):
    conv.may_remember_slow = True
    conv.start()
    assert (await conv.on_text("au revoir")).ended           # never slow: nothing to ask
    other = Conversation(session_id="o", knowledge=knowledge, router=router, keywords=Keywords())
    other.start()
    await other.on_text("parlez plus lentement")
    assert (await other.on_text("au revoir")).ended          # no number (browser, text): nothing to keep


async def test_a_kept_preference_is_withdrawn_by_asking_for_the_normal_pace(conv, knowledge):
    conv.slow_preference = True
    conv.set_slow(True, "preference")
    greeting = conv.start()
    assert greeting.slow and greeting.slow_reason == "preference"
    reply = await conv.on_text("parlez normalement s'il vous plaît")
    assert not reply.slow and reply.remember_slow is False
    assert knowledge.prompts["slow_speech"]["forgotten"] in reply.texts
    assert (await conv.on_text("au revoir")).ended               # and not asked again


async def test_the_store_keeps_a_keyed_hash_and_the_retention_deletes_it(tmp_path):
    from datetime import UTC, datetime, timedelta

    from bot.preferences import caller_key
    from bot.retention import RetentionSettings, purge
    from bot.store import Store

    key = caller_key("+33 6 12 34 56 78", "a secret")
    assert key == caller_key("06 12 34 56 78", "a secret") != caller_key("06 12 34 56 78", "another secret")
    assert "612345678" not in key and len(key) == 64
    assert caller_key("06 12 34 56 78", "") is None and caller_key("anonymous", "a secret") is None
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'calls.sqlite3'}")
    await store.create_schema()
    try:
        assert not await store.slow_preference(key)
        await store.set_slow_preference(key, True)
        assert await store.slow_preference(key)
        await store.set_slow_preference(key, False)
        assert not await store.slow_preference(key)
        await store.set_slow_preference(key, True)
        settings = RetentionSettings()
        kept = await purge(store, tmp_path / "recordings", settings)
        assert kept.preferences == 0 and await store.slow_preference(key)
        later = datetime.now(UTC) + timedelta(days=settings.preferences_days + 1)
        assert (await purge(store, tmp_path / "recordings", settings, now=later)).preferences == 1
        assert not await store.slow_preference(key)
    finally:
        await store.close()

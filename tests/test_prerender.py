"""No reply waits seconds for synthesis: every text the bot can say without a value is in
what `callbot models provision` pre-renders (Knowledge.spoken_texts), and what is not is
rendered clause by clause, each clause while the one before it plays.

What the conversation can say is found here without spoken_texts: by walking the data
files (every string of prompts.yaml, every spoken field of the flows, every answer) and by
driving the conversation itself (clarifying questions, re-prompts, goodbyes). The timing
tests use the real Kokoro voice on one thread, as during calls.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from contextlib import aclosing
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from flows.engine import Conversation, DialogueSettings, Keywords
from flows.knowledge import DATA_DIR, Knowledge, load_knowledge
from flows.router import Route
from flows.slots import parse_speech
from models.kokoro import kokoro_files
from models.piper import PACKAGED_TEST_VOICE, find_piper_voice
from voice.speech_engines import KokoroEngine, PiperEngine, SpeechEngine, SpeechStyle
from voice.speech_renderer import PIPELINE_RATE, SpeechRenderer
from voice.text_for_speech import clauses, leading_clauses

BOT_VOICE = "jf_gongitsune"
STYLE = SpeechStyle()


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    return load_knowledge()


@pytest.fixture(scope="module")
def prerendered(knowledge) -> set[str]:
    """The clauses `callbot models provision` puts in the audio cache (without --answers)."""
    return {c for text in knowledge.spoken_texts(answers=False) for c in clauses(text)}


def strings(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings(value, (*path, i))
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, (*path, key))


def value_free(text: str) -> list[str]:
    """The clauses of a text, or of a template those without a value ("{slot}")."""
    return [c for c in clauses(text) if "{" not in c]


def said_clauses(texts: list[str]) -> list[str]:
    """A reply's clauses as the TTS gets them: the texts joined, then cut (dialogue.py)."""
    return clauses(" ".join(texts))


# ------------------------------------------------- what is pre-rendered: the data


def test_every_string_of_the_prompts_is_prerendered(prerendered):
    raw = yaml.safe_load((DATA_DIR / "prompts.yaml").read_text("utf-8"))
    found = list(strings(raw))
    assert len(found) > 30
    missing = [(path, c) for path, text in found for c in value_free(text) if c not in prerendered]
    assert not missing, missing


# Keys of the flow files that are never said: names, labels, parsers, conditions, handoffs.
NOT_SAID = frozenset({"description", "id", "ask", "parser", "action", "use", "goto", "clear", "when",
                      "handoff", "end"})


def test_every_text_of_the_flows_is_prerendered(prerendered):
    found = []
    for path in sorted((DATA_DIR / "flows").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text("utf-8"))
        found += [(path.name, keys, " ".join(text.split())) for keys, text in strings(raw)
                  if not NOT_SAID & {k for k in keys if isinstance(k, str)}]
    assert len(found) > 10
    missing = [(name, keys, c) for name, keys, text in found for c in value_free(text) if c not in prerendered]
    assert not missing, missing


def test_every_answer_starts_from_the_cache(prerendered):
    answers = []
    for path in sorted((DATA_DIR / "questions").glob("*.yaml")):
        for qt in yaml.safe_load(path.read_text("utf-8"))["question_types"]:
            if qt.get("answer"):
                answers.append((qt["id"], " ".join(qt["answer"]["text"].split())))
    assert len(answers) > 100
    assert not [(i, clauses(t)[0]) for i, t in answers if clauses(t)[0] not in prerendered]
    # And as many clauses after it as it takes for the rest to be rendered while they play.
    assert not [(i, c) for i, t in answers for c in leading_clauses(t) if c not in prerendered]


def test_with_answers_every_clause_of_every_answer_is_prerendered(knowledge):
    everything = {c for text in knowledge.spoken_texts(answers=True) for c in clauses(text)}
    assert not [c for qt in knowledge.question_types.values() if qt.answer
                for c in clauses(qt.answer.text) if c not in everything]


def test_a_value_free_text_keeps_its_clauses_when_replies_are_joined(knowledge):
    # Replies are joined into one text for the TTS: a text that did not end its sentence
    # would run into the next one and make a clause the cache does not have. (Names and
    # options composed into a sentence, such as team names, start in lower case; a template
    # ending on its value, such as the passage read by the fallback, ends with that value.)
    texts = [t for _, t in strings(knowledge.prompts) if t[:1].isupper() and not t.endswith("}")]
    for flow in knowledge.flows.values():
        texts += [t for s in flow.steps for t in (s.say, s.prompt, s.keypad, s.confirm, *s.retry) if t]
    texts += [qt.answer.text for qt in knowledge.question_types.values() if qt.answer]
    for text in texts:
        assert clauses(f"{text} Suite.") == [*clauses(text), "Suite."], text


# ------------------------------------------ what is pre-rendered: the conversation


class ScriptedRouter:
    """Routes every text to what the test sets, as the real router would answer it."""

    def __init__(self) -> None:
        self.route_to = Route(intent=None, score=0.01, reason="low_confidence")

    def route(self, text: str, among: tuple[str, str] | None = None) -> Route:
        return self.route_to

    def about_own_file(self, text: str) -> bool:
        return False


@pytest.fixture(scope="module")
def keywords() -> Keywords:
    return Keywords()


@pytest.fixture
def conversation(knowledge, keywords):
    def make(router: ScriptedRouter, *, recorded: bool = True) -> Conversation:
        return Conversation(session_id="prerender-test", knowledge=knowledge, router=router,  # type: ignore[arg-type]
                            keywords=keywords, actions=None, settings=DialogueSettings(recorded=recorded))
    return make


async def test_every_clarifying_question_is_prerendered(knowledge, conversation, prerendered):
    ids = list(knowledge.question_types)
    router = ScriptedRouter()
    missing = []
    for first, second in zip(ids, ids[1:] + ids[:1], strict=True):
        conv = conversation(router)
        router.route_to = Route(intent=None, score=0.4, runner_up=second, clarify=(first, second), reason="clarify")
        reply = await conv.on_text("une question entre deux sujets proches")
        assert reply.texts, (first, second)
        missing += [(first, second, c) for c in said_clauses(reply.texts) if c not in prerendered]
        # The choice not understood: asked again, from the cache too.
        router.route_to = Route(intent=None, score=0.01, reason="low_confidence")
        again = await conv.on_text("je ne sais pas trop")
        missing += [(first, second, c) for c in said_clauses(again.texts) if c not in prerendered]
    assert not missing, missing[:10]


async def test_the_conversation_says_nothing_without_a_value_that_is_not_prerendered(
        knowledge, conversation, prerendered):
    """Greetings, re-prompts, offers of a human, 'no sure answer', goodbyes, keypad and flow
    re-prompts: the whole reply from the cache; an answer: its leading clauses; a read-back:
    all but the value's own clause, which is short."""
    router = ScriptedRouter()
    said: list[tuple[str, list[str]]] = []

    def hear(step: str, texts: list[str]) -> None:
        said.append((step, said_clauses(texts)))

    for recorded in (True, False):
        hear("greeting", conversation(router, recorded=recorded).start().texts)
    conv = conversation(router)
    for i in range(4):
        hear(f"not understood {i}", (await conv.on_text("bla")).texts)
    hear("answer to the offer not understood", (await conv.on_text("peut-être")).texts)
    hear("offer declined", (await conv.on_text("non")).texts)
    hear("question with no sure answer", (await conv.on_text("est-ce que vous vendez des billets de train")).texts)
    for i in range(3):
        hear(f"silence {i}", (await conv.on_no_input()).texts)
    conv = conversation(router)
    hear("key", (await conv.on_dtmf("7")).texts)
    hear("human", (await conv.on_text("je veux parler à un conseiller")).texts)
    hear("waiting", (await conv.on_no_input()).texts)
    hear("transfer failed", conv.on_transfer_failed().texts)
    hear("goodbye", (await conv.on_text("merci au revoir")).texts)
    # Waiting for an agent: the place (a value) and the wait, nobody in time, the callback.
    conv = conversation(router)
    await conv.on_text("je veux parler à un conseiller")
    place = conv.on_queue_position(3, 200).texts
    said.append(("queue place", [c for c in said_clauses(place) if not any(d.isdigit() for d in c)]))
    hear("nobody in time", conv.on_no_agent().texts)
    hear("callback: the number", (await conv.on_text("oui")).texts)
    hear("callback: the number again", (await conv.on_text("je ne sais plus")).texts)
    hear("distress", (await conversation(router).on_text("je n'en peux plus, je veux mourir")).texts)

    # A flow: the SIRET not understood until the keypad and a human; then read back.
    router.route_to = Route(intent="solde_compte", score=0.99)
    conv = conversation(router)
    hear("flow start", (await conv.on_text("combien je dois à l'Urssaf en ce moment")).texts)
    router.route_to = Route(intent=None, score=0.01, reason="low_confidence")
    for i in range(4):
        hear(f"value not understood {i}", (await conv.on_text("je ne sais plus")).texts)
    router.route_to = Route(intent="solde_compte", score=0.99)
    conv = conversation(router)
    await conv.on_text("combien je dois à l'Urssaf en ce moment")
    siret = parse_speech("siret", "7 3 2 8 2 9 3 2 0 0 0 0 7 4", today=date.today())
    assert siret is not None

    def hear_with_value(step: str, texts: list[str]) -> None:
        parts = said_clauses(texts)
        values = [c for c in parts if siret.spoken in c or c.rstrip(".?!,:; ") in siret.spoken]
        assert all(len(c) < 100 for c in values), values  # rendered while the clause before plays
        said.append((step, [c for c in parts if c not in values]))

    hear_with_value("read-back", (await conv.on_text("7 3 2 8 2 9 3 2 0 0 0 0 7 4")).texts)
    hear("read-back denied", (await conv.on_text("non")).texts)
    await conv.on_text("7 3 2 8 2 9 3 2 0 0 0 0 7 4")
    hear_with_value("read-back unclear", (await conv.on_text("euh là je sais pas trop")).texts)

    # A knowledge-base answer: its leading clauses, then "anything else?".
    qt = next(q for q in knowledge.question_types.values() if q.answer and not (q.flow or q.action or q.handoff))
    router.route_to = Route(intent=qt.id, score=0.99)
    reply = said_clauses((await conversation(router).on_text("une question du site")).texts)
    assert reply[: len(leading_clauses(qt.answer.text))] == leading_clauses(qt.answer.text)
    said.append(("answer", reply[: len(leading_clauses(qt.answer.text))] + reply[len(clauses(qt.answer.text)):]))

    assert sum(len(c) for _, c in said) > 30
    missing = [(step, c) for step, cs in said for c in cs if c not in prerendered]
    assert not missing, missing


async def test_in_slow_speech_nothing_without_a_value_waits_for_synthesis(knowledge, conversation):
    """A caller in slow speech (an older caller, one who asked for it) hears the slow
    wording in the slow style: its re-prompts, clarifying questions, offers of a human,
    goodbyes and the first sentence of each answer come from what provisioning renders in
    that style too (Knowledge.slow_spoken_texts)."""
    prerendered_slow = {c for text in knowledge.slow_spoken_texts() for c in clauses(text)}
    router = ScriptedRouter()
    said: list[tuple[str, list[str]]] = []

    def slow(conv: Conversation) -> Conversation:
        conv.set_slow(True, "asked")
        return conv

    def hear(step: str, texts: list[str]) -> None:
        said.append((step, said_clauses(texts)))

    conv = slow(conversation(router))
    for i in range(4):
        hear(f"not understood {i}", (await conv.on_text("bla")).texts)
    hear("offer declined", (await conv.on_text("non")).texts)
    hear("question with no sure answer", (await conv.on_text("est-ce que vous vendez des billets de train")).texts)
    for i in range(3):
        hear(f"silence {i}", (await conv.on_no_input()).texts)
    conv = slow(conversation(router))
    hear("human", (await conv.on_text("je veux parler à un conseiller")).texts)
    hear("goodbye", (await slow(conversation(router)).on_text("merci au revoir")).texts)
    for first, second in itertools.pairwise(list(knowledge.question_types)[:21]):
        router.route_to = Route(intent=None, score=0.4, runner_up=second, clarify=(first, second), reason="clarify")
        hear(f"clarify {first} / {second}", (await slow(conversation(router)).on_text("une question")).texts)
    router.route_to = Route(intent="solde_compte", score=0.99)
    conv = slow(conversation(router))
    hear("flow start", (await conv.on_text("combien je dois à l'Urssaf en ce moment")).texts)
    router.route_to = Route(intent=None, score=0.01, reason="low_confidence")
    for i in range(3):
        hear(f"value not understood {i}", (await conv.on_text("je ne sais plus")).texts)
    answered = [q for q in knowledge.question_types.values() if q.answer and not (q.flow or q.action or q.handoff)]
    for qt in answered:
        router.route_to = Route(intent=qt.id, score=0.99)
        said.append((f"answer {qt.id}", said_clauses((await slow(conversation(router)).on_text("une question")).texts)[:1]))

    assert len(answered) > 100 and sum(len(c) for _, c in said) > 150
    missing = [(step, c) for step, cs in said for c in cs if c not in prerendered_slow]
    assert not missing, missing[:10]


# ---------------------------------------------- with the real voice (Kokoro, 1 thread)


class TimedEngine:
    """The real engine, noting when each clause's synthesis started and ended."""

    def __init__(self, engine: SpeechEngine) -> None:
        self._engine = engine
        self.name = engine.name
        self.sample_rate = engine.sample_rate
        self.calls: list[tuple[str, float, float]] = []

    def synthesize(self, text: str, style: SpeechStyle) -> np.ndarray:
        start = time.monotonic()
        audio = self._engine.synthesize(text, style)
        self.calls.append((text, start, time.monotonic()))
        return audio


@pytest.fixture(scope="module")
def kokoro() -> KokoroEngine:
    return KokoroEngine(kokoro_files(), BOT_VOICE, threads=1)


def seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / PIPELINE_RATE


async def play(renderer: SpeechRenderer, text: str) -> tuple[float, list[tuple[float, float, float]]]:
    """Streams `text` as a caller hears it, each block played before the next is asked for:
    the start, and for each block when it was asked for, when it came and how long it plays."""
    started = time.monotonic()
    blocks = []
    async with aclosing(renderer.stream(text, STYLE)) as stream:
        asked = time.monotonic()
        async for pcm in stream:
            came = time.monotonic()
            blocks.append((asked, came, seconds(pcm)))
            await asyncio.sleep(seconds(pcm))
            asked = time.monotonic()
    return started, blocks


async def test_provisioned_replies_are_said_from_the_cache(knowledge, kokoro, conversation, tmp_path):
    """Provisioning (what spoken_texts gives, into an empty cache) then replies composed
    by the conversation: every clause comes from the cache, none is synthesised."""
    router = ScriptedRouter()
    ids = list(knowledge.question_types)
    router.route_to = Route(intent=None, score=0.4, runner_up=ids[1], clarify=(ids[0], ids[1]), reason="clarify")
    clarifying = " ".join((await conversation(router).on_text("une question entre deux sujets")).texts)
    router.route_to = Route(intent=None, score=0.01, reason="low_confidence")
    no_answer = " ".join((await conversation(router).on_text("est-ce que vous vendez des billets de train")).texts)
    replies = [clarifying, no_answer]
    wanted = {c for r in replies for c in clauses(r)}
    sample = [c for t in knowledge.spoken_texts(answers=False) for c in clauses(t) if c in wanted]
    assert set(sample) == wanted

    provisioning = SpeechRenderer(kokoro, tmp_path)
    started = time.monotonic()
    rendered = provisioning.prerender(sample, STYLE, workers=2)
    print(f"provisioned {rendered} clauses in {time.monotonic() - started:.1f} s")
    assert rendered == len(wanted)

    engine = TimedEngine(kokoro)
    renderer = SpeechRenderer(engine, tmp_path)
    for reply in replies:
        assert renderer.is_cached(reply, STYLE), reply
        started, blocks = await play(renderer, reply)
        assert len(blocks) == len(clauses(reply))
        assert blocks[0][1] - started < 0.25
        assert all(came - asked < 0.25 for asked, came, _ in blocks)
    assert engine.calls == []


# Written for these tests, not from the knowledge base: never in any cache.
LONG_FIRST = ("Vous pouvez déposer votre demande dans votre espace en ligne, à la rubrique des messages. "
              "Un conseiller vous répond en quelques jours. Gardez bien le numéro de votre demande.")
SHORT_FIRST = ("Oui, c'est possible. Vous pouvez faire la démarche depuis votre espace en ligne, rubrique "
               "« mes démarches ». La réponse arrive ensuite par message, dans un délai de quelques jours.")


async def test_the_next_clause_renders_while_the_one_before_plays(kokoro, tmp_path):
    assert len(clauses(LONG_FIRST)) == 3
    engine = TimedEngine(kokoro)
    renderer = SpeechRenderer(engine, tmp_path)
    pieces = renderer.pieces(LONG_FIRST, STYLE)   # not in the cache: the first sentence from its comma
    assert len(pieces) == 4
    _, blocks = await play(renderer, LONG_FIRST)
    assert len(blocks) == len(engine.calls) == len(pieces)
    for n in range(1, len(pieces)):
        _, start, end = engine.calls[n]
        asked, came, _ = blocks[n]
        previous_came, previous_plays = blocks[n - 1][1], blocks[n - 1][2]
        rendering, waited = end - start, came - asked
        print(f"clause {n + 1}: rendered in {rendering:.2f} s (real-time factor {rendering / blocks[n][2]:.2f}), "
              f"started {start - previous_came:+.2f} s after clause {n} came, "
              f"waited {waited:.2f} s after clause {n} had played ({previous_plays:.2f} s)")
        # Started as soon as clause N was handed over, not once it had been played...
        assert start < previous_came + 0.2 < previous_came + previous_plays
        # ...so the caller waits for it only what its rendering takes beyond clause N's
        # playing: nothing at all when the CPU renders it in less time than clause N plays
        # (on a machine so busy that it does not, the wait is still cut by that time).
        assert waited < max(0.25, rendering - 0.8 * previous_plays)
        if rendering < previous_plays - 0.25:
            assert waited < 0.25


async def test_first_audio_of_an_uncached_answer_is_its_first_clause(kokoro, tmp_path):
    parts = clauses(SHORT_FIRST)
    assert len(parts) == 3 and len(parts[0]) < len(parts[1]) and len(parts[0]) < len(parts[2])
    engine = TimedEngine(kokoro)
    started, blocks = await play(SpeechRenderer(engine, tmp_path), SHORT_FIRST)
    first_audio = blocks[0][1] - started
    first_clause = engine.calls[0][2] - engine.calls[0][1]
    whole = sum(end - start for _, start, end in engine.calls)
    print(f"first audio after {first_audio:.2f} s; first clause rendered in {first_clause:.2f} s, "
          f"the whole text in {whole:.2f} s")
    assert first_audio < first_clause + 0.3
    assert first_audio < 0.5 * whole


async def test_an_interrupted_reply_stops_rendering(tmp_path):
    path = find_piper_voice(PACKAGED_TEST_VOICE)
    assert path is not None
    engine = TimedEngine(PiperEngine(path))
    renderer = SpeechRenderer(engine, tmp_path)
    text = "One. Two, three. Four, five, six. Seven, eight, nine, ten. Eleven, twelve."
    async with aclosing(renderer.stream(text, STYLE)) as stream:
        async for _ in stream:
            break  # the caller speaks over the first clause
    await asyncio.sleep(1.0)  # longer than the clause that was under way takes
    rendered = len(engine.calls)
    assert rendered <= 2
    # What was rendered is cached; what was not is rendered the next time.
    assert renderer.prerender([text], STYLE) == len(clauses(text)) - rendered


def test_clauses_render_side_by_side_into_one_cache(tmp_path: Path):
    path = find_piper_voice(PACKAGED_TEST_VOICE)
    assert path is not None
    texts = ["Hello. How can I help you today?", "Thank you for calling. Goodbye.", "Hello. Please hold."]
    renderer = SpeechRenderer(PiperEngine(path), tmp_path)
    assert renderer.prerender(texts, STYLE, workers=2) == 5  # "Hello." once
    assert all(renderer.is_cached(t, STYLE) for t in texts)
    assert not list((tmp_path / renderer.engine.name).glob("*.tmp"))
    assert renderer.prerender(texts, STYLE, workers=2) == 0

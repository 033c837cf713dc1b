"""The conversation of one call or chat session: from caller input to the bot's replies.

Knows no audio and no channel: voice and text both drive it with text, keypad
digits and "nothing heard".
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from flows.action_client import ActionClient, ActionUnavailable
from flows.fallback import Fallback, NoAnswer
from flows.flow_runner import FlowOutput, FlowRunner
from flows.knowledge import DATA_DIR, Knowledge
from flows.router import IntentRouter
from flows.slots import mentions_number

log = logging.getLogger("callbot.flows.engine")

MAX_NO_MATCH = 2
MAX_NO_INPUT = 3
MAX_KEYS = 32
# A question this long that the router rejects is a real question outside the knowledge
# base (-> the fallback hook), not a misheard fragment (-> "could you repeat?").
FALLBACK_MIN_WORDS = 5
# A caller asked for a value who asks another question instead ("attendez, c'est quoi le
# plafond ?"): that question is answered when it has this many words, no number (a number
# is an attempt at the value, however misheard) and routes with at least this probability.
DIGRESSION_MIN_WORDS = 4
DIGRESSION_MIN_SCORE = 0.9


class State(Enum):
    QUESTION = "question"
    FLOW = "flow"                 # a flow is collecting slots or running
    CLARIFY = "clarify"           # two question types were close: which one?
    ANYTHING_ELSE = "anything_else"
    OFFER_HUMAN = "offer_human"
    HANDOFF = "handoff"
    WITH_AGENT = "with_agent"     # a human has taken the call: the bot only listens
    ENDED = "ended"


@dataclass(frozen=True)
class Handoff:
    team: str
    reason: str


@dataclass
class Reply:
    texts: list[str]
    intent: str | None = None
    score: float | None = None
    team: str | None = None
    handoff: Handoff | None = None
    awaiting: str | None = None
    ended: bool = False


@dataclass(frozen=True)
class DialogueSettings:
    recorded: bool = True


class Keywords:
    def __init__(self, path: Path = DATA_DIR / "keywords.yaml") -> None:
        raw = yaml.safe_load(path.read_text("utf-8"))
        self._patterns = {
            str(k): re.compile("|".join(f"(?:{p.strip()})" for p in ([v] if isinstance(v, str) else v)),
                               re.IGNORECASE)
            for k, v in raw.items()}

    def match(self, name: str, normalized: str) -> bool:
        return bool(self._patterns[name].search(normalized))


def normalize(text: str) -> str:
    """Lowercase, no accents, punctuation and apostrophes as spaces."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


_POLITENESS = re.compile(r"\b(s il vous plait|s il te plait|excusez moi|excuse moi|madame|monsieur|merci)\b")


def _without_politeness(said: str) -> str:
    return " ".join(_POLITENESS.sub(" ", said).split())


@dataclass
class Conversation:
    session_id: str
    knowledge: Knowledge
    router: IntentRouter
    keywords: Keywords
    actions: ActionClient | None = None
    settings: DialogueSettings = field(default_factory=DialogueSettings)
    fallback: Fallback = field(default_factory=NoAnswer)
    state: State = State.QUESTION
    team: str | None = None
    no_match: int = 0
    no_input: int = 0
    last_texts: list[str] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)   # never logged: may hold identifiers
    last_intent: str | None = None
    flow: FlowRunner | None = None
    keys: str = ""                                        # keypad entry before '#'
    choices: tuple[str, str] | None = None                # the two types of a clarifying question

    def _reply(self, texts: list[str], **kwargs) -> Reply:
        kwargs.setdefault("team", self.team)
        awaiting = None
        if self.state in (State.ANYTHING_ELSE, State.OFFER_HUMAN):
            awaiting = "confirmation"
        elif self.state is State.FLOW and self.flow is not None:
            awaiting = "keypad_or_speech" if self.flow.keypad_entry else "confirmation"
        elif self.state is State.CLARIFY:
            awaiting = "choice"
        kwargs.setdefault("awaiting", awaiting)
        kwargs.setdefault("ended", self.state is State.ENDED)
        self.last_texts = texts
        return Reply(texts=texts, **kwargs)

    def start(self) -> Reply:
        g = self.knowledge.prompts["greeting"]
        recorded = g["recorded"] if self.settings.recorded else g["not_recorded"]
        return self._reply([g["intro"], g["human"], recorded, g["question"]])

    async def on_text(self, text: str) -> Reply:
        said = normalize(text)
        if self.state in (State.ENDED, State.WITH_AGENT):
            return self._reply([])
        if not said:
            return self._not_understood()
        self.no_input = 0
        if self.keywords.match("distress", said):
            return self._handoff("difficultes", "detresse", self.knowledge.prompt("distress"))
        if self.keywords.match("human", said):
            return self._handoff(self.team or "accueil", "demande_conseiller")
        if self.state is State.HANDOFF:
            return self._reply([self.knowledge.prompt("handoff_waiting")])
        if self.keywords.match("goodbye", said) or (
            self.state is State.ANYTHING_ELSE and self.keywords.match("deny", said)
        ):
            return self._end("goodbye")
        if self.state is State.OFFER_HUMAN:
            if self.keywords.match("affirm", said):
                return self._handoff(self.team or "accueil", "non_compris")
            if self.keywords.match("deny", said):
                self.state = State.QUESTION
                self.no_match = 0
                return self._reply([self.knowledge.prompt("listening")])
        if self.keywords.match("repeat", said) and len(_without_politeness(said).split()) <= 10 and self.last_texts:
            return self._reply(list(self.last_texts))
        if self.state is State.FLOW and self.flow is not None:
            digression = await self._digression(text, said)
            if digression is not None:
                return digression
            return self._flow_reply(await self.flow.on_text(text, date.today()))
        if self.state is State.CLARIFY and self.choices is not None:
            return await self._clarified(text, said)
        if self.state is State.ANYTHING_ELSE and self.keywords.match("affirm", said) and len(said.split()) <= 3:
            self.state = State.QUESTION
            return self._reply([self.knowledge.prompt("listening")])
        return await self._answer_question(text)

    async def _answer_question(self, text: str, among: tuple[str, str] | None = None) -> Reply:
        route = await asyncio.to_thread(self.router.route, text, among)
        log.info("session %s routed to %s (%.3f, %s)", self.session_id, route.intent, route.score, route.reason)
        if route.clarify is not None and among is None:
            first, second = (self.knowledge.question_types[q].description for q in route.clarify)
            self.state, self.choices = State.CLARIFY, route.clarify
            return self._reply([self.knowledge.prompt("clarify").format(first=_lower_first(first),
                                                                         second=_lower_first(second))],
                               score=route.score)
        min_score = self.knowledge.question_types[route.intent].min_score if route.intent else None
        if min_score is not None and route.score < min_score:
            log.info("session %s: %s below its own minimum (%.3f)", self.session_id, route.intent, route.score)
            return self._not_understood(score=route.score)
        if route.intent is None:
            if len(text.split()) >= FALLBACK_MIN_WORDS and self.state is not State.OFFER_HUMAN:
                return await self._fallback(text, route.score)
            return self._not_understood(score=route.score)
        return await self._start_question(route.intent, text, route.score)

    async def _digression(self, text: str, said: str) -> Reply | None:
        """Another question asked in the middle of a flow, or None when `text` is to be taken
        as the flow's answer. A question with a plain answer is answered and the flow goes on
        (once: a second one means the caller has moved on, and the flow is left); one that
        starts its own flow, action or handoff replaces the flow."""
        assert self.flow is not None
        if (len(said.split()) < DIGRESSION_MIN_WORDS or mentions_number(said)
                or self.flow.understands(text, date.today())):
            return None
        route = await asyncio.to_thread(self.router.route, text)
        if route.intent is None or route.intent == self.last_intent or route.score < DIGRESSION_MIN_SCORE:
            return None
        log.info("session %s: another question during the flow of %s: %s (%.3f)",
                 self.session_id, self.last_intent, route.intent, route.score)
        qt = self.knowledge.question_types[route.intent]
        if qt.answer and not (qt.flow or qt.action or qt.handoff_reason) and not self.flow.interrupted:
            self.flow.interrupted = True
            texts = await self._answer_texts(qt.id, text)
            resume = [self.knowledge.prompt("resume_flow"), *self.flow.repeat_question()]
            return self._reply(texts + resume, intent=qt.id, score=route.score)
        self.flow = None
        return await self._start_question(route.intent, text, route.score)

    async def _clarified(self, text: str, said: str) -> Reply:
        assert self.choices is not None
        choices, self.choices = self.choices, None
        self.state = State.QUESTION
        ordinal = re.search(r"\b(premier|premiere|1er|un)\b|\b(deuxieme|second|seconde|autre|deux)\b", said)
        if ordinal and len(said.split()) <= 4:
            return await self._start_question(choices[0] if ordinal.group(1) else choices[1], text, None)
        return await self._answer_question(text, among=choices)

    async def _fallback(self, text: str, score: float) -> Reply:
        answer = await self.fallback.answer(text, session_id=self.session_id)
        if answer:
            self.state = State.ANYTHING_ELSE
            return self._reply([answer, self.knowledge.prompt("anything_else")], score=score)
        self.state = State.OFFER_HUMAN
        return self._reply([self.knowledge.prompt("fallback_unknown")], score=score)

    async def _start_question(self, intent: str, text: str, score: float | None) -> Reply:
        qt = self.knowledge.question_types[intent]
        self.team = qt.team
        self.last_intent = qt.id
        self.no_match = 0
        if qt.handoff_reason:
            prompt = "distress" if qt.team == "difficultes" else "handoff"
            reply = self._handoff(qt.team, qt.handoff_reason, self.knowledge.prompt(prompt))
        elif qt.flow:
            self.flow = FlowRunner(self.knowledge, qt.flow, session_id=self.session_id, team=qt.team,
                                   slots=self.slots, actions=self.actions, latest_text=text, intent=qt.id)
            reply = self._flow_reply(await self.flow.start())
        else:
            texts = await self._answer_texts(qt.id, text)
            self.state = State.ANYTHING_ELSE
            reply = self._reply(texts + [self.knowledge.prompt("anything_else")])
        reply.intent, reply.score = qt.id, score
        return reply

    async def _answer_texts(self, intent: str, text: str) -> list[str]:
        qt = self.knowledge.question_types[intent]
        if qt.action and self.actions is not None:
            try:
                result = await self.actions.run(
                    qt.action, sender_id=self.session_id, slots=dict(self.slots),
                    latest_text=text, intent=intent,
                )
                if result.texts:
                    return result.texts
            except ActionUnavailable as e:
                log.warning("session %s: %s", self.session_id, e)
        if qt.answer:
            return [qt.answer.text]
        return [self.knowledge.prompt("action_unavailable")]

    def _flow_reply(self, out: FlowOutput) -> Reply:
        if out.handoff is not None:
            self.flow = None
            team = out.handoff.team or self.team or "accueil"
            return self._handoff(team, out.handoff.reason,
                                 " ".join([*out.texts, self.knowledge.prompt("handoff_waiting")]))
        if out.finished:
            self.flow = None
            self.state = State.ANYTHING_ELSE
            return self._reply([*out.texts, self.knowledge.prompt("anything_else")])
        self.state = State.FLOW
        return self._reply(out.texts)

    def _not_understood(self, score: float | None = None) -> Reply:
        if self.state is State.OFFER_HUMAN:
            return self._reply([self.knowledge.prompt("confirm_retry")], score=score)
        self.no_match += 1
        if self.no_match > MAX_NO_MATCH:
            self.state = State.OFFER_HUMAN
            return self._reply([self.knowledge.prompt("offer_human")], score=score)
        return self._reply([self.knowledge.prompt("no_match", self.no_match - 1)], score=score)

    def _handoff(self, team: str, reason: str, text: str | None = None) -> Reply:
        self.state = State.HANDOFF
        self.flow, self.keys, self.choices = None, "", None
        self.team = team
        return self._reply(
            [text or self.knowledge.prompt("handoff")], handoff=Handoff(team=team, reason=reason)
        )

    def _end(self, prompt: str) -> Reply:
        self.state = State.ENDED
        return self._reply([self.knowledge.prompt(prompt)])

    def agent_briefing(self, handoff: Handoff) -> str:
        """What the agent hears alone before a bridged transfer: team, topic, reason.
        Nothing that identifies the caller."""
        p = self.knowledge.prompts
        b = p["agent_briefing"]
        qt = self.knowledge.question_types.get(self.last_intent or "")
        parts = [b["intro"], b["team"].format(team=p["team_names"].get(handoff.team, handoff.team)),
                 b["topic"].format(topic=qt.description) if qt else b["no_topic"]]
        reason = p["handoff_reasons"].get(handoff.reason)
        if reason:
            parts.append(b["reason"].format(reason=reason))
        return " ".join(parts)

    def on_agent_joined(self) -> None:
        self.state = State.WITH_AGENT

    def on_transfer_failed(self) -> Reply:
        """No agent could take the call: the caller is told so and may go on with the bot."""
        if self.state is not State.HANDOFF:
            return self._reply([])
        self.state = State.ANYTHING_ELSE
        return self._reply([self.knowledge.prompt("transfer_failed")])

    async def on_dtmf(self, digits: str) -> Reply:
        """Keys as they come (one at a time from a phone, or several from the text channel).
        While a flow asks for a number, keys are collected up to '#'; otherwise each key is
        a menu choice: 0 a human, 1 yes, 2 no."""
        if self.state in (State.ENDED, State.WITH_AGENT):
            return self._reply([])
        keys = "".join(c for c in digits if c in "0123456789*#")
        if not keys or len(digits) > MAX_KEYS:
            return self._reply([self.knowledge.prompt("keypad_invalid")])
        if self.state is State.FLOW and self.flow is not None and self.flow.keypad_entry:
            for key in keys:
                if key == "#":
                    entry, self.keys = self.keys, ""
                    return await self._keypad_entry(entry)
                self.keys += key
            if len(self.keys) > MAX_KEYS:
                self.keys = ""
                return self._reply([self.knowledge.prompt("keypad_invalid"), *self.flow.repeat_question()])
            return self._reply([])  # more keys to come
        self.keys = ""
        key = keys[0]
        if key == "0":
            return self._handoff(self.team or "accueil", "demande_conseiller")
        if key in "12" and self.state is State.FLOW and self.flow is not None:
            return self._flow_reply(await self.flow.on_keys(key, date.today()))
        if self.state in (State.ANYTHING_ELSE, State.OFFER_HUMAN) and key in "12":
            return await self.on_text("oui" if key == "1" else "non")
        return self._reply([self.knowledge.prompt("keypad_invalid")])

    async def _keypad_entry(self, entry: str) -> Reply:
        assert self.flow is not None
        self.no_input = 0
        if entry == "0":  # zero alone, then '#' (or a pause): the caller wants a human
            return self._handoff(self.team or "accueil", "demande_conseiller")
        if not entry:
            return self._reply(self.flow.repeat_question())
        return self._flow_reply(await self.flow.on_keys(entry, date.today()))

    async def on_no_input(self) -> Reply:
        if self.state in (State.ENDED, State.WITH_AGENT):
            return self._reply([])
        if self.keys and self.flow is not None:
            # Keys typed then a pause: the entry is taken as if '#' had been pressed.
            entry, self.keys = self.keys, ""
            return await self._keypad_entry(entry)
        if self.state is State.HANDOFF:
            # Holding for a human: silence is expected, a word now and then reassures.
            return self._reply([self.knowledge.prompt("handoff_waiting")])
        self.no_input += 1
        if self.no_input >= MAX_NO_INPUT:
            return self._end("goodbye_no_input")
        question = self.flow.repeat_question() if self.state is State.FLOW and self.flow is not None else []
        return self._reply([self.knowledge.prompt("no_input", self.no_input - 1), *question])


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]

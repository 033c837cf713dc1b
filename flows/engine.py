"""The conversation of one call or chat session: from caller input to the bot's replies.

Knows no audio and no channel: voice and text both drive it with text, keypad
digits and "nothing heard".
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import yaml

from flows.action_client import ActionClient, ActionUnavailable, action_record
from flows.fallback import Fallback, FallbackAnswer
from flows.flow_runner import FlowOutput, FlowRunner
from flows.knowledge import DATA_DIR, Knowledge
from flows.lexical import normalize
from flows.router import IntentRouter, Route
from flows.slots import mentions_number, parse_speech
from flows.slow_wording import slow_wording

log = logging.getLogger("callbot.flows.engine")

MAX_NO_MATCH = 2
MAX_NO_INPUT = 3
# Speech heard that left no words: asked again twice (other words the second time); past
# that, it may be noise, and the no-input re-prompts take over if the caller says nothing.
MAX_NOT_HEARD = 2
MAX_KEYS = 32
# A question this long that the router rejects is a real question outside the knowledge
# base (-> the fallback hook), not a misheard fragment (-> "could you repeat?").
FALLBACK_MIN_WORDS = 5
# A caller asked for yes/no or for a value who says something else ("attendez, c'est quoi
# le plafond ?", "oui, et pour l'attestation ?"): it is a new question when it has this many
# words (besides a leading "oui"/"non"), no number when a flow waits (a number is an
# attempt at the value, however misheard) and routes to a type with at least this
# calibrated probability (and the type's own min_score). Measured on caller-like words
# (tests/test_dialogue.py WAITING_QUESTIONS, WAITING_ANSWERS): questions route at 0.83 to
# 1.0 (one in 18 at 0.66), answers and hesitations ("oui je veux bien", "attendez je cherche
# mes papiers") at 0.25 at most, but for vague words the distress type draws (it asks 0.8).
QUESTION_MIN_WORDS = 4
QUESTION_MIN_SCORE = 0.75
# Words before or between "oui"/"non" that change nothing ("euh oui", "non mais").
_LEAD_WORDS = frozenset({"euh", "heu", "hum", "ben", "bah", "bon", "alors", "ah", "oh", "eh", "et", "mais",
                         "enfin", "donc", "voila", "attendez", "ecoutez", "merci", "madame", "monsieur",
                         "pardon"})


class State(Enum):
    QUESTION = "question"
    FLOW = "flow"                 # a flow is collecting slots or running
    CLARIFY = "clarify"           # two question types were close: which one?
    ANYTHING_ELSE = "anything_else"
    OFFER_HUMAN = "offer_human"
    CHECK_FILE = "check_file"     # "shall I check your file?" after a general answer
    REMEMBER_SLOW = "remember_slow"  # "shall I speak slowly on your next calls?" before goodbye
    HANDOFF = "handoff"           # waiting for a human (in the agents' queue), questions still answered
    CALLBACK_OFFER = "callback_offer"  # no agent now: "shall an agent call you back?"
    WITH_AGENT = "with_agent"     # a human has taken the call: the bot only listens
    ENDED = "ended"


@dataclass(frozen=True)
class Handoff:
    team: str
    reason: str


class AgentDesk(Protocol):
    """Whether a human agent can take this caller now (opening hours, the channel)."""

    def unavailable_message(self) -> str | None:
        """None while agents take calls; otherwise why not, in French, for the caller."""


@dataclass(frozen=True)
class CallbackRequest:
    """A caller asked to be called back by an agent of `team`."""

    team: str
    phone: str          # 10 digits, French
    time_slot: str      # matin | apres_midi | indifferent
    topic: str


@dataclass
class Reply:
    texts: list[str]
    intent: str | None = None
    score: float | None = None
    team: str | None = None
    handoff: Handoff | None = None
    awaiting: str | None = None
    ended: bool = False
    # Said after `texts` as it comes (a generated answer, clause by clause).
    stream: AsyncIterator[str] | None = None
    offers_file_check: bool = False            # the caller is asked whether to check their own file
    fallback: FallbackAnswer | None = None    # where an answer from the fallback came from
    slow: bool = False                         # slow-speech mode, as this reply is said
    slow_reason: str | None = None             # the mode changed with this reply, and why
    verbatim: bool = False                     # the last reply again, word for word (its audio replayed)
    remember_slow: bool | None = None          # keep (True) or withdraw (False) the caller's slow preference
    queue: bool = False                        # the handoff waits in the agents' queue (they take calls now)
    leave_queue: bool = False                  # the caller stops waiting for an agent
    callback: CallbackRequest | None = None    # a callback to book
    actions: list[dict[str, Any]] = field(default_factory=list)  # actions run for it (action_record)

    async def collect(self) -> list[str]:
        """Every text of the reply, the stream read to its end (the text channel)."""
        if self.stream is not None:
            stream, self.stream = self.stream, None
            self.texts = self.texts + [t async for t in stream]
        return self.texts


@dataclass(frozen=True)
class DialogueSettings:
    recorded: bool = True
    slow_key: str = "*"                  # the key that turns slow-speech mode on (announced in the greeting)
    slow_after_failed_turns: int = 2     # consecutive turns not understood or unanswered (0: never)


async def _read(clauses: AsyncIterator[str]) -> list[str]:
    return [c async for c in clauses]


class Keywords:
    def __init__(self, path: Path = DATA_DIR / "keywords.yaml") -> None:
        raw = yaml.safe_load(path.read_text("utf-8"))
        self._patterns = {
            str(k): re.compile("|".join(f"(?:{p.strip()})" for p in ([v] if isinstance(v, str) else v)),
                               re.IGNORECASE)
            for k, v in raw.items()}

    def match(self, name: str, normalized: str) -> bool:
        return bool(self._patterns[name].search(normalized))

    def leading_words(self, name: str, normalized: str) -> int:
        """How many words at the start of `normalized` the pattern matches (0: it does not)."""
        m = self._patterns[name].match(normalized)
        return len(m.group(0).split()) if m else 0


_POLITENESS = re.compile(r"\b(s il vous plait|s il te plait|excusez moi|excuse moi|madame|monsieur|merci)\b")


def _without_politeness(said: str) -> str:
    return " ".join(_POLITENESS.sub(" ", said).split())


@dataclass(frozen=True)
class ConversationSnapshot:
    """The dialogue state of a conversation at one moment, for `Conversation.restore`.
    Opaque: nothing outside the engine reads it."""

    _state: dict[str, Any]


# What a conversation holds besides its dialogue state: its identity, its settings and the
# services shared by every call. A snapshot neither copies nor restores them.
_SHARED_FIELDS = frozenset({"session_id", "knowledge", "router", "keywords", "actions", "settings", "fallback",
                            "agents"})
CALLBACK_FLOW = "rappel"



@dataclass
class Conversation:
    session_id: str
    knowledge: Knowledge
    router: IntentRouter
    keywords: Keywords
    actions: ActionClient | None = None
    settings: DialogueSettings = field(default_factory=DialogueSettings)
    fallback: Fallback | None = None
    agents: AgentDesk | None = None                       # None: agents always reachable
    state: State = State.QUESTION
    team: str | None = None
    no_match: int = 0
    no_input: int = 0
    not_heard: int = 0                                    # in a row: speech heard, no word read
    unclear: int = 0                                      # answers to the question now asked that were not one
    last_texts: list[str] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)   # never logged: may hold identifiers
    last_intent: str | None = None
    flow: FlowRunner | None = None
    keys: str = ""                                        # keypad entry before '#'
    choices: tuple[str, str] | None = None                # the two types of a clarifying question
    check_flow: str | None = None                         # the flow that checks the caller's file, offered
    then_handoff: Handoff | None = None                   # the human who takes the call after that flow
    slow: bool = False                                    # slow-speech mode
    slow_reason: str | None = None                        # why it changed, not reported yet
    failed_turns: int = 0                                 # in a row: not understood, no input
    # The caller's number is known and a preference may be kept against it (asked once, when
    # slow speech was on, before goodbye); `slow_preference`: the mode came from one.
    may_remember_slow: bool = False
    slow_preference: bool = False
    last_said: list[str] = field(default_factory=list)    # the last reply as said (slow wording included)
    queued: bool = False                                  # waiting in the agents' queue
    handoff: Handoff | None = None                        # the last handoff (the callback's team and topic)
    booking_callback: bool = False                        # the running flow books a callback
    connecting: bool = False                              # an agent took the call, not yet heard
    actions_called: list[dict[str, Any]] = field(default_factory=list)  # since the last reply (its flows' too)

    def _reply(self, texts: list[str], *, reprompt: bool = False, **kwargs: Any) -> Reply:
        """`reprompt`: the same question asked again (the count of unclear answers goes on)."""
        kwargs.setdefault("team", self.team)
        awaiting = None
        if self.state in (State.ANYTHING_ELSE, State.OFFER_HUMAN, State.CHECK_FILE, State.REMEMBER_SLOW,
                          State.CALLBACK_OFFER):
            awaiting = "confirmation"
        elif self.state is State.FLOW and self.flow is not None:
            awaiting = self.flow.asked_value or "confirmation"  # a read-back or a yes/no
        elif self.state is State.CLARIFY:
            awaiting = "choice"
        kwargs.setdefault("awaiting", awaiting)
        kwargs.setdefault("ended", self.state is State.ENDED)
        if not reprompt:
            self.unclear = 0
        self.last_texts = texts
        return Reply(texts=texts, **kwargs)

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> ConversationSnapshot:
        """The dialogue state now (state, team, counters, slots, the flow and its step...),
        deep-copied. `restore` brings the conversation back to it, as if the turns in between
        had never happened: the voice pipeline joins a caller's turn that went on after the
        bot answered its first part, and the joined words are understood afresh."""
        return ConversationSnapshot(self._copied({f.name: getattr(self, f.name) for f in fields(self)
                                                  if f.name not in _SHARED_FIELDS}))

    def restore(self, snapshot: ConversationSnapshot) -> None:
        for name, value in self._copied(snapshot._state).items():
            setattr(self, name, value)

    def _copied(self, state: dict[str, Any]) -> dict[str, Any]:
        """A deep copy of `state` that shares the services and the (immutable) dialogue data."""
        shared: list[Any] = [getattr(self, name) for name in _SHARED_FIELDS]
        for flow in self.knowledge.flows.values():
            shared += [flow, *flow.steps]
        memo = {id(obj): obj for obj in shared if obj is not None}
        return copy.deepcopy(state, memo)

    # ------------------------------------------------------------------ turns

    def start(self) -> Reply:
        return self._said(self._reply(self.knowledge.greeting(recorded=self.settings.recorded, slow=self.slow)))

    def set_slow(self, on: bool, reason: str) -> bool:
        """Slow-speech mode on or off ('asked', 'key', 'repeat', 'failed_turns',
        'caller_pace', 'line'...); the next reply says so (`Reply.slow_reason`). Returns
        whether the mode changed."""
        if on == self.slow:
            return False
        self.slow, self.slow_reason = on, reason
        log.info("session %s: slow-speech mode %s (%s)", self.session_id, "on" if on else "off", reason)
        return True

    def _said(self, reply: Reply, failures_before: int | None = None) -> Reply:
        """Every reply leaves through here: the count of failed turns in a row (slow speech
        after `slow_after_failed_turns` of them), and the slow wording."""
        p = self.knowledge.prompts["slow_speech"]
        if failures_before is not None:
            if self.failed_turns <= failures_before:
                self.failed_turns = 0
            elif 0 < self.settings.slow_after_failed_turns <= self.failed_turns and self.set_slow(True, "failed_turns"):
                reply.texts = [p["auto"], *reply.texts]
        reply.slow, reply.slow_reason, self.slow_reason = self.slow, self.slow_reason, None
        if self.slow and not reply.verbatim and reply.texts:
            # the data's short-sentence variant of an answer where it has one, else the splitter
            texts = slow_wording([self.knowledge.slow_variant(t) or t for t in reply.texts], p["repeat"])
            if reply.awaiting not in (None, "confirmation", "choice") and self.knowledge.prompt("value_keys") not in texts:
                texts.append(self.knowledge.prompt("value_keys"))  # every number may be typed
            reply.texts = texts
        if reply.texts:
            self.last_said = list(reply.texts)
        # Emptied in place: the running flow notes its actions in the same list.
        reply.actions, self.actions_called[:] = list(self.actions_called), []
        return reply

    def _repeat(self) -> Reply:
        """The last reply again, as it was said: its audio is replayed at once. A caller who
        asks for it struggles to follow: what comes next is said slowly."""
        reply = self._reply(list(self.last_texts), reprompt=True)
        reply.texts, reply.verbatim = list(self.last_said) or reply.texts, True
        self.set_slow(True, "repeat")
        return reply

    def _asks_pace(self, name: str, said: str) -> bool:
        return self.keywords.match(name, said) and len(_without_politeness(said).split()) <= 10

    def _slower(self, reason: str) -> Reply:
        self.set_slow(True, reason)
        return self._reply([self.knowledge.prompts["slow_speech"]["on"], *self.last_texts], reprompt=True)

    def _faster(self) -> Reply:
        """Back to the normal pace; a preference kept from earlier calls is withdrawn."""
        p = self.knowledge.prompts["slow_speech"]
        self.set_slow(False, "asked")
        question = self.last_texts[-1:] if self.last_texts and self.last_texts[-1].endswith("?") \
            else [self.knowledge.prompt("listening")]
        forget = [p["forgotten"]] if self.slow_preference else []
        reply = self._reply([p["off"], *forget, *question], reprompt=True)
        if self.slow_preference:
            self.slow_preference, reply.remember_slow = False, False
        return reply

    async def on_text(self, text: str) -> Reply:
        failures = self.failed_turns
        return self._said(await self._on_text(text), failures)

    async def _on_text(self, text: str) -> Reply:
        said = normalize(text)
        if self.state in (State.ENDED, State.WITH_AGENT) or self.connecting:
            return self._reply([])
        if not said:
            if self.state is State.FLOW and self.flow is not None:
                return self._flow_reply(await self.flow.on_text(text, date.today()))
            return self._not_understood()
        self.no_input = self.not_heard = 0
        if self.keywords.match("distress", said) and not (self.queued and self.team == "difficultes"):
            return self._handoff("difficultes", "detresse", self.knowledge.prompt("distress"))
        if self.queued and self.keywords.match("callback", said):
            return await self._book_callback(leave_queue=True)
        if self.queued and self.keywords.match("human", said):
            self.state = State.HANDOFF
            return self._reply([self.knowledge.prompt("handoff_waiting")])
        if self.keywords.match("human", said):
            return self._handoff(self.team or "accueil", "demande_conseiller")
        if self.state is State.HANDOFF:
            return await self._question_while_queued(text, said)
        if self._asks_pace("slow_down", said) and self.last_texts:
            return self._slower("asked")
        if self.slow and self._asks_pace("speed_up", said):
            return self._faster()
        if self.state is State.REMEMBER_SLOW:
            return self._remember_slow_answered(text, said)
        if self.keywords.match("goodbye", said):
            return self._goodbye()
        if self.state is State.CALLBACK_OFFER:
            return await self._callback_offer_answered(text, said)
        if self.state is State.OFFER_HUMAN:
            return await self._offer_human_answered(text, said)
        if self.state is State.CHECK_FILE:
            return await self._check_file_answered(text, said)
        if self._asks_repeat(said):
            return self._repeat()
        if self.state is State.FLOW and self.flow is not None:
            question = await self._question_in_flow(text, said)
            if question is not None:
                return question
            return self._flow_reply(await self.flow.on_text(text, date.today()))
        if self.state is State.CLARIFY and self.choices is not None:
            return await self._clarified(text, said)
        if self.state is State.ANYTHING_ELSE:
            return await self._anything_else_answered(text, said)
        return await self._answer_question(text)

    def _asks_repeat(self, said: str) -> bool:
        return self._asks_pace("repeat", said) and bool(self.last_texts)

    async def _route(self, text: str, among: tuple[str, str] | None = None) -> Route:
        route = await asyncio.to_thread(self.router.route, text, among)
        log.info("session %s routed to %s (%.3f, %s)", self.session_id, route.intent, route.score, route.reason)
        return route

    async def _answer_question(self, text: str) -> Reply:
        if self.keywords.match("injection", normalize(text)):
            log.info("session %s: an attempt to change the assistant's rules, declined", self.session_id)
            self.state = State.QUESTION
            return self._reply([self.knowledge.prompts["fallback"]["declined"]])
        return await self._routed(text, await self._route(text))

    async def _routed(self, text: str, route: Route) -> Reply:
        """The router's decision on a question: an answer (or action, flow, handoff), a
        clarifying question, the fallback for a real question outside the knowledge, or a
        re-prompt."""
        if route.clarify is not None:
            teams = {self.knowledge.question_types[q].team for q in route.clarify}
            team = next(iter(teams)) if len(teams) == 1 else None
            plain = all(self._answered_plainly(q) for q in route.clarify)
            if plain and await self._about_own_file(text, team, route.clarify):
                # Their own file, and either type the file can tell: no choice to make (the
                # team's check when both share it, else the general one: what is due, paid, declared).
                self.team = team or self.team
                return self._offer_file_check(route.score)
            return self._clarify(route)
        if route.intent is not None and not self._above_own_minimum(route):
            log.info("session %s: %s below its own minimum (%.3f)", self.session_id, route.intent, route.score)
            return self._not_understood(score=route.score)
        if route.intent is None:
            self.team = route.team or self.team   # the type is uncertain, the team may not be
            if await self._about_own_file(text, route.team):
                return self._offer_file_check(route.score)   # whatever the question type: the file can tell
            if len(text.split()) >= FALLBACK_MIN_WORDS:
                return await self._fallback(text, route)
            return self._not_understood(score=route.score)
        return await self._start_question(route.intent, text, route.score)

    def _offer_file_check(self, score: float) -> Reply:
        self.state, self.check_flow = State.CHECK_FILE, self.knowledge.check_file_flow(self.team or "")
        self.then_handoff = None
        return self._reply([self.knowledge.prompts["check_file"]["offer"]], score=score, offers_file_check=True)

    def _answered_plainly(self, intent: str) -> bool:
        """A question type answered by its text (no flow, action or handoff)."""
        qt = self.knowledge.question_types[intent]
        return qt.answer is not None and not (qt.flow or qt.action or qt.handoff_reason)

    def _above_own_minimum(self, route: Route) -> bool:
        min_score = self.knowledge.question_types[route.intent].min_score if route.intent else None
        return min_score is None or route.score >= min_score

    async def _confident_question(self, text: str, said: str) -> Route | None:
        """The route of what the caller said instead of the answer the bot waits for, when
        it is a question of its own (QUESTION_MIN_WORDS, QUESTION_MIN_SCORE)."""
        if len(_without_politeness(said).split()) < QUESTION_MIN_WORDS:
            return None
        route = await self._route(text)
        if route.intent is None or route.score < QUESTION_MIN_SCORE or not self._above_own_minimum(route):
            return None
        return route

    def _yes_no_head(self, text: str, said: str) -> tuple[str | None, str, str]:
        """A leading "oui" or "non" ("euh oui", "non mais", "oui oui d'accord"), and the
        words after it (as said, and normalised); (None, text, said) when there is none."""
        words = said.split()
        answer: str | None = None
        i = 0
        while i < len(words):
            if words[i] in _LEAD_WORDS:
                i += 1
                continue
            tail = " ".join(words[i:])
            n, kind = self.keywords.leading_words("affirm", tail), "oui"
            if not n:
                n, kind = self.keywords.leading_words("deny", tail), "non"
            if not n:
                break
            answer = answer or kind
            i += n
        if answer is None:
            return None, text, said
        rest = " ".join(words[i:])
        return answer, _tail_as_said(text, rest), rest

    # ------------------------------------------------------------------ waiting for yes/no

    async def _anything_else_answered(self, text: str, said: str) -> Reply:
        """"Avez-vous une autre question ?": a bare yes or no (fewer than QUESTION_MIN_WORDS
        words after it), or a question (after "oui", "non mais", or alone), routed as any
        question is: the bot asked for one."""
        answer, rest_text, rest = self._yes_no_head(text, said)
        if answer is None:
            return await self._answer_question(text)
        bare = len(_without_politeness(rest).split()) < QUESTION_MIN_WORDS
        route = None if bare else await self._route(rest_text)
        if route is not None and (route.intent is not None or route.clarify is not None):
            return await self._routed(rest_text, route)
        if answer == "non":
            return self._goodbye()
        self.state = State.QUESTION
        return self._reply([self.knowledge.prompt("listening")])

    def _goodbye(self) -> Reply:
        """The caller is leaving. One who needed slow speech this time is asked, once,
        whether to speak slowly from the start of their next calls."""
        if self.slow and self.may_remember_slow and not self.slow_preference:
            self.may_remember_slow = False
            self.state = State.REMEMBER_SLOW
            return self._reply([self.knowledge.prompts["slow_speech"]["remember"]])
        return self._end("goodbye")

    def _remember_slow_answered(self, text: str, said: str) -> Reply:
        """Consent is a clear yes; anything else keeps nothing."""
        answer, _, _ = self._yes_no_head(text, said)
        reply = self._end("goodbye")
        if answer == "oui":
            reply.texts = [self.knowledge.prompts["slow_speech"]["remembered"], *reply.texts]
            reply.remember_slow = True
        return reply

    async def _offer_human_answered(self, text: str, said: str) -> Reply:
        """"Voulez-vous parler à un conseiller ?": a question of its own is answered; yes
        hands over, no listens again."""
        answer, rest_text, rest = self._yes_no_head(text, said)
        route = await self._confident_question(rest_text, rest)
        if route is not None and route.intent is not None:
            return await self._start_question(route.intent, rest_text, route.score)
        if answer == "oui":
            return self._handoff(self.team or "accueil", "non_compris")
        if answer == "non":
            self.state = State.QUESTION
            self.no_match = 0
            return self._reply([self.knowledge.prompt("listening")])
        if self._asks_repeat(said):
            return self._repeat()
        return self._not_understood()

    def _not_understood(self, score: float | None = None) -> Reply:
        """What the caller said is no answer to what the bot asked. A yes/no question (or a
        choice) is asked once more in other words, with the keypad and a human offered; then
        the caller is offered (or handed to) a human. A question: two re-prompts, then the
        offer of a human. Never the same re-prompt twice in a row."""
        p = self.knowledge.prompt
        if self.state is State.OFFER_HUMAN:
            if self.unclear:
                return self._handoff(self.team or "accueil", "non_compris", p("handoff_not_understood"))
            return self._ask_again([p("offer_human_question")], score=score, human=False)
        if self.state is State.ANYTHING_ELSE:
            if self.unclear:
                return self._offer_human(score)
            return self._ask_again([p("anything_else")], score=score)
        if self.state is State.CHECK_FILE:
            if self.unclear:
                return self._to_human(self.then_handoff) if self.then_handoff else self._offer_human(score)
            offer = "before_human" if self.then_handoff else "offer"
            return self._ask_again([self.knowledge.prompts["check_file"][offer]], score=score)
        if self.state is State.CLARIFY and self.choices is not None:
            if not self.unclear:
                self.unclear += 1
                c = self.knowledge.prompts["clarify"]
                return self._reply([c["retry"], *self._clarify_texts(self.choices)[:-1], c["keys"]],
                                   score=score, reprompt=True)
            self.state, self.choices = State.QUESTION, None
        self.failed_turns += 1
        self.no_match += 1
        if self.no_match > MAX_NO_MATCH:
            return self._offer_human(score)
        return self._reply([p("no_match", self.no_match - 1)], score=score)

    def _ask_again(self, question: list[str], *, score: float | None, human: bool = True) -> Reply:
        p = self.knowledge.prompt
        self.unclear += 1
        self.failed_turns += 1
        texts = [p("not_understood_answer"), *question, p("confirm_retry")]
        return self._reply(texts + ([p("human_option")] if human else []), score=score, reprompt=True)

    def _offer_human(self, score: float | None) -> Reply:
        self.state = State.OFFER_HUMAN
        return self._reply([self.knowledge.prompt("offer_human")], score=score)

    # ------------------------------------------------------------------ clarifying questions

    def _clarify(self, route: Route) -> Reply:
        assert route.clarify is not None
        self.state, self.choices = State.CLARIFY, route.clarify
        teams = {self.knowledge.question_types[q].team for q in route.clarify}
        if len(teams) == 1:
            self.team = teams.pop()   # either way, the call is for this team
        return self._reply(self._clarify_texts(route.clarify), score=route.score)

    def _clarify_texts(self, choices: tuple[str, str]) -> list[str]:
        c = self.knowledge.prompts["clarify"]
        first, second = (self._option(q) for q in choices)
        return [c["ask"], first, c["or_else"], second, c["choose"]]

    def _option(self, intent: str) -> str:
        option = self.knowledge.prompts.get("clarify_options", {}).get(intent)
        if option:
            return str(option)
        log.warning("question type %s has no clarify_options text in prompts.yaml", intent)
        return _lower_first(self.knowledge.question_types[intent].description) + " ?"

    async def _clarified(self, text: str, said: str) -> Reply:
        assert self.choices is not None
        choices = self.choices
        ordinal = re.search(r"\b(premier|premiere|1er|un)\b|\b(deuxieme|second|seconde|autre|deux)\b", said)
        if ordinal and len(said.split()) <= 4:
            return await self._chosen(choices[0] if ordinal.group(1) else choices[1], text, None)
        route = await self._confident_question(text, said)
        if route is not None and route.intent is not None:
            return await self._chosen(route.intent, text, route.score)   # one of them, or another question
        route = await self._route(text, among=choices)
        if route.intent is not None and self._above_own_minimum(route):
            return await self._chosen(route.intent, text, route.score)
        return self._not_understood(score=route.score)

    async def _chosen(self, intent: str, text: str, score: float | None) -> Reply:
        self.state, self.choices = State.QUESTION, None
        return await self._start_question(intent, text, score)

    # ------------------------------------------------------------------ flows

    async def _question_in_flow(self, text: str, said: str) -> Reply | None:
        """Another question asked in the middle of a flow, or None when `text` is to be taken
        as the flow's answer. Asked for yes/no, "oui, <question>" is a question; asked for a
        value, words with a number in them are an answer. A question with a plain answer is
        answered and the flow goes on (once: a second one means the caller has moved on, and
        the flow is left); one that starts its own flow, action or handoff replaces the flow."""
        assert self.flow is not None
        if self.flow.waits_for_yes_no:
            _, text, said = self._yes_no_head(text, said)
        elif self.flow.understands(text, date.today()):
            return None
        if mentions_number(said):
            return None
        route = await self._confident_question(text, said)
        if route is None or route.intent is None or route.intent == self.last_intent:
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

    async def _fallback(self, text: str, route: Route) -> Reply:
        """A real question the router could not place: answered from the knowledge base by
        the fallback, declined when it is none of the Urssaf's business, or "no sure answer"
        and a human offered."""
        score = route.score
        answer = None
        if self.fallback is not None:
            answer = await self.fallback.answer(text, session_id=self.session_id, out_of_scope=route.out_of_scope)
        if answer is None:
            self.state = State.OFFER_HUMAN
            return self._reply([self.knowledge.prompt("fallback_unknown")], score=score)
        if answer.outcome == "declined":
            self.state = State.QUESTION
            return self._reply(await _read(answer.clauses()), score=score, fallback=answer)
        self.state = State.ANYTHING_ELSE
        if answer.found:
            self.team = answer.found[0].passage.team
        reply = self._reply([], score=score, fallback=answer, team=self.team)
        reply.stream = self._streamed(answer)
        return reply

    async def _streamed(self, answer: FallbackAnswer) -> AsyncIterator[str]:
        """The answer's clauses as they come, then what follows from how it went: another
        question, a human offered when the text read may not be the answer, or when the
        model found none. "Répétez" repeats what was said."""
        self.last_texts = []
        async for clause in answer.clauses():
            self.last_texts.append(clause)
            yield clause
        p = self.knowledge.prompt
        if answer.outcome == "unknown":
            self.state = State.OFFER_HUMAN
            tail = [p("offer_human_question"), p("confirm_retry")]
        elif answer.verbatim:
            tail = [self.knowledge.prompts["fallback"]["not_sure"], p("anything_else")]
        else:
            tail = [p("anything_else")]
        for text in tail:
            self.last_texts.append(text)
            yield text

    async def _start_question(self, intent: str, text: str, score: float | None) -> Reply:
        qt = self.knowledge.question_types[intent]
        self.team = qt.team
        self.last_intent = qt.id
        self.no_match = 0
        self.choices, self.then_handoff = None, None
        if qt.handoff_reason:
            handoff = Handoff(team=qt.team, reason=qt.handoff_reason)
            if qt.id in self.knowledge.identify_before_human and not self.slots.get("identified"):
                # The agent will need the caller's file: identification first, if they want.
                self.state, self.check_flow = State.CHECK_FILE, self.knowledge.identification_flow
                self.then_handoff = handoff
                reply = self._reply([self.knowledge.prompts["check_file"]["before_human"]], offers_file_check=True)
            else:
                reply = self._to_human(handoff)
        elif qt.flow:
            self.flow = FlowRunner(self.knowledge, qt.flow, session_id=self.session_id, team=qt.team,
                                   slots=self.slots, actions=self.actions, latest_text=text, intent=qt.id,
                                   called=self.actions_called)
            reply = self._flow_reply(await self.flow.start())
        elif self._answered_plainly(qt.id) and await self._about_own_file(text, qt.team, (qt.id,)):
            # The caller needs their own figures: the rule in short, then their file.
            self.state, self.check_flow = State.CHECK_FILE, self.knowledge.check_file_flow(qt.team)
            answer = await self._answer_texts(qt.id, text)
            reply = self._reply([short_answer(" ".join(answer)), self.knowledge.prompts["check_file"]["offer"]],
                                offers_file_check=True)
        else:
            texts = await self._answer_texts(qt.id, text)
            self.state = State.ANYTHING_ELSE
            reply = self._reply(texts + [self.knowledge.prompt("anything_else")])
        reply.intent, reply.score = qt.id, score
        return reply

    async def _about_own_file(self, text: str, team: str | None, intents: tuple[str, ...] = ()) -> bool:
        """A question about the caller's own file ("vous avez bien reçu mon virement ?",
        "pourquoi on me prélève plus ce mois-ci ?"), in a call not yet identified, for a team
        whose questions a flow can check in the file and question types (`intents`, those
        the router named) the file can help with, each of a team the file can be checked for:
        a usual wording, or its meaning (flows/own_file.py)."""
        types = self.knowledge.question_types
        if self.slots.get("identified") or self.knowledge.check_file_flow(team or "") is None or any(
                i in self.knowledge.check_file_not_for or self.knowledge.check_file_flow(types[i].team) is None
                for i in intents):
            return False
        return self.keywords.match("personal", normalize(text)) or \
            await asyncio.to_thread(self.router.about_own_file, text)

    async def _check_file_answered(self, text: str, said: str) -> Reply:
        """"Voulez-vous que je vérifie votre dossier ?": yes runs the personal flow
        (identification, then the caller's own figures); no, another question is awaited;
        a question of its own is answered."""
        answer, rest_text, rest = self._yes_no_head(text, said)
        flow: FlowRunner | None = None
        if answer == "oui" and self.check_flow is not None:
            flow = FlowRunner(self.knowledge, self.check_flow, session_id=self.session_id,
                              team=self.team or "accueil", slots=self.slots, actions=self.actions,
                              latest_text=text, intent=self.last_intent, called=self.actions_called)
            out = await flow.start()   # not identified yet: it asks, nothing is looked up
            asked = flow.asked_value
            if rest and asked and parse_speech(asked, rest_text, today=date.today()) is not None:
                # "oui, mon SIRET c'est le 732 829...": the number answers the flow's question.
                self.flow = flow
                return self._flow_reply(await flow.on_text(rest_text, date.today()))
        route = await self._confident_question(rest_text, rest)
        if route is not None and route.intent is not None:
            return await self._start_question(route.intent, rest_text, route.score)
        if flow is not None:
            self.flow = flow
            return self._flow_reply(out)
        if answer == "non":
            if self.then_handoff is not None:
                return self._to_human(self.then_handoff)
            self.state = State.QUESTION
            return self._reply([self.knowledge.prompt("listening")])
        if self._asks_repeat(said):
            return self._repeat()
        return self._not_understood()

    async def _answer_texts(self, intent: str, text: str) -> list[str]:
        qt = self.knowledge.question_types[intent]
        if qt.action and self.actions is not None:
            try:
                result = await self.actions.run(
                    qt.action, sender_id=self.session_id, slots=dict(self.slots),
                    latest_text=text, intent=intent,
                )
                self.actions_called.append(action_record(qt.action, result))
                if result.texts:
                    return result.texts
            except ActionUnavailable as e:
                log.warning("session %s: %s", self.session_id, e)
                self.actions_called.append(action_record(qt.action, None))
        if qt.answer:
            return [qt.answer.text]
        return [self.knowledge.prompt("action_unavailable")]

    def _flow_reply(self, out: FlowOutput) -> Reply:
        if out.handoff is not None:
            self.flow = None
            # Identification failed before a human who was to take the call anyway: theirs.
            team = (self.then_handoff and self.then_handoff.team) or out.handoff.team or self.team or "accueil"
            return self._handoff(team, out.handoff.reason, self.knowledge.prompt("handoff_waiting"), before=out.texts)
        if out.finished:
            self.flow = None
            if self.then_handoff is not None:
                return self._to_human(self.then_handoff, out.texts)
            self.state = State.ANYTHING_ELSE
            callback = self._booked() if self.booking_callback else None
            return self._reply([*out.texts, self.knowledge.prompt("anything_else")], callback=callback)
        self.state = State.FLOW
        return self._reply(out.texts)

    def _to_human(self, handoff: Handoff, before: Sequence[str] = ()) -> Reply:
        """A question type's handoff (gently to the difficulties team)."""
        prompt = self.knowledge.prompt("distress" if handoff.team == "difficultes" else "handoff")
        return self._handoff(handoff.team, handoff.reason, prompt, before=before)

    def _handoff(self, team: str, reason: str, text: str | None = None, *, before: Sequence[str] = ()) -> Reply:
        """To a human: the caller waits in the agents' queue while they take calls, and is
        offered a callback when they do not. `before`: said first either way (the end of a flow)."""
        self.flow, self.keys, self.choices, self.booking_callback = None, "", None, False
        self.then_handoff = None
        self.team = team
        self.handoff = handoff = Handoff(team=team, reason=reason)
        unavailable = self.agents.unavailable_message() if self.agents is not None else None
        if unavailable is None:
            self.state, self.queued = State.HANDOFF, True
            return self._reply([*before, text or self.knowledge.prompt("handoff")], handoff=handoff, queue=True)
        self.state, self.queued = State.CALLBACK_OFFER, False
        p = self.knowledge.prompts["callback"]
        first = [p["empathy"]] if team == "difficultes" else []
        return self._reply([*before, *first, unavailable, p["offer"]], handoff=handoff)

    async def _question_while_queued(self, text: str, said: str) -> Reply:
        """Waiting for an agent, the caller may still ask the bot: the answer, then back to
        waiting (unless the answer needs a flow, which runs as usual)."""
        reply = await self._answer_question(text)
        if reply.handoff is None and self.state in (State.ANYTHING_ELSE, State.QUESTION) and reply.stream is None:
            anything_else = self.knowledge.prompt("anything_else")
            texts = [t for t in reply.texts if t != anything_else]
            self.state = State.HANDOFF
            reply.texts = self.last_texts = [*texts, self.knowledge.prompts["queue"]["still_waiting"]]
            reply.awaiting = None
        elif reply.stream is not None:
            self.state = State.HANDOFF
        return reply

    def on_queue_position(self, position: int, wait_s: float) -> Reply:
        """Said to a caller waiting for an agent, now and then: their place and the wait."""
        if not self.queued or self.state is not State.HANDOFF:
            return self._reply([])
        p = self.knowledge.prompts["queue"]
        place = p["first"] if position <= 1 else p["place"].format(ahead=position - 1)
        minutes = round(wait_s / 60)
        wait = p["wait_short"] if minutes < 1 else p["wait"].format(
            minutes="une minute" if minutes == 1 else f"{minutes} minutes")
        return self._said(self._reply([place, wait, p["meanwhile"]]))

    def on_no_agent(self) -> Reply:
        """Nobody took the call in time: the caller may be called back, or go on with the bot."""
        if not self.queued:
            return self._reply([])
        self.queued = False
        self.flow, self.keys = None, ""
        self.state = State.CALLBACK_OFFER
        p = self.knowledge.prompts["callback"]
        return self._said(self._reply([p["no_agent"], p["offer"]]))

    async def _callback_offer_answered(self, text: str, said: str) -> Reply:
        answer, rest_text, rest = self._yes_no_head(text, said)
        route = await self._confident_question(rest_text, rest)
        if route is not None and route.intent is not None:
            return await self._start_question(route.intent, rest_text, route.score)
        if answer == "oui":
            return await self._book_callback(leave_queue=False)
        if answer == "non":
            self.state = State.ANYTHING_ELSE
            return self._reply([self.knowledge.prompts["callback"]["declined"]])
        if self._asks_repeat(said):
            return self._repeat()
        return self._not_understood()

    async def _book_callback(self, *, leave_queue: bool) -> Reply:
        """The callback flow (flows/data/flows/rappel.yaml): the number, the time of day."""
        self.queued = False
        self.booking_callback = True
        self.flow = FlowRunner(self.knowledge, CALLBACK_FLOW, session_id=self.session_id,
                               team=self.team or "accueil", slots=self.slots, actions=None)
        self.state = State.FLOW
        reply = self._flow_reply(await self.flow.start())
        reply.leave_queue = leave_queue
        return reply

    def _booked(self) -> CallbackRequest:
        """The callback the flow collected; its values leave the conversation's slots (they
        are sent along with later action calls otherwise)."""
        self.booking_callback = False
        qt = self.knowledge.question_types.get(self.last_intent or "")
        reason = self.knowledge.prompts["handoff_reasons"].get(self.handoff.reason, "") if self.handoff else ""
        return CallbackRequest(team=self.team or "accueil", phone=str(self.slots.pop("telephone_rappel", "")),
                               time_slot=str(self.slots.pop("creneau_rappel", "indifferent")),
                               topic=qt.description if qt else reason)

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
        self.state, self.queued, self.connecting = State.WITH_AGENT, False, False

    def on_transfer_failed(self) -> Reply:
        """No agent could take the call: the caller is told so and may go on with the bot."""
        if self.state is not State.HANDOFF:
            return self._reply([])
        self.queued, self.connecting = True, False
        return self.on_no_agent()

    def on_agent_accepted(self) -> Reply:
        """An agent took the call: the caller is told, then hears them (or their phone ring)."""
        if not self.queued:
            return self._reply([])
        self.state, self.queued, self.connecting = State.HANDOFF, False, True
        self.flow, self.keys = None, ""
        return self._said(self._reply([self.knowledge.prompts["queue"]["connecting"]]))

    def on_agent_left(self) -> Reply:
        """The agent ended the conversation: the bot says goodbye and the call ends."""
        return self._end("goodbye")

    # ------------------------------------------------------------------ keypad and silence

    async def on_dtmf(self, digits: str) -> Reply:
        """Keys as they come (one at a time from a phone, or several from the text channel).
        While a flow asks for a number, keys are collected up to '#'; otherwise each key is
        a menu choice: 0 a human, 1 yes (or the first topic offered), 2 no (or the second),
        the slow key (*) slow speech."""
        failures = self.failed_turns
        return self._said(await self._on_dtmf(digits), failures)

    async def _on_dtmf(self, digits: str) -> Reply:
        if self.state in (State.ENDED, State.WITH_AGENT) or self.connecting:
            return self._reply([])
        keys = "".join(c for c in digits if c in "0123456789*#")
        if not keys or len(digits) > MAX_KEYS:
            return self._keypad_invalid()
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
            if self.queued:
                self.state = State.HANDOFF
                return self._reply([self.knowledge.prompt("handoff_waiting")])
            return self._handoff(self.team or "accueil", "demande_conseiller")
        if key == self.settings.slow_key and self.state is not State.HANDOFF:
            return self._slower("key") if not self.slow else self._reply(list(self.last_texts), reprompt=True)
        if self.state is State.FLOW and self.flow is not None:
            return self._flow_reply(await self.flow.on_keys(key, date.today()))
        if self.state is State.CLARIFY and self.choices is not None:
            if key in "12":
                return await self._chosen(self.choices[int(key) - 1], "", None)
            return self._not_understood()
        if self.state in (State.ANYTHING_ELSE, State.OFFER_HUMAN, State.CHECK_FILE, State.REMEMBER_SLOW,
                          State.CALLBACK_OFFER):
            if key in "12":
                return await self._on_text("oui" if key == "1" else "non")
            return self._not_understood()
        return self._keypad_invalid()

    def _keypad_invalid(self) -> Reply:
        invalid = [self.knowledge.prompt("keypad_invalid")]
        if self.last_texts == invalid:
            return self._not_understood()
        return self._reply(invalid, reprompt=True)

    async def _keypad_entry(self, entry: str) -> Reply:
        assert self.flow is not None
        self.no_input = self.not_heard = 0
        if entry == "0":  # zero alone, then '#' (or a pause): the caller wants a human
            return self._handoff(self.team or "accueil", "demande_conseiller")
        if not entry:
            return self._reply(self.flow.repeat_question())
        return self._flow_reply(await self.flow.on_keys(entry, date.today()))

    def on_not_heard(self) -> Reply:
        """The caller spoke and not a word could be read (voice channels): asked to say it
        again, with the question they were answering; in other words the second time."""
        failures = self.failed_turns
        return self._said(self._on_not_heard(), failures)

    def _on_not_heard(self) -> Reply:
        if self.state in (State.ENDED, State.WITH_AGENT, State.HANDOFF) or self.connecting \
                or self.not_heard >= MAX_NOT_HEARD:
            return self._reply([])
        self.not_heard += 1
        self.failed_turns += 1
        if self.state is State.FLOW and self.flow is not None:
            question = self.flow.repeat_question()
        elif self.last_texts and self.last_texts[-1].endswith("?"):
            question = self.last_texts[-1:]
        else:
            question = [self.knowledge.prompt("listening")]
        return self._reply([self.knowledge.prompt("not_heard", self.not_heard - 1), *question], reprompt=True)

    async def on_no_input(self) -> Reply:
        failures = self.failed_turns
        return self._said(await self._on_no_input(), failures)

    async def _on_no_input(self) -> Reply:
        if self.state in (State.ENDED, State.WITH_AGENT) or self.connecting:
            return self._reply([])
        if self.keys and self.flow is not None:
            # Keys typed then a pause: the entry is taken as if '#' had been pressed.
            entry, self.keys = self.keys, ""
            return await self._keypad_entry(entry)
        if self.state is State.HANDOFF:
            # Holding for a human: silence is expected; the queue tells the caller their
            # place now and then (on_queue_position).
            return self._reply([])
        self.no_input += 1
        self.failed_turns += 1
        if self.no_input >= MAX_NO_INPUT:
            return self._end("goodbye_no_input")
        question = self.flow.repeat_question() if self.state is State.FLOW and self.flow is not None else []
        # Slow speech: the first re-prompt lets the caller take their time.
        prompt = self.knowledge.prompts["slow_speech"]["no_input"] if self.slow and self.no_input == 1 \
            else self.knowledge.prompt("no_input", self.no_input - 1)
        return self._reply([prompt, *question], reprompt=True)


SHORT_ANSWER_WORDS = 40


def short_answer(text: str, max_words: int = SHORT_ANSWER_WORDS) -> str:
    """The first sentences of an answer within `max_words` (at least one): the rule in
    short, before the offer to look at the caller's own case."""
    taken: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        if taken and len(" ".join(taken + [sentence]).split()) > max_words:
            break
        taken.append(sentence)
    return " ".join(taken)


def _tail_as_said(text: str, normalized_tail: str) -> str:
    """The end of `text` whose normalised form is `normalized_tail` (the words after a
    leading "oui"/"non", with their accents and apostrophes, for the router)."""
    tokens = text.split()
    for k in range(len(tokens) + 1):
        if normalize(" ".join(tokens[k:])) == normalized_tail:
            return " ".join(tokens[k:])
    return normalized_tail


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]

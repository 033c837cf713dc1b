"""Runs a flow of flows/data/flows/ for one conversation: says, asks slots (speech or
keypad, with read-back), calls actions, branches, hands off or ends.

The runner stops at each `ask` for the caller's answer; `start`, `on_text`, `on_keys` and
`on_no_input` return what to say and whether the flow has handed off or finished.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flows.action_client import ActionClient, ActionUnavailable, action_record
from flows.knowledge import Flow, Knowledge
from flows.offices import departement, office_for_departement
from flows.schema import Handoff, Step
from flows.slots import SlotValue, parse_keypad, parse_speech

log = logging.getLogger("callbot.flows.runner")

KEYPAD_AFTER_FAILURES = 3   # at the latest: the keypad is offered; one more failure: a human
UNCLEAR_YES_NO = 2          # answers to a yes/no that are neither: one re-prompt, then a human
MAX_STEPS = 200             # per caller turn: a flow looping on itself is a data error


@dataclass
class FlowOutput:
    texts: list[str] = field(default_factory=list)
    handoff: Handoff | None = None
    finished: bool = False


@dataclass
class _Position:
    flow: Flow
    index: int = 0


@dataclass
class _Asking:
    step: Step
    failures: int = 0                    # values not heard, and read-backs answered "non"
    unclear: int = 0                     # read-backs answered neither yes nor no
    candidate: SlotValue | None = None   # parsed, waiting for the caller's "oui"


class FlowRunner:
    def __init__(self, knowledge: Knowledge, flow_id: str, *, session_id: str, team: str,
                 slots: dict[str, Any], actions: ActionClient | None, latest_text: str = "",
                 intent: str | None = None, called: list[dict[str, Any]] | None = None) -> None:
        """`called`: where each action run is noted (the conversation's, for the call record)."""
        self._knowledge = knowledge
        self._stack = [_Position(knowledge.flows[flow_id])]
        self._session_id = session_id
        self._team = team
        self._intent = intent
        self.slots = slots            # shared with the conversation: it outlives the flow
        self._spoken: dict[str, str] = {}
        self._actions = actions
        self._called = called if called is not None else []
        self._asking: _Asking | None = None
        self._latest_text = latest_text
        self.interrupted = False      # the caller already had another question answered in it

    @property
    def waits_for_yes_no(self) -> bool:
        """The caller is asked a yes/no question (a read-back, or a yes_no slot)."""
        asking = self._asking
        return asking is not None and (asking.candidate is not None or asking.step.parser == "yes_no")

    @property
    def keypad_entry(self) -> bool:
        """An ask step waits for a value: keys are digits of an answer, not menu choices."""
        return self._asking is not None and self._asking.candidate is None and self._asking.step.parser != "yes_no"

    @property
    def asked_value(self) -> str | None:
        """The kind of value an ask step waits for ('siret', 'postcode', 'amount'...), or None."""
        return self._asking.step.parser if self.keypad_entry else None

    async def start(self) -> FlowOutput:
        return await self._run(FlowOutput())

    async def on_text(self, text: str, today: date) -> FlowOutput:
        self._latest_text = text
        asking = self._asking
        if asking is None:
            return await self._run(FlowOutput())
        if asking.candidate is not None:
            answer = parse_speech("yes_no", text, today=today)
            return await self._confirmation(answer.value if answer else None)
        return await self._answer(parse_speech(asking.step.parser or "", text, today=today))

    def understands(self, text: str, today: date) -> bool:
        """Whether `text` answers what the flow is asking (a value, or yes/no to a read-back)."""
        asking = self._asking
        if asking is None:
            return True
        parser = "yes_no" if asking.candidate is not None else asking.step.parser
        return parser is None or parse_speech(parser, text, today=today) is not None

    async def on_keys(self, keys: str, today: date) -> FlowOutput:
        """A whole keypad entry (the keys before '#')."""
        asking = self._asking
        if asking is None:
            return FlowOutput()
        if asking.candidate is not None:
            return await self._confirmation({"1": "oui", "2": "non"}.get(keys))
        if asking.step.parser == "yes_no" and len(keys) > 1:
            return await self._answer(None)
        return await self._answer(parse_keypad(asking.step.parser or "", keys, today=today))

    def repeat_question(self) -> list[str]:
        """What the caller is being asked right now (for "pardon ?" and silences)."""
        asking = self._asking
        if asking is None:
            return []
        if asking.candidate is not None:
            return [self._confirm_text(asking)]
        return [asking.step.prompt or ""]

    # ------------------------------------------------------------------ asking

    async def _answer(self, value: SlotValue | None) -> FlowOutput:
        asking = self._asking
        assert asking is not None
        step = asking.step
        if value is None:
            asking.failures += 1
            reprompts = self._reprompts(step)
            if asking.failures > len(reprompts):
                return self._give_up()
            return FlowOutput(texts=reprompts[asking.failures - 1])
        if step.confirm:
            asking.candidate = value
            return FlowOutput(texts=[self._confirm_text(asking)])
        return await self._store(value)

    def _reprompts(self, step: Step) -> list[list[str]]:
        """What is said after each failure, in order, none the same as the one before: the
        step's own re-prompts, else one in other words; then the keypad, with a human."""
        p = self._knowledge.prompt
        if step.parser == "yes_no":
            first = [step.retry[0]] if step.retry else [p("not_understood_answer"), p("confirm_retry")]
            return [[*first, p("human_option")]]
        retries = [[r] for r in step.retry[:KEYPAD_AFTER_FAILURES - 1]] or \
            [[p("not_understood_answer"), step.prompt or "", p("value_keys")]]
        keypad = [[step.keypad, p("human_option")]] if step.keypad else []
        return retries + keypad

    def _give_up(self) -> FlowOutput:
        """Speech and keypad both failed: a human takes over."""
        self._asking = None
        return FlowOutput(texts=[self._knowledge.prompt("input_failed")],
                          handoff=Handoff(team=self._team, reason="saisie_impossible"))

    def _confirm_text(self, asking: _Asking) -> str:
        assert asking.step.confirm and asking.candidate and asking.step.ask
        return asking.step.confirm.format(**{asking.step.ask: asking.candidate.spoken})

    async def _confirmation(self, answer: str | None) -> FlowOutput:
        asking = self._asking
        assert asking is not None
        if answer == "oui":
            assert asking.candidate is not None
            return await self._store(asking.candidate)
        if answer == "non":
            asking.candidate = None
            asking.failures += 1
            asking.unclear = 0
            if asking.failures > KEYPAD_AFTER_FAILURES:
                return self._give_up()
            return FlowOutput(texts=[self._knowledge.prompt("confirm_denied"), asking.step.prompt or ""])
        asking.unclear += 1
        if asking.unclear >= UNCLEAR_YES_NO:
            return self._give_up()
        p = self._knowledge.prompt
        return FlowOutput(texts=[p("not_understood_answer"), self._confirm_text(asking), p("confirm_retry"),
                                 p("human_option")])

    async def _store(self, value: SlotValue) -> FlowOutput:
        asking = self._asking
        assert asking is not None and asking.step.ask
        self.slots[asking.step.ask] = value.value
        self._spoken[asking.step.ask] = value.spoken
        self._asking = None
        self._stack[-1].index += 1
        return await self._run(FlowOutput())

    # ------------------------------------------------------------------ running

    async def _run(self, out: FlowOutput) -> FlowOutput:
        for _ in range(MAX_STEPS):
            if not self._stack:
                out.finished = True
                return out
            position = self._stack[-1]
            if position.index >= len(position.flow.steps):
                self._stack.pop()       # a used flow returns to the step after its `use`
                if self._stack:
                    self._stack[-1].index += 1
                continue
            step = position.flow.steps[position.index]
            kind = step.kind
            if kind == "say":
                out.texts.append(self._format(step.say or ""))
            elif kind == "ask":
                if step.ask in self.slots and self.slots[step.ask] is not None:
                    position.index += 1     # already known (said earlier in the call)
                    continue
                self._asking = _Asking(step)
                out.texts.append(step.prompt or "")
                return out
            elif kind == "action":
                texts, ok = await self._action(step.action or "")
                out.texts += texts
                if not ok:
                    out.texts.append(self._knowledge.prompt("action_unavailable"))
                    out.finished = True
                    return out
            elif kind == "branch":
                case = next((c for c in step.branch or () if self._matches(c.when)), None)
                if case is not None:
                    for name in case.clear:
                        self.slots.pop(name, None)
                    position.index = position.flow.label(case.goto)
                    continue
            elif kind == "use":
                position_flow = self._knowledge.flows[step.use or ""]
                self._stack.append(_Position(position_flow))
                continue
            elif kind == "handoff":
                out.handoff = step.handoff
                self._stack.clear()
                return out
            elif kind == "end":
                self._stack.pop()
                if self._stack:
                    self._stack[-1].index += 1
                continue
            position.index += 1
        raise RuntimeError(f"session {self._session_id}: flow runs in circles (more than {MAX_STEPS} steps)")

    def _matches(self, when: dict[str, Any]) -> bool:
        return all(_same(self.slots.get(name), expected) for name, expected in when.items())

    def _format(self, text: str) -> str:
        if "{" not in text:
            return text
        try:
            return text.format(**self._spoken)
        except (KeyError, IndexError, ValueError):
            log.warning("session %s: a said text names a slot not collected", self._session_id)
            return text

    async def _action(self, name: str) -> tuple[list[str], bool]:
        if self._actions is None:
            return [], False
        try:
            result = await self._actions.run(name, sender_id=self._session_id, slots=dict(self.slots),
                                             latest_text=self._latest_text, intent=self._intent)
        except ActionUnavailable as e:
            log.warning("session %s: %s", self._session_id, e)
            self._called.append(action_record(name, None))
            return [], False
        self._called.append(action_record(name, result))
        for event in result.events:
            if isinstance(event, dict) and event.get("event") == "slot" and isinstance(event.get("name"), str):
                self.slots[event["name"]] = event.get("value")
        if self.slots.get("identified") is True:
            # The account's regional office (from the postcode it was identified with) says
            # whose the call is; it identifies nobody, unlike the postcode.
            if self.slots.get("code_postal"):
                self.slots["office"] = office_for_departement(departement(self.slots["code_postal"]))
            # Once identified, the account reference is enough: the SIRET and the second
            # factor are not kept in the dialogue state.
            for slot in ("siret", "code_postal"):
                self.slots.pop(slot, None)
                self._spoken.pop(slot, None)
        log.info("session %s: action %s done (%d texts)", self._session_id, name, len(result.texts))
        return result.texts, True


def _same(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool):
        return value is expected or (isinstance(value, str) and value.lower() == str(expected).lower())
    return value == expected or (value is not None and str(value) == str(expected))


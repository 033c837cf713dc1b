"""The schema of the dialogue data files (question types, flows), as pydantic models.

Validation errors are turned into one line naming the file, the line and the problem by
flows/knowledge.py; the format itself is documented in flows/README.md.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TEAMS = (
    "declaration", "paiement", "cotisations", "creation", "cessation", "attestations",
    "compte", "seuils", "employeur", "recouvrement", "difficultes", "hors_perimetre", "accueil",
)
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
MIN_PHRASINGS = 8
# Set by the action server only: a caller's words never fill them (an `ask` cannot).
PROTECTED_SLOTS = frozenset({"identified", "account_id", "identification_failures", "identification_locked"})
SlotValue = str | bool | int | None


def _snake(value: str, what: str) -> str:
    if not SNAKE.match(value):
        raise ValueError(f"{what} {value!r} must be snake_case")
    return value


def _team(value: str) -> str:
    if value not in TEAMS:
        raise ValueError(f"team {value!r} is not one of {', '.join(TEAMS)}")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(Strict):
    text: str = Field(min_length=1)
    source: str
    checked: date
    slow: str | None = None     # the same answer in short sentences, said in slow-speech mode

    @field_validator("text", "slow")
    @classmethod
    def _one_line(cls, v: str | None) -> str | None:
        return None if v is None else " ".join(v.split())

    @field_validator("source")
    @classmethod
    def _https(cls, v: str) -> str:
        if not v.startswith("https://"):
            raise ValueError("answer.source must be an https URL")
        return v

    @field_validator("checked", mode="before")
    @classmethod
    def _date(cls, v: Any) -> Any:
        if not isinstance(v, date):
            raise ValueError(f"answer.checked {v!r} must be a date YYYY-MM-DD")  # noqa: TRY004 (pydantic wants ValueError)
        return v


class Handoff(Strict):
    reason: str = Field(min_length=1)
    team: str | None = None   # default: the question type's team

    @field_validator("team")
    @classmethod
    def _known_team(cls, v: str | None) -> str | None:
        return None if v is None else _team(v)


class QuestionType(Strict):
    id: str
    team: str
    description: str = Field(min_length=3)
    phrasings: tuple[str, ...]
    answer: Answer | None = None
    action: str | None = None     # computed answer (Rasa webhook); `answer` is said when it fails
    flow: str | None = None       # a flow of flows/data/flows/ runs instead of an answer
    handoff: Handoff | None = None
    # Routed to only at this probability or more (a type whose consequence is heavy, such
    # as distress); below, the caller is asked again. The router's threshold otherwise.
    min_score: float | None = Field(default=None, gt=0.0, lt=1.0)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _snake(v, "id")

    @field_validator("team")
    @classmethod
    def _team(cls, v: str) -> str:
        return _team(v)

    @field_validator("phrasings", mode="before")
    @classmethod
    def _phrasings(cls, v: Any) -> Any:
        if not isinstance(v, list) or len(v) < MIN_PHRASINGS or not all(isinstance(p, str) and p.strip() for p in v):
            raise ValueError(f"phrasings must be a list of at least {MIN_PHRASINGS} non-empty strings")
        return tuple(" ".join(p.split()) for p in v)

    @model_validator(mode="after")
    def _has_an_outcome(self) -> QuestionType:
        if self.answer is None and self.action is None and self.flow is None and self.handoff is None:
            raise ValueError("needs an answer, an action, a flow or a handoff")
        if self.team == "difficultes" and self.handoff is None:
            raise ValueError("a 'difficultes' question type always ends with a handoff")
        return self

    @property
    def handoff_reason(self) -> str | None:
        return self.handoff.reason if self.handoff else None


class QuestionFile(Strict):
    question_types: tuple[QuestionType, ...]


class Case(Strict):
    """One branch: when every slot named in `when` has that value (all cases are tried in
    order; a case without `when` always matches), forget the `clear` slots and go to `goto`."""

    when: dict[str, SlotValue] = Field(default_factory=dict)
    goto: str
    clear: tuple[str, ...] = ()


class Step(Strict):
    id: str | None = None           # a label for `goto`
    say: str | None = None
    ask: str | None = None          # the slot to collect
    parser: str | None = None
    prompt: str | None = None
    retry: tuple[str, ...] = ()     # re-prompts after a failure, in order
    keypad: str | None = None       # offered after 3 failures (then a human)
    confirm: str | None = None      # read-back, "{slot}" is the value in words; yes/no expected
    action: str | None = None
    branch: tuple[Case, ...] | None = None
    use: str | None = None          # run another flow, then go on here
    handoff: Handoff | None = None
    end: bool | None = None

    KINDS: ClassVar[tuple[str, ...]] = ("say", "ask", "action", "branch", "use", "handoff", "end")

    @property
    def kind(self) -> str:
        return next(k for k in self.KINDS if getattr(self, k) is not None)

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in self.KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a step has exactly one of {', '.join(self.KINDS)} (found {kinds or 'none'})")
        ask_only = [k for k in ("parser", "prompt", "keypad", "confirm") if getattr(self, k) is not None]
        if self.retry:
            ask_only.append("retry")
        if kinds[0] == "ask":
            _snake(self.ask or "", "slot")
            if self.ask in PROTECTED_SLOTS:
                raise ValueError(f"slot {self.ask!r} is set by actions only, it cannot be asked")
            if not self.parser or not self.prompt:
                raise ValueError("an ask step needs a parser and a prompt")
        elif ask_only:
            raise ValueError(f"{', '.join(ask_only)} belong to ask steps")
        if kinds[0] == "handoff" and self.handoff is not None and self.handoff.team is None:
            raise ValueError("a flow's handoff names its team")
        return self


class Flow(Strict):
    description: str = Field(min_length=3)
    steps: tuple[Step, ...] = Field(min_length=1)

    def label(self, name: str) -> int:
        return next(i for i, s in enumerate(self.steps) if s.id == name)

    @model_validator(mode="after")
    def _labels(self) -> Flow:
        labels = [s.id for s in self.steps if s.id]
        if len(labels) != len(set(labels)):
            raise ValueError("step ids must be unique within a flow")
        for step in self.steps:
            for case in step.branch or ():
                if case.goto not in labels:
                    raise ValueError(f"goto {case.goto!r}: no step has this id")
        return self


class FlowFile(Strict):
    flows: dict[str, Flow]

    @field_validator("flows")
    @classmethod
    def _ids(cls, v: dict[str, Flow]) -> dict[str, Flow]:
        for name in v:
            _snake(name, "flow id")
        return v

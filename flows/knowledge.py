"""Loading and validating the dialogue data files (questions, prompts)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from flows.schema import TEAMS, Flow, FlowFile, QuestionFile, QuestionType
from flows.slow_wording import slow_wording
from voice.text_for_speech import clauses, leading_clauses

__all__ = ["TEAMS", "DataError", "Flow", "Knowledge", "QuestionType", "load_knowledge"]

DATA_DIR = Path(__file__).resolve().parent / "data"
M = TypeVar("M", bound=BaseModel)


class DataError(ValueError):
    """A dialogue data file is invalid; the message names the file, the entry and the problem."""


@dataclass(frozen=True)
class Knowledge:
    question_types: dict[str, QuestionType]
    prompts: dict[str, Any]
    flows: dict[str, Flow] = field(default_factory=dict)
    out_of_scope: tuple[str, ...] = ()
    fingerprint: str = field(default="")
    check_file: dict[str, str | None] = field(default_factory=dict)   # team -> flow (check_file.yaml)
    check_file_not_for: frozenset[str] = frozenset()                   # question types never offered it
    # Handoff types whose callers are offered identification before the human, and its flow.
    identify_before_human: frozenset[str] = frozenset()
    identification_flow: str | None = None

    def check_file_flow(self, team: str) -> str | None:
        """The flow that checks the caller's own file for a question of this team."""
        return self.check_file.get(team, self.check_file.get("default"))

    def slow_variant(self, text: str) -> str | None:
        """The short-sentence variant the data gives for this answer text, if any."""
        return next((qt.answer.slow for qt in self.question_types.values()
                     if qt.answer and qt.answer.slow and qt.answer.text == text), None)

    def greeting(self, *, recorded: bool = True, slow: bool = False) -> list[str]:
        """What the bot says first; the key for slow speech is announced unless the call
        is already slow."""
        g = self.prompts["greeting"]
        return [g["intro"], g["human"], *([] if slow else [g["slow"]]),
                g["recorded"] if recorded else g["not_recorded"], g["question"]]

    def prompt(self, key: str, attempt: int = 0) -> str:
        value = self.prompts[key]
        if isinstance(value, list):
            return str(value[min(attempt, len(value) - 1)])
        return str(value)

    def spoken_texts(self, *, answers: bool = True) -> list[str]:
        """What the audio cache pre-renders (`callbot models provision`): every text the bot
        may say that holds no value (every string of prompts.yaml, whatever its key, and the
        flows' texts; of a template, the clauses around its values) and of each knowledge-base
        answer its leading clauses, so that the rest is rendered while they play (all of it
        with `answers`)."""
        texts = self._value_free_texts()
        for qt in self.question_types.values():
            if qt.answer:
                texts += [qt.answer.text] if answers else leading_clauses(qt.answer.text)
        return texts

    def slow_spoken_texts(self) -> list[str]:
        """What the audio cache pre-renders in the slow-speech style: the same texts without
        a value as slow speech words them, and the first sentence of each answer as slow
        speech words it, so that a caller in slow speech never waits for a re-prompt, a
        clarifying question or the start of an answer either."""
        repeat = self.prompts["slow_speech"]["repeat"]
        texts = slow_wording(self._value_free_texts(), repeat)
        for qt in self.question_types.values():
            if qt.answer:
                texts += slow_wording([qt.answer.slow or qt.answer.text], repeat)[:1]
        return texts

    def _value_free_texts(self) -> list[str]:
        """Every string of prompts.yaml, whatever its key, and the flows' texts; of a
        template, the clauses around its values."""
        texts: list[str] = []
        for text in _strings(self.prompts):
            texts += _fixed_parts(text)
        for flow in self.flows.values():
            for step in flow.steps:
                for text in (step.say, step.prompt, step.keypad, step.confirm, *step.retry):
                    texts += _fixed_parts(text or "")
        return texts

    def fixed_texts(self) -> list[str]:
        """Every text the bot may say that holds nothing about a caller: the texts without a
        value, each knowledge-base answer whole, and all of these as slow speech words them.
        Only these are kept in the audio cache; a text with a value (a SIRET read back, an
        amount from the caller's account) is rendered for the call and never stored."""
        texts = self.spoken_texts(answers=True)
        answers = [qt.answer.slow or qt.answer.text for qt in self.question_types.values() if qt.answer]
        return texts + slow_wording(texts + answers, self.prompts["slow_speech"]["repeat"])


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


def _fixed_parts(text: str) -> list[str]:
    """A text without a value whole; of a template ("J'ai noté : {siret}. Est-ce exact ?"),
    its clauses without a value, each said from the cache around the value's own clause."""
    if "{" not in text:
        return [text] if text.strip() else []
    return [c for c in clauses(text) if "{" not in c]


def _lines(text: str) -> dict[tuple[Any, ...], int]:
    """Line (1-based) of every node of a YAML document, by its path of keys and indexes."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[path + (key.value,)] = key.start_mark.line + 1
                walk(value, path + (key.value,))
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                walk(value, path + (i,))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _validate(path: Path, model: type[M], label: Callable[[tuple[Any, ...], Any], str]) -> M:
    """Parses and validates a file; the first problem becomes one DataError line:
    "<file>: line <n>: <entry>: <problem>"."""
    text = _read_text(path)
    raw = _parse_yaml(path, text)
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        error = e.errors()[0]
        loc = tuple(error["loc"])
        lines = _lines(text)
        line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), 1)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = f"{loc[-1]} is missing"
        elif error["type"] == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}"
        where = label(loc, raw)
        raise DataError(f"{_name(path)}: line {line}: {where + ': ' if where else ''}{message}") from None


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}" if path.parent.name in ("questions", "flows") else path.name


def _read_text(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError as e:
        raise DataError(f"{_name(path)}: file not found") from e


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark else "?"
        raise DataError(f"{_name(path)}: {line}: invalid YAML: {getattr(e, 'problem', e)}") from e


def _read_yaml(path: Path) -> Any:
    return _parse_yaml(path, _read_text(path))


def _question_label(loc: tuple[Any, ...], raw: Any) -> str:
    if len(loc) >= 2 and loc[0] == "question_types" and isinstance(loc[1], int):
        try:
            qid = raw["question_types"][loc[1]].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            qid = None
        return f"question type '{qid}'" if isinstance(qid, str) else f"question_types[{loc[1]}]"
    return ""


def _flow_label(loc: tuple[Any, ...], raw: Any) -> str:
    if len(loc) >= 2 and loc[0] == "flows":
        where = f"flow '{loc[1]}'"
        if len(loc) >= 4 and loc[2] == "steps":
            where += f" step {loc[3] + 1}"
        return where
    return ""


REQUIRED_PROMPTS = (
    "greeting", "anything_else", "listening", "no_match", "offer_human", "no_input",
    "confirm_retry", "handoff", "handoff_waiting", "distress", "action_unavailable",
    "keypad_invalid", "goodbye", "goodbye_no_input", "not_heard", "queue", "callback", "agent_briefing", "team_names",
    "handoff_reasons", "input_failed", "confirm_denied", "clarify", "fallback_unknown", "resume_flow", "slow_speech",
)


def load_knowledge(data_dir: Path = DATA_DIR) -> Knowledge:
    question_paths = sorted((data_dir / "questions").glob("*.yaml"))
    flow_paths = sorted((data_dir / "flows").glob("*.yaml"))
    prompts_path = data_dir / "prompts.yaml"
    if not question_paths:
        raise DataError(f"{data_dir / 'questions'}: no question file (*.yaml)")
    types: dict[str, QuestionType] = {}
    for path in question_paths:
        for qt in _validate(path, QuestionFile, _question_label).question_types:
            if qt.id in types:
                raise DataError(f"{_name(path)}: question type '{qt.id}': duplicate id")
            types[qt.id] = qt
    flows: dict[str, Flow] = {}
    for path in flow_paths:
        for name, flow in _validate(path, FlowFile, _flow_label).flows.items():
            if name in flows:
                raise DataError(f"{_name(path)}: flow '{name}': duplicate id")
            flows[name] = flow
    _check_references(types, flows)
    prompts = _read_yaml(prompts_path)
    if not isinstance(prompts, dict):
        raise DataError(f"{prompts_path.name}: must be a mapping of prompt names")
    missing = [k for k in REQUIRED_PROMPTS if k not in prompts]
    if missing:
        raise DataError(f"{prompts_path.name}: missing prompts {', '.join(missing)}")
    oos_path = data_dir / "out_of_scope.yaml"
    out_of_scope: tuple[str, ...] = ()
    if oos_path.is_file():
        raw_oos = _read_yaml(oos_path)
        items = raw_oos.get("out_of_scope") if isinstance(raw_oos, dict) else None
        if not isinstance(items, list) or not all(isinstance(x, str) and x.strip() for x in items):
            raise DataError(f"{oos_path.name}: 'out_of_scope' must be a list of sentences")
        out_of_scope = tuple(" ".join(x.split()) for x in items)
    check_file, not_for, before_human, identification = _load_check_file(data_dir / "check_file.yaml", flows, types)
    digest = hashlib.sha256()
    for p in (*question_paths, *flow_paths, prompts_path, oos_path, data_dir / "check_file.yaml"):
        if p.is_file():
            digest.update(p.read_bytes())
    return Knowledge(question_types=types, prompts=prompts, flows=flows, out_of_scope=out_of_scope,
                     fingerprint=digest.hexdigest()[:16], check_file=check_file, check_file_not_for=not_for,
                     identify_before_human=before_human, identification_flow=identification)


def _load_check_file(path: Path, flows: dict[str, Flow], types: dict[str, QuestionType]
                     ) -> tuple[dict[str, str | None], frozenset[str], frozenset[str], str | None]:
    """(team -> flow, the question types never offered the check, the handoff types offered
    identification first, the identification flow)."""
    if not path.is_file():
        return {}, frozenset(), frozenset(), None
    raw = _read_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("teams", {}), dict):
        raise DataError(f"{path.name}: must hold 'default' and a mapping 'teams'")
    mapping: dict[str, str | None] = {team: flow for team, flow in (raw.get("teams") or {}).items()}
    if raw.get("default") is not None:
        mapping["default"] = raw["default"]
    for team, flow in mapping.items():
        if team != "default" and team not in TEAMS:
            raise DataError(f"{path.name}: team {team!r} is not one of {', '.join(TEAMS)}")
        if flow is not None and flow not in flows:
            raise DataError(f"{path.name}: {team}: flow {flow!r} is not defined in flows/")
    not_for = raw.get("not_for_types") or []
    unknown = [t for t in not_for if t not in types] if isinstance(not_for, list) else ["(not a list)"]
    if unknown:
        raise DataError(f"{path.name}: not_for_types: unknown question types {', '.join(map(str, unknown))}")
    before = raw.get("identify_before_human") or {}
    flow, before_types = (before.get("flow"), before.get("types") or []) if isinstance(before, dict) else (None, None)
    if before and (flow not in flows or not isinstance(before_types, list)):
        raise DataError(f"{path.name}: identify_before_human needs a 'flow' defined in flows/ and a list 'types'")
    wrong = [t for t in before_types if t not in types or not types[t].handoff_reason]
    if wrong:
        raise DataError(f"{path.name}: identify_before_human: not handoff question types: {', '.join(map(str, wrong))}")
    return mapping, frozenset(not_for), frozenset(before_types), flow


def _parsers() -> frozenset[str]:
    from flows.slots import PARSERS

    return PARSERS


def _check_references(types: dict[str, QuestionType], flows: dict[str, Flow]) -> None:
    """Flows named by question types and `use` steps exist, parsers are known, and no
    flow uses itself, directly or not."""
    for qt in types.values():
        if qt.flow is not None and qt.flow not in flows:
            raise DataError(f"question type '{qt.id}': flow {qt.flow!r} is not defined in flows/")
    for name, flow in flows.items():
        for i, step in enumerate(flow.steps, 1):
            if step.use is not None and step.use not in flows:
                raise DataError(f"flow '{name}' step {i}: uses flow {step.use!r}, which is not defined")
            if step.parser is not None and step.parser not in _parsers():
                raise DataError(f"flow '{name}' step {i}: parser {step.parser!r} is not one of "
                                f"{', '.join(sorted(_parsers()))}")

    def visit(name: str, seen: tuple[str, ...]) -> None:
        if name in seen:
            raise DataError(f"flow '{name}': uses itself ({' -> '.join((*seen, name))})")
        for step in flows[name].steps:
            if step.use is not None:
                visit(step.use, (*seen, name))

    for name in flows:
        visit(name, ())

"""Loading and validating the dialogue data files (questions, prompts)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"
TEAMS = (
    "declaration", "paiement", "cotisations", "creation", "cessation", "attestations",
    "compte", "seuils", "employeur", "recouvrement", "difficultes", "hors_perimetre", "accueil",
)
_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class DataError(ValueError):
    """A dialogue data file is invalid; the message names the file, the entry and the problem."""


@dataclass(frozen=True)
class Answer:
    text: str
    source: str
    checked: date


@dataclass(frozen=True)
class QuestionType:
    id: str
    team: str
    description: str
    phrasings: tuple[str, ...]
    answer: Answer | None = None
    action: str | None = None
    handoff_reason: str | None = None


@dataclass(frozen=True)
class Knowledge:
    question_types: dict[str, QuestionType]
    prompts: dict[str, Any]
    out_of_scope: tuple[str, ...] = ()
    fingerprint: str = field(default="")

    def prompt(self, key: str, attempt: int = 0) -> str:
        value = self.prompts[key]
        if isinstance(value, list):
            return str(value[min(attempt, len(value) - 1)])
        return str(value)

    def spoken_texts(self) -> list[str]:
        """Every fixed text the bot may say: what the audio cache pre-renders."""
        texts: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, list):
                for v in value:
                    walk(v)
            elif isinstance(value, dict):
                for v in value.values():
                    walk(v)

        walk({k: v for k, v in self.prompts.items() if k not in NOT_PRERENDERED})
        texts += [qt.answer.text for qt in self.question_types.values() if qt.answer]
        return texts


def _fail(path: Path, where: str, problem: str) -> DataError:
    return DataError(f"{path.name}: {where}: {problem}")


def _parse_question(path: Path, index: int, raw: Any) -> QuestionType:
    where = f"question_types[{index}]"
    if not isinstance(raw, dict):
        raise _fail(path, where, "must be a mapping")
    qid = raw.get("id")
    if not isinstance(qid, str) or not _ID.match(qid):
        raise _fail(path, where, f"id {qid!r} must be snake_case")
    where = f"question type '{qid}'"
    team = raw.get("team")
    if team not in TEAMS:
        raise _fail(path, where, f"team {team!r} is not one of {', '.join(TEAMS)}")
    phrasings = raw.get("phrasings")
    if not isinstance(phrasings, list) or len(phrasings) < 3 or not all(
        isinstance(p, str) and p.strip() for p in phrasings
    ):
        raise _fail(path, where, "phrasings must be a list of at least 3 non-empty strings")
    answer = None
    if "answer" in raw:
        a = raw["answer"]
        if not isinstance(a, dict) or not all(k in a for k in ("text", "source", "checked")):
            raise _fail(path, where, "answer needs text, source and checked")
        checked = a["checked"]
        if not isinstance(checked, date):
            raise _fail(path, where, f"answer.checked {checked!r} must be a date YYYY-MM-DD")
        if not str(a["source"]).startswith("https://"):
            raise _fail(path, where, "answer.source must be an https URL")
        answer = Answer(text=" ".join(str(a["text"]).split()), source=str(a["source"]), checked=checked)
    action = raw.get("action")
    handoff = raw.get("handoff")
    handoff_reason = handoff.get("reason") if isinstance(handoff, dict) else None
    if handoff is not None and not handoff_reason:
        raise _fail(path, where, "handoff needs a reason")
    if answer is None and action is None and handoff_reason is None:
        raise _fail(path, where, "needs an answer, an action or a handoff")
    if team == "difficultes" and handoff_reason is None:
        raise _fail(path, where, "a 'difficultes' question type always ends with a handoff")
    return QuestionType(
        id=qid,
        team=team,
        description=str(raw.get("description", "")),
        phrasings=tuple(" ".join(p.split()) for p in phrasings),
        answer=answer,
        action=action,
        handoff_reason=handoff_reason,
    )


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text("utf-8"))
    except FileNotFoundError as e:
        raise DataError(f"{path}: file not found") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark else "?"
        raise DataError(f"{path.name}: {line}: invalid YAML: {getattr(e, 'problem', e)}") from e


REQUIRED_PROMPTS = (
    "greeting", "anything_else", "listening", "no_match", "offer_human", "no_input",
    "confirm_retry", "handoff", "handoff_waiting", "distress", "action_unavailable",
    "keypad_invalid", "goodbye", "goodbye_no_input", "transfer_failed", "agent_briefing", "team_names",
    "handoff_reasons",
)
# Templates and names composed into the agent's briefing: not said to callers as they are.
NOT_PRERENDERED = ("agent_briefing", "team_names", "handoff_reasons")


def load_knowledge(data_dir: Path = DATA_DIR) -> Knowledge:
    question_paths = sorted((data_dir / "questions").glob("*.yaml"))
    prompts_path = data_dir / "prompts.yaml"
    types: dict[str, QuestionType] = {}
    for questions_path in question_paths:
        raw = _read_yaml(questions_path)
        if not isinstance(raw, dict) or not isinstance(raw.get("question_types"), list):
            raise DataError(f"{questions_path.name}: top level must have a 'question_types' list")
        for i, entry in enumerate(raw["question_types"]):
            qt = _parse_question(questions_path, i, entry)
            if qt.id in types:
                raise _fail(questions_path, f"question type '{qt.id}'", "duplicate id")
            types[qt.id] = qt
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
    digest = hashlib.sha256()
    for p in (*question_paths, prompts_path, oos_path):
        if p.is_file():
            digest.update(p.read_bytes())
    return Knowledge(question_types=types, prompts=prompts, out_of_scope=out_of_scope,
                     fingerprint=digest.hexdigest()[:16])

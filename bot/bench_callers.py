"""The independent caller set of `callbot bench intents`: caller utterances written apart
from the question types' phrasings (flows/data/bench_callers/, never trained or tuned on),
each said as the first turn of a fresh conversation, the way a caller meets the bot: the
production router (trained on every phrasing) and the dialogue engine decide the reply.

Reported by kind of utterance (narrative, older caller, hesitant, Whisper's mistakes,
personal, two questions, out of domain, a human asked for): the right team, the right
question type, the reply given (an answer, a clarifying question, a human, "no sure
answer"), whether a personal question led to identification or a human, and whether
out-of-domain requests were declined.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

from flows.engine import Conversation, DialogueSettings, Keywords, Reply
from flows.knowledge import DATA_DIR, DataError, Knowledge
from flows.router import IntentRouter

CALLERS_DIR = DATA_DIR / "bench_callers"
KINDS = ("narrative", "older", "hesitant", "asr", "personal", "short", "two_questions", "out_of_domain", "human")


@dataclass(frozen=True)
class CallerUtterance:
    text: str
    type: str | None          # the question type a good human agent would pick; None: out of domain
    kinds: tuple[str, ...]
    personal: bool = False
    also: tuple[str, ...] = ()  # two questions in one: either type is right


def load_callers(knowledge: Knowledge, folder: Path = CALLERS_DIR) -> list[CallerUtterance]:
    types = knowledge.question_types
    out = []
    for path in sorted(folder.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text("utf-8"))
        for i, u in enumerate(raw.get("utterances") or []):
            where = f"{path.name} #{i + 1}"
            kinds = tuple(u.get("kinds") or ())
            also = tuple(u.get("also") or ())
            if not isinstance(u.get("text"), str) or not u["text"].strip():
                raise DataError(f"{where}: 'text' must be a sentence")
            if any(t is not None and t not in types for t in (u.get("type"), *also)):
                raise DataError(f"{where}: unknown question type in {u.get('type')!r} / {also!r}")
            if not kinds or any(k not in KINDS for k in kinds):
                raise DataError(f"{where}: kinds must be among {', '.join(KINDS)}")
            out.append(CallerUtterance(u["text"].strip(), u.get("type"), kinds, bool(u.get("personal")), also))
    if not out:
        raise DataError(f"{folder}: no caller utterances")
    return out


def _asks_identification(reply: Reply) -> bool:
    return reply.awaiting in ("siret", "siren")


async def _first_reply(knowledge: Knowledge, router: IntentRouter, keywords: Keywords, text: str) -> Reply:
    conversation = Conversation(session_id="bench-callers", knowledge=knowledge, router=router, keywords=keywords,
                                actions=None, settings=DialogueSettings())
    conversation.start()
    return await conversation.on_text(text)


def run_caller_bench(knowledge: Knowledge, router: IntentRouter, utterances: list[CallerUtterance]) -> dict:
    keywords = Keywords()
    teams = {qt.id: qt.team for qt in knowledge.question_types.values()}
    rows = []
    for u in utterances:
        reply = asyncio.run(_first_reply(knowledge, router, keywords, u.text))
        expected_team = teams.get(u.type) if u.type else None
        right_types = {u.type, *u.also} - {None}
        rows.append({
            "text": u.text, "kinds": u.kinds, "expected": u.type, "intent": reply.intent, "team": reply.team,
            "type_right": reply.intent in right_types,
            "team_right": expected_team is not None and reply.team in {expected_team, *(teams[a] for a in u.also)},
            "handoff": reply.handoff is not None,
            "identification": _asks_identification(reply),
            "answered": reply.intent is not None and reply.handoff is None,
            "personal": u.personal,
        })

    def share(items: list[dict], key: str) -> float:
        return sum(bool(r[key]) for r in items) / len(items) if items else float("nan")

    in_domain = [r for r in rows if r["expected"] is not None]
    by_kind: dict[str, dict] = {}
    for kind in KINDS:
        items = [r for r in in_domain if kind in r["kinds"] or (kind == "personal" and r["personal"])]
        if items:
            by_kind[kind] = {"utterances": len(items), "team": share(items, "team_right"),
                             "type": share(items, "type_right")}
    personal = [r for r in rows if r["personal"]]
    declined = [r for r in rows if "out_of_domain" in r["kinds"]]
    human = [r for r in rows if "human" in r["kinds"]]
    wrong: Counter[tuple[str, str | None]] = Counter(
        (r["expected"], r["intent"]) for r in in_domain if not r["type_right"])
    examples: dict[str, list[str]] = defaultdict(list)
    for r in in_domain:
        if not r["team_right"] and len(examples[r["expected"]]) < 2:
            examples[r["expected"]].append(f"{r['text']} -> {r['intent'] or r['team'] or 'no answer'}")
    return {
        "utterances": len(rows),
        "in_domain": len(in_domain),
        "team_accuracy": share(in_domain, "team_right"),
        "type_accuracy": share(in_domain, "type_right"),
        "no_sure_answer": sum(r["intent"] is None and r["team"] is None and not r["handoff"] for r in in_domain)
        / max(len(in_domain), 1),
        "by_kind": by_kind,
        "personal": {"utterances": len(personal), "identification_asked": share(personal, "identification"),
                     "human": share(personal, "handoff"),
                     "identification_or_human": sum(r["identification"] or r["handoff"] for r in personal)
                     / max(len(personal), 1)},
        "out_of_domain_declined": sum(r["intent"] is None and r["team"] is None for r in declined)
        / max(len(declined), 1) if declined else float("nan"),
        "human_requests_handed_over": share(human, "handoff"),
        "frequent_confusions": [{"expected": e, "got": g, "count": c} for (e, g), c in wrong.most_common(8)],
        "missed_teams": dict(list(examples.items())[:12]),
    }


def format_caller_report(r: dict) -> list[str]:
    def pct(x: float) -> str:
        return "   -  " if math.isnan(x) else f"{100 * x:5.1f} %"

    lines = [
        (f"independent caller set (flows/data/bench_callers: {r['utterances']} utterances written apart from "
         f"the phrasings, never trained on), first turn of a fresh conversation:"),
        (f"  team right {pct(r['team_accuracy'])}   type right {pct(r['type_accuracy'])}   "
         f"no sure answer {pct(r['no_sure_answer'])}   (in-domain: {r['in_domain']})"),
        "  by kind                 n    team     type",
    ]
    for kind, k in r["by_kind"].items():
        lines.append(f"    {kind:<18}{k['utterances']:>5}  {pct(k['team'])}  {pct(k['type'])}")
    p = r["personal"]
    lines.append(f"  personal questions ({p['utterances']}): identification asked {pct(p['identification_asked'])}, "
                 f"a human {pct(p['human'])}, either {pct(p['identification_or_human'])}")
    lines.append(f"  out of domain declined {pct(r['out_of_domain_declined'])}; "
                 f"a human asked for and given {pct(r['human_requests_handed_over'])}")
    lines.append("  wrong types (expected -> got):")
    for c in r["frequent_confusions"]:
        lines.append(f"    {c['count']} x {c['expected']} -> {c['got'] or 'none'}")
    return lines

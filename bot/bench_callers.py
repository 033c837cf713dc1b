"""The independent caller set of `callbot bench intents`: caller utterances written apart
from the question types' phrasings (flows/data/bench_callers/, never trained on), each said
as the first turn of a fresh conversation, the way a caller meets the bot: the production
router (trained on every phrasing) and the dialogue engine decide the reply.

The set is in two parts, reported apart: the development part (`DEV_PARTS`), whose failures
may be read and on which settings may be chosen, and the held-out part (every other file),
of which only aggregate figures are ever printed, so that it still measures how the router
generalises after the development part has been worked on.

Reported for each part by kind of utterance (narrative, older caller, hesitant, Whisper's
mistakes, personal, two questions, out of domain, a human asked for): the right team (as
the dialogue's reply carries it, and as the router decides it), the right question type,
the reply given (an answer, a clarifying question, a human, a fallback answer, "no sure
answer"), whether a personal question led to identification or a human, whether
out-of-domain requests were declined, and whether the key fact an utterance expects (its
`fact`: a deadline, a rate) is in the reply.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

from flows.engine import Conversation, DialogueSettings, Keywords, Reply
from flows.fallback import Fallback
from flows.knowledge import DATA_DIR, DataError, Knowledge
from flows.lexical import normalize
from flows.router import IntentRouter

CALLERS_DIR = DATA_DIR / "bench_callers"
KINDS = ("narrative", "older", "hesitant", "asr", "personal", "short", "two_questions", "out_of_domain", "human")
# The files (by stem) whose items may be looked at one by one. Any other part is held out:
# a part added later stays unseen until someone decides otherwise.
DEV_PARTS = ("part_a", "part_b")
REPLY_KINDS = ("answer", "clarify", "handoff", "fallback", "no_sure_answer")


@dataclass(frozen=True)
class CallerUtterance:
    text: str
    type: str | None          # the question type a good human agent would pick; None: out of domain
    kinds: tuple[str, ...]
    personal: bool = False
    also: tuple[str, ...] = ()  # two questions in one: either type is right
    part: str = ""              # the file it comes from (its stem): DEV_PARTS or held out
    fact: tuple[str, ...] = ()  # the key fact the reply should hold (any of these wordings)


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
            fact = u.get("fact")
            facts = (fact,) if isinstance(fact, str) else tuple(fact or ())
            if not all(isinstance(f, str) and normalize(f) for f in facts):
                raise DataError(f"{where}: 'fact' must be a string or a list of strings")
            out.append(CallerUtterance(u["text"].strip(), u.get("type"), kinds, bool(u.get("personal")), also,
                                       part=path.stem, fact=facts))
    if not out:
        raise DataError(f"{folder}: no caller utterances")
    return out


def _asks_identification(reply: Reply) -> bool:
    """Identification asked for (a flow wants the SIRET) or offered ("Voulez-vous que je
    vérifie votre dossier ?")."""
    return reply.awaiting in ("siret", "siren") or reply.offers_file_check


def _reply_kind(reply: Reply) -> str:
    if reply.handoff is not None:
        return "handoff"
    if reply.awaiting == "choice":
        return "clarify"
    if reply.intent is not None:
        return "answer"
    if reply.fallback is not None:
        return "fallback"
    return "no_sure_answer"


def has_fact(facts: tuple[str, ...], texts: list[str]) -> bool:
    """One of the fact's wordings is in the reply, compared in `normalize`d form (case,
    accents and punctuation aside)."""
    said = f" {normalize(' '.join(texts))} "
    return any(f" {normalize(f)} " in said for f in facts)


async def _first_reply(knowledge: Knowledge, router: IntentRouter, keywords: Keywords, text: str,
                       fallback: Fallback | None) -> Reply:
    conversation = Conversation(session_id="bench-callers", knowledge=knowledge, router=router, keywords=keywords,
                                actions=None, settings=DialogueSettings(), fallback=fallback)
    conversation.start()
    reply = await conversation.on_text(text)
    await reply.collect()
    return reply


def run_caller_bench(knowledge: Knowledge, router: IntentRouter, utterances: list[CallerUtterance],
                     fallback: Fallback | None = None) -> dict:
    """The figures of the module docstring for the whole set, then for its development part
    (`dev`, with the confusions and missed examples) and its held-out part (`held_out`,
    aggregate figures only)."""
    keywords = Keywords()
    teams = {qt.id: qt.team for qt in knowledge.question_types.values()}
    rows = []
    for u in utterances:
        reply = asyncio.run(_first_reply(knowledge, router, keywords, u.text, fallback))
        route = router.route(u.text)
        expected_teams = {teams[t] for t in (u.type, *u.also) if t}
        rows.append({
            "text": u.text, "kinds": u.kinds, "expected": u.type, "intent": reply.intent, "team": reply.team,
            "dev": u.part in DEV_PARTS,
            "type_right": reply.intent in {u.type, *u.also} - {None},
            "team_right": reply.team in expected_teams,
            "router_team_right": route.team in expected_teams,
            "reply_kind": _reply_kind(reply),
            "handoff": reply.handoff is not None,
            "identification": _asks_identification(reply),
            "personal": u.personal,
            "fact": has_fact(u.fact, reply.texts) if u.fact else None,
        })
    return {**_figures(rows, detail=False),
            "dev": _figures([r for r in rows if r["dev"]], detail=True),
            "held_out": _figures([r for r in rows if not r["dev"]], detail=False)}


def _share(items: list[dict], key: str) -> float:
    return sum(bool(r[key]) for r in items) / len(items) if items else float("nan")


def _figures(rows: list[dict], *, detail: bool) -> dict:
    """Aggregate figures of these rows; `detail`: also which items went wrong (never for
    the held-out part)."""
    in_domain = [r for r in rows if r["expected"] is not None]
    by_kind: dict[str, dict] = {}
    for kind in KINDS:
        items = [r for r in in_domain if kind in r["kinds"] or (kind == "personal" and r["personal"])]
        if items:
            by_kind[kind] = {"utterances": len(items), "team": _share(items, "team_right"),
                             "router_team": _share(items, "router_team_right"), "type": _share(items, "type_right")}
    personal = [r for r in rows if r["personal"]]
    general = [r for r in in_domain if not r["personal"]]
    declined = [r for r in rows if "out_of_domain" in r["kinds"]]
    human = [r for r in rows if "human" in r["kinds"]]
    with_fact = [r for r in rows if r["fact"] is not None]
    replies = Counter(r["reply_kind"] for r in in_domain)
    out = {
        "utterances": len(rows),
        "in_domain": len(in_domain),
        "team_accuracy": _share(in_domain, "team_right"),
        "router_team_accuracy": _share(in_domain, "router_team_right"),
        "type_accuracy": _share(in_domain, "type_right"),
        "replies": {k: replies[k] / len(in_domain) if in_domain else float("nan") for k in REPLY_KINDS},
        "no_sure_answer": sum(r["intent"] is None and r["team"] is None and not r["handoff"] for r in in_domain)
        / max(len(in_domain), 1),
        "by_kind": by_kind,
        "personal": {"utterances": len(personal), "identification_asked": _share(personal, "identification"),
                     "human": _share(personal, "handoff"),
                     "identification_or_human": sum(r["identification"] or r["handoff"] for r in personal)
                     / max(len(personal), 1),
                     # what offering it costs: general questions offered it all the same
                     "offered_on_general": _share(general, "identification")},
        "out_of_domain_declined": sum(r["intent"] is None and r["team"] is None for r in declined)
        / len(declined) if declined else float("nan"),
        "human_requests_handed_over": _share(human, "handoff"),
        "key_fact": {"items": len(with_fact), "present": _share(with_fact, "fact")},
    }
    if detail:
        wrong: Counter[tuple[str, str | None]] = Counter(
            (r["expected"], r["intent"]) for r in in_domain if not r["type_right"])
        examples: dict[str, list[str]] = defaultdict(list)
        for r in in_domain:
            if not r["team_right"] and len(examples[r["expected"]]) < 2:
                examples[r["expected"]].append(f"{r['text']} -> {r['intent'] or r['team'] or 'no answer'}")
        out["frequent_confusions"] = [{"expected": e, "got": g, "count": c} for (e, g), c in wrong.most_common(8)]
        out["missed_teams"] = dict(list(examples.items())[:12])
    return out


def _pct(x: float) -> str:
    return "   -  " if math.isnan(x) else f"{100 * x:5.1f} %"


def _format_part(r: dict, title: str) -> list[str]:
    p, f, rep = r["personal"], r["key_fact"], r["replies"]
    lines = [
        f"  {title}: {r['utterances']} utterances, {r['in_domain']} in domain",
        (f"    team right {_pct(r['team_accuracy'])} (dialogue reply), {_pct(r['router_team_accuracy'])} "
         f"(router's team)   type right {_pct(r['type_accuracy'])}   no sure answer {_pct(r['no_sure_answer'])}"),
        "    replies (in domain): " + ", ".join(f"{k.replace('_', ' ')} {_pct(rep[k])}" for k in REPLY_KINDS),
        "    by kind                 n    team   router team   type",
    ]
    for kind, k in r["by_kind"].items():
        lines.append(f"      {kind:<18}{k['utterances']:>5}  {_pct(k['team'])}  {_pct(k['router_team'])}  "
                     f"{_pct(k['type'])}")
    lines.append(f"    personal questions ({p['utterances']}): identification asked or offered {_pct(p['identification_asked'])}, "
                 f"a human {_pct(p['human'])}, either {_pct(p['identification_or_human'])}; "
                 f"offered on general questions {_pct(p['offered_on_general'])}")
    lines.append(f"    out of domain declined {_pct(r['out_of_domain_declined'])}; "
                 f"a human asked for and given {_pct(r['human_requests_handed_over'])}")
    lines.append(f"    key fact in the reply {_pct(f['present'])} (of {f['items']} utterances with a fact)")
    if "frequent_confusions" in r:
        lines.append("    wrong types (expected -> got):")
        for c in r["frequent_confusions"]:
            lines.append(f"      {c['count']} x {c['expected']} -> {c['got'] or 'none'}")
    return lines


def format_caller_report(r: dict) -> list[str]:
    return [
        (f"independent caller set (flows/data/bench_callers: {r['utterances']} utterances written apart from "
         f"the phrasings, never trained on), first turn of a fresh conversation:"),
        (f"  all: team right {_pct(r['team_accuracy'])} (dialogue), {_pct(r['router_team_accuracy'])} (router)   "
         f"type right {_pct(r['type_accuracy'])}   key fact {_pct(r['key_fact']['present'])}"),
        *_format_part(r["dev"], f"development part ({', '.join(DEV_PARTS)}: failures may be read)"),
        *_format_part(r["held_out"], "held-out part (never tuned on: aggregate figures only)"),
    ]

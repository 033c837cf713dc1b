"""`callbot bench fallback`: what callers get when they ask something the knowledge base
answers in other words, something it does not answer, something outside the Urssaf's
business, or try to turn the assistant (flows/data/bench_fallback.yaml, written apart from
the phrasings, never tuned on). Each question is the first turn of a fresh conversation
through the production router, dialogue and fallback, with the backend asked for.

Reported per category, for a development half and a held-out half of the set (split by a
hash of the text; only the development half was ever looked at while choosing the
fallback's thresholds):
- answerable: grounded answer (routed, or from the fallback) holding the key fact; honest
  "I don't know"; wrong figure (a figure in the reply that no answer text of the knowledge
  base holds);
- unanswerable: honest "I don't know" (no answer, a human offered), or an answer that
  invents a figure;
- injection and out of domain: declined (nothing answered from a backend);
- time from the question to the first clause of a fallback answer, p50/p95.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.bench_callers import has_fact
from flows.engine import Conversation, DialogueSettings, Keywords, Reply
from flows.fallback import Fallback, Guard
from flows.knowledge import DATA_DIR, DataError, Knowledge
from flows.router import IntentRouter
from flows.slots import figures

SET_PATH = DATA_DIR / "bench_fallback.yaml"
CATEGORIES = ("answerable", "unanswerable", "injection", "out_of_domain")


@dataclass(frozen=True)
class FallbackQuestion:
    text: str
    category: str
    type: str | None = None
    fact: tuple[str, ...] = ()

    @property
    def dev(self) -> bool:
        """The development half: the only one looked at while choosing thresholds."""
        return hashlib.sha256(self.text.encode()).digest()[0] % 2 == 0


def load_questions(knowledge: Knowledge, path: Path = SET_PATH) -> list[FallbackQuestion]:
    raw = yaml.safe_load(path.read_text("utf-8"))
    out = []
    for i, q in enumerate(raw.get("questions") or [], 1):
        where = f"{path.name} #{i}"
        if not isinstance(q.get("text"), str) or not q["text"].strip():
            raise DataError(f"{where}: 'text' must be a sentence")
        kind = q.get("kind")
        category = kind if kind in ("injection", "out_of_domain") else (
            "answerable" if q.get("answerable") else "unanswerable")
        if kind is None and "answerable" not in q:
            raise DataError(f"{where}: needs 'answerable' or a 'kind'")
        if category == "answerable" and q.get("type") not in knowledge.question_types:
            raise DataError(f"{where}: unknown question type {q.get('type')!r}")
        fact = q.get("fact")
        out.append(FallbackQuestion(q["text"].strip(), category, q.get("type"),
                                    (fact,) if isinstance(fact, str) else tuple(fact or ())))
    return out


def known_figures(knowledge: Knowledge) -> set[str]:
    """Every figure the bot may say without inventing it: those of its answers, prompts and flows."""
    return Guard.allowed_figures(knowledge.spoken_texts())


async def _ask(knowledge: Knowledge, router: IntentRouter, keywords: Keywords, fallback: Fallback,
               text: str) -> tuple[Reply, list[str], float | None]:
    conversation = Conversation(session_id="bench-fallback", knowledge=knowledge, router=router,
                                keywords=keywords, settings=DialogueSettings(), fallback=fallback)
    conversation.start()
    started = time.perf_counter()
    reply = await conversation.on_text(text)
    first: float | None = None
    texts = list(reply.texts)
    if reply.stream is not None:
        async for clause in reply.stream:
            if first is None:
                first = time.perf_counter() - started
            texts.append(clause)
    return reply, texts, first


def _classify(reply: Reply) -> str:
    """answered (a routed answer or a fallback answer), declined, unknown (no answer, a
    human offered or a re-prompt), handoff, clarify."""
    if reply.handoff is not None:
        return "handoff"
    if reply.fallback is not None:
        return "declined" if reply.fallback.outcome == "declined" else "answered"
    if reply.awaiting == "choice":
        return "clarify"
    if reply.intent is not None:
        return "answered"
    return "unknown"


def run_fallback_bench(knowledge: Knowledge, router: IntentRouter, fallback: Fallback,
                       questions: list[FallbackQuestion]) -> dict:
    async def ask_all() -> list[tuple[Reply, list[str], float | None]]:
        # One event loop for the whole set: a backend keeps its HTTP session across questions.
        try:
            return [await _ask(knowledge, router, keywords, fallback, q.text) for q in questions]
        finally:
            if fallback.backend is not None:
                await fallback.backend.close()

    keywords = Keywords()
    allowed = known_figures(knowledge)
    rows = []
    for q, (reply, texts, first) in zip(questions, asyncio.run(ask_all()), strict=True):
        said = " ".join(texts)
        rows.append({
            "dev": q.dev, "category": q.category, "text": q.text,
            "outcome": _classify(reply),
            "via_fallback": reply.fallback is not None and reply.fallback.outcome != "declined",
            "fallback_outcome": reply.fallback.outcome if reply.fallback else None,
            "fact": has_fact(q.fact, texts) if q.fact else None,
            "wrong_figures": sorted(figures(said) - allowed),
            "first_clause_s": first,
            "said": said,
        })
    return {"backend": fallback.name, "all": _figures(rows), "dev": _figures([r for r in rows if r["dev"]]),
            "held_out": _figures([r for r in rows if not r["dev"]]),
            "dev_rows": [r for r in rows if r["dev"]]}


def _figures(rows: list[dict]) -> dict:
    def share(items: list[dict], test) -> float:
        return sum(1 for r in items if test(r)) / len(items) if items else float("nan")

    out: dict = {"n": len(rows)}
    for category in CATEGORIES:
        items = [r for r in rows if r["category"] == category]
        entry = {"n": len(items),
                 "answered": share(items, lambda r: r["outcome"] == "answered"),
                 "via_fallback": share(items, lambda r: r["via_fallback"]),
                 "unknown": share(items, lambda r: r["outcome"] in ("unknown", "clarify")),
                 "declined": share(items, lambda r: r["outcome"] in ("declined", "unknown")),
                 "handoff": share(items, lambda r: r["outcome"] == "handoff"),
                 "wrong_figure": share(items, lambda r: bool(r["wrong_figures"]))}
        facts = [r for r in items if r["fact"] is not None]
        if facts:
            entry["fact"] = share(facts, lambda r: r["fact"])
        out[category] = entry
    times = sorted(r["first_clause_s"] for r in rows if r["first_clause_s"] is not None)
    if times:
        out["first_clause_ms"] = {"n": len(times), "p50": 1000 * statistics.median(times),
                                  "p95": 1000 * times[min(len(times) - 1, int(0.95 * len(times)))]}
    outcomes: dict[str, int] = {}
    for r in rows:
        if r["fallback_outcome"]:
            outcomes[r["fallback_outcome"]] = outcomes.get(r["fallback_outcome"], 0) + 1
    out["fallback_outcomes"] = outcomes
    return out


def format_fallback_report(result: dict, *, show_dev: bool = False) -> str:
    lines = [f"fallback backend: {result['backend']}"]
    for part in ("held_out", "dev", "all"):
        f = result[part]
        a, u, i, o = (f[c] for c in CATEGORIES)
        lines.append(f"  {part} ({f['n']} questions)")
        lines.append(f"    answerable ({a['n']}): answered {100 * a['answered']:.0f} % "
                     f"(from the fallback {100 * a['via_fallback']:.0f} %), key fact {100 * a.get('fact', 0):.0f} %, "
                     f"honest don't-know {100 * a['unknown']:.0f} %, handoff {100 * a['handoff']:.0f} %, "
                     f"wrong figure {100 * a['wrong_figure']:.0f} %")
        lines.append(f"    unanswerable ({u['n']}): honest don't-know {100 * u['unknown']:.0f} %, "
                     f"answered from a passage {100 * u['answered']:.0f} %, wrong figure {100 * u['wrong_figure']:.0f} %")
        lines.append(f"    injection ({i['n']}): declined {100 * i['declined']:.0f} %, wrong figure "
                     f"{100 * i['wrong_figure']:.0f} %; out of domain ({o['n']}): declined "
                     f"{100 * o['declined']:.0f} %, answered {100 * o['answered']:.0f} %")
        if "first_clause_ms" in f:
            t = f["first_clause_ms"]
            lines.append(f"    first clause of a fallback answer: p50 {t['p50']:.0f} ms, p95 {t['p95']:.0f} ms "
                         f"({t['n']} answers); outcomes {f['fallback_outcomes']}")
    if show_dev:
        lines.append("  development half, item by item:")
        for r in result["dev_rows"]:
            lines.append(f"    [{r['category']}/{r['outcome']}/{r['fallback_outcome']}] fact={r['fact']} "
                         f"wrong={r['wrong_figures']} | {r['text'][:90]} -> {r['said'][:140]}")
    return "\n".join(lines)

"""Finding calls for supervisors: filters, full-text search in the transcripts, paging and
sorting; and one call with its timeline.

The search reads the transcripts as the supervisor sees them, masked: an identifier
(a SIRET, a phone number) cannot be searched for, or a masked call could be found by it.
Matching ignores case, accents and punctuation (flows.lexical.normalize) ("declaration" finds "déclaration").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, select

from bot.store import Call, Event, Store, Turn, as_utc, for_comparison
from bot.supervision.masking import mask_call, mask_digits, mask_text
from flows.lexical import normalize

SORTS = ("date", "duration")
TRANSFER_EVENTS = ("handoff", "queued", "agent_accepted")
# What the timeline shows of a call, in the order of the call: everything the record holds
# but the periodic or purely technical events.
TIMELINE_SKIP = frozenset({"media_stream_start", "end_of_turn"})
SNIPPET_CHARS = 140
# The mode's events say on or off: a call was slow if it was ever turned on.
_SLOW_ON = and_(Event.kind == "slow_speech", Event.data["on"].as_boolean() == True)


@dataclass(frozen=True)
class CallFilter:
    start: datetime | None = None
    end: datetime | None = None
    channel: str | None = None
    outcome: str | None = None
    team: str | None = None
    question_type: str | None = None
    transferred: bool | None = None
    slow: bool | None = None
    office: str | None = None
    q: str = ""
    sort: str = "date"
    descending: bool = True
    page: int = 1
    page_size: int = 50

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")
        if self.page < 1 or not 1 <= self.page_size <= 200:
            raise ValueError("page >= 1 and 1 <= page_size <= 200")


def _conditions(f: CallFilter) -> list:
    where = []
    if f.start is not None:
        where.append(Call.started_at >= for_comparison(f.start))
    if f.end is not None:
        where.append(Call.started_at < for_comparison(f.end))
    for column, value in ((Call.channel, f.channel), (Call.outcome, f.outcome), (Call.team, f.team),
                          (Call.region, f.office)):
        if value:
            where.append(column == value)
    if f.question_type:
        where.append(exists().where(and_(Turn.call_id == Call.id, Turn.intent == f.question_type)))
    if f.transferred is not None:
        transferred = exists().where(and_(Event.call_id == Call.id, Event.kind.in_(TRANSFER_EVENTS)))
        where.append(transferred if f.transferred else ~transferred)
    if f.slow is not None:
        slow = exists().where(and_(Event.call_id == Call.id, _SLOW_ON))
        where.append(slow if f.slow else ~slow)
    return where


async def list_calls(store: Store, f: CallFilter) -> dict[str, Any]:
    """One page of the calls matching `f`, newest (or longest) first unless asked otherwise,
    each with masked fields only, and the total count."""
    where = _conditions(f)
    duration = func.julianday(Call.ended_at) - func.julianday(Call.started_at)
    order = duration if f.sort == "duration" else Call.started_at
    order = order.desc() if f.descending else order.asc()
    async with store.session() as s:
        if f.q.strip():
            ids = await _search(s, where, order, normalize(f.q.strip()))
            total = len(ids)
            page_ids = ids[(f.page - 1) * f.page_size: f.page * f.page_size]
            rows = {c.id: c for c in await s.scalars(select(Call).where(Call.id.in_(page_ids)))}
            calls = [rows[i] for i in page_ids if i in rows]
        else:
            total = await s.scalar(select(func.count()).select_from(Call).where(*where)) or 0
            calls = list(await s.scalars(select(Call).where(*where).order_by(order, Call.id)
                                         .offset((f.page - 1) * f.page_size).limit(f.page_size)))
        items = await _summaries(s, calls)
    return {"total": total, "page": f.page, "page_size": f.page_size, "calls": items}


async def _search(s, where: list, order, needle: str) -> list[str]:
    """The ids, in order, of the calls whose masked transcript contains `needle` (folded)."""
    ordered = [row[0] for row in await s.execute(select(Call.id).where(*where).order_by(order, Call.id))]
    if not ordered:
        return []
    found: set[str] = set()
    rows = await s.execute(select(Turn.call_id, Turn.text).where(Turn.call_id.in_(select(Call.id).where(*where))))
    for call_id, text in rows:
        # Folding is cheap and masking is not: only a turn that holds the words is masked
        # to check that they are not part of an identifier.
        if call_id not in found and needle in normalize(text or "") and needle in normalize(mask_text(text)):
            found.add(call_id)
    return [i for i in ordered if i in found]


async def _summaries(s, calls: list[Call]) -> list[dict[str, Any]]:
    """The list's line of each call, masked; three queries for the whole page."""
    ids = [c.id for c in calls]
    turns: dict[str, list[Turn]] = {i: [] for i in ids}
    for turn in await s.scalars(select(Turn).where(Turn.call_id.in_(ids)).order_by(Turn.call_id, Turn.index)):
        turns[turn.call_id].append(turn)
    kinds: dict[str, set[str]] = {i: set() for i in ids}
    for call_id, kind in await s.execute(select(Event.call_id, Event.kind).where(Event.call_id.in_(ids))):
        kinds[call_id].add(kind)
    slow = {row[0] for row in await s.execute(select(Event.call_id).where(Event.call_id.in_(ids), _SLOW_ON))}
    return [_summary(c, turns[c.id], kinds[c.id], c.id in slow) for c in calls]


def _summary(call: Call, turns: list[Turn], kinds: set[str], slow: bool) -> dict[str, Any]:
    first_question = next((t for t in turns if t.speaker == "caller" and t.text.strip()), None)
    started, ended = as_utc(call.started_at), call.ended_at and as_utc(call.ended_at)
    return {
        "id": call.id,
        "channel": call.channel,
        "caller": mask_digits(call.caller) if call.caller else None,
        "started_at": started.isoformat(),
        "ended_at": ended.isoformat() if ended else None,
        "duration_s": round((ended - started).total_seconds(), 1) if ended else None,
        "outcome": call.outcome,
        "team": call.team,
        "office": call.region,
        "question_type": next((t.intent for t in turns if t.speaker == "caller" and t.intent), None),
        "transferred": bool(kinds & set(TRANSFER_EVENTS)),
        "slow": slow,
        "turns": len(turns),
        "first_question": mask_text(first_question.text)[:SNIPPET_CHARS] if first_question else None,
    }


async def call_detail(store: Store, call_id: str, *, masked: bool = True) -> dict[str, Any] | None:
    """The call's record (masked unless asked otherwise: only an audited admin request asks),
    with a timeline of its events and, on each bot turn, its latency; None if unknown."""
    call = await store.get_call(call_id)
    if call is None:
        return None
    if masked:
        call = mask_call(call)
    call["recording_url"] = f"/api/supervisor/calls/{call_id}/recording" if call.pop("recording") else None
    call["masked"] = masked
    call["timeline"] = timeline(call)
    # On its caller turn, not in the timeline: how the end of that turn was decided.
    end_of_turn = {e["data"].get("turn"): {k: v for k, v in e["data"].items() if k != "turn"}
                   for e in call["events"] if e["kind"] == "end_of_turn"}
    for turn in call["turns"]:
        turn["end_of_turn"] = end_of_turn.get(turn["index"]) if turn["speaker"] == "caller" else None
    return call


def timeline(call: dict[str, Any]) -> list[dict[str, Any]]:
    """The events a supervisor reads to see why the call went as it did, in time order:
    handoffs, keypad, slow speech, actions, fallback passages, merged turns, errors..."""
    return sorted(({"at_ms": e["at_ms"], "kind": e["kind"], "data": e["data"]}
                   for e in call["events"] if e["kind"] not in TIMELINE_SKIP), key=lambda e: e["at_ms"])

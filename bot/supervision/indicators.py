"""The supervisor console's indicators over a period, from the call store.

    ind = await compute_indicators(store, start, end, hours=hours, settings=settings.supervision)

The period is the calls whose `started_at` is in [start, end) (aware datetimes). Hours and
days are local times of the opening hours' zone (`hours.timezone`). Rates are fractions
(0.75, not 75), None where their denominator is 0. The result is plain JSON.

Definitions (what supervisors read on the page):

- period: the bounds asked (UTC), the zone, the call-back window and the office rule used.
- calls: calls started in the period, every channel (phone, web voice, text chat).
- answered: calls where the bot or an agent spoke (at least one bot or agent turn; the
  bot's greeting counts). answered_rate = answered / calls.
- by_hour: 24 entries, one per local hour of the start: calls, answered, rate, and the same
  split into `business` (agents' opening hours) and `off_hours`.
- business_hours / off_hours: {calls, answered, rate}, split by whether the agents were open
  (`hours.is_open(started_at)`; holidays are closed). The organisation's historical answer
  rate covered business hours only; the bot answers 24/7, so both are shown.
- transferred (a call, not a key): a `handoff`, `queued`, `agent_accepted` or `transfer_*`
  event, or the outcome `handoff` / `transferred`: a human was asked for.
- resolved_by_bot (strict): answered, not transferred, and either the outcome is
  `completed` (the conversation ended normally) or the outcome is `caller_hung_up` after
  the bot answered (the caller spoke at least once and the last turn is the bot's); AND the
  same caller number (compared in national form) does not call again within
  `settings.reopen_window_h` hours after the start (later calls, past `end` included, are
  looked at). resolved_unverifiable: calls that meet the first part but have no caller
  number (web, chat, a withheld number), so the call-back check cannot be made: not
  counted as resolved.
- resolved_naive: answered and not transferred, whatever the outcome (hang-ups, errors
  and callers who call back included): what a "not transferred" count shows.
  resolved_by_bot_rate, resolved_unverifiable_rate, resolved_naive_rate: over answered.
- transfers_by_reason / transfers_by_team: calls with a `handoff` event, by the reason /
  team it names (a call asking twice for the same reason counts once; "inconnu" when the
  event names none). Most frequent first.
- abandons.queued: calls whose caller hung up while waiting for an agent: a `queue_left`
  event with state `abandoned`, or their queue entry in state `abandoned` (a call counts
  once). abandons.bot: calls the caller hung up (`caller_hung_up`) during the bot's
  dialogue before being answered: not transferred, and no caller turn at all, or the last
  turn is the caller's.
- callbacks.booked: callbacks asked for: rows created in the period, and those named by a
  `callback_booked` event of a call of the period (each once). callbacks.made: those of
  them marked done (`done_at` set, whenever).
- top_question_types: the 10 most frequent intents of caller turns (calls of the period),
  [{intent, count}], most frequent first (ties by name). trend: {days, counts: {intent:
  [count per day]}} for those 10, the day being the call's local start day.
- by_office: {office: calls}: the call's `region` (set by the dialogue when it identifies
  an account, from its postcode) unless the rule is "number"; else, unless the rule is
  "account", the caller number's area (flows/offices.py); "inconnu" when neither
  gives one. Most calls first.
- per_day: every local day of the period, [{day, calls, latency_p50_ms, latency_p95_ms,
  cut_turns, fallback_answers}]: the latency is the bot turns' `total_ms` (the caller's end
  of speech to the reply's first audio), nearest-rank percentiles (p-th: the value of rank
  ceil(p/100 x n) in ascending order), None without a measure; cut_turns: `turns_merged`
  events (a caller went on after the bot began to answer: the turn had been cut too
  early); fallback_answers: `fallback` events (answers generated from the knowledge base
  because no prepared answer matched).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from bot.agents.hours import OpeningHours
from bot.agents.tables import Callback, QueueEntry
from bot.store import Call, Event, Store, Turn, as_utc, for_comparison
from bot.supervision.settings import SupervisionSettings
from flows.offices import national_number, office_for

__all__ = ["TOP_INTENTS", "UNKNOWN", "compute_indicators", "percentile"]

TOP_INTENTS = 10
UNKNOWN = "inconnu"
_TRANSFER_KINDS = ("handoff", "queued", "agent_accepted")
_TRANSFER_OUTCOMES = ("handoff", "transferred")
_EVENT_KINDS = (*_TRANSFER_KINDS, "queue_left", "callback_booked", "turns_merged", "fallback")


@dataclass
class _Facts:
    """What the indicators need of one call."""

    id: str
    caller: str | None
    started: datetime        # UTC
    day: date                # local
    hour: int                # local
    is_open: bool
    outcome: str | None
    region: str | None
    speakers: list[str] = field(default_factory=list)
    intents: list[str] = field(default_factory=list)
    latencies: list[int] = field(default_factory=list)
    transferred: bool = False
    reasons: set[str] = field(default_factory=set)
    teams: set[str] = field(default_factory=set)
    queue_abandoned: bool = False
    callbacks: set[tuple] = field(default_factory=set)
    cut_turns: int = 0
    fallbacks: int = 0

    @property
    def answered(self) -> bool:
        return any(s in ("bot", "agent") for s in self.speakers)

    @property
    def bot_answered_last(self) -> bool:
        """The caller spoke, and the bot had the last word."""
        return "caller" in self.speakers and self.speakers[-1] == "bot"

    @property
    def resolved_candidate(self) -> bool:
        """Resolved by the bot, before the call-back check."""
        if not self.answered or self.transferred:
            return False
        return self.outcome == "completed" or (self.outcome == "caller_hung_up" and self.bot_answered_last)

    @property
    def bot_abandon(self) -> bool:
        return (self.outcome == "caller_hung_up" and not self.transferred
                and ("caller" not in self.speakers or self.speakers[-1] == "caller"))


def percentile(values: list[int], p: float) -> int | None:
    """Nearest rank: the value of rank ceil(p/100 x n) in ascending order; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _counts(calls: int, answered: int) -> dict[str, Any]:
    return {"calls": calls, "answered": answered, "rate": _rate(answered, calls)}


def _ranked(counter: Counter[str]) -> dict[str, int]:
    """Most frequent first, ties by name: the same order on every page load."""
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def _number_key(caller: str | None) -> str | None:
    """The caller's number as calls are compared: national form when French, else its
    digits; None for a withheld one ("anonymous", "sip:unknown@..."), which would otherwise
    make every hidden caller call back every other."""
    if not caller:
        return None
    national = national_number(caller)
    if national is not None:
        return national
    digits = re.sub(r"[^0-9]", "", caller.split("@", 1)[0])
    return digits if len(digits) >= 6 else None


def _days(start: datetime, end: datetime, zone: ZoneInfo) -> list[date]:
    if end <= start:
        return []
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


async def compute_indicators(store: Store, start: datetime, end: datetime, *, hours: OpeningHours,
                             settings: SupervisionSettings) -> dict[str, Any]:
    """The indicators of the calls started in [start, end): see the module's docstring."""
    start, end = for_comparison(start), for_comparison(end)
    zone = ZoneInfo(hours.timezone)
    window = timedelta(hours=settings.reopen_window_h)
    in_period = select(Call.id).where(Call.started_at >= start, Call.started_at < end)

    async with store.session() as s:
        call_rows = (await s.execute(
            select(Call.id, Call.caller, Call.started_at, Call.outcome, Call.region)
            .where(Call.started_at >= start, Call.started_at < end)
            .order_by(Call.started_at, Call.id)
        )).all()
        turn_rows = (await s.execute(
            select(Turn.call_id, Turn.speaker, Turn.intent, Turn.total_ms)
            .where(Turn.call_id.in_(in_period))
            .order_by(Turn.call_id, Turn.index, Turn.id)
        )).all()
        event_rows = (await s.execute(
            select(Event.call_id, Event.id, Event.kind, Event.data)
            .where(Event.call_id.in_(in_period),
                   or_(Event.kind.in_(_EVENT_KINDS), Event.kind.startswith("transfer_", autoescape=True)))
            .order_by(Event.id)
        )).all()
        abandoned_entries = set(await s.scalars(
            select(QueueEntry.call_id).where(QueueEntry.state == "abandoned", QueueEntry.call_id.in_(in_period))
        ))
        callback_rows = {row.id: row.done_at for row in (await s.execute(
            select(Callback.id, Callback.done_at).where(Callback.created_at >= start, Callback.created_at < end)
        )).all()}
        # Who called when, up to a window past the period: the call-back check of its last calls.
        later_rows = (await s.execute(
            select(Call.id, Call.caller, Call.started_at)
            .where(Call.caller.is_not(None), Call.started_at >= start, Call.started_at < end + window)
        )).all()

        facts: dict[str, _Facts] = {}
        for row in call_rows:
            started = as_utc(row.started_at)
            local = started.astimezone(zone)
            facts[row.id] = _Facts(id=row.id, caller=row.caller, started=started, day=local.date(),
                                   hour=local.hour, is_open=hours.is_open(started), outcome=row.outcome,
                                   region=row.region)
        for row in turn_rows:
            f = facts[row.call_id]
            f.speakers.append(row.speaker)
            if row.speaker == "caller" and row.intent:
                f.intents.append(row.intent)
            if row.speaker == "bot" and row.total_ms is not None:
                f.latencies.append(row.total_ms)
        for row in event_rows:
            f = facts[row.call_id]
            data = row.data if isinstance(row.data, dict) else {}
            if row.kind in _TRANSFER_KINDS or row.kind.startswith("transfer_"):
                f.transferred = True
            if row.kind == "handoff":
                f.reasons.add(str(data.get("reason") or UNKNOWN))
                f.teams.add(str(data.get("team") or UNKNOWN))
            elif row.kind == "queue_left" and data.get("state") == "abandoned":
                f.queue_abandoned = True
            elif row.kind == "callback_booked":
                # by the callback's id when the event gives it: the row may be counted already
                f.callbacks.add(("id", data["id"]) if isinstance(data.get("id"), int) else ("event", row.id))
            elif row.kind == "turns_merged":
                f.cut_turns += 1
            elif row.kind == "fallback":
                f.fallbacks += 1
        for call_id in abandoned_entries:
            facts[call_id].queue_abandoned = True
        for f in facts.values():
            if f.outcome in _TRANSFER_OUTCOMES:
                f.transferred = True

        booked: set[tuple] = {("id", i) for i in callback_rows}
        for f in facts.values():
            booked |= f.callbacks
        missing = [key[1] for key in booked if key[0] == "id" and key[1] not in callback_rows]
        if missing:
            callback_rows.update({row.id: row.done_at for row in (await s.execute(
                select(Callback.id, Callback.done_at).where(Callback.id.in_(missing))
            )).all()})
    made = sum(1 for key in booked if key[0] == "id" and callback_rows.get(key[1]) is not None)

    starts_by_number: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for row in later_rows:
        key = _number_key(row.caller)
        if key is not None:
            starts_by_number[key].append((as_utc(row.started_at), row.id))

    def called_again(f: _Facts) -> bool:
        key = _number_key(f.caller)
        assert key is not None
        return any(other != f.id and f.started < at <= f.started + window for at, other in starts_by_number[key])

    calls = list(facts.values())
    answered = [f for f in calls if f.answered]
    resolved = unverifiable = 0
    for f in calls:
        if f.resolved_candidate:
            if _number_key(f.caller) is None:
                unverifiable += 1
            elif not called_again(f):
                resolved += 1
    naive = sum(1 for f in answered if not f.transferred)

    by_hour = []
    for hour in range(24):
        at_hour = [f for f in calls if f.hour == hour]
        open_, closed = [f for f in at_hour if f.is_open], [f for f in at_hour if not f.is_open]
        by_hour.append({"hour": hour, **_counts(len(at_hour), sum(f.answered for f in at_hour)),
                        "business": _counts(len(open_), sum(f.answered for f in open_)),
                        "off_hours": _counts(len(closed), sum(f.answered for f in closed))})
    business = [f for f in calls if f.is_open]
    off = [f for f in calls if not f.is_open]

    days = _days(start, end, zone)
    intents = Counter(i for f in calls for i in f.intents)
    top = sorted(intents.items(), key=lambda item: (-item[1], item[0]))[:TOP_INTENTS]
    per_intent_day: Counter[tuple[str, date]] = Counter((i, f.day) for f in calls for i in f.intents)

    offices: Counter[str] = Counter()
    for f in calls:
        if f.region and settings.office_rule != "number":
            office: str | None = f.region
        else:
            office = office_for(postcode=None, caller=f.caller, rule=settings.office_rule)
        offices[office or UNKNOWN] += 1

    per_day = []
    for day in days:
        of_day = [f for f in calls if f.day == day]
        latencies = [ms for f in of_day for ms in f.latencies]
        per_day.append({
            "day": day.isoformat(),
            "calls": len(of_day),
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p95_ms": percentile(latencies, 95),
            "cut_turns": sum(f.cut_turns for f in of_day),
            "fallback_answers": sum(f.fallbacks for f in of_day),
        })

    return {
        "period": {"start": start.isoformat(), "end": end.isoformat(), "timezone": hours.timezone,
                   "reopen_window_h": settings.reopen_window_h, "office_rule": settings.office_rule},
        "calls": len(calls),
        "answered": len(answered),
        "answered_rate": _rate(len(answered), len(calls)),
        "by_hour": by_hour,
        "business_hours": _counts(len(business), sum(f.answered for f in business)),
        "off_hours": _counts(len(off), sum(f.answered for f in off)),
        "resolved_by_bot": resolved,
        "resolved_by_bot_rate": _rate(resolved, len(answered)),
        "resolved_unverifiable": unverifiable,
        "resolved_unverifiable_rate": _rate(unverifiable, len(answered)),
        "resolved_naive": naive,
        "resolved_naive_rate": _rate(naive, len(answered)),
        "transfers_by_reason": _ranked(Counter(r for f in calls for r in f.reasons)),
        "transfers_by_team": _ranked(Counter(t for f in calls for t in f.teams)),
        "abandons": {"queued": sum(f.queue_abandoned for f in calls), "bot": sum(f.bot_abandon for f in calls)},
        "callbacks": {"booked": len(booked), "made": made},
        "top_question_types": [{"intent": i, "count": n} for i, n in top],
        "trend": {"days": [d.isoformat() for d in days],
                  "counts": {i: [per_intent_day[(i, d)] for d in days] for i, _ in top}},
        "by_office": _ranked(offices),
        "per_day": per_day,
    }

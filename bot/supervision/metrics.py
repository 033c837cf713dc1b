"""/metrics for Prometheus: the text exposition format (version 0.0.4), computed from the
store with SQL aggregates at each scrape.

Nothing is counted in memory: several nodes share one store, a restarted node would reset
its counters, and the store is bounded by retention (bot/retention.py), so an aggregate
over it stays cheap. The counters therefore count what the store still holds: they drop
when retention deletes old calls, which Prometheus' rate() reads as a counter reset.
Labels are system values only (channel, outcome, speaker, team, reason, stage, state):
never a caller's number or anything said.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.agents.tables import Callback, QueueEntry
from bot.store import Call, Event, Store, Turn

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Upper bounds of the latency histograms, in milliseconds (the store's unit) so that the
# SQL compares integers; exposed in seconds.
LATENCY_BUCKETS_MS = (250, 500, 750, 1000, 1500, 2000, 3000, 5000)
STAGES = (("stt", Turn.stt_ms), ("dialogue", Turn.dialogue_ms), ("tts", Turn.tts_ms))
LABEL_MAX = 64   # label values read from event data are cut: a label is a dimension, not a text

Labels = tuple[tuple[str, str], ...]


async def metrics_text(store: Store, *, queue_waiting: dict[str, int] | None = None,
                       active_calls: int | None = None) -> str:
    """The whole exposition. `queue_waiting` (team -> callers waiting) and `active_calls`
    come from the node's live state when it has it; otherwise from the store (the queue's
    waiting entries; the calls not ended)."""
    out = _Exposition()
    async with store.session() as s:
        ongoing = case((Call.ended_at.is_(None), "ongoing"), else_=func.coalesce(Call.outcome, "unknown"))
        rows = await s.execute(select(Call.channel, ongoing, func.count()).group_by(Call.channel, ongoing))
        out.family("callbot_calls_total", "counter", "Calls in the store, by channel and outcome "
                   "(ongoing: not ended).",
                   [((("channel", channel), ("outcome", outcome)), n) for channel, outcome, n in rows])

        rows = await s.execute(select(Turn.speaker, func.count()).group_by(Turn.speaker))
        out.family("callbot_turns_total", "counter", "Turns in the store, by speaker.",
                   [((("speaker", speaker),), n) for speaker, n in rows])

        out.histogram("callbot_reply_latency_seconds",
                      "Bot reply latency, from the end of the caller's speech to the first reply audio.",
                      [((), await _latency(s, Turn.total_ms))])
        out.histogram("callbot_stage_latency_seconds",
                      "Bot reply latency by stage: final transcript (stt), reply text (dialogue), "
                      "first reply audio (tts).",
                      [((("stage", name),), await _latency(s, column)) for name, column in STAGES])

        team, reason = Event.data["team"].as_string(), Event.data["reason"].as_string()
        rows = await s.execute(select(team, reason, func.count()).where(Event.kind == "handoff")
                               .group_by(team, reason))
        out.family("callbot_handoffs_total", "counter", "Handoffs to a human, by team and reason.",
                   [((("team", _cut(t)), ("reason", _cut(r))), n) for t, r, n in rows])

        error_events = await _count(s, select(func.count()).select_from(Event).where(Event.kind == "error"))
        error_calls = await _count(s, select(func.count()).select_from(Call).where(Call.outcome == "error"))
        out.family("callbot_errors_total", "counter",
                   "Error events recorded on calls, plus calls that ended in error.",
                   [((), error_events + error_calls)])
        merges = await _count(s, select(func.count()).select_from(Event).where(Event.kind == "turns_merged"))
        out.family("callbot_turn_merges_total", "counter",
                   "Caller turns merged with the next one (the caller had not finished).", [((), merges)])
        fallbacks = await _count(s, select(func.count()).select_from(Event).where(Event.kind == "fallback"))
        out.family("callbot_fallback_answers_total", "counter",
                   "Questions given to the fallback answerer (knowledge base search), declined included.",
                   [((), fallbacks)])

        if queue_waiting is None:
            rows = await s.execute(select(QueueEntry.team, func.count()).where(QueueEntry.state == "waiting")
                                   .group_by(QueueEntry.team))
            queue_waiting = {t: n for t, n in rows}
        out.family("callbot_queue_waiting", "gauge", "Callers waiting for an agent, by team.",
                   [((("team", t),), n) for t, n in queue_waiting.items()])

        if active_calls is None:
            active_calls = await _count(s, select(func.count()).select_from(Call).where(Call.ended_at.is_(None)))
        out.family("callbot_calls_active", "gauge", "Calls in progress.", [((), active_calls)])

        booked = await _count(s, select(func.count()).select_from(Callback))
        done = await _count(s, select(func.count()).select_from(Callback).where(Callback.done_at.is_not(None)))
        out.family("callbot_callbacks_total", "counter",
                   "Callbacks booked (all of them), and those done.",
                   [((("state", "booked"),), booked), ((("state", "done"),), done)])
    return out.text()


async def _count(s: AsyncSession, query: Any) -> int:
    return int(await s.scalar(query) or 0)


async def _latency(s: AsyncSession, column: Any) -> tuple[list[int], int, int]:
    """(cumulative bucket counts, sum in ms, count) over the bot turns that have this latency."""
    query = select(func.count(column), func.coalesce(func.sum(column), 0),
                   *(func.coalesce(func.sum(case((column <= le, 1), else_=0)), 0) for le in LATENCY_BUCKETS_MS))
    row = (await s.execute(query.where(Turn.speaker == "bot", column.is_not(None)))).one()
    count, total, *buckets = (int(v) for v in row)
    return buckets, total, count


def _cut(value: str | None) -> str:
    return (value or "")[:LABEL_MAX]


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[Labels, float | int]]) -> None:
        self._header(name, kind, help_text)
        merged: dict[Labels, float | int] = {}   # label values cut to LABEL_MAX may collide
        for labels, value in samples:
            merged[labels] = merged.get(labels, 0) + value
        for labels in sorted(merged):
            self.lines.append(f"{name}{_labels(labels)} {_number(merged[labels])}")

    def histogram(self, name: str, help_text: str,
                  series: Sequence[tuple[Labels, tuple[list[int], int, int]]]) -> None:
        self._header(name, "histogram", help_text)
        for labels, (buckets, total_ms, count) in series:
            for le_ms, n in zip(LATENCY_BUCKETS_MS, buckets, strict=True):
                self.lines.append(f"{name}_bucket{_labels(labels + (('le', _number(le_ms / 1000)),))} {n}")
            self.lines.append(f"{name}_bucket{_labels(labels + (('le', '+Inf'),))} {count}")
            self.lines.append(f"{name}_sum{_labels(labels)} {_number(total_ms / 1000)}")
            self.lines.append(f"{name}_count{_labels(labels)} {count}")

    def _header(self, name: str, kind: str, help_text: str) -> None:
        help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label_value(str(v))}"' for k, v in labels) + "}"


def _number(value: float) -> str:
    """Go's float syntax, as Prometheus parses it: integers as such, floats with a point
    (le="1.0", like the official clients), infinities and NaN spelled its way."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))

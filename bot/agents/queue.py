"""Queues per team, agents' presence and callbacks, in the store: every node of a cluster
sees the same queue, and an accept is decided by the database, not by a node."""

from __future__ import annotations

import statistics
from typing import Any

from sqlalchemy import select, update

from bot.agents.tables import AgentPresence, Callback, QueueEntry
from bot.store import Store, as_utc, utc_now

# Without history (a new team, a quiet day), the wait announced per caller ahead.
DEFAULT_WAIT_PER_CALLER_S = 90.0
WAIT_HISTORY = 20




def priority_of(team: str) -> int:
    """People in difficulty first (DOMAIN.md), then everyone by waiting time."""
    return 0 if team == "difficultes" else 1


class AgentQueue:
    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ queue

    async def enqueue(self, call_id: str, *, channel: str, team: str, reason: str, card: dict[str, Any]) -> None:
        """A caller waits for an agent of `team` (again, with a new place, if they waited before)."""
        async with self.store.session() as s, s.begin():
            entry = await s.get(QueueEntry, call_id)
            if entry is None:
                s.add(QueueEntry(call_id=call_id, channel=channel, team=team, reason=reason,
                                 priority=priority_of(team), card=card))
                return
            if entry.state != "waiting":
                entry.enqueued_at, entry.agent, entry.accepted_at, entry.ended_at = utc_now(), None, None, None
            entry.state, entry.team, entry.reason, entry.priority, entry.card = \
                "waiting", team, reason, priority_of(team), card

    async def update_card(self, call_id: str, card: dict[str, Any]) -> None:
        async with self.store.session() as s, s.begin():
            await s.execute(update(QueueEntry).where(QueueEntry.call_id == call_id).values(card=card))

    async def entry(self, call_id: str) -> dict[str, Any] | None:
        async with self.store.session() as s:
            entry = await s.get(QueueEntry, call_id)
            return None if entry is None else _entry_dict(entry)

    async def waiting(self, teams: list[str] | None = None) -> list[dict[str, Any]]:
        """Waiting callers, the one to take first first; `teams` None: every team."""
        query = select(QueueEntry).where(QueueEntry.state == "waiting")
        if teams is not None:
            query = query.where(QueueEntry.team.in_(teams))
        async with self.store.session() as s:
            rows = await s.scalars(query.order_by(QueueEntry.priority, QueueEntry.enqueued_at))
            return [_entry_dict(e) for e in rows]

    async def position(self, call_id: str) -> int | None:
        """1 for the next caller of their team to be taken; None when not waiting."""
        entries = await self.waiting()
        mine = next((e for e in entries if e["call_id"] == call_id), None)
        if mine is None:
            return None
        same_team = [e for e in entries if e["team"] == mine["team"]]
        return same_team.index(mine) + 1

    async def expected_wait_s(self, team: str, position: int) -> float:
        """The median wait of the team's last accepted callers, per caller ahead and this one."""
        async with self.store.session() as s:
            rows = (await s.execute(
                select(QueueEntry.enqueued_at, QueueEntry.accepted_at)
                .where(QueueEntry.team == team, QueueEntry.accepted_at.is_not(None))
                .order_by(QueueEntry.accepted_at.desc()).limit(WAIT_HISTORY))).all()
        waits = [(as_utc(b) - as_utc(a)).total_seconds() for a, b in rows]
        per_caller = statistics.median(waits) if waits else DEFAULT_WAIT_PER_CALLER_S
        return max(per_caller, 10.0) * max(position, 1)

    async def accept(self, call_id: str, agent: str) -> bool:
        """Exactly one agent gets a waiting caller: one conditional UPDATE, whichever node runs it."""
        async with self.store.session() as s, s.begin():
            result = await s.execute(
                update(QueueEntry).where(QueueEntry.call_id == call_id, QueueEntry.state == "waiting")
                .values(state="accepted", agent=agent, accepted_at=utc_now()))
            return (result.rowcount or 0) == 1

    async def release(self, call_id: str) -> None:
        """An accept that could not be carried out: the caller waits again, at their place."""
        async with self.store.session() as s, s.begin():
            await s.execute(update(QueueEntry).where(QueueEntry.call_id == call_id, QueueEntry.state == "accepted")
                            .values(state="waiting", agent=None, accepted_at=None))

    async def leave(self, call_id: str, state: str) -> bool:
        """The caller stops waiting ('abandoned', 'timed_out', 'callback') or the accepted
        call ends ('closed'). False when it was not in that position."""
        allowed = ("accepted",) if state == "closed" else ("waiting",)
        async with self.store.session() as s, s.begin():
            result = await s.execute(
                update(QueueEntry).where(QueueEntry.call_id == call_id, QueueEntry.state.in_(allowed))
                .values(state=state, ended_at=utc_now()))
            return (result.rowcount or 0) == 1

    # ------------------------------------------------------------------ presence

    async def set_presence(self, username: str, *, status: str, teams: list[str], device: str) -> None:
        async with self.store.session() as s, s.begin():
            row = await s.get(AgentPresence, username)
            if row is None:
                row = AgentPresence(username=username)
                s.add(row)
            row.status, row.teams, row.device, row.updated_at = status, ",".join(teams), device, utc_now()

    async def set_busy(self, username: str, call_id: str | None) -> None:
        async with self.store.session() as s, s.begin():
            row = await s.get(AgentPresence, username)
            if row is None:
                row = AgentPresence(username=username)
                s.add(row)
            row.call_id, row.updated_at = call_id, utc_now()

    async def presence(self, username: str) -> dict[str, Any]:
        async with self.store.session() as s:
            row = await s.get(AgentPresence, username)
        if row is None:
            return {"status": "paused", "teams": [], "device": "browser", "call_id": None}
        return {"status": row.status, "teams": [t for t in row.teams.split(",") if t], "device": row.device,
                "call_id": row.call_id}

    # ------------------------------------------------------------------ callbacks

    async def add_callback(self, call_id: str, *, team: str, phone: str, time_slot: str, topic: str) -> int:
        async with self.store.session() as s, s.begin():
            callback = Callback(call_id=call_id, team=team, phone=phone, time_slot=time_slot, topic=topic)
            s.add(callback)
        return callback.id

    async def callbacks(self, teams: list[str] | None = None, *, include_done: bool = False) -> list[dict[str, Any]]:
        query = select(Callback)
        if teams is not None:
            query = query.where(Callback.team.in_(teams))
        if not include_done:
            query = query.where(Callback.done_at.is_(None))
        async with self.store.session() as s:
            rows = await s.scalars(query.order_by(Callback.created_at))
            return [{"id": c.id, "call_id": c.call_id, "team": c.team, "phone": c.phone, "time_slot": c.time_slot,
                     "topic": c.topic, "created_at": as_utc(c.created_at).isoformat(),
                     "done_at": as_utc(c.done_at).isoformat() if c.done_at else None} for c in rows]

    async def callback_done(self, callback_id: int, username: str, teams: list[str] | None) -> bool:
        query = update(Callback).where(Callback.id == callback_id, Callback.done_at.is_(None))
        if teams is not None:
            query = query.where(Callback.team.in_(teams))
        async with self.store.session() as s, s.begin():
            result = await s.execute(query.values(done_at=utc_now(), done_by=username))
            return (result.rowcount or 0) == 1


def _entry_dict(e: QueueEntry) -> dict[str, Any]:
    return {"call_id": e.call_id, "channel": e.channel, "team": e.team, "reason": e.reason,
            "priority": e.priority, "state": e.state, "agent": e.agent, "card": e.card,
            "waiting_s": round((utc_now() - as_utc(e.enqueued_at)).total_seconds(), 1),
            "enqueued_at": as_utc(e.enqueued_at).isoformat()}

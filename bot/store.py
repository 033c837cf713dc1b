"""Call records: calls, their turns and events, committed as they happen; and the
preferences callers asked to keep between calls."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    delete,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload


class Base(DeclarativeBase):
    pass


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A datetime read back from the store: SQLite gives naive ones; everything is written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def for_comparison(moment: datetime) -> datetime:
    """An aware datetime as the store compares it. SQLite keeps datetimes without their
    offset, so a bound in another zone (a Paris midnight) would be compared by its wall
    time with UTC ones: everything is written, so compared, in UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a datetime compared with the store's must be aware")
    return moment.astimezone(UTC)


class Call(Base):
    __tablename__ = "calls"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: uuid.uuid4().hex)
    channel: Mapped[str] = mapped_column(String(16))
    caller: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(32))
    team: Mapped[str | None] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(64))
    recording: Mapped[str | None] = mapped_column(String(255))
    turns: Mapped[list[Turn]] = relationship(order_by="Turn.index", cascade="all, delete-orphan")
    events: Mapped[list[Event]] = relationship(order_by="Event.id", cascade="all, delete-orphan")


class Turn(Base):
    __tablename__ = "turns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(8))        # caller | bot | agent
    text: Mapped[str] = mapped_column(Text)
    start_ms: Mapped[int | None] = mapped_column(Integer)  # offsets from the start of the call
    end_ms: Mapped[int | None] = mapped_column(Integer)
    asr_confidence: Mapped[float | None] = mapped_column(Float)
    intent: Mapped[str | None] = mapped_column(String(64))
    intent_score: Mapped[float | None] = mapped_column(Float)
    # Latency of the bot's reply, on the bot turn: caller speech end -> final transcript
    # (stt) -> reply text (dialogue) -> first reply audio out (tts); total is end to end.
    stt_ms: Mapped[int | None] = mapped_column(Integer)
    dialogue_ms: Mapped[int | None] = mapped_column(Integer)
    tts_ms: Mapped[int | None] = mapped_column(Integer)
    total_ms: Mapped[int | None] = mapped_column(Integer)


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    at_ms: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CallerPreference(Base):
    """A caller's wish kept from one call to the next, with their consent. Keyed by a keyed
    hash of their number (bot/preferences.py), never the number itself."""

    __tablename__ = "caller_preferences"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    slow: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


TURN_FIELDS = ("index", "speaker", "text", "start_ms", "end_ms", "asr_confidence", "intent",
               "intent_score", "stt_ms", "dialogue_ms", "tts_ms", "total_ms")


class Store:
    def __init__(self, url: str) -> None:
        # SQLite lets one writer at a time; the others wait up to this long (5 s by default)
        # and then fail: under load, a call's event would be dropped rather than written late.
        connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
        self.engine: AsyncEngine = create_async_engine(url, connect_args=connect_args)
        self._session = async_sessionmaker(self.engine, expire_on_commit=False)

    def session(self):
        """A new ORM session (`async with store.session() as s, s.begin(): ...`), for the
        modules that keep their own tables on this store (bot/agents/)."""
        return self._session()

    async def create_schema(self) -> None:
        import bot.agents.tables  # noqa: F401  (the agent hub's tables, on the same metadata)
        from bot.supervision import audit  # noqa: F401  (the console's audit log, on the same metadata)

        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def close(self) -> None:
        await self.engine.dispose()

    async def open_call(self, channel: str, caller: str | None = None, region: str | None = None) -> str:
        async with self._session() as s, s.begin():
            call = Call(channel=channel, caller=caller, region=region)
            s.add(call)
        return call.id

    async def add_turn(self, call_id: str, **values: Any) -> None:
        async with self._session() as s, s.begin():
            s.add(Turn(call_id=call_id, **values))

    async def add_event(self, call_id: str, at_ms: int, kind: str, data: dict[str, Any] | None = None) -> None:
        async with self._session() as s, s.begin():
            s.add(Event(call_id=call_id, at_ms=at_ms, kind=kind, data=data or {}))

    async def close_call(self, call_id: str, *, outcome: str, team: str | None,
                         recording: str | None = None) -> None:
        async with self._session() as s, s.begin():
            call = await s.get(Call, call_id)
            if call is None or call.ended_at is not None:
                return
            call.ended_at, call.outcome, call.team = utc_now(), outcome, team
            call.recording = recording or call.recording

    async def update_team(self, call_id: str, team: str) -> None:
        async with self._session() as s, s.begin():
            call = await s.get(Call, call_id)
            if call is not None:
                call.team = team

    async def update_region(self, call_id: str, region: str) -> None:
        async with self._session() as s, s.begin():
            await s.execute(update(Call).where(Call.id == call_id).values(region=region))

    async def set_recording(self, call_id: str, path: str) -> None:
        async with self._session() as s, s.begin():
            await s.execute(update(Call).where(Call.id == call_id).values(recording=path))

    async def recordings_before(self, before: datetime) -> list[tuple[str, str]]:
        async with self._session() as s:
            rows = await s.execute(
                select(Call.id, Call.recording).where(Call.recording.is_not(None), Call.started_at < before)
            )
            return [(r[0], r[1]) for r in rows]

    async def forget_recording(self, call_id: str) -> None:
        async with self._session() as s, s.begin():
            await s.execute(update(Call).where(Call.id == call_id).values(recording=None))

    async def delete_calls_before(self, before: datetime) -> int:
        async with self._session() as s, s.begin():
            old = select(Call.id).where(Call.started_at < before)
            await s.execute(delete(Turn).where(Turn.call_id.in_(old)))
            await s.execute(delete(Event).where(Event.call_id.in_(old)))
            result = await s.execute(delete(Call).where(Call.started_at < before))
            return result.rowcount or 0

    async def slow_preference(self, key: str) -> bool:
        """Whether this caller asked for slow speech on their calls (the preference's clock
        starts again: it is kept a retention period after its last use)."""
        async with self._session() as s, s.begin():
            preference = await s.get(CallerPreference, key)
            if preference is None:
                return False
            preference.updated_at = utc_now()
            return preference.slow

    async def set_slow_preference(self, key: str, slow: bool) -> None:
        """Kept (slow) or withdrawn (deleted: nothing is kept about a caller who says no)."""
        async with self._session() as s, s.begin():
            await s.execute(delete(CallerPreference).where(CallerPreference.key == key))
            if slow:
                s.add(CallerPreference(key=key, slow=True))

    async def delete_preferences_before(self, before: datetime) -> int:
        async with self._session() as s, s.begin():
            result = await s.execute(delete(CallerPreference).where(CallerPreference.updated_at < before))
            return result.rowcount or 0

    async def get_call(self, call_id: str) -> dict[str, Any] | None:
        async with self._session() as s:
            call = await s.scalar(
                select(Call).where(Call.id == call_id).options(selectinload(Call.turns), selectinload(Call.events))
            )
            return None if call is None else _call_dict(call)

    async def recent_calls(self, limit: int = 50) -> list[dict[str, Any]]:
        async with self._session() as s:
            rows = await s.scalars(
                select(Call).order_by(Call.started_at.desc()).limit(limit)
                .options(selectinload(Call.turns), selectinload(Call.events))
            )
            return [_call_dict(c) for c in rows]


def _call_dict(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "channel": call.channel,
        "caller": call.caller,
        "started_at": call.started_at.isoformat(),
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "outcome": call.outcome,
        "team": call.team,
        "region": call.region,
        "recording": call.recording,
        "turns": [{k: getattr(t, k) for k in TURN_FIELDS} for t in call.turns],
        "events": [{"at_ms": e.at_ms, "kind": e.kind, "data": e.data} for e in call.events],
    }

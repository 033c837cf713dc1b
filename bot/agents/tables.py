"""The agent hub's tables, on the call store (one database: several nodes share them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.store import Base, utc_now


class User(Base):
    """A person of the contact centre. `teams`: comma-separated routing teams an agent
    serves; `sip_uri`: their desk phone, the only address a SIP transfer to them may ring."""

    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))            # agent | supervisor | admin
    teams: Mapped[str] = mapped_column(String(512), default="")
    sip_uri: Mapped[str | None] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(255))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class UserSession(Base):
    """A signed-in browser. Only a hash of the cookie's token is kept."""

    __tablename__ = "user_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AgentPresence(Base):
    """Whether an agent takes calls now, for which teams, and on which device."""

    __tablename__ = "agent_presence"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="paused")   # available | paused | busy
    teams: Mapped[str] = mapped_column(String(512), default="")
    device: Mapped[str] = mapped_column(String(16), default="browser")  # browser | phone
    call_id: Mapped[str | None] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class QueueEntry(Base):
    """A caller waiting for a human. Taken by exactly one agent: the accept is one
    conditional UPDATE (state waiting -> accepted), whichever node serves it."""

    __tablename__ = "queue_entries"
    call_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    team: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer, default=1)        # 0 first (difficultes)
    state: Mapped[str] = mapped_column(String(16), default="waiting", index=True)
    # waiting | accepted | abandoned | timed_out | closed
    enqueued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    agent: Mapped[str | None] = mapped_column(String(64))
    card: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Callback(Base):
    """A caller asked to be called back (no agent in time, or outside opening hours)."""

    __tablename__ = "callbacks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(36), index=True)
    team: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str] = mapped_column(String(32))
    time_slot: Mapped[str] = mapped_column(String(32))    # matin | apres_midi
    topic: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_by: Mapped[str | None] = mapped_column(String(64))

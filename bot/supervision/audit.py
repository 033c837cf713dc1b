"""Who looked at which call, listened to it, exported it or unmasked its identifiers, and why.

Every access of the supervisor console to a call record is written here, so that an access
can be justified afterwards (GDPR accountability; CNIL: access traces are kept). Entries
point at a call by id only, without a foreign key: they must outlive the record they
point to (bot/retention.py keeps them on their own clock).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from bot.store import Base, Store, as_utc, utc_now

ACTIONS = ("view", "listen", "export", "unmask")
REASON_MAX = 500      # a justification, not a report: longer text is cut, not refused
DETAIL_MAX = 64
ENTRIES_MAX = 1000


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, index=True)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))        # view | listen | export | unmask
    call_id: Mapped[str] = mapped_column(String(36), index=True)
    reason: Mapped[str | None] = mapped_column(Text)        # required for unmask
    detail: Mapped[str | None] = mapped_column(String(DETAIL_MAX))  # e.g. an export's format


class AuditLog:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(self, *, username: str, role: str, action: str, call_id: str,
                     reason: str | None = None, detail: str | None = None) -> None:
        """Raises ValueError for an unknown action, a missing user or call, or an unmask
        without a reason: the caller must refuse the access rather than leave it untraced."""
        if action not in ACTIONS:
            raise ValueError(f"audit action must be one of {', '.join(ACTIONS)}")
        if not username or not call_id:
            raise ValueError("an audit entry names the user and the call")
        reason = (reason or "").strip()[:REASON_MAX] or None
        if action == "unmask" and reason is None:
            raise ValueError("unmasking a call's identifiers requires a reason")
        detail = (detail or "").strip()[:DETAIL_MAX] or None
        async with self.store.session() as s, s.begin():
            s.add(AuditEntry(username=username[:64], role=role[:16], action=action, call_id=call_id[:36],
                             reason=reason, detail=detail))

    async def entries(self, *, call_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Newest first; `limit` is held to 1..1000."""
        query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        if call_id is not None:
            query = query.where(AuditEntry.call_id == call_id)
        query = query.limit(max(1, min(limit, ENTRIES_MAX)))
        async with self.store.session() as s:
            rows = await s.scalars(query)
            return [_entry_dict(e) for e in rows]

    async def delete_before(self, before: datetime) -> int:
        async with self.store.session() as s, s.begin():
            result = await s.execute(delete(AuditEntry).where(AuditEntry.at < before))
            return result.rowcount or 0


def _entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": as_utc(entry.at).isoformat(),
        "username": entry.username,
        "role": entry.role,
        "action": entry.action,
        "call_id": entry.call_id,
        "reason": entry.reason,
        "detail": entry.detail,
    }

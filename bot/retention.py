"""Bounded retention (CNIL reference): recordings at most 6 months, call records
(transcripts, indicators) at most 1 year. The greeting tells callers so. The supervisor
console's audit log (who accessed which call) is kept on its own clock."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from bot.store import Store
from bot.supervision.audit import AuditLog

log = logging.getLogger("callbot.retention")


@dataclass(frozen=True)
class RetentionSettings:
    recordings_days: int = 180
    records_days: int = 365
    preferences_days: int = 365    # a slow-speech preference unused this long is deleted
    # Audit entries may outlive the call records they point to: they prove who accessed
    # what, and a complaint or a data protection officer's check can come after the record
    # is gone. They hold no caller data (a call id, a username, a reason). The CNIL
    # recommends keeping access traces 6 months to 1 year; more than 3 years is not justified.
    audit_days: int = 365
    sweep_every_h: float = 6.0

    def __post_init__(self) -> None:
        if not 1 <= self.recordings_days <= 183:
            raise ValueError("recordings are kept 1 to 183 days (CNIL: 6 months at most)")
        if not self.recordings_days <= self.records_days <= 366:
            raise ValueError("call records are kept between the recordings' time and 1 year")
        if not 1 <= self.preferences_days <= 3 * 366:
            raise ValueError("caller preferences are kept 1 day to 3 years after their last use")
        if not 30 <= self.audit_days <= 3 * 366:
            raise ValueError("audit entries are kept 30 days to 3 years")


@dataclass(frozen=True)
class Purged:
    recordings: int
    calls: int
    preferences: int = 0
    audit: int = 0


async def purge(store: Store, recordings_dir: Path, settings: RetentionSettings,
                now: datetime | None = None) -> Purged:
    now = now or datetime.now(UTC)
    recordings_before = now - timedelta(days=settings.recordings_days)
    removed = 0
    for call_id, path in await store.recordings_before(recordings_before):
        Path(path).unlink(missing_ok=True)
        await store.forget_recording(call_id)
        removed += 1
    # Files the store does not know (a crash between the file and the record).
    if recordings_dir.is_dir():
        for path in recordings_dir.glob("*.wav"):
            if datetime.fromtimestamp(path.stat().st_mtime, UTC) < recordings_before:
                path.unlink(missing_ok=True)
                removed += 1
    calls = await store.delete_calls_before(now - timedelta(days=settings.records_days))
    preferences = await store.delete_preferences_before(now - timedelta(days=settings.preferences_days))
    audit = await AuditLog(store).delete_before(now - timedelta(days=settings.audit_days))
    if removed or calls or preferences or audit:
        log.info("retention: %d recordings, %d call records, %d caller preferences and %d audit entries "
                 "deleted", removed, calls, preferences, audit)
    return Purged(recordings=removed, calls=calls, preferences=preferences, audit=audit)


async def sweep_forever(store: Store, recordings_dir: Path, settings: RetentionSettings) -> None:
    while True:
        try:
            await purge(store, recordings_dir, settings)
        except (OSError, SQLAlchemyError):
            log.exception("retention sweep failed; retrying at the next sweep")
        await asyncio.sleep(settings.sweep_every_h * 3600)

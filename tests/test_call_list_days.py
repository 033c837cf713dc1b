"""The supervisor's calls list counts days where the console does (Paris): a call at 23:30 UTC
belongs to the next Paris day, whatever the hour the test runs at. The bounds are Paris
midnights; the store keeps UTC without an offset, so they must be compared as UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.store import Call, Store
from bot.supervision.calls import CallFilter, list_calls

PARIS = ZoneInfo("Europe/Paris")


def paris_day(day: int) -> tuple[datetime, datetime]:
    return datetime(2026, 3, day, tzinfo=PARIS), datetime(2026, 3, day + 1, tzinfo=PARIS)


async def test_a_call_late_in_utc_is_listed_on_its_paris_day(tmp_path):
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'calls.sqlite3'}")
    await store.create_schema()
    try:
        async with store.session() as s, s.begin():
            late = Call(channel="sip", started_at=datetime(2026, 3, 10, 23, 30, tzinfo=UTC))    # 00:30 in Paris
            early = Call(channel="sip", started_at=datetime(2026, 3, 10, 22, 30, tzinfo=UTC))   # 23:30 in Paris
            s.add_all([late, early])
        for day, expected in ((10, [early.id]), (11, [late.id])):
            start, end = paris_day(day)
            page = await list_calls(store, CallFilter(start=start, end=end))
            assert [c["id"] for c in page["calls"]] == expected, day
        with pytest.raises(ValueError, match="aware"):
            await list_calls(store, CallFilter(start=datetime(2026, 3, 10)))
    finally:
        await store.close()

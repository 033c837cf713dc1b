"""Retention: recordings after 6 months, call records after a year, then gone; the
supervisor console's audit entries on their own clock."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from bot.retention import RetentionSettings, purge
from bot.store import Store
from bot.supervision.audit import AuditEntry, AuditLog


@pytest.fixture
async def store(tmp_path):
    s = Store(f"sqlite+aiosqlite:///{tmp_path / 'calls.sqlite3'}")
    await s.create_schema()
    yield s
    await s.close()


async def test_recordings_then_records_are_deleted_after_their_retention(store, tmp_path):
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    wav = recordings / "call.wav"
    wav.write_bytes(b"RIFF")
    call_id = await store.open_call("webrtc")
    await store.add_turn(call_id, index=0, speaker="caller", text="bonjour")
    await store.close_call(call_id, outcome="completed", team="seuils", recording=str(wav))
    settings = RetentionSettings()
    now = datetime.now(UTC)

    purged = await purge(store, recordings, settings, now=now + timedelta(days=10))
    assert (purged.recordings, purged.calls) == (0, 0)
    assert wav.exists() and (await store.get_call(call_id))["recording"] == str(wav)

    purged = await purge(store, recordings, settings, now=now + timedelta(days=181))
    assert purged.recordings == 1 and purged.calls == 0
    assert not wav.exists()
    record = await store.get_call(call_id)
    assert record["recording"] is None and record["turns"][0]["text"] == "bonjour"

    purged = await purge(store, recordings, settings, now=now + timedelta(days=366))
    assert purged.calls == 1
    assert await store.get_call(call_id) is None


async def test_stray_old_recording_files_are_deleted(store, tmp_path):
    old = tmp_path / "stray.wav"
    old.write_bytes(b"RIFF")
    past = time.time() - 200 * 86400
    os.utime(old, (past, past))
    recent = tmp_path / "recent.wav"
    recent.write_bytes(b"RIFF")
    purged = await purge(store, tmp_path, RetentionSettings())
    assert purged.recordings == 1 and not old.exists() and recent.exists()


def test_retention_cannot_exceed_the_cnil_reference():
    with pytest.raises(ValueError):
        RetentionSettings(recordings_days=365)
    with pytest.raises(ValueError):
        RetentionSettings(records_days=800)


async def test_audit_entries_outlive_the_records_and_are_deleted_on_their_own_clock(store, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="callbot.retention")
    now = datetime.now(UTC)
    call_id = await store.open_call("webrtc")
    await store.close_call(call_id, outcome="completed", team="seuils")
    audit = AuditLog(store)
    await audit.record(username="sup", role="supervisor", action="view", call_id=call_id)
    async with store.session() as s, s.begin():
        s.add(AuditEntry(at=now - timedelta(days=100), username="admin", role="admin", action="unmask",
                         call_id=call_id, reason="plainte de l'appelant"))
    settings = RetentionSettings(records_days=365, audit_days=730)

    purged = await purge(store, tmp_path, settings, now=now + timedelta(days=366))
    assert (purged.calls, purged.audit) == (1, 0)
    assert await store.get_call(call_id) is None
    assert [e["action"] for e in await audit.entries(call_id=call_id)] == ["view", "unmask"]
    assert "1 call records, 0 caller preferences and 0 audit entries deleted" in caplog.text

    caplog.clear()
    purged = await purge(store, tmp_path, settings, now=now + timedelta(days=640))  # the older one is 740 days old
    assert (purged.calls, purged.audit) == (0, 1)
    assert [e["action"] for e in await audit.entries()] == ["view"]
    assert "0 call records, 0 caller preferences and 1 audit entries deleted" in caplog.text

    caplog.clear()
    purged = await purge(store, tmp_path, settings, now=now + timedelta(days=640))
    assert purged.audit == 0 and "deleted" not in caplog.text   # nothing deleted, nothing logged

    purged = await purge(store, tmp_path, settings, now=now + timedelta(days=731))
    assert purged.audit == 1 and await audit.entries() == []


async def test_audit_log_lists_newest_first_and_refuses_an_unmask_without_reason(store):
    audit = AuditLog(store)
    await audit.record(username="sup", role="supervisor", action="view", call_id="c1")
    await audit.record(username="sup", role="supervisor", action="export", call_id="c1", detail="csv")
    await audit.record(username="admin", role="admin", action="unmask", call_id="c2", reason="x" * 600)
    with pytest.raises(ValueError):
        await audit.record(username="admin", role="admin", action="unmask", call_id="c1", reason="  ")
    with pytest.raises(ValueError):
        await audit.record(username="sup", role="supervisor", action="delete", call_id="c1")
    entries = await audit.entries()
    assert [(e["action"], e["call_id"]) for e in entries] == [("unmask", "c2"), ("export", "c1"), ("view", "c1")]
    assert len(entries[0]["reason"]) == 500 and entries[1]["detail"] == "csv"
    assert [e["action"] for e in await audit.entries(call_id="c1", limit=1)] == ["export"]


def test_audit_retention_is_bounded_but_may_exceed_the_records():
    assert RetentionSettings(records_days=365, audit_days=3 * 366).audit_days == 3 * 366
    with pytest.raises(ValueError):
        RetentionSettings(audit_days=29)
    with pytest.raises(ValueError):
        RetentionSettings(audit_days=3 * 366 + 1)

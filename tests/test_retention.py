"""Retention: recordings after 6 months, call records after a year, then gone."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from bot.retention import RetentionSettings, purge
from bot.store import Store


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

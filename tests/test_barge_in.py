"""Barge-in over WebRTC, checked on the call's stereo recording (caller left, bot right)."""

from __future__ import annotations

import numpy as np
import pytest

from bot.caller_sim import CallerVoice, bot_server, browser_call, read_wav, timeline, write_wav
from tests.callers import rms_envelope

# `cpu`: the bot's reaction time is measured, which a call of another test beside it slows.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.cpu]
WINDOW = 0.05  # s, envelope resolution


@pytest.fixture(scope="module")
def caller_voice() -> CallerVoice:
    return CallerVoice()


def _channels(path: str) -> tuple[np.ndarray, np.ndarray]:
    samples, rate, channels = read_wav(path)
    assert channels == 2 and rate == 16000
    stereo = samples.reshape(-1, 2)
    return rms_envelope(stereo[:, 0], rate, WINDOW), rms_envelope(stereo[:, 1], rate, WINDOW)


def _run_call(tmp_path, mic_audio, until=None, hold_s: float = 0.0) -> dict:
    mic = write_wav(tmp_path / "mic.wav", mic_audio, 16000)
    with bot_server(tmp_path) as server:
        with browser_call(server, mic) as page:
            call_id = page.evaluate("window.callbot.callId")
            if until is not None:
                server.wait_for(call_id, until, timeout=60)
            page.wait_for_timeout(hold_s * 1000)
        # hanging up closes the call; its recording was written as it went
        record = server.wait_for(call_id, lambda r: r["ended_at"] and r["recording_url"], timeout=30)
        record["recording"] = str(server.fetch_recording(record, tmp_path / "recording.wav"))
        return record


def _bot_went_on(record: dict) -> tuple[np.ndarray, int]:
    """Sound over the bot that must neither stop it nor be taken as a turn (no re-prompt,
    no no-match): the bot's envelope and the window where the caller's sound starts."""
    assert not [e for e in record["events"] if e["kind"] == "barge_in"], record["events"]
    assert not [t for t in record["turns"] if t["speaker"] == "caller"], record["turns"]
    caller, bot = _channels(record["recording"])
    onset = int(np.argmax(caller > 300))
    assert onset > 0
    return bot, onset


def test_caller_speaking_over_the_greeting_stops_the_bot(tmp_path, caller_voice):
    question = caller_voice.say("Quel est le plafond de chiffre d'affaires ?")
    record = _run_call(
        tmp_path, timeline([(5.0, question), (10.0, None)]),
        until=lambda r: any(t["speaker"] == "bot" and t["intent"] for t in r["turns"]),
    )
    assert [e for e in record["events"] if e["kind"] == "barge_in"], record["events"]
    caller, bot = _channels(record["recording"])
    onset = int(np.argmax(caller > 300))  # first window of caller speech
    # The bot's side falls silent within 300 ms of the caller's first sound: 80 ms of voiced
    # frames hold it, then the pacer's 0.06 s lead and the transport's chunk drain.
    caller_end = onset + int(np.nonzero(caller[onset:] > 300)[0].max())
    voiced = np.nonzero(bot[onset:caller_end] > 300)[0]
    # In whole windows (6 x 0.05 is 0.30000000000000004 in floating point).
    stopped_after = round((voiced.max() + 1) * WINDOW, 3) if len(voiced) else 0.0
    assert stopped_after <= 0.3, f"bot still speaking {stopped_after:.2f} s after the caller began"
    # and the rest of the greeting was dropped, not queued behind the caller's speech
    assert bot[onset + int(0.5 / WINDOW):caller_end].max() < 50
    # the caller's question was still understood
    assert any(t["speaker"] == "caller" and t["intent"] == "plafond_micro" for t in record["turns"])


def test_backchannel_does_not_cut_the_bot(tmp_path, caller_voice):
    oui = caller_voice.say("Oui.")
    assert len(oui) / 16000 < 0.6
    record = _run_call(
        tmp_path, timeline([(4.0, oui), (14.0, None)]),
        hold_s=9.0,
    )
    bot, onset = _bot_went_on(record)
    # the bot held its speech during the "oui", then went on: voiced windows soon after
    after = bot[onset + int(1.0 / WINDOW): onset + int(2.5 / WINDOW)]
    assert (after > 300).mean() > 0.3
    assert len([t for t in record["turns"] if t["speaker"] == "bot"]) == 1


def test_noise_over_the_bot_does_not_cut_it(tmp_path):
    # Three seconds of loud hiss (a car going by, a noisy room): webrtcvad may hold the bot
    # for a moment, but Silero does not hear speech, so the bot goes on without stuttering
    # and nothing is a turn.
    rng = np.random.default_rng(7)
    hiss = (rng.standard_normal(3 * 16000) * 2500).clip(-32000, 32000)
    record = _run_call(tmp_path, timeline([(4.0, hiss), (12.0, None)]), hold_s=9.0)
    bot, onset = _bot_went_on(record)
    # the greeting goes on during and after the noise (speech is voiced in about 60 % of
    # its 50 ms windows; a bot held again and again would fall to about 30 %)
    after = bot[onset + int(0.6 / WINDOW): onset + int(2.5 / WINDOW)]
    assert (after > 300).mean() > 0.45
    assert (bot[onset:onset + int(3.0 / WINDOW)] > 300).mean() > 0.35

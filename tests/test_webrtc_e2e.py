"""End to end over WebRTC: headless chromium with a fake microphone calls the caller page."""

from __future__ import annotations

import numpy as np
import pytest

from bot.caller_sim import (
    CallerVoice,
    bot_server,
    browser_call,
    browser_calls,
    received_audio,
    timeline,
    write_wav,
)
from tests.callers import rms_envelope, spectral_match

pytestmark = [pytest.mark.browser, pytest.mark.slow]
QUESTION = "Quel est le plafond de chiffre d'affaires ?"


@pytest.fixture(scope="module")
def caller_voice() -> CallerVoice:
    return CallerVoice()


@pytest.fixture(scope="module")
def renderer():
    from bot.config import load_settings
    from bot.services import make_speech_engine
    from voice.speech_renderer import SpeechRenderer

    settings = load_settings()
    return SpeechRenderer(make_speech_engine(settings), settings.audio_cache_dir), settings


def greeting_seconds(renderer) -> float:
    from bot.services import speech_style
    from flows.knowledge import load_knowledge

    r, settings = renderer
    text = " ".join(load_knowledge().greeting())
    return len(r.render(text, speech_style(settings))) / 2 / 16000


def test_question_over_webrtc_is_answered_with_audio(tmp_path, caller_voice, renderer):
    from bot.services import speech_style

    wait = greeting_seconds(renderer) + 1.5
    mic = write_wav(tmp_path / "question.wav",
                    timeline([(wait, caller_voice.say(QUESTION)), (12.0, None)]), 16000)
    with bot_server(tmp_path) as server, browser_call(server, mic) as page:
        call_id = page.evaluate("window.callbot.callId")

        def answered(record):
            bots = [t for t in record["turns"] if t["speaker"] == "bot" and t["intent"] == "plafond_micro"]
            return bots and bots[0]["tts_ms"] is not None

        record = server.wait_for(call_id, answered, timeout=wait + 40)
        page.wait_for_timeout(6000)  # let the start of the answer play in the page
        audio, rate = received_audio(page)
        transcript = page.evaluate("window.callbot.transcript")
        # key 0 on the page's keypad asks for a human, with the call's team
        page.click("button[aria-label='Touche 0']")
        handoff = server.wait_for(call_id, lambda r: any(e["kind"] == "handoff" for e in r["events"]))

    caller = [t for t in record["turns"] if t["speaker"] == "caller"]
    assert caller and caller[0]["intent"] == "plafond_micro", record["turns"]
    assert caller[0]["asr_confidence"] > 0.3
    assert caller[0]["start_ms"] < caller[0]["end_ms"]
    answer = next(t for t in record["turns"] if t["speaker"] == "bot" and t["intent"] == "plafond_micro")
    assert "plafond" in answer["text"] and "83 600" in answer["text"]
    for stage in ("stt_ms", "dialogue_ms", "tts_ms", "total_ms"):
        assert answer[stage] is not None and 0 <= answer[stage] < 10_000, (stage, answer)
    assert answer["total_ms"] >= answer["stt_ms"]
    assert record["team"] == "seuils"
    assert [e["data"] for e in handoff["events"] if e["kind"] == "dtmf"] == [{"keys": "0"}]
    assert next(e for e in handoff["events"] if e["kind"] == "handoff")["data"] == {
        "team": "seuils", "reason": "demande_conseiller"}
    # The page showed both sides of the conversation.
    assert any(line["speaker"] == "bot" and "plafond" in line["text"] for line in transcript)

    # The browser really received the answer's audio: its first seconds, as rendered by
    # the TTS, are found in what the page recorded (through Opus and resampling).
    r, settings = renderer
    rendered = np.frombuffer(r.render(answer["text"], speech_style(settings)), dtype=np.int16)
    from voice.codecs import resample

    received_16k = resample(audio.astype(np.float32), rate, 16000)
    template = rendered[: 16000 * 2].astype(np.float32)
    assert spectral_match(received_16k, template) > 0.9
    # and a phrase the bot did not say right then is not (the check can fail)
    other = np.frombuffer(r.render("Merci de votre appel. Au revoir, et bonne journée.",
                                   speech_style(settings)), dtype=np.int16)[: 16000 * 2]
    assert spectral_match(received_16k, other.astype(np.float32)) < 0.85
    assert rms_envelope(received_16k, 16000).max() > 500


def test_question_with_pauses_over_webrtc_is_one_turn(tmp_path, renderer):
    """A caller who stops twice mid-question (0.6 and 0.9 s) is heard to the end."""
    voice = CallerVoice("jm_kumo")
    question = voice.say_with_pauses(
        ["Bonjour, je vous appelle parce que", "je voudrais connaître le plafond de",
         "chiffre d'affaires d'un auto-entrepreneur."], [0.6, 0.9])
    wait = greeting_seconds(renderer) + 1.5
    mic = write_wav(tmp_path / "paused.wav", timeline([(wait, question), (12.0, None)]), 16000)
    with bot_server(tmp_path) as server, browser_call(server, mic) as page:
        call_id = page.evaluate("window.callbot.callId")
        record = server.wait_for(
            call_id, lambda r: any(t["speaker"] == "bot" and t["intent"] for t in r["turns"]), timeout=wait + 40)
        page.wait_for_timeout(2000)
        record = server.call_record(call_id)
    caller = [t for t in record["turns"] if t["speaker"] == "caller"]
    assert len(caller) == 1, caller
    assert caller[0]["intent"] == "plafond_micro", caller
    assert record["team"] == "seuils"


def test_caller_says_goodbye_and_the_bot_hangs_up(tmp_path, caller_voice, renderer):
    wait = greeting_seconds(renderer) + 1.5
    mic = write_wav(tmp_path / "bye.wav",
                    timeline([(wait, caller_voice.say("Non merci, c'est tout. Au revoir.")), (15.0, None)]), 16000)
    with bot_server(tmp_path) as server, browser_call(server, mic) as page:
        call_id = page.evaluate("window.callbot.callId")
        record = server.wait_for(call_id, lambda r: r["ended_at"] is not None, timeout=wait + 40)
        # the bot closed the call: the page saw the connection end
        page.wait_for_function("window.callbot.state === 'ended'", timeout=15_000)
    assert record["outcome"] == "completed"
    bot_turns = [t["text"] for t in record["turns"] if t["speaker"] == "bot"]
    assert "Au revoir" in bot_turns[-1]
    assert record["recording_url"] == f"/api/calls/{call_id}/recording"


def test_silent_caller_is_prompted_then_the_call_ends(tmp_path, renderer):
    mic = write_wav(tmp_path / "silence.wav", timeline([(60.0, None)]), 16000)
    wait = greeting_seconds(renderer)
    # Two silences in a row turn slow speech on, with its longer wait: shortened too.
    with bot_server(tmp_path, CALLBOT_CALL_NO_INPUT_S="2", CALLBOT_SLOW_NO_INPUT_S="3") as server, \
            browser_call(server, mic) as page:
        call_id = page.evaluate("window.callbot.callId")
        record = server.wait_for(call_id, lambda r: r["ended_at"] is not None, timeout=wait + 40)
    bot_turns = [t["text"] for t in record["turns"] if t["speaker"] == "bot"]
    assert "toujours là" in bot_turns[1] and "raccrocher" in " ".join(bot_turns[-1:]), bot_turns
    assert [e["kind"] for e in record["events"]].count("no_input") == 3
    assert [e["data"] for e in record["events"] if e["kind"] == "slow_speech"] == \
        [{"on": True, "reason": "failed_turns"}]
    assert record["outcome"] == "completed"


def test_two_simultaneous_calls_one_sending_garbage(tmp_path, caller_voice, renderer):
    wait = greeting_seconds(renderer) + 1.5
    mics = [
        write_wav(tmp_path / "a.wav", timeline([(wait, caller_voice.say(QUESTION)), (10.0, None)]), 16000),
        write_wav(tmp_path / "b.wav", timeline(
            [(wait + 1.0, caller_voice.say("Je voudrais une attestation de vigilance.")), (10.0, None)]), 16000),
    ]
    with bot_server(tmp_path) as server, browser_calls(server, mics) as (a, b):
        # caller B's page sends junk over the data channel while both calls go on
        # the peer connection is up a moment before its data channel opens
        b.wait_for_function("window.callbot.state === 'connected' && window.callbot.channel"
                            " && window.callbot.channel.readyState === 'open'", timeout=20_000)
        b.evaluate("""() => {
            const ch = window.callbot.channel;
            for (const junk of ["not json", "{\\"type\\": \\"dtmf\\", \\"keys\\": \\"ABC<script>\\"}",
                                JSON.stringify({type: "dtmf", keys: 12}), "x".repeat(50000), "[]", "null"]) ch.send(junk);
        }""")
        ids = [page.evaluate("window.callbot.callId") for page in (a, b)]

        def answered(intent):
            return lambda r: any(t["speaker"] == "bot" and t["intent"] == intent for t in r["turns"])

        record_a = server.wait_for(ids[0], answered("plafond_micro"), timeout=wait + 60)
        record_b = server.wait_for(ids[1], answered("attestation_vigilance"), timeout=wait + 60)
    assert record_a["team"] == "seuils" and record_b["team"] == "attestations"
    assert not [t for t in record_a["turns"] if t["intent"] == "attestation_vigilance"]
    # the junk reached call B only, and as at most a refused key press
    assert not [e for e in record_a["events"] if e["kind"] == "dtmf"]


def test_callers_beyond_capacity_hear_the_lines_are_busy(tmp_path):
    mic = write_wav(tmp_path / "silence.wav", timeline([(20.0, None)]), 16000)
    with bot_server(tmp_path, CALLBOT_MAX_CALLS="1") as server, browser_calls(server, [mic, mic]) as (a, b):
        states = [page.evaluate("window.callbot.state") for page in (a, b)]
        assert states.count("busy") == 1, states
        busy = (a, b)[states.index("busy")]
        assert "lignes sont occupées" in busy.inner_text("#status")

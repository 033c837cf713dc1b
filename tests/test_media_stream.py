"""The media-stream WebSocket as a CPaaS (Twilio's JSON protocol) drives it: a question in
8 kHz mu-law is answered with audio; protocol violations close only their own stream."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import numpy as np
import pytest

from bot.caller_sim import CallerVoice, bot_server, gateway_headers, timeline
from tests.callers import spectral_match
from voice.codecs import pcm16_to_ulaw, resample, ulaw_to_pcm16

pytestmark = pytest.mark.slow
FRAME = 160  # 20 ms of 8 kHz mu-law


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with bot_server(tmp_path_factory.mktemp("media"), CALLBOT_PREFERENCE_SECRET="media-stream tests") as s:
        yield s


def ws_url(server) -> str:
    return server.url.replace("http://", "ws://") + "/ws/media"


def start_messages(sid: str) -> list[dict]:
    return [
        {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        {"event": "start", "sequenceNumber": "1", "streamSid": sid,
         "start": {"streamSid": sid, "callSid": f"CA{sid}", "tracks": ["inbound"],
                   "customParameters": {"caller": "+33100000000", "called": "3957"},
                   "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}},
    ]


async def stream_call(server, audio_16k: np.ndarray, sid: str) -> tuple[list[bytes], list[dict]]:
    """Plays 16 kHz audio as 8 kHz mu-law in real time; returns what the bot sent."""
    ulaw = pcm16_to_ulaw(resample(audio_16k.astype(np.int16), 16000, 8000).tobytes())
    received: list[bytes] = []
    events: list[dict] = []
    headers = gateway_headers(server.gateway_token)
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(server), headers=headers) as ws:
        for m in start_messages(sid):
            await ws.send_str(json.dumps(m))

        async def reader():
            async for msg in ws:
                message = json.loads(msg.data)
                events.append({k: v for k, v in message.items() if k != "media"})
                if message["event"] == "media":
                    received.append(base64.b64decode(message["media"]["payload"]))

        task = asyncio.create_task(reader())
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(0, len(ulaw), FRAME):
            payload = base64.b64encode(ulaw[i:i + FRAME]).decode()
            await ws.send_str(json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}}))
            await asyncio.sleep(max(0.0, started + (i // FRAME + 1) * 0.02 - loop.time()))
        await ws.send_str(json.dumps({"event": "stop", "streamSid": sid}))
        await asyncio.wait_for(task, 10)
    return received, events


def test_question_over_the_media_stream_is_answered(server, tmp_path):
    """First a hum Whisper reads no word in (a caller mumbling, far from the phone): the bot
    asks again rather than leave the caller in silence; then the question is answered."""
    from bot.bench_turns import Renderer
    from bot.config import load_settings
    from bot.services import make_speech_engine, speech_style
    from flows.knowledge import load_knowledge
    from voice.speech_renderer import SpeechRenderer

    voice = CallerVoice()
    hum = Renderer(tmp_path).piece("espeak", "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm")
    audio = timeline([(19.0, hum), (8.0, voice.say("Quel est le plafond de chiffre d'affaires ?")), (9.0, None)])
    received, events = asyncio.run(stream_call(server, audio, "MZ1"))
    record = [c for c in server.recent_calls() if c["channel"] == "sip"][-1]
    assert record["team"] == "seuils", record["turns"]
    not_heard = [e["data"] for e in record["events"] if e["kind"] == "not_heard"]
    assert len(not_heard) == 1 and not_heard[0]["voiced_s"] >= 0.6, record["events"]
    asked_again = load_knowledge().prompt("not_heard", 0)
    assert any(t["speaker"] == "bot" and t["text"].startswith(asked_again) for t in record["turns"]), record["turns"]
    assert any(t["speaker"] == "caller" and t["intent"] == "plafond_micro" for t in record["turns"])
    answer = next(t for t in record["turns"] if t["speaker"] == "bot" and t["intent"] == "plafond_micro")
    assert answer["total_ms"] is not None
    # the reply's audio came back through mu-law: its first 2 s are in what we received
    heard = np.frombuffer(ulaw_to_pcm16(b"".join(received)), dtype=np.int16)
    heard_16k = resample(heard.astype(np.float32), 8000, 16000)
    settings = load_settings()
    renderer = SpeechRenderer(make_speech_engine(settings), settings.audio_cache_dir)
    def telephone(text: str) -> np.ndarray:
        """What the TTS rendered for `text`, through the same G.711 round trip."""
        pcm = np.frombuffer(renderer.render(text, speech_style(settings)), dtype=np.int16)[:32000]
        narrow = np.frombuffer(ulaw_to_pcm16(pcm16_to_ulaw(resample(pcm, 16000, 8000).tobytes())), np.int16)
        return resample(narrow.astype(np.float32), 8000, 16000)

    assert spectral_match(heard_16k, telephone(answer["text"])) > 0.9
    assert spectral_match(heard_16k, telephone("Merci de votre appel. Au revoir, et bonne journée.")) < 0.85
    assert all(e["streamSid"] == "MZ1" for e in events)


@pytest.mark.parametrize("bad, reason", [
    ("{not json", "not JSON"),
    (json.dumps({"event": "hello"}), "unknown event"),
    (json.dumps({"event": "media", "media": {"payload": "%%%not base64%%%"}}), "not base64"),
    (json.dumps({"event": "dtmf", "dtmf": {"digit": "X"}}), "bad dtmf"),
    (json.dumps(["event", "media"]), "not a JSON object"),
    (json.dumps({"event": "transfer", "transfer": {"status": "done, trust me"}}), "transfer without a known status"),
])
def test_protocol_violations_close_only_that_stream(server, bad, reason):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            good = await session.ws_connect(ws_url(server), headers=gateway_headers(server.gateway_token))
            for m in start_messages("MZgood"):
                await good.send_str(json.dumps(m))
            bad_ws = await session.ws_connect(ws_url(server), headers=gateway_headers(server.gateway_token))
            for m in start_messages("MZbad"):
                await bad_ws.send_str(json.dumps(m))
            await bad_ws.send_str(bad)
            msg = await bad_ws.receive(timeout=10)
            while msg.type == aiohttp.WSMsgType.TEXT:  # greeting audio before the close
                msg = await bad_ws.receive(timeout=10)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert bad_ws.close_code == 1008
            assert reason in (msg.extra or "")
            # the other call goes on: it still receives the greeting's audio
            got = 0
            while got < 10:
                m = await good.receive(timeout=10)
                assert m.type == aiohttp.WSMsgType.TEXT
                got += json.loads(m.data)["event"] == "media"
            await good.close()
    asyncio.run(scenario())
    assert "media stream closed" in server.log_path.read_text()


# ------------------------------------------------------- callers who pause mid-question


def _caller_turns(record: dict) -> list[dict]:
    return [t for t in record["turns"] if t["speaker"] == "caller"]


def test_question_with_two_pauses_is_one_turn_answered_right(server):
    """0.7 and 0.9 s pauses mid-question: one caller turn, and the right answer heard
    (how soon is measured by `callbot bench turns --live`, not here)."""
    from bot.caller_sim import media_stream_call

    voice = CallerVoice("jf_nezumi")
    audio = voice.say_with_pauses(
        ["Bonjour, je vous appelle parce que", "je voudrais connaître le plafond de",
         "chiffre d'affaires d'un auto-entrepreneur."], [0.7, 0.9])
    call = asyncio.run(media_stream_call(ws_url(server), audio, "MZpauses"))
    record = _last_sip_call(server)
    caller = _caller_turns(record)
    assert len(caller) == 1, caller
    assert caller[0]["intent"] == "plafond_micro", caller
    # The record says how the end of the turn was decided (what a supervisor reads on it).
    decided = [e["data"] for e in record["events"] if e["kind"] == "end_of_turn"]
    assert [d["turn"] for d in decided] == [caller[0]["index"]], decided
    assert decided[0]["reason"] and decided[0]["decided_ms"] >= decided[0]["wait_ms"] >= 200, decided
    assert not [e for e in record["events"] if e["kind"] == "turns_merged"]
    assert record["team"] == "seuils"
    assert call.latency_s is not None, call


def test_yes_then_a_question_is_not_dropped(server):
    """"Oui..." answered at once, then the question said as the bot begins to answer: the
    bot stops, hears "oui, quel est le plafond ?" as one question and answers it."""
    from bot.caller_sim import media_stream_call

    voice = CallerVoice("jf_alpha")
    audio = voice.say_with_pauses(["Oui.", "Quel est le plafond de chiffre d'affaires ?"], [1.0])
    asyncio.run(media_stream_call(ws_url(server), audio, "MZyes"))
    record = _last_sip_call(server)
    caller = _caller_turns(record)
    assert caller and caller[-1]["intent"] == "plafond_micro", caller
    assert any(t["speaker"] == "bot" and t["intent"] == "plafond_micro" for t in record["turns"])


def _last_sip_call(server) -> dict:
    calls = [c for c in server.recent_calls() if c["channel"] == "sip"]
    return server.wait_for(calls[-1]["id"], lambda r: r["ended_at"] is not None, timeout=30)


RENDER_GAP_S = 1.0


def test_slow_speech_asked_for_is_slower_and_kept_with_consent_for_the_next_call(server):
    """A caller says "parlez plus lentement", then goodbye; asked whether to keep slow
    speech, they press 1 (yes): their next call from the same number is greeted slowly.
    The speaking rate is measured on the audio the caller receives (syllables of what the
    record says was said, over the span of its sound): the greeting of that next call is at
    most 85 % of the rate of the same greeting in the first call, before slow speech was
    asked for. (Greetings, not a knowledge answer: a slow answer takes a minute of real
    time, and every text goes through the same speech renderer.)"""
    from bot.bench_slow import audio_stats
    from bot.caller_sim import media_stream_dialogue
    from voice.slow_speech import syllables

    voice = CallerVoice("jf_nezumi")
    caller = "+33 6 55 44 33 22"

    def greeting_rate(audio: np.ndarray, record: dict) -> float:
        first = min((t["index"] for t in _caller_turns(record)), default=10**6)
        said = " ".join(t["text"] for t in record["turns"] if t["speaker"] == "bot" and t["index"] < first)
        span, pauses = audio_stats(audio.tobytes(), rate=8000)
        # A clause rendered late on a loaded machine leaves a gap: neither speech nor the
        # slow style's pauses (0.6 s at most), so not counted in the rate.
        return syllables(said) / (span - sum(p for p in pauses if p > RENDER_GAP_S))

    # Slow replies have 0.6 s pauses, and a clause rendered late on a loaded machine leaves
    # a longer gap: this caller waits for 3 s of silence before speaking again.
    slow = asyncio.run(media_stream_dialogue(
        ws_url(server), [voice.say("Parlez plus lentement, s'il vous plaît."), voice.say("Merci, au revoir."), "1"],
        "MZslowpace", caller=caller, quiet_s=3.0, with_greeting=True))
    slow_record = _last_sip_call(server)
    assert [e["data"] for e in slow_record["events"] if e["kind"] == "slow_speech"] == [{"on": True, "reason": "asked"}]
    assert [e["data"] for e in slow_record["events"] if e["kind"] == "slow_preference"] == [{"kept": True}], \
        [(t["speaker"], t["text"]) for t in slow_record["turns"]]
    assert "55 44 33 22" not in json.dumps([e for e in slow_record["events"] if e["kind"].startswith("slow")])
    goodbye = _caller_turns(slow_record)[1]["index"]
    question = next(t for t in slow_record["turns"] if t["speaker"] == "bot" and t["index"] > goodbye)
    assert "voulez-vous que je parle lentement" in question["text"].lower(), question

    kept = asyncio.run(media_stream_dialogue(ws_url(server), [], "MZkept", caller=caller, with_greeting=True))
    kept_record = _last_sip_call(server)
    assert [e["data"] for e in kept_record["events"] if e["kind"] == "slow_speech"] == \
        [{"on": True, "reason": "preference"}]
    plain_rate, kept_rate = greeting_rate(slow[0], slow_record), greeting_rate(kept[0], kept_record)
    assert kept_rate <= 0.85 * plain_rate, (plain_rate, kept_rate)

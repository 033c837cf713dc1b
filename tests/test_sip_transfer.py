"""Transfers from a phone call to an agent (a baresip peer): blind (REFER: the caller's
phone calls the agent) and bridged (the gateway calls the agent, briefs them, joins both)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bot.agent_sim import AgentClient, add_user, server_database
from bot.caller_sim import CallerVoice, bot_server, free_udp_port, sip_gateway, timeline, write_wav
from bot.caller_sim import read_wav as read_stereo
from telephony.sip_caller import SipCallee, place_call, read_wav
from tests.callers import spectral_match
from tests.test_sip_calls import sip_calls, telephone
from voice.codecs import resample

pytestmark = pytest.mark.slow


def test_key_zero_transfers_the_caller_to_the_agent(tmp_path):
    silence = write_wav(tmp_path / "silence.wav", timeline([(40.0, None)]), 16000)
    # the agent first, on a port it could bind (it retries on another when one is taken)
    with SipCallee(silence, workdir=tmp_path / "agent", user="agent") as agent, \
            bot_server(tmp_path, CALLBOT_CALL_TRANSFER_MODE="blind") as server, \
            sip_gateway(tmp_path, server.url.replace("http", "ws") + "/ws/media",
                        CALLBOT_SIP_TRANSFER_TARGETS=f"*={agent.uri}") as gateway:
        result = place_call(gateway.uri, silence, workdir=tmp_path / "caller", duration_s=20.0,
                            dtmf=[(2.0, "0")])
        agent_side = agent.stop()
        calls = [c for c in server.recent_calls() if c["channel"] == "sip"]
    assert result.established and result.dtmf_sent == ["0"], result.log[-2000:]
    record = calls[-1]
    kinds = [e["kind"] for e in record["events"]]
    assert "handoff" in kinds and "transfer_requested" in kinds, record["events"]
    assert "blind transfer (REFER)" in gateway.log_path.read_text()
    # the caller's phone followed the REFER and reached the agent
    assert agent_side.established, agent_side.log[-2000:]
    # and the bot finished its sentence before the transfer
    handoff_turn = next(t for t in record["turns"] if t["speaker"] == "bot" and "conseiller" in t["text"])
    assert handoff_turn["tts_ms"] is not None


def _agent_accepts_on_phone(server, username: str, sip_uri: str, results: dict) -> threading.Thread:
    """An agent whose desk phone is `sip_uri` signs in, is available on it, and accepts the
    first caller of their queue (in a thread: the caller's phone runs meanwhile)."""
    password = "mot-de-passe-agent-1"
    add_user(server_database(server.log_path), username, password, teams="accueil", sip_uri=sip_uri)

    def run() -> None:
        agent = AgentClient(server.url)
        agent.login(username, password)
        agent.available(["accueil"], device="phone")
        entry = agent.wait_for_caller(timeout=40)
        results["card"] = entry["card"]
        results["accepted"] = agent.accept(entry["call_id"], device="phone")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_agent_on_a_desk_phone_is_briefed_then_talks_with_the_caller(tmp_path):
    """Key 0 -> the caller waits in the queue; an agent available on their desk phone
    (baresip) accepts in the console's API -> the gateway calls that phone: the agent alone
    hears the bot's briefing, then caller and agent talk, and the bot's recording keeps both."""
    from bot.config import load_settings
    from bot.services import make_speech_engine, speech_style
    from voice.speech_renderer import SpeechRenderer

    voice = CallerVoice()
    caller_words = voice.say("Bonjour, j'ai reçu une lettre de relance pour ma déclaration.")
    agent_words = voice.say("Bonjour madame, je suis Claire, conseillère, je vois votre dossier.")
    caller_wav = write_wav(tmp_path / "caller.wav", timeline([(42.0, caller_words), (20.0, None)]), 16000)
    agent_wav = write_wav(tmp_path / "agent.wav", timeline([(16.0, agent_words), (24.0, None)]), 16000)
    results: dict = {}
    with SipCallee(agent_wav, workdir=tmp_path / "agent", user="claire", hangup_after_s=34.0) as agent, \
            bot_server(tmp_path) as server, \
            sip_gateway(tmp_path, server.url.replace("http", "ws") + "/ws/media",
                        CALLBOT_SIP_AGENT_HOSTS="127.0.0.1") as gateway:
        accepting = _agent_accepts_on_phone(server, "claire", agent.uri, results)
        result = place_call(gateway.uri, caller_wav, workdir=tmp_path / "caller", duration_s=80.0,
                            dtmf=[(2.0, "0")])
        accepting.join(timeout=5)
        agent_side = agent.stop()
        record = server.wait_for(sip_calls(server)[-1]["id"], lambda r: r["ended_at"] is not None, timeout=20)
        recording = server.fetch_recording(record, tmp_path / "recording.wav")
    assert result.established and agent_side.established, (result.log[-2000:], agent_side.log[-2000:])
    assert results.get("accepted", {}).get("device") == "phone", results
    card = results["card"]
    assert card["team"] == "accueil" and card["reason"] == "demande_conseiller" and not card["identified"]
    kinds = [e["kind"] for e in record["events"]]
    for kind in ("handoff", "queued", "agent_accepted", "transfer_requested", "transfer_bridged"):
        assert kind in kinds, record["events"]
    assert record["outcome"] == "transferred"
    # the agent ended the conversation: the gateway hung up the caller
    assert result.closed_by_remote
    assert "blind transfer" not in gateway.log_path.read_text()

    settings = load_settings()
    renderer = SpeechRenderer(make_speech_engine(settings), settings.audio_cache_dir)
    requested = next(e for e in record["events"] if e["kind"] == "transfer_requested")["data"]
    assert requested["mode"] == "bridged" and requested["agent"] == "claire"
    assert "Équipe accueil" in requested["briefing"]
    briefing = telephone(np.frombuffer(renderer.render(requested["briefing"], speech_style(settings)),
                                       np.int16)[:32000])

    def heard(side) -> np.ndarray:
        samples, rate = read_wav(side.recording)
        return resample(samples.astype(np.float32), rate, 16000)

    agent_heard, caller_heard = heard(agent_side), heard(result)
    # the briefing was for the agent's ears only
    assert spectral_match(agent_heard, briefing) > 0.9
    assert spectral_match(caller_heard, briefing) < 0.85
    # then each heard the other
    assert spectral_match(agent_heard, telephone(caller_words)) > 0.9
    assert spectral_match(caller_heard, telephone(agent_words)) > 0.9
    # and the bot's recording kept both sides: caller left, agent right
    samples, _, channels = read_stereo(recording)
    assert channels == 2
    stereo = samples.reshape(-1, 2).astype(np.float32)
    assert spectral_match(stereo[:, 1], telephone(agent_words)) > 0.9
    assert spectral_match(stereo[:, 0], telephone(caller_words)) > 0.9


def test_agent_phone_that_does_not_answer_leaves_the_caller_a_callback(tmp_path):
    nobody = free_udp_port()  # no phone listens there: the leg rings out
    silence = write_wav(tmp_path / "silence.wav", timeline([(50.0, None)]), 16000)
    results: dict = {}
    with bot_server(tmp_path) as server, \
            sip_gateway(tmp_path, server.url.replace("http", "ws") + "/ws/media",
                        CALLBOT_SIP_AGENT_HOSTS="127.0.0.1",
                        CALLBOT_SIP_AGENT_ANSWER_TIMEOUT_S="3") as gateway:
        accepting = _agent_accepts_on_phone(server, "paul", f"sip:paul@127.0.0.1:{nobody}", results)
        result = place_call(gateway.uri, silence, workdir=tmp_path / "caller", duration_s=35.0,
                            dtmf=[(2.0, "0")])
        accepting.join(timeout=5)
        record = server.wait_for(sip_calls(server)[-1]["id"], lambda r: r["ended_at"] is not None, timeout=20)
    assert result.established, result.log[-2000:]
    kinds = [e["kind"] for e in record["events"]]
    assert "transfer_requested" in kinds and "transfer_failed" in kinds, record["events"]
    assert record["outcome"] != "transferred"
    told = [t["text"] for t in record["turns"] if t["speaker"] == "bot"]
    assert any("Voulez-vous qu'un conseiller vous rappelle" in t for t in told), told
    assert "did not answer in time" in gateway.log_path.read_text()


def test_gateway_refuses_an_agent_phone_on_a_host_not_allowed(tmp_path):
    """Toll fraud: only agents' phones on CALLBOT_SIP_AGENT_HOSTS are ever called."""
    silence = write_wav(tmp_path / "silence.wav", timeline([(40.0, None)]), 16000)
    results: dict = {}
    with bot_server(tmp_path) as server, \
            sip_gateway(tmp_path, server.url.replace("http", "ws") + "/ws/media",
                        CALLBOT_SIP_AGENT_HOSTS="pbx.example.fr") as gateway:
        accepting = _agent_accepts_on_phone(server, "eve", "sip:eve@127.0.0.1:5999", results)
        result = place_call(gateway.uri, silence, workdir=tmp_path / "caller", duration_s=25.0,
                            dtmf=[(2.0, "0")])
        accepting.join(timeout=5)
        record = server.wait_for(sip_calls(server)[-1]["id"], lambda r: r["ended_at"] is not None, timeout=20)
    assert result.established, result.log[-2000:]
    kinds = [e["kind"] for e in record["events"]]
    assert "transfer_failed" in kinds, record["events"]
    assert "not on an allowed host" in gateway.log_path.read_text()

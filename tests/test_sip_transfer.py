"""Blind transfer: key 0 on a phone call -> the bot hands off -> the gateway sends REFER
to the configured agent address -> the caller's phone calls the agent."""

from __future__ import annotations

import pytest

from bot.caller_sim import bot_server, free_udp_port, sip_gateway, timeline, write_wav
from telephony.sip_caller import SipCallee, place_call

pytestmark = pytest.mark.slow


def test_key_zero_transfers_the_caller_to_the_agent(tmp_path):
    agent_port = free_udp_port()
    silence = write_wav(tmp_path / "silence.wav", timeline([(40.0, None)]), 16000)
    with bot_server(tmp_path) as server, \
            sip_gateway(tmp_path, server.url.replace("http", "ws") + "/ws/media",
                        CALLBOT_SIP_TRANSFER_TARGETS=f"*=sip:agent@127.0.0.1:{agent_port}") as gateway, \
            SipCallee(silence, workdir=tmp_path / "agent", port=agent_port, user="agent") as agent:
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

"""Hostile SIP over UDP: the gateway and Kamailio keep running and keep answering."""

from __future__ import annotations

import socket
import time
import uuid

import numpy as np
import pytest

from bot.caller_sim import bot_server, kamailio_proxy, sip_gateway, sip_options, timeline, write_wav
from telephony.sip_caller import place_call, read_wav

# Floods of 1200 packets keep the gateway and Kamailio busy for a while: run with the tests
# that need the CPU, apart from the calls of other tests (scripts/run-tests.sh).
pytestmark = [pytest.mark.slow, pytest.mark.cpu]


def invite(port: int, source: str, local_port: int, *, sdp: str, content_length: int | None = None) -> bytes:
    body = sdp.encode()
    length = len(body) if content_length is None else content_length
    return (
        f"INVITE sip:bot@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source}:{local_port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:x@{source}>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:bot@127.0.0.1>\r\nCall-ID: {uuid.uuid4().hex}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:x@{source}:{local_port}>\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode() + body


GARBAGE = [
    b"INVITE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;bra",          # truncated headers
    b"\x00\xff\xfe garbage \x01\x02" * 50,
    b"FOOBAR sip:bot@127.0.0.1 SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 FOOBAR\r\n\r\n",       # unknown method
    b"SIP/2.0 200 OK\r\n\r\n",                                                      # stray response
    b"OPTIONS sip:bot@127.0.0.1 SIP/2.0\r\n" + b"X-Long: " + b"a" * 60000 + b"\r\n\r\n",
]


def hostile_traffic(port: int, source: str, burst: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        local = s.getsockname()[1]
        for packet in GARBAGE:
            s.sendto(packet, ("127.0.0.1", port))
        s.sendto(invite(port, source, local, sdp="v=0\r\nthis is not sdp\r\n"), ("127.0.0.1", port))
        s.sendto(invite(port, source, local, sdp="v=0\r\n", content_length=5000), ("127.0.0.1", port))
        s.sendto(invite(port, source, local, sdp="v=0\r\n" * 3, content_length=2), ("127.0.0.1", port))
        for _ in range(burst):
            s.sendto(invite(port, source, local, sdp="v=0\r\no=- 1 1 IN IP4 127.0.0.9\r\ns=-\r\n"),
                     ("127.0.0.1", port))


def test_gateway_and_kamailio_survive_hostile_udp(tmp_path):
    with bot_server(tmp_path) as server, \
            sip_gateway(tmp_path, server.url.replace("http", "ws") + "/ws/media",
                        CALLBOT_SIP_MAX_CALLS="3") as gateway, \
            kamailio_proxy(tmp_path, [gateway.port], flood=30) as proxy:
        # The flood comes from another loopback address than the legitimate caller,
        # as it would from another host: Kamailio blocks the flooding address only.
        hostile_traffic(proxy.port, "127.0.0.2", burst=1000)
        hostile_traffic(gateway.port, "127.0.0.3", burst=200)
        time.sleep(2)
        assert gateway.process.poll() is None and proxy.process.poll() is None
        assert server.process.poll() is None
        assert sip_options(gateway.port).startswith("SIP/2.0 200")
        assert sip_options(proxy.port).startswith("SIP/2.0 200")
        # the flooding address is refused for a while, the others are not
        assert sip_options(proxy.port, source="127.0.0.2", timeout=1.0) == ""
        assert "flood from 127.0.0.2" in proxy.log_path.read_text()
        # legitimate calls placed afterwards are answered, directly and through Kamailio
        silence = write_wav(tmp_path / "silence.wav", timeline([(10.0, None)]), 16000)
        for target in (gateway, proxy):
            # 6 s: the bot's first words come after its pipeline for the call is up, and the
            # gateway and Kamailio may still be working through the floods.
            result = place_call(target.uri, silence, workdir=tmp_path / f"legit-{target.port}", duration_s=6.0)
            assert result.established, result.log[-2000:]
            heard, _ = read_wav(result.recording)
            assert heard.size and np.abs(heard).max() > 1000, result.log[-2000:]  # the greeting was heard


def test_kamailio_refuses_sources_not_listed(tmp_path):
    with kamailio_proxy(tmp_path, [5999], allow="127.0.0.1/32") as proxy:
        assert sip_options(proxy.port, source="127.0.0.1").startswith("SIP/2.0 200")
        assert sip_options(proxy.port, source="127.0.0.5").startswith("SIP/2.0 403")

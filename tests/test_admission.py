"""Who may open a media stream, and how many voice calls get a line: the handshake is
refused as plain HTTP (401 for an unknown client, 503 "busy" when every line is in use),
a burst of calls never gets more than max_calls lines, and every line comes back."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.admission import Admission
from bot.auth import twilio_signature
from bot.config import load_settings
from bot.server import create_app
from tests.provisioned import provisioned_var

GATEWAY_TOKEN = secrets.token_urlsafe(24)
TWILIO_AUTH_TOKEN = secrets.token_urlsafe(24)


# ------------------------------------------------------------------ the line count


async def test_a_line_is_taken_at_once_and_given_back_once():
    admission = Admission(2)
    first, second = admission.take("a"), admission.take("b")
    assert first is not None and second is not None
    assert admission.take("c") is None and admission.in_use == 2
    first.release()
    first.release()  # a second release must not free someone else's line
    assert admission.in_use == 1
    third = admission.take("d")
    assert third is not None and admission.take("e") is None
    with second:
        pass
    assert admission.in_use == 1


async def test_a_call_task_gives_its_line_back_however_it_ends():
    admission = Admission(3)

    async def call(fail: bool) -> None:
        await asyncio.sleep(0)
        if fail:
            raise RuntimeError("the pipeline broke")

    ended, failed, never_ran = (admission.take(n) for n in ("ended", "failed", "never ran"))
    ended.attach(asyncio.create_task(call(False)))
    failed.attach(asyncio.create_task(call(True)))
    # Cancelled before its first step: a `finally` inside it would never run.
    task = asyncio.create_task(asyncio.sleep(3600))
    never_ran.attach(task)
    task.cancel()
    await asyncio.gather(ended.task, failed.task, task, return_exceptions=True)
    await asyncio.sleep(0)  # done callbacks run on the next loop step
    assert admission.in_use == 0


async def test_close_all_cancels_every_call_and_frees_the_lines():
    admission = Admission(4)
    for n in range(3):
        admission.take(f"call {n}").attach(asyncio.create_task(asyncio.sleep(3600)))
    await admission.close_all()
    await asyncio.sleep(0)
    assert admission.in_use == 0


# ------------------------------------------ the media-stream handshake (no voice models)


def ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws/media"


def media_url(client: TestClient) -> str:
    return str(client.make_url("/ws/media")).replace("http://", "ws://", 1)


async def handshake(client: TestClient, headers: dict[str, str]) -> tuple[int, str]:
    """The media stream's answer to an upgrade request: (status, X-Callbot-Reason)."""
    try:
        socket = await client.session.ws_connect(media_url(client), headers=headers)
    except aiohttp.WSServerHandshakeError as e:
        return e.status, (e.headers or {}).get("X-Callbot-Reason", "")
    await socket.close()
    return 101, ""


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory) -> Path:
    return provisioned_var(tmp_path_factory.mktemp("admission-var"))


@pytest.fixture(scope="module")
async def no_voice(var_dir):
    """Both kinds of client configured, no voice models: a client that passes the
    handshake's checks is told voice calls are disabled (503 voice_disabled), not 401."""
    settings = load_settings(env={}, var_dir=var_dir, gateway_token=GATEWAY_TOKEN,
                             twilio_auth_token=TWILIO_AUTH_TOKEN)
    async with TestClient(TestServer(create_app(settings, voice=False))) as client:
        yield client


def twilio_headers(client: TestClient, *, key: str = TWILIO_AUTH_TOKEN,
                   url: str | None = None) -> dict[str, str]:
    url = url or media_url(client)
    return {"X-Twilio-Signature": twilio_signature(key, url)}


async def test_unknown_clients_are_refused_at_the_handshake(no_voice, caplog):
    caplog.set_level(logging.WARNING, logger="callbot.media")
    refused = {
        "nothing": {},
        "wrong token": {"Authorization": "Bearer not-the-gateway-token"},
        "token without Bearer": {"Authorization": GATEWAY_TOKEN},
        "signed with another key": twilio_headers(no_voice, key="another-account"),
        "signed for another URL": twilio_headers(no_voice, url="ws://elsewhere.example/ws/media"),
        "gateway token as a signature": {"X-Twilio-Signature": GATEWAY_TOKEN},
    }
    for what, headers in refused.items():
        assert await handshake(no_voice, headers) == (401, "unauthorized"), what
    assert "media stream refused from 127.0.0.1" in caplog.text


async def test_the_gateway_and_a_twilio_signed_stream_pass_the_handshake(no_voice):
    assert await handshake(no_voice, {"Authorization": f"Bearer {GATEWAY_TOKEN}"}) == (503, "voice_disabled")
    assert await handshake(no_voice, twilio_headers(no_voice)) == (503, "voice_disabled")


async def test_the_signed_url_is_the_public_one_behind_a_proxy(var_dir):
    public = "wss://callbot.example.fr/ws/media"
    settings = load_settings(env={}, var_dir=var_dir, twilio_auth_token=TWILIO_AUTH_TOKEN,
                             media_public_url=public)
    async with TestClient(TestServer(create_app(settings, voice=False))) as client:
        assert await handshake(client, twilio_headers(client, url=public)) == (503, "voice_disabled")
        assert await handshake(client, twilio_headers(client)) == (401, "unauthorized")


async def test_without_any_token_the_media_stream_is_closed(var_dir, caplog):
    caplog.set_level(logging.WARNING, logger="callbot.media")
    settings = load_settings(env={}, var_dir=var_dir)
    async with TestClient(TestServer(create_app(settings, voice=False))) as client:
        assert "CALLBOT_GATEWAY_TOKEN or CALLBOT_TWILIO_AUTH_TOKEN" in caplog.text  # said at start
        # An empty token must not match an empty setting.
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {GATEWAY_TOKEN}"},
                        {"X-Twilio-Signature": twilio_signature("", media_url(client))}):
            assert await handshake(client, headers) == (401, "unauthorized"), headers


# ---------------------------------------------- real calls (voice models, a child server)

CONNECT_TIMEOUT_S = 2.0
FRAME = 160  # 20 ms of 8 kHz mu-law
LOUD = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from bot.caller_sim import bot_server

    # Blind transfers: a request for a human is a `transfer` message at once (with the agent
    # hub, only an agent's accept on a desk phone sends one: tests/test_agent_hub.py).
    with bot_server(tmp_path_factory.mktemp("admission-voice"), CALLBOT_MAX_CALLS="4",
                    CALLBOT_GATEWAY_TOKEN=GATEWAY_TOKEN, CALLBOT_TWILIO_AUTH_TOKEN=TWILIO_AUTH_TOKEN,
                    CALLBOT_CALL_CONNECT_TIMEOUT_S=str(CONNECT_TIMEOUT_S),
                    CALLBOT_CALL_TRANSFER_MODE="blind") as s:
        yield s


def gateway() -> dict[str, str]:
    return {"Authorization": f"Bearer {GATEWAY_TOKEN}"}


def start_messages(sid: str) -> list[str]:
    return [json.dumps(m) for m in (
        {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        {"event": "start", "sequenceNumber": "1", "streamSid": sid,
         "start": {"streamSid": sid, "callSid": f"CA{sid}", "tracks": ["inbound"],
                   # what anyone could claim of itself: it must give no right to transfer
                   "customParameters": {"caller": "+33100000000", "called": "3957", "gateway": "callbot"},
                   "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}},
    )]


def loud(message: dict) -> bool:
    from voice.codecs import ulaw_to_pcm16

    pcm = np.frombuffer(ulaw_to_pcm16(base64.b64decode(message["media"]["payload"])), dtype=np.int16)
    return bool(len(pcm)) and float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > LOUD


async def ask_for_a_human(url: str, headers: dict[str, str], sid: str) -> list[dict]:
    """Waits for the greeting to end, presses 0 ("un conseiller"), listens to the reply
    (until 3 s after its last sound, or a `transfer` message); the non-media messages."""
    events: list[dict] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers=headers) as socket:
        for m in start_messages(sid):
            await socket.send_str(m)

        async def listen(timeout_s: float) -> bool:
            """Until the bot has spoken and stopped for 3 s; False on a `transfer` message."""
            last_sound = None
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                try:
                    msg = await socket.receive(timeout=0.5)
                except TimeoutError:
                    msg = None
                if msg is not None:
                    assert msg.type == aiohttp.WSMsgType.TEXT, msg
                    message = json.loads(msg.data)
                    if message["event"] != "media":
                        events.append(message)
                        if message["event"] == "transfer":
                            return False
                    elif loud(message):
                        last_sound = time.monotonic()
                if last_sound is not None and time.monotonic() - last_sound > 3.0:
                    return True
            raise AssertionError(f"{sid}: the bot did not finish speaking within {timeout_s} s")

        assert await listen(60), events
        await socket.send_str(json.dumps({"event": "dtmf", "streamSid": sid, "dtmf": {"digit": "0"}}))
        await listen(60)
        await socket.send_str(json.dumps({"event": "stop", "streamSid": sid}))
    return events


def sip_call(server, client: str) -> dict:
    """The last media-stream call of this client ('gateway', 'cpaas'), once ended."""
    for call in reversed(server.recent_calls()):
        start = next((e for e in call["events"] if e["kind"] == "media_stream_start"), None)
        if start and start["data"].get("client") == client:
            return server.wait_for(call["id"], lambda r: r["ended_at"] is not None, timeout=30)
    raise AssertionError(f"no {client} call among {server.recent_calls()}")


@pytest.mark.slow
async def test_only_the_gateway_token_gets_transfers(server):
    url = ws(server.url)
    for headers in ({}, {"Authorization": "Bearer nope"}, {"X-Twilio-Signature": "bm9wZQ=="}):
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url, headers=headers)
        assert refused.value.status == 401, headers
    signed = {"X-Twilio-Signature": twilio_signature(TWILIO_AUTH_TOKEN, url)}
    ours, twilio = await asyncio.gather(ask_for_a_human(url, gateway(), "MZgateway"),
                                        ask_for_a_human(url, signed, "MZtwilio"))
    assert [e["transfer"]["team"] for e in ours if e["event"] == "transfer"] == ["accueil"], ours
    assert not [e for e in twilio if e["event"] == "transfer"], twilio
    record = sip_call(server, "gateway")
    assert [e["data"]["team"] for e in record["events"] if e["kind"] == "transfer_requested"] == ["accueil"]
    # the recording is reached through its route, with the admin token
    assert "recording" not in record and record["recording_url"] == f"/api/calls/{record['id']}/recording"
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url + record["recording_url"]) as resp:
            assert resp.status == 401
        async with session.get(server.url + record["recording_url"],
                               headers={"Authorization": f"Bearer {server.admin_token}"}) as resp:
            assert resp.status == 200 and (await resp.read())[:4] == b"RIFF"
    record = sip_call(server, "cpaas")
    kinds = [e["kind"] for e in record["events"]]
    assert "handoff" in kinds and "transfer_requested" not in kinds, kinds
    assert "media stream refused from 127.0.0.1" in server.log_path.read_text()
    # Nor may it say an agent has the call (that would turn the bot's hearing off).
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers=signed) as socket:
        for m in start_messages("MZfake"):
            await socket.send_str(m)
        fake = {"event": "transfer", "transfer": {"team": "accueil", "status": "bridged"}}
        await socket.send_str(json.dumps(fake))
        msg = await socket.receive(timeout=10)
        while msg.type == aiohttp.WSMsgType.TEXT:  # greeting audio before the close
            msg = await socket.receive(timeout=10)
        assert socket.close_code == 1008 and "cannot transfer" in (msg.extra or ""), msg


class WebRTCCaller:
    """A headless WebRTC client (aiortc, in this process): an audio offer with its ICE
    candidates, then, once answered, a real connection to the bot."""

    def __init__(self) -> None:
        from aiortc import RTCPeerConnection

        self.pc = RTCPeerConnection()
        self.pc.addTransceiver("audio", direction="sendrecv")
        self.call_id: str | None = None

    async def offer(self) -> str:
        from bot.webrtc import offer_loopback_candidates

        offer_loopback_candidates()  # the bot offers 127.0.0.1 (CALLBOT_WEBRTC_LOOPBACK): so must we
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def call(self, session: aiohttp.ClientSession, url: str, sdp: str, *,
                   connect: bool = True) -> tuple[int, dict]:
        async with session.post(f"{url}/api/offer", json={"sdp": sdp, "type": "offer"}) as resp:
            status, body = resp.status, await resp.json()
        if status == 200 and connect:
            from aiortc import RTCSessionDescription

            self.call_id = body["call_id"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        return status, body

    async def connected(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.pc.connectionState != "connected":
            assert time.monotonic() < deadline, f"WebRTC state {self.pc.connectionState}"
            await asyncio.sleep(0.05)

    async def hang_up(self) -> None:
        await self.pc.close()


async def open_stream(session: aiohttp.ClientSession, url: str, sid: str) -> tuple[int, str, object]:
    """(status, X-Callbot-Reason, the socket once `start` is sent)."""
    try:
        socket = await session.ws_connect(url, headers=gateway())
    except aiohttp.WSServerHandshakeError as e:
        return e.status, (e.headers or {}).get("X-Callbot-Reason", ""), None
    for m in start_messages(sid):
        await socket.send_str(m)
    return 101, "", socket


async def hang_up_stream(socket, sid: str) -> None:
    await socket.send_str(json.dumps({"event": "stop", "streamSid": sid}))
    await socket.close()


async def admitted_after(server, session: aiohttp.ClientSession, timeout_s: float) -> object:
    """A new media-stream call, tried until a line is free."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, reason, socket = await open_stream(session, ws(server.url), "MZafter")
        if status == 101:
            return socket
        assert (status, reason) == (503, "busy") and time.monotonic() < deadline, (status, reason)
        await asyncio.sleep(0.25)


@pytest.mark.slow
async def test_a_burst_of_calls_gets_exactly_max_calls_lines(server):
    """10 calls within 0.2 s (5 WebRTC offers, 5 media streams, alternating), 4 lines: 4
    calls, 6 told "busy"; once those 4 hang up, a new call gets a line. (Setting up one
    call takes far longer than 0.2 s: a check made before the call is counted lets them
    all in.)"""
    before = {c["id"] for c in server.recent_calls()}
    callers = [WebRTCCaller() for _ in range(5)]
    offers = [await c.offer() for c in callers]  # ICE gathered before: the burst is only the requests

    async def after(delay_s: float, attempt):
        # Alternating and 20 ms apart: an offer's body takes longer to arrive than a
        # handshake, and the lines would otherwise all go to the media streams.
        await asyncio.sleep(delay_s)
        return await attempt

    async with aiohttp.ClientSession() as session:
        webrtc_attempts = [c.call(session, server.url, sdp) for c, sdp in zip(callers, offers, strict=True)]
        stream_attempts = [open_stream(session, ws(server.url), f"MZburst{n}") for n in range(5)]
        results = await asyncio.gather(*(after(0.04 * n + 0.02 * k, attempt)
                                         for k, attempts in enumerate((webrtc_attempts, stream_attempts))
                                         for n, attempt in enumerate(attempts)))
        webrtc, streams = results[:5], results[5:]
        admitted = [c for c, (status, _) in zip(callers, webrtc, strict=True) if status == 200]
        sockets = [(socket, f"MZburst{n}") for n, (status, _, socket) in enumerate(streams) if status == 101]
        refusals = [body for status, body in webrtc if status == 503] + \
                   [reason for status, reason, _ in streams if status == 503]
        assert len(admitted) + len(sockets) == 4, results
        assert len(refusals) == 6, results
        assert all(r in ({"error": "all lines are busy"}, "busy") for r in refusals), refusals
        for caller in admitted:
            await caller.connected()
        # the server counts them too: 4 call records, none dropped for not connecting
        deadline = time.monotonic() + 20
        while len(new := [c for c in server.recent_calls() if c["id"] not in before]) < 4:
            assert time.monotonic() < deadline, new
            await asyncio.sleep(0.25)
        await asyncio.sleep(CONNECT_TIMEOUT_S + 0.5)
        new = [c for c in server.recent_calls() if c["id"] not in before]
        assert len(new) == 4 and all(c["ended_at"] is None for c in new), new
        status, reason, _ = await open_stream(session, ws(server.url), "MZstillfull")
        assert (status, reason) == (503, "busy")

        for caller in admitted:
            await caller.hang_up()
        for socket, sid in sockets:
            await hang_up_stream(socket, sid)
        socket = await admitted_after(server, session, timeout_s=30)
        await hang_up_stream(socket, "MZafter")
    for call in new:
        server.wait_for(call["id"], lambda r: r["ended_at"] is not None, timeout=30)


@pytest.mark.slow
async def test_an_offer_that_never_connects_gives_its_line_back(server):
    """4 offers answered but never connected hold every line, then give them back after
    connect_timeout_s, their records closed as not_connected."""
    callers = [WebRTCCaller() for _ in range(4)]
    offers = [await c.offer() for c in callers]
    async with aiohttp.ClientSession() as session:
        answered = []
        t0 = time.monotonic()  # no line can come back before t0 + connect_timeout_s
        for caller, sdp in zip(callers, offers, strict=True):
            status, body = await caller.call(session, server.url, sdp, connect=False)
            assert status == 200, body
            answered.append(body["call_id"])
        status, reason, _ = await open_stream(session, ws(server.url), "MZfull")
        assert (status, reason) == (503, "busy")
        socket = await admitted_after(server, session, timeout_s=CONNECT_TIMEOUT_S + 20)
        assert time.monotonic() - t0 >= CONNECT_TIMEOUT_S
        await hang_up_stream(socket, "MZafter")
    for caller in callers:
        await caller.hang_up()
    for call_id in answered:
        record = server.wait_for(call_id, lambda r: r["ended_at"] is not None, timeout=10)
        assert record["outcome"] == "not_connected", record
    assert "never connected" in server.log_path.read_text()

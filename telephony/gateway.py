"""SIP gateway (`callbot sip`): answers SIP calls with PJSIP (pjsua2) and bridges each
one to the bot's media-stream WebSocket.

Threads: PJSIP runs in the main thread (`libHandleEvents` loop; every pjsua2 call is
made there) and its media clock thread (the audio ports); the WebSocket clients run
on an asyncio loop in a second thread. They meet in thread-safe queues (`CallAudio`)
and in `_actions`, the main thread's to-do list.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pjsua2 as pj

from telephony.media_client import FRAME_BYTES, CallAudio, MediaStreamClient

log = logging.getLogger("callbot.gateway")


@dataclass(frozen=True)
class GatewaySettings:
    sip_address: str = "127.0.0.1"
    sip_port: int = 5080
    public_address: str = ""          # address written in SDP/Contact when behind NAT
    rtp_port: int = 4000              # first RTP port; give each gateway on a host its own range
    bot_url: str = "ws://127.0.0.1:8080/ws/media"
    # Beyond: 486 Busy Here. The pjsua2 wheel answers at most 4 calls per process
    # (PJSUA_MAX_CALLS of its build): run more gateways behind Kamailio for more.
    max_calls: int = 4
    log_level: int = 1                # PJSIP's own log level (0-6)
    # Where transfers go, per routing team: "seuils=sip:seuils@pbx,*=sip:accueil@pbx".
    # Only these configured addresses are ever called or referred to (toll fraud).
    transfer_targets: str = ""

    def transfer_uri(self, team: str) -> str | None:
        targets = dict(
            pair.split("=", 1) for pair in self.transfer_targets.split(",") if "=" in pair
        )
        targets = {k.strip(): v.strip() for k, v in targets.items()}
        return targets.get(team) or targets.get("*")

    def __post_init__(self) -> None:
        if not 1 <= self.sip_port <= 65535:
            raise ValueError("sip_port must be 1..65535")
        if not 1 <= self.max_calls <= 4:
            raise ValueError("max_calls must be 1..4 (pjsua2 build limit): add gateways behind Kamailio")
        for pair in filter(None, self.transfer_targets.split(",")):
            if "=" not in pair or not pair.split("=", 1)[1].strip().startswith("sip:"):
                raise ValueError(f"transfer target {pair!r} must look like team=sip:user@host")


class BridgePort(pj.AudioMediaPort):
    """A conference-bridge port: what the caller says goes to the bot, what the bot says
    is played to the caller, 20 ms at a time at 8 kHz."""

    def __init__(self, audio: CallAudio) -> None:
        super().__init__()
        self.audio = audio

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(self.audio.next_frame())
        frame.size = FRAME_BYTES

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
            self.audio.from_caller(bytes(frame.buf))


RETIRE_PORTS_AFTER_S = 5.0  # the media clock thread may still be inside a port's callback


class BotCall(pj.Call):
    def __init__(self, gateway: Gateway, account: pj.Account, call_id: int, sid: str) -> None:
        super().__init__(account, call_id)
        self.gateway = gateway
        self.sid = sid
        self.audio = CallAudio(loop=gateway.loop, on_transfer=self._transfer_requested)
        self.port: BridgePort | None = None
        self.ended = asyncio.Event()
        self.client: MediaStreamClient | None = None

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            log.info("call %s: ended (%s)", self.sid, info.lastReason)
            self.gateway.loop.call_soon_threadsafe(self.ended.set)
            # Drop every reference now, inside PJSIP's callback: PJSIP reuses call ids, and a
            # Call finalised later would clear the user data of the next call with its id.
            self.audio.on_transfer = None
            self.gateway.calls.pop(self.sid, None)
            if self.port is not None:
                # Not destroyed here, under the media thread's feet: retired, freed later.
                self.gateway.retire_port(self.port)
                self.port = None

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for media in info.media:
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            first = self.port is None
            if first:
                fmt = pj.MediaFormatAudio()
                fmt.type = pj.PJMEDIA_TYPE_AUDIO
                fmt.clockRate = 8000
                fmt.channelCount = 1
                fmt.bitsPerSample = 16
                fmt.frameTimeUsec = 20000
                self.port = BridgePort(self.audio)
                self.port.createPort(f"bridge-{self.sid}", fmt)
            # (Re)connected on every active media state: a re-INVITE (hold, codec
            # change) may give the call a new conference slot.
            call_media = self.getAudioMedia(media.index)
            call_media.startTransmit(self.port)
            self.port.startTransmit(call_media)
            if first:
                self.gateway.start_stream(self, info.remoteUri, info.localUri)

    def _transfer_requested(self, team: str) -> None:
        """Media thread: the bot's last words before the transfer have been played."""
        sid, gateway = self.sid, self.gateway
        gateway.run_in_main(lambda: gateway.blind_transfer(sid, team))

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        log.info("call %s: transfer status %d %s", self.sid, prm.statusCode, prm.reason)
        if prm.finalNotify and 200 <= prm.statusCode < 300:
            prm.cont = False
            sid, gateway = self.sid, self.gateway
            gateway.run_in_main(lambda: gateway.hang_up(sid))

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        digit = str(prm.digit)[:1]
        if self.client is not None and digit in "0123456789*#ABCD":
            asyncio.run_coroutine_threadsafe(self.client.send_dtmf(digit), self.gateway.loop)


class GatewayAccount(pj.Account):
    def __init__(self, gateway: Gateway) -> None:
        super().__init__()
        self.gateway = gateway

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self.gateway.answer(self, prm.callId)


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.calls: dict[str, BotCall] = {}
        self._ids = itertools.count(1)
        self._actions: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, name="gateway-asyncio", daemon=True)
        self.endpoint = pj.Endpoint()
        self.account: GatewayAccount | None = None
        self._retired: list[tuple[float, BridgePort]] = []

    def start(self) -> None:
        s = self.settings
        self._loop_thread.start()
        ep = self.endpoint
        ep.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.maxCalls = 4
        config.uaConfig.userAgent = "callbot-gateway"
        config.medConfig.noVad = True          # else RTP stops in silence
        config.medConfig.clockRate = 8000
        config.medConfig.sndClockRate = 8000
        config.medConfig.audioFramePtime = 20
        config.medConfig.ptime = 20
        config.medConfig.channelCount = 1
        config.logConfig.level = s.log_level
        config.logConfig.consoleLevel = s.log_level
        ep.libInit(config)
        transport = pj.TransportConfig()
        transport.port = s.sip_port
        transport.boundAddress = s.sip_address
        if s.public_address:
            transport.publicAddress = s.public_address
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        ep.audDevManager().setNullDev()
        ep.libStart()
        for codec in ep.codecEnum2():
            priority = {"PCMU/8000/1": 255, "PCMA/8000/1": 254}.get(codec.codecId, 0)
            ep.codecSetPriority(codec.codecId, priority)
        account = pj.AccountConfig()
        account.idUri = f"sip:callbot@{s.public_address or s.sip_address}:{s.sip_port}"
        account.mediaConfig.transportConfig.boundAddress = s.sip_address
        account.mediaConfig.transportConfig.port = s.rtp_port
        account.mediaConfig.transportConfig.portRange = 200
        if s.public_address:
            account.mediaConfig.transportConfig.publicAddress = s.public_address
        self.account = GatewayAccount(self)
        self.account.create(account)
        log.info("SIP gateway listening on udp:%s:%d, bridging to %s", s.sip_address, s.sip_port, s.bot_url)

    def retire_port(self, port: BridgePort) -> None:
        self._retired.append((time.monotonic(), port))

    def _free_retired_ports(self) -> None:
        deadline = time.monotonic() - RETIRE_PORTS_AFTER_S
        while self._retired and self._retired[0][0] < deadline:
            self._retired.pop(0)  # the conference slot is released with the object

    def run(self) -> None:
        """Main thread: PJSIP events and the actions other threads asked for."""
        while not self._stopping.is_set():
            self.endpoint.libHandleEvents(10)
            self._free_retired_ports()
            while True:
                try:
                    action = self._actions.get_nowait()
                except queue.Empty:
                    break
                try:
                    action()
                except pj.Error as e:
                    log.warning("PJSIP action failed: %s", e.info())

    def stop(self) -> None:
        self._stopping.set()

    def shutdown(self) -> None:
        for call in list(self.calls.values()):
            try:
                call.hangup(pj.CallOpParam(True))
            except pj.Error:
                pass
        self.calls.clear()
        self.endpoint.libDestroy()
        self.loop.call_soon_threadsafe(self.loop.stop)

    def answer(self, account: pj.Account, call_id: int) -> None:
        sid = f"{next(self._ids):06d}"
        call = BotCall(self, account, call_id, sid)
        op = pj.CallOpParam()
        if len(self.calls) >= self.settings.max_calls:
            log.warning("call %s refused: %d calls in progress", sid, len(self.calls))
            op.statusCode = pj.PJSIP_SC_BUSY_HERE
            call.answer(op)
            return
        self.calls[sid] = call
        op.statusCode = pj.PJSIP_SC_RINGING
        call.answer(op)
        op.statusCode = pj.PJSIP_SC_OK
        call.answer(op)
        log.info("call %s: answered", sid)

    def run_in_main(self, action: Callable[[], None]) -> None:
        self._actions.put(action)

    def hang_up(self, sid: str) -> None:
        call = self.calls.get(sid)
        if call is not None and call.isActive():
            call.hangup(pj.CallOpParam(True))

    def blind_transfer(self, sid: str, team: str) -> None:
        call = self.calls.get(sid)
        if call is None:
            return
        uri = self.settings.transfer_uri(team)
        if uri is None:
            log.warning("call %s: transfer to %r asked, but no target is configured", call.sid, team)
            return
        log.info("call %s: blind transfer (REFER) for team %s", call.sid, team)
        call.xfer(uri, pj.CallOpParam(True))

    def start_stream(self, call: BotCall, remote_uri: str, local_uri: str) -> None:
        client = MediaStreamClient(self.settings.bot_url, call.sid, _user(remote_uri), _user(local_uri),
                                   call.audio)
        call.client = client
        sid, ended = call.sid, call.ended  # not the Call itself: see onCallState

        async def bridge() -> None:
            reason = await client.run(ended)
            log.info("call %s: media stream ended (%s)", sid, reason)
            if reason != "caller_hung_up":
                self.run_in_main(lambda: self.hang_up(sid))

        asyncio.run_coroutine_threadsafe(bridge(), self.loop)


def _user(uri: str) -> str:
    """'"Name" <sip:0123@host>' -> '0123' (the number only, no display name)."""
    inside = uri.split("<", 1)[-1].split(">", 1)[0]
    return inside.split(":", 1)[-1].split("@", 1)[0][:64]


def run_gateway(settings: GatewaySettings) -> None:
    import signal

    gateway = Gateway(settings)
    signal.signal(signal.SIGTERM, lambda *_: gateway.stop())
    signal.signal(signal.SIGINT, lambda *_: gateway.stop())
    gateway.start()
    try:
        gateway.run()
    finally:
        gateway.shutdown()
        # pjsua2 objects still referenced (closures, tasks) must not be finalised after
        # libDestroy: their destructors assert in PJSIP. The process ends here anyway.
        logging.shutdown()
        os._exit(0)

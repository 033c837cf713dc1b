"""SIP gateway (`callbot sip`): answers SIP calls with PJSIP (pjsua2) and bridges each
one to the bot's media-stream WebSocket.

Threads: PJSIP runs in the main thread (`libHandleEvents` loop; every pjsua2 call is
made there) and its media clock thread (the audio ports); the WebSocket clients run
on an asyncio loop in a second thread. They meet in thread-safe queues (`CallAudio`)
and in `_actions`, the main thread's to-do list.

A call rings (180) while its media stream is opened; the bot's answer to the handshake
decides the SIP answer: 200 OK, 486 Busy Here (its lines are busy) or 503 Service
Unavailable (down, too slow, refusing our token), so that Kamailio tries another gateway
instead of a caller getting an answered, silent call.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pjsua2 as pj

from telephony.media_client import FRAME_BYTES, Admission, CallAudio, MediaStreamClient, Transfer

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
    # Hosts of the agents' own phones the bot's agent hub may ask for (an accepted call goes
    # to the phone of the agent who took it), comma-separated: "pbx.example.fr". Any other
    # host asked for is refused (toll fraud); empty: team targets only.
    agent_hosts: str = ""
    agent_answer_timeout_s: float = 30.0  # a bridged transfer's agent leg rings this long
    bot_timeout_s: float = 3.0        # the bot opens a call's media stream within this, else 503
    # Presented to the bot on each media stream (Authorization: Bearer); the bot's own
    # CALLBOT_GATEWAY_TOKEN, hence read under that name, not CALLBOT_SIP_*.
    gateway_token: str = field(default_factory=lambda: os.environ.get("CALLBOT_GATEWAY_TOKEN", ""),
                               repr=False)

    def transfer_uri(self, team: str) -> str | None:
        targets = dict(
            pair.split("=", 1) for pair in self.transfer_targets.split(",") if "=" in pair
        )
        targets = {k.strip(): v.strip() for k, v in targets.items()}
        return targets.get(team) or targets.get("*")

    def agent_uri(self, target: str) -> str | None:
        """`target` when it is a plain sip: URI of an allowed agent host, else None."""
        m = re.fullmatch(r"sip:([A-Za-z0-9._+-]{1,64})@([A-Za-z0-9.-]{1,200})(?::(\d{1,5}))?", target)
        hosts = {h.strip().lower() for h in self.agent_hosts.split(",") if h.strip()}
        return target if m and m.group(2).lower() in hosts else None

    def __post_init__(self) -> None:
        if not 1 <= self.sip_port <= 65535:
            raise ValueError("sip_port must be 1..65535")
        if not 1 <= self.max_calls <= 4:
            raise ValueError("max_calls must be 1..4 (pjsua2 build limit): add gateways behind Kamailio")
        if not 0 < self.bot_timeout_s <= 30:
            raise ValueError("bot_timeout_s must be in ]0, 30]: callers and Kamailio wait that long")
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


class WhisperPort(pj.AudioMediaPort):
    """Plays the bot's briefing to the agent alone, then silence; `on_done` (media thread)
    once it has all been played."""

    def __init__(self, pcm: bytes, on_done: Callable[[], None]) -> None:
        super().__init__()
        self._frames = [pcm[i:i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]
        self._next = 0
        self._on_done: Callable[[], None] | None = on_done

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        if self._next < len(self._frames):
            data = self._frames[self._next]
            self._next += 1
        else:
            data = bytes(FRAME_BYTES)
            done, self._on_done = self._on_done, None
            if done is not None:
                done()
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(data)
        frame.size = FRAME_BYTES


class AgentTapPort(pj.AudioMediaPort):
    """Hears the agent of a bridged call, for the bot's recording."""

    def __init__(self, audio: CallAudio) -> None:
        super().__init__()
        self.audio = audio

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
            self.audio.from_agent(bytes(frame.buf))


def _audio_port(port: pj.AudioMediaPort, name: str) -> pj.AudioMediaPort:
    fmt = pj.MediaFormatAudio()
    fmt.type = pj.PJMEDIA_TYPE_AUDIO
    fmt.clockRate = 8000
    fmt.channelCount = 1
    fmt.bitsPerSample = 16
    fmt.frameTimeUsec = 20000
    port.createPort(name, fmt)
    return port


def _active_audio(call: pj.Call) -> pj.AudioMedia | None:
    info = call.getInfo()  # held: its media vector dies with it (SWIG temporary)
    for media in info.media:
        if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
            return call.getAudioMedia(media.index)
    return None


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
        self.agent: AgentCall | None = None   # the agent leg of a bridged transfer
        self.bridged = False

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
            agent, self.agent = self.agent, None
            if agent is not None and agent.isActive():
                agent.hangup(pj.CallOpParam(True))

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        call_media = _active_audio(self)
        if call_media is None:
            return
        first = self.port is None
        if first:
            self.port = _audio_port(BridgePort(self.audio), f"bridge-{self.sid}")
        # (Re)connected on every active media state: a re-INVITE (hold, codec
        # change) may give the call a new conference slot.
        call_media.startTransmit(self.port)
        if self.bridged and self.agent is not None:
            self.gateway.join(self, self.agent)
        else:
            self.port.startTransmit(call_media)
        if not first:
            log.info("call %s: media reconnected after a re-INVITE", self.sid)

    def _transfer_requested(self, transfer: Transfer) -> None:
        """Media thread: the bot's last words before the transfer have been played."""
        sid, gateway = self.sid, self.gateway
        if transfer.bridged:
            gateway.run_in_main(lambda: gateway.bridged_transfer(sid, transfer))
        else:
            gateway.run_in_main(lambda: gateway.blind_transfer(sid, transfer.team))

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


class AgentCall(pj.Call):
    """The gateway's call to an agent for a bridged transfer: the agent first hears the
    bot's briefing alone, then the caller."""

    def __init__(self, gateway: Gateway, account: pj.Account, caller_sid: str, transfer: Transfer) -> None:
        super().__init__(account)
        self.gateway = gateway
        self.caller_sid = caller_sid
        self.transfer = transfer
        self.whisper: WhisperPort | None = None
        self.tap: AgentTapPort | None = None
        self.answered = False
        self.deadline = time.monotonic() + gateway.settings.agent_answer_timeout_s

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.answered = True
            log.info("call %s: agent answered", self.caller_sid)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            log.info("call %s: agent leg ended (%s)", self.caller_sid, info.lastReason)
            for port in (self.whisper, self.tap):
                if port is not None:
                    self.gateway.retire_port(port)
            self.whisper = self.tap = None
            self.gateway.agent_leg_ended(self)
            self.gateway.agent_legs.discard(self)  # released inside the callback, as BotCall

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        agent_media = _active_audio(self)
        if agent_media is None:
            return
        caller = self.gateway.calls.get(self.caller_sid)
        if caller is not None and caller.bridged:
            self.gateway.join(caller, self)  # the agent's re-INVITE after the join
        elif self.whisper is None:
            sid, gateway = self.caller_sid, self.gateway
            self.whisper = _audio_port(WhisperPort(self.transfer.whisper,
                                                   lambda: gateway.run_in_main(lambda: gateway.bridge(sid))),
                                       f"whisper-{sid}")
            self.whisper.startTransmit(agent_media)


class GatewayAccount(pj.Account):
    def __init__(self, gateway: Gateway) -> None:
        super().__init__()
        self.gateway = gateway

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self.gateway.answer(self, prm.callId)


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        if not settings.gateway_token:
            raise ValueError("CALLBOT_GATEWAY_TOKEN is not set: the bot refuses media streams without "
                             "its gateway token (set the same value for the bot and the gateway)")
        self.settings = settings
        self.calls: dict[str, BotCall] = {}
        self.agent_legs: set[AgentCall] = set()  # held until their DISCONNECTED callback
        self._ids = itertools.count(1)
        self._actions: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, name="gateway-asyncio", daemon=True)
        self.endpoint = pj.Endpoint()
        self.account: GatewayAccount | None = None
        self._retired: list[tuple[float, pj.AudioMediaPort]] = []

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

    def retire_port(self, port: pj.AudioMediaPort) -> None:
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
            self._ring_timeouts()
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
        op = pj.CallOpParam(True)
        # Answered calls get a BYE; those still ringing a 503, on which Kamailio fails over
        # (pjsua's default there, 603 Decline, would end the caller's attempt).
        op.statusCode = pj.PJSIP_SC_SERVICE_UNAVAILABLE
        for call in list(self.calls.values()):
            try:
                call.hangup(op)
            except pj.Error:
                pass
        self.calls.clear()
        self.endpoint.libDestroy()
        self.loop.call_soon_threadsafe(self.loop.stop)

    def answer(self, account: pj.Account, call_id: int) -> None:
        """Main thread, on an INVITE: rings, and opens the call's media stream; the answer
        comes once the bot has said whether it takes the call (`_admitted`)."""
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
        info = call.getInfo()
        client = MediaStreamClient(self.settings.bot_url, sid, _user(info.remoteUri), _user(info.localUri),
                                   call.audio, self.settings.gateway_token)
        call.client = client
        log.info("call %s: ringing, opening its media stream", sid)
        asyncio.run_coroutine_threadsafe(self._stream(sid, client, call.ended), self.loop)

    async def _stream(self, sid: str, client: MediaStreamClient, ended: asyncio.Event) -> None:
        """Asyncio thread: the call's media stream from handshake to end. Holds the sid and
        the event, never the Call itself: see BotCall.onCallState."""
        opening = asyncio.create_task(client.open(self.settings.bot_timeout_s))
        hung_up = asyncio.create_task(ended.wait())
        await asyncio.wait([opening, hung_up], return_when=asyncio.FIRST_COMPLETED)
        hung_up.cancel()
        if not opening.done():  # CANCEL while ringing: the half-open stream is dropped
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
            log.info("call %s: the caller hung up before the bot took the call", sid)
            return
        try:
            admission = opening.result()
        except Exception:  # a bug must not leave the caller ringing
            log.exception("call %s: opening the media stream failed", sid)
            admission = Admission.UNAVAILABLE
        self.run_in_main(lambda: self._admitted(sid, admission))
        if admission is not Admission.OPEN:
            return
        # Already hung up (CANCEL just after the handshake): run() sends 'stop' at once.
        reason = await client.run(ended)
        log.info("call %s: media stream ended (%s)", sid, reason)
        if reason != "caller_hung_up":
            self.run_in_main(lambda: self.hang_up(sid))

    def _admitted(self, sid: str, admission: Admission) -> None:
        """Main thread: the SIP answer to a ringing call, from the bot's answer."""
        call = self.calls.get(sid)
        if call is None:  # the caller hung up meanwhile; its stream ends on the asyncio side
            return
        op = pj.CallOpParam()
        if admission is Admission.OPEN:
            op.statusCode = pj.PJSIP_SC_OK
            log.info("call %s: answered", sid)
        elif admission is Admission.BUSY:
            op.statusCode = pj.PJSIP_SC_BUSY_HERE
            log.warning("call %s refused with 486: the bot's lines are busy", sid)
        else:
            op.statusCode = pj.PJSIP_SC_SERVICE_UNAVAILABLE
            log.warning("call %s refused with 503: the bot is unavailable", sid)
        try:
            call.answer(op)
        except pj.Error as e:
            log.warning("call %s: answer %d failed (%s): hanging up", sid, op.statusCode, e.info())
            if call.isActive():
                call.hangup(pj.CallOpParam(True))

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

    def bridged_transfer(self, sid: str, transfer: Transfer) -> None:
        """Calls the team's agent; the caller stays with the bot until the agent has heard
        the briefing. Falls back to a blind transfer when no leg can be placed."""
        call = self.calls.get(sid)
        if call is None or call.agent is not None:
            return
        uri = self.settings.agent_uri(transfer.target) if transfer.target else self.settings.transfer_uri(transfer.team)
        if uri is None:
            log.warning("call %s: transfer for %r asked, but %s", sid, transfer.team,
                        "its agent's phone is not on an allowed host (CALLBOT_SIP_AGENT_HOSTS)" if transfer.target
                        else "no target is configured")
            self._transfer_status(call, transfer.team, "failed")
            return
        agent = AgentCall(self, self.account, sid, transfer)
        try:
            agent.makeCall(uri, pj.CallOpParam(True))
        except pj.Error as e:  # e.g. no call slot left in this process
            log.warning("call %s: agent leg not placed (%s)", sid, e.reason)
            if transfer.target:   # an agent who accepted: the hub offers the caller a callback
                self._transfer_status(call, transfer.team, "failed")
            else:
                self.blind_transfer(sid, transfer.team)
            return
        call.agent = agent
        self.agent_legs.add(agent)
        log.info("call %s: bridged transfer for team %s, calling the agent", sid, transfer.team)

    def bridge(self, sid: str) -> None:
        """The agent has heard the briefing: caller and agent now hear each other."""
        call = self.calls.get(sid)
        if call is None or call.agent is None or call.bridged:
            return
        agent = call.agent
        if agent.whisper is not None:
            agent_media = _active_audio(agent)
            if agent_media is not None:
                agent.whisper.stopTransmit(agent_media)
        call.bridged = True
        self.join(call, agent)
        log.info("call %s: caller and agent bridged", sid)
        self._transfer_status(call, agent.transfer.team, "bridged")

    def join(self, call: BotCall, agent: AgentCall) -> None:
        """Connects caller and agent (again after a re-INVITE); the bot keeps hearing the
        caller and now the agent, for the recording, and is no longer heard."""
        caller_media, agent_media = _active_audio(call), _active_audio(agent)
        if caller_media is None or agent_media is None:
            return
        if call.port is not None:
            call.port.stopTransmit(caller_media)
        caller_media.startTransmit(agent_media)
        agent_media.startTransmit(caller_media)
        if agent.tap is None:
            agent.tap = _audio_port(AgentTapPort(call.audio), f"tap-{call.sid}")
        agent_media.startTransmit(agent.tap)

    def agent_leg_ended(self, agent: AgentCall) -> None:
        call = self.calls.get(agent.caller_sid)
        if call is None or call.agent is not agent:
            return
        call.agent = None
        if call.bridged:
            call.hangup(pj.CallOpParam(True))  # the agent closed the conversation
        else:
            self._transfer_status(call, agent.transfer.team, "failed")

    def _ring_timeouts(self) -> None:
        now = time.monotonic()
        for call in list(self.calls.values()):
            agent = call.agent
            if agent is not None and not agent.answered and now > agent.deadline and agent.isActive():
                log.info("call %s: the agent did not answer in time", call.sid)
                agent.deadline = float("inf")
                agent.hangup(pj.CallOpParam(True))

    def _transfer_status(self, call: BotCall, team: str, status: str) -> None:
        if call.client is not None:
            asyncio.run_coroutine_threadsafe(call.client.send_transfer_status(team, status), self.loop)


def _user(uri: str) -> str:
    """'"Name" <sip:0123@host>' -> '0123' (the number only, no display name)."""
    inside = uri.split("<", 1)[-1].split(">", 1)[0]
    return inside.split(":", 1)[-1].split("@", 1)[0][:64]


def run_gateway(settings: GatewaySettings) -> None:
    import signal

    try:
        gateway = Gateway(settings)
    except ValueError as e:
        raise SystemExit(f"callbot sip: {e}") from None
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

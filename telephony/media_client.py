"""The gateway's side of the media-stream WebSocket: one client per SIP call, speaking
Twilio's JSON (8 kHz mu-law), between the call's audio queues and the bot."""

from __future__ import annotations

import asyncio
import base64
import collections
import enum
import itertools
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from voice.codecs import pcm16_to_ulaw, ulaw_to_pcm16

log = logging.getLogger("callbot.gateway.media")
FRAME_BYTES = 320  # 20 ms of 8 kHz 16-bit PCM, the bridge's frame


class Admission(enum.Enum):
    """What the bot said to a new media stream, decided before the call is answered."""

    OPEN = "open"                # handshake done, 'connected' and 'start' sent: answer 200
    BUSY = "busy"                # HTTP 503 at the handshake, every line taken: 486 Busy Here
    UNAVAILABLE = "unavailable"  # down, unreachable, too slow or refusing our token: 503


@dataclass
class Mark:
    name: str


@dataclass
class Transfer:
    """Queued behind the bot's last words: the transfer starts once they are played.

    `bridged`: the gateway calls the agent, plays `whisper` (8 kHz PCM, the bot's
    briefing) to the agent alone, then joins caller and agent. Otherwise a blind REFER.
    """

    team: str
    bridged: bool = False
    whisper: bytes = b""
    target: str = ""   # an agent's own phone chosen by the bot's agent hub; checked by the gateway


@dataclass
class CallAudio:
    """Audio crossing between the SIP media thread and the asyncio thread.

    The media thread pulls `to_caller` every 20 ms (deque operations are atomic) and
    pushes the caller's frames with `from_caller`; the asyncio side reads `inbound`.
    """

    loop: asyncio.AbstractEventLoop
    inbound: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=500))
    agent_inbound: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=500))
    to_caller: collections.deque = field(default_factory=collections.deque)
    played_marks: asyncio.Queue = field(default_factory=asyncio.Queue)
    on_transfer: Callable[[Transfer], None] | None = None  # media thread, when a Transfer is reached
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def from_caller(self, pcm: bytes) -> None:
        """Media thread: a 20 ms frame heard from the caller."""
        self.loop.call_soon_threadsafe(self._put, pcm)

    def from_agent(self, pcm: bytes) -> None:
        """Media thread: a 20 ms frame heard from the agent of a bridged transfer."""
        self.loop.call_soon_threadsafe(self._put, pcm, self.agent_inbound)

    def _put(self, pcm: bytes, into: asyncio.Queue | None = None) -> None:
        into = self.inbound if into is None else into
        if into.full():  # the bot is not reading: drop the oldest, never block the media thread
            into.get_nowait()
        into.put_nowait(pcm)

    def next_frame(self) -> bytes:
        """Media thread: the next 20 ms to play to the caller (silence when none)."""
        with self._lock:
            while self.to_caller:
                item = self.to_caller.popleft()
                if isinstance(item, Mark):
                    self.loop.call_soon_threadsafe(self.played_marks.put_nowait, item.name)
                    continue
                if isinstance(item, Transfer):
                    if self.on_transfer is not None:
                        self.on_transfer(item)
                    continue
                return item
        return bytes(FRAME_BYTES)

    def queue_audio(self, pcm: bytes) -> None:
        with self._lock:
            for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
                self.to_caller.append(pcm[i:i + FRAME_BYTES])

    def queue_mark(self, name: str) -> None:
        with self._lock:
            self.to_caller.append(Mark(name))

    def queue_transfer(self, transfer: Transfer) -> None:
        with self._lock:
            self.to_caller.append(transfer)

    def clear(self) -> None:
        """Barge-in: what the bot queued is dropped at once; pending marks are reported."""
        with self._lock:
            marks = [i.name for i in self.to_caller if isinstance(i, Mark)]
            transfers = [i for i in self.to_caller if isinstance(i, Transfer)]
            self.to_caller.clear()
            self.to_caller.extend(transfers)  # a requested transfer survives a barge-in
        for name in marks:
            self.played_marks.put_nowait(name)


class MediaStreamClient:
    def __init__(self, url: str, call_sid: str, caller: str, called: str, audio: CallAudio,
                 token: str) -> None:
        self.url = url
        self.call_sid = call_sid
        self.stream_sid = f"MZ{call_sid}"
        self.caller = caller
        self.called = called
        self.audio = audio
        self._token = token
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending = b""
        self._started = False
        self._early_keys: list[str] = []  # pressed before the stream started: sent after 'start'
        self._sequence = itertools.count(2)  # 1 is 'start'; one count for both tracks, as Twilio

    def __repr__(self) -> str:  # never the token
        return f"MediaStreamClient({self.url!r}, call {self.call_sid})"

    async def open(self, timeout_s: float) -> Admission:
        """Handshake with the bot and the first messages, before the call is answered: the
        bot takes the call's line at the handshake, so its answer decides the SIP answer.
        Cancelled (the caller hung up while ringing), it leaves nothing open."""
        self._session = aiohttp.ClientSession()
        admission = Admission.UNAVAILABLE
        try:
            async with asyncio.timeout(timeout_s):
                self._ws = await self._session.ws_connect(
                    self.url, heartbeat=20, headers={"Authorization": f"Bearer {self._token}"})
                await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
                await self._send({"event": "start", "sequenceNumber": "1", "streamSid": self.stream_sid, "start": {
                    "streamSid": self.stream_sid, "callSid": self.call_sid, "tracks": ["inbound"],
                    "customParameters": {"caller": self.caller, "called": self.called},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
            admission = Admission.OPEN
        except aiohttp.WSServerHandshakeError as e:
            if e.status == 503 and (e.headers or {}).get("X-Callbot-Reason") == "busy":
                log.warning("call %s: the bot's lines are busy (HTTP 503 at %s)", self.call_sid, self.url)
                admission = Admission.BUSY
            elif e.status in (401, 403):
                # Not a passing failure: every call fails until the two tokens agree.
                log.error("call %s: the bot refused the gateway's credentials (HTTP %d at %s): "
                          "CALLBOT_GATEWAY_TOKEN must be the bot's", self.call_sid, e.status, self.url)
            else:
                log.error("call %s: the bot refused the media stream (HTTP %d at %s)",
                          self.call_sid, e.status, self.url)
        except TimeoutError:  # before OSError: TimeoutError is one
            log.error("call %s: the bot did not open the media stream within %.1f s (%s)",
                      self.call_sid, timeout_s, self.url)
        except (aiohttp.ClientError, OSError) as e:
            log.error("call %s: bot unreachable at %s: %s", self.call_sid, self.url, e or type(e).__name__)
        finally:
            if admission is not Admission.OPEN:  # refused, failed or cancelled
                await self.close()
        if admission is Admission.OPEN:
            self._started = True
            keys, self._early_keys = self._early_keys, []
            for digit in keys:
                await self.send_dtmf(digit)
        return admission

    async def close(self) -> None:
        ws, session, self._ws, self._session = self._ws, self._session, None, None
        if ws is not None:
            await ws.close()
        if session is not None:
            await session.close()

    async def run(self, hangup: asyncio.Event) -> str:
        """After `open`: bridges until the bot closes the stream (-> the gateway hangs up)
        or the caller hangs up (`hangup` set -> 'stop' sent). Returns why it ended.

        What the bot says before the call's media is up waits in `audio.to_caller`, to be
        played from its first word once the call is answered."""
        ws = self._ws
        assert ws is not None, "run() after a successful open()"
        try:
            tasks = [asyncio.create_task(c) for c in (
                self._uplink(self.audio.inbound, "inbound"), self._uplink(self.audio.agent_inbound, "outbound"),
                self._downlink(), self._marks())]
            stopper = asyncio.create_task(hangup.wait())
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            reason = "caller_hung_up" if stopper in done else "bot_closed"
            if reason == "caller_hung_up" and not ws.closed:
                await self._send({"event": "stop", "streamSid": self.stream_sid})
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
            return reason
        finally:
            await self.close()

    async def send_transfer_status(self, team: str, status: str) -> None:
        """Our own event, not Twilio's: how a bridged transfer went ('bridged', 'failed')."""
        await self._send({"event": "transfer", "streamSid": self.stream_sid,
                          "transfer": {"team": team, "status": status}})

    async def send_dtmf(self, digit: str) -> None:
        if not self._started:  # the caller pressed a key as the call was answered
            self._early_keys.append(digit)
            return
        await self._send({"event": "dtmf", "streamSid": self.stream_sid, "dtmf": {"digit": digit}})

    async def _send(self, message: dict) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_str(json.dumps(message))

    async def _uplink(self, frames: asyncio.Queue, track: str) -> None:
        """The caller's voice ('inbound'), and during a bridged transfer the agent's as
        Twilio's 'outbound' track (what the caller hears): the bot records both sides."""
        while True:
            pcm = await frames.get()
            payload = base64.b64encode(pcm16_to_ulaw(pcm)).decode()
            await self._send({"event": "media", "sequenceNumber": str(next(self._sequence)),
                              "streamSid": self.stream_sid, "media": {"track": track, "payload": payload}})

    async def _downlink(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            try:
                message = json.loads(msg.data)
                event = message.get("event")
                if event == "media":
                    pcm = self._pending + ulaw_to_pcm16(base64.b64decode(message["media"]["payload"]))
                    whole = len(pcm) - len(pcm) % FRAME_BYTES
                    self.audio.queue_audio(pcm[:whole])
                    self._pending = pcm[whole:]
                elif event == "clear":
                    self._pending = b""
                    self.audio.clear()
                elif event == "mark":
                    self.audio.queue_mark(str(message.get("mark", {}).get("name", "")))
                elif event == "transfer":
                    transfer = message.get("transfer", {})
                    whisper = ulaw_to_pcm16(base64.b64decode(transfer.get("whisper", "")))
                    self.audio.queue_transfer(Transfer(
                        team=str(transfer.get("team", ""))[:32], bridged=transfer.get("mode") == "bridged",
                        whisper=whisper[:len(whisper) - len(whisper) % FRAME_BYTES],
                        target=str(transfer.get("target", ""))[:255]))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                log.warning("call %s: bad message from the bot ignored: %s", self.call_sid, e)

    async def _marks(self) -> None:
        while True:
            name = await self.audio.played_marks.get()
            await self._send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

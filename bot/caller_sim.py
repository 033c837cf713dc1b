"""Simulated callers for tests and benchmarks: French speech synthesised in a voice
the bot does not use, a real bot server process, headless Debian chromium calling it
over WebRTC with that speech as its microphone."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import wave
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent
CALLER_VOICE = "jm_kumo"  # the bot speaks with jf_gongitsune
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype(np.int16).tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int, int]:
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return data, w.getframerate(), w.getnchannels()


def trim_silence(audio: np.ndarray, rate: int = 16000, threshold: int = 300) -> np.ndarray:
    """Without the silence before and after the speech (10 ms windows under the threshold)."""
    n = rate // 100
    frames = audio[: len(audio) // n * n].astype(np.float64).reshape(-1, n)
    loud = np.nonzero(np.sqrt((frames ** 2).mean(axis=1)) > threshold)[0]
    if len(loud) == 0:
        return audio[:0]
    return audio[loud[0] * n:(loud[-1] + 1) * n]


class CallerVoice:
    """Kokoro with another voice than the bot's, 16 kHz int16."""

    def __init__(self, voice: str = CALLER_VOICE) -> None:
        from models.kokoro import kokoro_files
        from voice.speech_engines import KokoroEngine

        self._engine = KokoroEngine(kokoro_files(), voice, threads=2)

    def say(self, text: str) -> np.ndarray:
        from voice.codecs import resample
        from voice.speech_engines import SpeechStyle
        from voice.text_for_speech import speakable

        audio = self._engine.synthesize(speakable(text), SpeechStyle())
        return resample(audio, self._engine.sample_rate, 16000)

    def say_with_pauses(self, pieces: list[str], pauses: list[float]) -> np.ndarray:
        """The pieces said one after the other with exactly these pauses between them, the
        way callers stop mid-sentence to think."""
        parts = []
        for i, piece in enumerate(pieces):
            parts.append(trim_silence(self.say(piece)).astype(np.int16))
            if i < len(pauses):
                parts.append(np.zeros(int(pauses[i] * 16000), dtype=np.int16))
        return np.concatenate(parts)


def timeline(parts: list[tuple[float, np.ndarray | None]], rate: int = 16000) -> np.ndarray:
    """[(seconds of silence before, speech or None), ...] as one signal."""
    out = []
    for silence, speech in parts:
        out.append(np.zeros(int(silence * rate), dtype=np.int16))
        if speech is not None:
            out.append(speech.astype(np.int16))
    return np.concatenate(out)


@dataclass
class BotServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    admin_token: str = field(default="", repr=False)    # reads call records
    gateway_token: str = field(default="", repr=False)  # opens media streams that may transfer

    def call_record(self, call_id: str) -> dict | None:
        request = urllib.request.Request(f"{self.url}/api/calls/{call_id}",
                                         headers={"Authorization": f"Bearer {self.admin_token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):  # not "no such call": the test or bench is misconfigured
                raise
            return None

    def fetch_recording(self, record: dict, into: Path) -> Path:
        """The call's recording, downloaded as the admin would (its route, with the token)."""
        request = urllib.request.Request(f"{self.url}{record['recording_url']}",
                                         headers={"Authorization": f"Bearer {self.admin_token}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            into.write_bytes(r.read())
        return into

    def recent_calls(self) -> list[dict]:
        """Every call of this server's store, oldest first."""
        import sqlite3

        with sqlite3.connect(self.log_path.parent / "calls.sqlite3") as conn:
            ids = [r[0] for r in conn.execute("select id from calls order by started_at")]
        return [record for record in map(self.call_record, ids) if record]

    def wait_for(self, call_id: str, predicate, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        record = None
        while time.monotonic() < deadline:
            record = self.call_record(call_id)
            if record and predicate(record):
                return record
            time.sleep(0.5)
        raise AssertionError(f"call {call_id} never reached the expected state: {record}\n"
                             f"server log tail:\n{self.log_path.read_text()[-3000:]}")


def _secret(name: str, env: dict[str, str]) -> str:
    return env.get(name) or os.environ.get(name) or secrets.token_urlsafe(24)


@contextmanager
def bot_server(tmp: Path, **env: str):
    """A `callbot serve` child on a free port. Its admin and gateway tokens are those of
    the environment (or `env`), else new ones: kept on the BotServer for its clients."""
    port = free_port()
    log_path = tmp / "server.log"
    admin_token = _secret("CALLBOT_ADMIN_TOKEN", env)
    gateway_token = _secret("CALLBOT_GATEWAY_TOKEN", env)
    environment = {
        **os.environ,
        "CALLBOT_PORT": str(port),
        "CALLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'calls.sqlite3'}",
        "CALLBOT_WEBRTC_LOOPBACK": "1",
        **env,
        "CALLBOT_ADMIN_TOKEN": admin_token,
        "CALLBOT_GATEWAY_TOKEN": gateway_token,
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--no-actions"],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bot server did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield BotServer(url=url, process=process, log_path=log_path, admin_token=admin_token,
                        gateway_token=gateway_token)
    finally:
        stop_process(process)


CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


@contextmanager
def browser_calls(server: BotServer, mic_wavs: list[Path]):
    """One headless chromium per caller, each joining the caller page with its WAV as
    microphone (played once); yields the pages once every call is set up."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browsers = []
        try:
            pages = []
            for mic in mic_wavs:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM, headless=True,
                    args=CHROMIUM_FLAGS + [f"--use-file-for-fake-audio-capture={mic}%noloop"],
                )
                browsers.append(browser)
                page = browser.new_page()
                page.goto(f"{server.url}/?autostart=1&record=1&loopback=1")
                pages.append(page)
            for page in pages:
                page.wait_for_function(
                    "window.callbot && (window.callbot.callId || window.callbot.state === 'busy')",
                    timeout=30_000)
            yield pages
            for page in pages:
                page.evaluate("window.callbot.state !== 'busy' && window.callbot.hangup()")
            pages[0].wait_for_timeout(300)
        finally:
            for browser in browsers:
                browser.close()


@contextmanager
def browser_call(server: BotServer, mic_wav: Path):
    """Chromium joins the caller page with `mic_wav` as its microphone (played once)."""
    with browser_calls(server, [mic_wav]) as pages:
        yield pages[0]


def received_audio(page) -> tuple[np.ndarray, int]:
    """What the page received from the bot, as int16 at the page's audio rate."""
    encoded, rate = page.evaluate("""() => {
        const chunks = window.callbot.received;
        let n = 0; for (const c of chunks) n += c.length;
        const pcm = new Int16Array(n); let i = 0;
        for (const c of chunks) for (const v of c) pcm[i++] = Math.max(-1, Math.min(1, v)) * 32767;
        const bytes = new Uint8Array(pcm.buffer); let s = "";
        for (let j = 0; j < bytes.length; j += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(j, j + 0x8000));
        return [btoa(s), window.callbot.receivedRate];
    }""")
    return np.frombuffer(base64.b64decode(encoded), dtype=np.int16), int(rate)


# ---------------------------------------------------------------- the telephony path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sip_options(port: int, host: str = "127.0.0.1", timeout: float = 2.0, source: str = "127.0.0.1") -> str:
    """Sends OPTIONS, returns the status line of the answer ('' when none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(timeout)
        local = s.getsockname()[1]
        branch, tag, call_id = uuid.uuid4().hex[:10], uuid.uuid4().hex[:8], uuid.uuid4().hex
        msg = (
            f"OPTIONS sip:probe@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {source}:{local};branch=z9hG4bK{branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:probe@{source}>;tag={tag}\r\nTo: <sip:probe@{host}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        s.sendto(msg.encode(), (host, port))
        try:
            data, _ = s.recvfrom(65535)
        except TimeoutError:
            return ""
        return data.decode(errors="replace").split("\r\n", 1)[0]


def wait_for_sip(port: int, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not sip_options(port, timeout=0.5).startswith("SIP/2.0"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"SIP peer on {port} did not start:\n{log.read_text()[-3000:]}")


@dataclass
class SipService:
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def uri(self) -> str:
        return f"sip:bot@127.0.0.1:{self.port}"


@contextmanager
def sip_gateway(tmp: Path, bot_url: str, **env: str):
    port = free_udp_port()
    log_path = tmp / f"gateway-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "sip", "--port", str(port), "--bot-url", bot_url],
            # each gateway its own RTP range, as on a real host running several
            cwd=ROOT, env={**os.environ, "CALLBOT_SIP_RTP_PORT": str(20000 + port % 400 * 20), **env},
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_sip(port, process, log_path)
        yield SipService(port, process, log_path)
    finally:
        stop_process(process)


@contextmanager
def kamailio_proxy(tmp: Path, gateway_ports: list[int], *, allow: str = "127.0.0.0/8", flood: int = 30):
    from telephony.kamailio_runner import KamailioSettings, kamailio_command

    port = free_udp_port()
    settings = KamailioSettings(
        listen=f"udp:127.0.0.1:{port}",
        gateways=",".join(f"sip:127.0.0.1:{p}" for p in gateway_ports),
        allow=allow, flood_requests=flood, run_dir=tmp / f"kamailio-{port}",
    )
    log_path = tmp / f"kamailio-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(kamailio_command(settings), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_sip(port, process, log_path)
        yield SipService(port, process, log_path)
    finally:
        stop_process(process)


# ---------------------------------------------------------------- the media stream

MEDIA_FRAME = 160      # 20 ms of 8 kHz mu-law
LOUD = 300             # RMS of a 20 ms frame that counts as sound


@dataclass
class StreamedCall:
    call_sid: str
    question_end: float | None = None     # monotonic: last sample of the question sent
    first_reply: float | None = None      # monotonic: first loud frame received after it
    events: list[dict] = field(default_factory=list)

    @property
    def latency_s(self) -> float | None:
        if self.question_end is None or self.first_reply is None:
            return None
        return self.first_reply - self.question_end


def gateway_headers(token: str | None = None) -> dict[str, str]:
    """What our SIP gateway presents at the media stream's handshake: `token`, else
    CALLBOT_GATEWAY_TOKEN from the environment (none: the server answers 401)."""
    token = os.environ.get("CALLBOT_GATEWAY_TOKEN", "") if token is None else token
    return {"Authorization": f"Bearer {token}"} if token else {}


async def _open_stream(ws, sid: str, caller: str) -> None:
    """The messages a CPaaS sends first: `connected`, then `start` with the caller's number."""
    await ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    await ws.send_str(json.dumps({
        "event": "start", "sequenceNumber": "1", "streamSid": sid,
        "start": {"streamSid": sid, "callSid": f"CA{sid}", "tracks": ["inbound"],
                  "customParameters": {"caller": caller, "called": "3957"},
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))


async def media_stream_call(ws_url: str, question_16k: np.ndarray, sid: str, *,
                            greeting_timeout_s: float = 40.0, reply_timeout_s: float = 10.0,
                            caller: str = "+33100000000", listen_after_s: float = 1.0,
                            token: str | None = None) -> StreamedCall:
    """Waits for the greeting to end (2 s without sound after it began), asks the
    question in real time, then listens until the reply begins (or `reply_timeout_s`),
    and `listen_after_s` more before hanging up. Connects as our gateway (`token`, see
    `gateway_headers`)."""
    import aiohttp

    from voice.codecs import pcm16_to_ulaw, resample, ulaw_to_pcm16

    result = StreamedCall(sid)
    last_sound = [0.0, False]   # time of the last loud frame received, greeting heard
    question = pcm16_to_ulaw(resample(question_16k.astype(np.int16), 16000, 8000).tobytes())
    silence = pcm16_to_ulaw(np.zeros(MEDIA_FRAME, dtype=np.int16).tobytes())
    headers = gateway_headers(token)
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, headers=headers) as ws:
        await _open_stream(ws, sid, caller)

        async def reader() -> None:
            async for msg in ws:
                message = json.loads(msg.data)
                if message.get("event") != "media":
                    result.events.append(message)
                    continue
                pcm = np.frombuffer(ulaw_to_pcm16(base64.b64decode(message["media"]["payload"])), dtype=np.int16)
                if len(pcm) and np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > LOUD:
                    now = time.monotonic()
                    last_sound[0], last_sound[1] = now, True
                    if result.question_end is not None and result.first_reply is None:
                        result.first_reply = now

        task = asyncio.create_task(reader())
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = 0

        async def send(payload: bytes) -> None:
            nonlocal sent
            await ws.send_str(json.dumps({"event": "media", "streamSid": sid,
                                          "media": {"payload": base64.b64encode(payload).decode()}}))
            sent += 1
            await asyncio.sleep(max(0.0, started + sent * 0.02 - loop.time()))

        deadline = time.monotonic() + greeting_timeout_s
        while time.monotonic() < deadline and not (last_sound[1] and time.monotonic() - last_sound[0] > 2.0):
            await send(silence)
        for i in range(0, len(question), MEDIA_FRAME):
            await send(question[i:i + MEDIA_FRAME].ljust(MEDIA_FRAME, b"\xff"))
        result.question_end = time.monotonic()
        deadline = time.monotonic() + reply_timeout_s
        while time.monotonic() < deadline and result.first_reply is None:
            await send(silence)
        for _ in range(int(listen_after_s * 50)):  # the record gets the caller's turn, the reply goes on
            await send(silence)
        await ws.send_str(json.dumps({"event": "stop", "streamSid": sid}))
        await asyncio.wait_for(task, 10)
    return result


async def media_stream_dialogue(ws_url: str, utterances: list[np.ndarray | str], sid: str, *,
                                greeting_timeout_s: float = 40.0, reply_timeout_s: float = 60.0,
                                quiet_s: float = 2.0, caller: str = "+33100000000",
                                token: str | None = None, with_greeting: bool = False) -> list[np.ndarray]:
    """A caller who waits for the greeting, then says each utterance (16 kHz audio, or a
    string: keys pressed) once the bot has finished its last reply (`quiet_s` without sound
    after it began). Returns the audio the bot sent for each reply (8 kHz int16, from its
    first sound to its last), in order, after the greeting's if `with_greeting`. Connects as our gateway (`token`, see
    `gateway_headers`)."""
    import aiohttp

    from voice.codecs import pcm16_to_ulaw, resample, ulaw_to_pcm16

    frames: list[tuple[float, np.ndarray]] = []   # everything received, with its arrival time
    silence = pcm16_to_ulaw(np.zeros(MEDIA_FRAME, dtype=np.int16).tobytes())
    headers = gateway_headers(token)
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, headers=headers) as ws:
        await _open_stream(ws, sid, caller)

        async def reader() -> None:
            async for msg in ws:
                message = json.loads(msg.data)
                if message.get("event") == "media":
                    pcm = ulaw_to_pcm16(base64.b64decode(message["media"]["payload"]))
                    frames.append((time.monotonic(), np.frombuffer(pcm, dtype=np.int16)))

        def loud_since(t: float) -> list[float]:
            return [at for at, pcm in frames if at >= t and len(pcm)
                    and np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > LOUD]

        task = asyncio.create_task(reader())
        loop = asyncio.get_running_loop()
        started, sent = loop.time(), 0

        async def send(payload: bytes) -> None:
            nonlocal sent
            await ws.send_str(json.dumps({"event": "media", "streamSid": sid,
                                          "media": {"payload": base64.b64encode(payload).decode()}}))
            sent += 1
            await asyncio.sleep(max(0.0, started + sent * 0.02 - loop.time()))

        async def until_quiet(since: float, timeout_s: float) -> tuple[float, float] | None:
            """Silence sent until the bot has spoken and stopped (or hung up): (first, last) sound."""
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                loud = loud_since(since)
                if loud and (time.monotonic() - loud[-1] > quiet_s or ws.closed):
                    return loud[0], loud[-1]
                if ws.closed:
                    return None
                await send(silence)
            return None

        greeting = await until_quiet(time.monotonic(), greeting_timeout_s)
        if greeting is None:
            raise TimeoutError("no greeting")
        spans = [greeting] if with_greeting else []
        for utterance in utterances:
            if isinstance(utterance, str):
                for digit in utterance:
                    await ws.send_str(json.dumps({"event": "dtmf", "streamSid": sid, "dtmf": {"digit": digit}}))
                    await send(silence)
                continue_from = time.monotonic()
            else:
                said = pcm16_to_ulaw(resample(utterance.astype(np.int16), 16000, 8000).tobytes())
                for i in range(0, len(said), MEDIA_FRAME):
                    await send(said[i:i + MEDIA_FRAME].ljust(MEDIA_FRAME, b"\xff"))
                continue_from = time.monotonic()
            span = await until_quiet(continue_from, reply_timeout_s)
            if span is None:
                raise TimeoutError("no reply")
            spans.append(span)
        if not ws.closed:
            await ws.send_str(json.dumps({"event": "stop", "streamSid": sid}))
        await asyncio.wait_for(task, 10)
    return [np.concatenate([pcm for at, pcm in frames if first <= at <= last + 0.02]) for first, last in spans]

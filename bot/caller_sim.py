"""Simulated callers for tests and benchmarks: French speech synthesised in a voice
the bot does not use, a real bot server process, headless Debian chromium calling it
over WebRTC with that speech as its microphone."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CALLER_VOICE = "jm_kumo"  # the bot speaks with jf_gongitsune
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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


class CallerVoice:
    """Kokoro with another voice than the bot's, 16 kHz int16."""

    def __init__(self) -> None:
        from models.kokoro import kokoro_files
        from voice.speech_engines import KokoroEngine

        self._engine = KokoroEngine(kokoro_files(), CALLER_VOICE, threads=2)

    def say(self, text: str) -> np.ndarray:
        from voice.codecs import resample
        from voice.speech_engines import SpeechStyle
        from voice.text_for_speech import speakable

        audio = self._engine.synthesize(speakable(text), SpeechStyle())
        return resample(audio, self._engine.sample_rate, 16000)


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

    def call_record(self, call_id: str) -> dict | None:
        try:
            with urllib.request.urlopen(f"{self.url}/api/calls/{call_id}", timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError:
            return None

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


@contextmanager
def bot_server(tmp: Path, **env: str):
    port = free_port()
    log_path = tmp / "server.log"
    environment = {
        **os.environ,
        "CALLBOT_PORT": str(port),
        "CALLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'calls.sqlite3'}",
        "CALLBOT_WEBRTC_LOOPBACK": "1",
        **env,
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
        yield BotServer(url=url, process=process, log_path=log_path)
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

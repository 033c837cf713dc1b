"""`callbot bench handoff`: how fast a caller who asks for a human reaches an available
agent, on a real bot server started for the bench. Each call: a media-stream caller
(as our SIP gateway connects) presses 0 after the greeting; an agent signed in to the
console's API, available, polls its queue every 50 ms and accepts with a WebRTC leg
(aiortc, as the console's browser does) whose microphone sends a tone. Measured:
  key 0 pressed -> the caller's card in the agent's queue;
  accept -> the agent hears the first of the briefing;
  accept -> two-way audio (the caller hears the agent: the briefing, at most 15 s, comes first);
  the audio path once joined: caller -> agent and agent -> caller, one way.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from bot.agent_sim import AgentClient, StreamCaller, add_user, server_database
from bot.bench import percentile

PASSWORD = "banc-de-mesure-handoff"
AGENT_HZ = 1000.0    # the agent's tone
CALLER_HZ = 700.0    # the caller's


def _loud(pcm: np.ndarray, threshold: float = 500.0) -> bool:
    return len(pcm) > 0 and float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > threshold


class _AgentLeg:
    """The agent's WebRTC leg: sends a tone, notes when sound first arrives, and when
    sound first arrives after `mark` (the caller's tone once joined)."""

    def __init__(self) -> None:
        from aiortc import MediaStreamTrack, RTCPeerConnection

        outer = self

        class Tone(MediaStreamTrack):
            kind = "audio"

            def __init__(self) -> None:
                super().__init__()
                self._n = 0
                self._start: float | None = None

            async def recv(self):
                from av import AudioFrame

                rate, samples = 48000, 960
                if self._start is None:
                    self._start = time.monotonic()
                wait = self._start + self._n * samples / rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                t = (np.arange(samples) + self._n * samples) / rate
                pcm = (0.3 * 32767 * np.sin(2 * np.pi * AGENT_HZ * t)).astype(np.int16) if outer.speaking \
                    else np.zeros(samples, dtype=np.int16)
                frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = rate, self._n * samples, fractions.Fraction(1, rate)
                self._n += 1
                return frame

        self.speaking = False
        self.first_sound: float | None = None
        self.mark: float | None = None
        self.sound_after_mark: float | None = None
        self.pc = RTCPeerConnection()
        self.pc.addTrack(Tone())

        @self.pc.on("track")
        def on_track(track) -> None:
            asyncio.ensure_future(self._listen(track))

    async def _listen(self, track) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:   # the leg closed
                return
            pcm = frame.to_ndarray().reshape(-1)[::frame.layout.nb_channels if frame.layout else 1]
            if not _loud(pcm):
                continue
            now = time.monotonic()
            if self.first_sound is None:
                self.first_sound = now
            if self.mark is not None and self.sound_after_mark is None and now >= self.mark \
                    and _is_tone(pcm, CALLER_HZ, frame.sample_rate):
                self.sound_after_mark = now

    async def offer(self) -> dict:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"sdp": self.pc.localDescription.sdp, "type": "offer"}

    async def answer(self, answer: dict) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))


def _wait(predicate, timeout: float, poll_s: float = 0.02) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(poll_s)
    raise TimeoutError("timed out")


def _one_call(server, agent: AgentClient, loop: asyncio.AbstractEventLoop, tone_16k: np.ndarray) -> dict:
    ws = server.url.replace("http://", "ws://") + "/ws/media"
    with StreamCaller(ws, sid=f"MZbench{uuid.uuid4().hex[:10]}", token=server.gateway_token) as caller:
        caller.wait_quiet(since=time.monotonic(), timeout=60)
        pressed = time.monotonic()
        caller.keys("0")
        entry: dict = {}

        def in_queue() -> bool:
            entries = agent.queue()
            entry.update(entries[0] if entries else {})
            return bool(entries)

        card_at = _wait(in_queue, 30, poll_s=0.05)
        leg = asyncio.run_coroutine_threadsafe(_new_leg(), loop).result(10)
        offer = asyncio.run_coroutine_threadsafe(leg.offer(), loop).result(20)
        accepted = time.monotonic()
        answer = agent.accept(entry["call_id"], device="browser", offer=offer)
        asyncio.run_coroutine_threadsafe(leg.answer(answer), loop).result(20)
        leg.speaking = True   # the agent talks from the start: heard by the caller once joined
        briefing_at = _wait(lambda: leg.first_sound is not None, 30)
        joined_at = _wait(lambda: _tone_since(caller.received, accepted), 40)
        # once joined: the caller's tone, one way to the agent (the agent stops talking first)
        leg.speaking = False
        time.sleep(1.5)
        leg.mark = time.monotonic()
        caller.say(tone_16k)
        to_agent = _wait(lambda: leg.sound_after_mark is not None, 10) - leg.mark
        time.sleep(1.5)
        spoke = time.monotonic()
        leg.speaking = True   # and the agent again: one way to the caller
        to_caller = _wait(lambda: _tone_since(caller.received, spoke, frames=1), 10) - spoke
        leg.speaking = False
        agent.hang_up(entry["call_id"])
        agent.wrap_up(entry["call_id"], "autre", "banc de mesure")
        asyncio.run_coroutine_threadsafe(leg.pc.close(), loop).result(10)
    return {"card_ms": (card_at - pressed) * 1000, "briefing_ms": (briefing_at - accepted) * 1000,
            "joined_ms": (joined_at - accepted) * 1000, "caller_to_agent_ms": to_agent * 1000,
            "agent_to_caller_ms": to_caller * 1000}


async def _new_leg() -> _AgentLeg:
    return _AgentLeg()


def _is_tone(pcm: np.ndarray, hz: float, rate: int) -> bool:
    """Most of the frame's energy near `hz`: a tone, not speech."""
    power = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / rate)
    return _loud(pcm) and power[np.abs(freqs - hz) < 80].sum() > 0.8 * power.sum()


def _tone_since(received: list, since: float, frames: int = 5) -> bool:
    """The agent's tone heard by the caller: `frames` frames in a row (8 kHz) after `since`."""
    run = 0
    for at, pcm in list(received):
        if at < since:
            continue
        run = run + 1 if _is_tone(pcm, AGENT_HZ, 8000) else 0
        if run >= frames:
            return True
    return False


def run_handoff_bench(calls: int = 10, as_json: bool = False) -> int:
    import threading

    from bot.caller_sim import bot_server

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    t = np.arange(int(0.8 * 16000)) / 16000
    tone = (0.3 * 32767 * np.sin(2 * np.pi * CALLER_HZ * t)).astype(np.int16)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, \
            bot_server(Path(tmp), CALLBOT_AGENTS_ANSWER_TIMEOUT_S="300", CALLBOT_AGENTS_OPENING_HOURS="24/7") as server:
        add_user(server_database(server.log_path), "banc", PASSWORD, teams="accueil")
        agent = AgentClient(server.url)
        agent.login("banc", PASSWORD)
        agent.available(["accueil"])
        for n in range(calls):
            row = _one_call(server, agent, loop, tone)
            rows.append(row)
            print(f"  call {n + 1}: card {row['card_ms']:.0f} ms, briefing {row['briefing_ms']:.0f} ms, "
                  f"joined {row['joined_ms']:.0f} ms, caller -> agent {row['caller_to_agent_ms']:.0f} ms, "
                  f"agent -> caller {row['agent_to_caller_ms']:.0f} ms", flush=True)
    loop.call_soon_threadsafe(loop.stop)
    stages = [("key 0 -> card in the agent's queue", "card_ms"),
              ("accept -> agent hears the briefing", "briefing_ms"),
              ("accept -> two-way audio (after the briefing)", "joined_ms"),
              ("joined: caller -> agent, one way", "caller_to_agent_ms"),
              ("joined: agent -> caller, one way", "agent_to_caller_ms")]
    summary = {key: {"p50": percentile([r[key] for r in rows], 0.5), "p95": percentile([r[key] for r in rows], 0.95)}
               for _, key in stages}
    if as_json:
        print(json.dumps({"calls": len(rows), **summary}, indent=2))
        return 0
    print(f"handoff to a browser agent (media-stream caller, aiortc agent): {len(rows)} calls")
    print(f"{'stage':<48}{'p50 ms':>9}{'p95 ms':>9}")
    for label, key in stages:
        print(f"{label:<48}{summary[key]['p50']:>9.0f}{summary[key]['p95']:>9.0f}")
    return 0

"""`callbot bench latency`: turn latency per stage, p50 and p95, over many turns."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bot.config import load_settings

# Questions a caller asks in turn; chosen to be understood from the synthetic caller voice.
QUESTIONS = [
    "Quel est le plafond de chiffre d'affaires ?",
    "Je voudrais une attestation de vigilance.",
    "J'ai perdu mon mot de passe.",
    "Comment payer mes cotisations ?",
    "Quel est le taux de cotisation pour un auto-entrepreneur ?",
    "Comment déclarer mon chiffre d'affaires ?",
    "Comment arrêter mon activité ?",
    "J'ai reçu une mise en demeure.",
]
STAGES = ("stt_ms", "dialogue_ms", "tts_ms", "total_ms")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def report(title: str, rows: list[dict], stages=STAGES) -> None:
    print(f"{title}: {len(rows)} turns")
    print(f"{'stage':<34}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    labels = {
        "stt_ms": "caller speech end -> transcript",
        "dialogue_ms": "transcript -> reply text",
        "tts_ms": "reply text -> first audio out",
        "total_ms": "end to end",
        "caller_ms": "question end -> reply heard",
    }
    for stage in stages:
        values = [r[stage] for r in rows if r.get(stage) is not None]
        if values:
            print(f"{labels.get(stage, stage):<34}{percentile(values, 0.5):>10.0f}"
                  f"{percentile(values, 0.95):>10.0f}{statistics.fmean(values):>10.0f}")


async def bench_text(turns: int) -> int:
    from bot.services import BotServices

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp}/bench.sqlite3")
        services = await BotServices.create(settings, voice=False)
        rows = []
        try:
            conversation = services.conversation("bench")
            conversation.start()
            for i in range(turns):
                started = time.perf_counter()
                reply = await conversation.on_text(QUESTIONS[i % len(QUESTIONS)])
                rows.append({"dialogue_ms": (time.perf_counter() - started) * 1000, "ok": reply.intent is not None})
        finally:
            await services.close()
    report("text channel (in process, router + dialogue)", rows, ("dialogue_ms",))
    print(f"understood: {sum(r['ok'] for r in rows)}/{len(rows)}")
    return 0


def _not_understood(turns: list[dict]) -> None:
    """What the bot heard when it routed no question, and what it said back."""
    for turn, reply in zip(turns, turns[1:] + [None]):
        if turn["speaker"] == "caller" and not turn["intent"]:
            answer = reply["text"][:60] if reply and reply["speaker"] == "bot" else "-"
            print(f"  not understood: {turn['text']!r} -> {answer!r}")


def bench_webrtc(turns: int) -> int:
    from bot.caller_sim import CallerVoice, bot_server, browser_call, timeline, write_wav

    voice = CallerVoice()
    gap_s = 9.0  # room for the start of the answer; the next question barges in on the rest
    parts = [(18.0, voice.say(QUESTIONS[i % len(QUESTIONS)])) for i in range(1)]
    parts += [(gap_s, voice.say(QUESTIONS[i % len(QUESTIONS)])) for i in range(1, turns)]
    parts.append((gap_s, None))
    with tempfile.TemporaryDirectory() as tmp:
        mic = write_wav(Path(tmp) / "caller.wav", timeline(parts), 16000)
        with bot_server(Path(tmp)) as server, browser_call(server, mic) as page:
            call_id = page.evaluate("window.callbot.callId")
            expected = sum(len(voice_turn[1]) for voice_turn in parts if voice_turn[1] is not None) / 16000
            duration = sum(p[0] for p in parts) + expected
            print(f"calling for {duration:.0f} s ({turns} questions)...", flush=True)
            page.wait_for_timeout(duration * 1000 + 3000)
            record = server.call_record(call_id) or {"turns": []}
    rows = [t for t in record["turns"] if t["speaker"] == "bot" and t["total_ms"] is not None]
    caller = [t for t in record["turns"] if t["speaker"] == "caller"]
    report("webrtc (chromium caller, server-side stages)", rows)
    print(f"caller turns: {len(caller)}, understood: {sum(1 for t in caller if t['intent'])}")
    _not_understood(record["turns"])
    return 0 if len(rows) >= max(1, turns // 2) else 1


def _first_sound_after(samples: np.ndarray, rate: int, start_s: float, threshold: float = 300.0) -> float | None:
    """Seconds from `start_s` to the first 10 ms window louder than `threshold` (RMS)."""
    n = rate // 100
    first = int(start_s * rate) // n
    frames = samples[: len(samples) // n * n].astype(np.float64).reshape(-1, n)
    loud = np.nonzero(np.sqrt((frames[first:] ** 2).mean(axis=1)) > threshold)[0]
    return None if len(loud) == 0 else loud[0] * n / rate + first * n / rate - start_s


def bench_sip(turns: int) -> int:
    """One baresip call of `turns` questions through the pjsua2 gateway; latency measured at
    the caller's side, from the last sample of each question to the first sound heard after."""
    from bot.caller_sim import CallerVoice, bot_server, sip_gateway, timeline, write_wav
    from telephony.sip_caller import place_call, read_wav

    voice = CallerVoice()
    gap_s, lead_s = 9.0, 18.0
    questions = [voice.say(QUESTIONS[i % len(QUESTIONS)]) for i in range(turns)]
    parts = [(lead_s if i == 0 else gap_s, q) for i, q in enumerate(questions)] + [(gap_s, None)]
    ends, t = [], 0.0
    for silence, speech in parts[:-1]:
        t += silence + len(speech) / 16000
        ends.append(t)
    total = t + gap_s
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mic = write_wav(work / "caller.wav", timeline(parts), 16000)
        with bot_server(work) as server, \
                sip_gateway(work, server.url.replace("http", "ws") + "/ws/media",
                            CALLBOT_GATEWAY_TOKEN=server.gateway_token) as gateway:
            print(f"calling {gateway.uri} for {total:.0f} s ({turns} questions)...", flush=True)
            result = place_call(gateway.uri, mic, workdir=work / "call", duration_s=total + 1)
            if not result.established:
                print(result.log[-2000:])
                return 1
            heard, rate = read_wav(result.recording)
            calls = [c for c in (server.recent_calls() or []) if c["channel"] == "sip"]
    caller_side = []
    for end in ends:
        latency = _first_sound_after(heard, rate, end)
        if latency is not None and latency < gap_s:
            caller_side.append({"caller_ms": latency * 1000})
    report("sip (baresip caller, measured at the caller's side)", caller_side, ("caller_ms",))
    rows = [t for c in calls for t in c["turns"] if t["speaker"] == "bot" and t["total_ms"] is not None]
    report("sip (server-side stages)", rows)
    understood = sum(1 for c in calls for t in c["turns"] if t["speaker"] == "caller" and t["intent"])
    print(f"caller turns understood: {understood}/{turns}")
    for call in calls:
        _not_understood(call["turns"])
    return 0 if len(caller_side) >= max(1, turns // 2) else 1


async def run_latency_bench(channel: str, turns: int) -> int:
    import asyncio

    if channel == "text":
        return await bench_text(turns)
    if channel == "sip":
        return await asyncio.to_thread(bench_sip, turns)
    return await asyncio.to_thread(bench_webrtc, turns)

"""`callbot bench latency`: turn latency per stage, p50 and p95, over many turns."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

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
    return 0 if len(rows) >= max(1, turns // 2) else 1


async def run_latency_bench(channel: str, turns: int) -> int:
    if channel == "text":
        return await bench_text(turns)
    import asyncio

    return await asyncio.to_thread(bench_webrtc, turns)

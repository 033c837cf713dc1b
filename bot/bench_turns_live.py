"""The live part of `callbot bench turns`: held-out questions of the turn-taking set, with
their pauses, asked over the media-stream WebSocket (Twilio's JSON, 8 kHz mu-law, as a
CPaaS or our SIP gateway sends it) to a real bot server, one call each. Measured at the
caller's side: the reply latency (last sample of the question sent -> first sound of the
reply received), whether the question was taken as one caller turn, and routed right."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bot.bench import percentile
from bot.caller_sim import media_stream_call


def live_calls(items, cache_dir: Path) -> dict:
    """One call per item through a bot server started for the bench."""
    from bot.bench_turns import Renderer
    from bot.caller_sim import bot_server

    renderer = Renderer(cache_dir / "audio")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, bot_server(Path(tmp)) as server:
        url = server.url.replace("http://", "ws://") + "/ws/media"
        for n, item in enumerate(items):
            audio = renderer.render(item, lead_s=0.2, tail_s=0.0).audio
            call = asyncio.run(media_stream_call(url, audio, f"MZbench{n}", token=server.gateway_token))
            rows.append((item, call))
            print(f"  {item.id}: reply after {call.latency_s or float('nan'):.2f} s", flush=True)
        time.sleep(1.0)
        records = [c for c in server.recent_calls() if c["channel"] == "sip"]
    from flows.knowledge import load_knowledge

    teams = {qt.id: qt.team for qt in load_knowledge().question_types.values()}
    one_turn = right_intent = right_team = 0
    parts: dict[str, list[int]] = {"stt_ms": [], "dialogue_ms": [], "tts_ms": []}
    latencies = [c.latency_s * 1000 for _, c in rows if c.latency_s is not None]
    for (item, _), record in zip(rows, records, strict=False):
        caller = [t for t in record["turns"] if t["speaker"] == "caller"]
        merged = any(e["kind"] == "turns_merged" for e in record["events"])
        one_turn += len(caller) == 1 or (merged and len(caller) == 2)
        intent = caller[-1]["intent"] if caller else None
        # the reply to the question: the bot turn after the last caller turn
        replies = [t for t in record["turns"] if t["speaker"] == "bot" and caller and t["index"] > caller[-1]["index"]]
        for key, values in parts.items():
            if replies and replies[0].get(key) is not None:
                values.append(replies[0][key])
        right_intent += intent == item.intent
        right_team += record.get("team") == teams.get(item.intent)
        if intent != item.intent:
            print(f"  {item.id}: heard {[t['text'] for t in caller]!r} -> {intent}", flush=True)
    return {"questions": len(rows), "one_turn": one_turn, "right_intent": right_intent,
            "right_team": right_team,
            "latency_p50_ms": percentile(latencies, 0.5) if latencies else float("nan"),
            "latency_p95_ms": percentile(latencies, 0.95) if latencies else float("nan"),
            # server side: end of speech -> transcript committed (end-of-turn wait and
            # Whisper), -> reply chosen, -> first audio out
            **{f"{key[:-3]}_p50_ms": percentile(v, 0.5) if v else float("nan") for key, v in parts.items()}}

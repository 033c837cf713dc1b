"""`callbot bench slow`: what slow-speech mode changes, measured on audio.

1. Knowledge answers rendered as the bot says them, normal and slow (slow wording, slow
   style): speech rate (syllables of the text over the span of the audio) and pauses
   (silent stretches of 150 ms or more, by the energy of 10 ms windows), medians and p95.
2. End of turn on caller audio with long pauses mid-sentence: the held-out questions of the
   turn-taking set (flows/data/bench_turns.yaml) said clause by clause with their pauses
   lengthened to 0.8-1.7 s, every pause scored as the pipeline scores it; the share of
   questions cut before their end and the end-of-turn delay, normal vs slow settings.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace

import numpy as np

from bot.bench import percentile

PAUSE_S = 0.15
LOUD = 300
LONG_PAUSES = 1.4   # the turn-taking set's pauses (0.5-1.2 s) lengthened by this factor


def audio_stats(pcm: bytes, rate: int = 16_000) -> tuple[float, list[float]]:
    """(seconds from the first to the last sound, the silent stretches in between)."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    n = rate // 100
    energy = np.sqrt((samples[: len(samples) // n * n].reshape(-1, n) ** 2).mean(axis=1))
    loud = np.nonzero(energy > LOUD)[0]
    if len(loud) == 0:
        return 0.0, []
    span = energy[loud[0]:loud[-1] + 1] > LOUD
    pauses, run = [], 0
    for voiced in span:
        if voiced:
            if run >= PAUSE_S * 100:
                pauses.append(run / 100)
            run = 0
        else:
            run += 1
    return len(span) / 100, pauses


def _answers(knowledge, limit: int) -> list[str]:
    """Answers holding figures first (what the slow wording changes most), in a fixed order."""
    answers = sorted((qt.answer.text for qt in knowledge.question_types.values() if qt.answer),
                     key=lambda a: (not any(c.isdigit() for c in a), len(a)))
    return answers[:limit]


def render_comparison(settings, knowledge, limit: int, progress: bool = True) -> dict:
    from bot.services import make_speech_engine, slow_speech_style, speech_style
    from flows.slow_wording import slow_wording
    from voice.slow_speech import syllables
    from voice.speech_renderer import SpeechRenderer

    renderer = SpeechRenderer(make_speech_engine(settings, threads=2), settings.audio_cache_dir)
    repeat = knowledge.prompts["slow_speech"]["repeat"]
    rows: dict[str, dict[str, list[float]]] = {m: {"rate": [], "pause_count": [], "pause_s": [], "pause_share": []}
                                               for m in ("normal", "slow")}
    repeated = 0
    for n, answer in enumerate(_answers(knowledge, limit), 1):
        slow_text = " ".join(slow_wording([answer], repeat))
        repeated += repeat in slow_text
        for mode, text, style in (("normal", answer, speech_style(settings)),
                                  ("slow", slow_text, slow_speech_style(settings))):
            span, pauses = audio_stats(renderer.render(text, style))
            rows[mode]["rate"].append(syllables(text) / span)
            rows[mode]["pause_count"].append(len(pauses) / max(len(text.split()), 1) * 10)
            rows[mode]["pause_s"] += pauses
            rows[mode]["pause_share"].append(sum(pauses) / span)
        if progress:
            print(f"  rendered {n}/{limit}", flush=True)
    summary = {mode: {key: {"median": statistics.median(v), "p95": percentile(v, 0.95)} for key, v in r.items() if v}
               for mode, r in rows.items()}
    summary["answers"] = limit
    summary["answers_with_figures_repeated"] = repeated
    summary["rate_ratio"] = summary["slow"]["rate"]["median"] / summary["normal"]["rate"]["median"]
    return summary


def long_pause_turns(settings, progress: bool = True) -> dict:
    from bot.bench_turns import score_set, summarise, turn_set
    from flows.knowledge import load_knowledge
    from flows.turn_completeness import build_completeness

    items = [replace(i, id=f"{i.id}-long", pauses=tuple(round(p * LONG_PAUSES, 2) for p in i.pauses))
             for i in turn_set(real=False) if i.held_out and i.kind == "clauses"]
    completeness = build_completeness(load_knowledge(), settings.var_dir / "router")
    scored = score_set(items, settings.var_dir / "bench-turns", settings, completeness, progress=progress)
    slow = settings.slow.end_of_turn(settings.turn)
    return {"utterances": len(items),
            "pauses_s": [min(p for i in items for p in i.pauses), max(p for i in items for p in i.pauses)],
            "normal": summarise(settings.turn, scored), "slow": summarise(slow, scored),
            "silence 0.8 s": summarise(replace(settings.turn, engine="silence", silence_s=0.8), scored)}


def main(*, limit: int = 10, as_json: bool = False) -> int:
    import logging

    from bot.config import load_settings
    from flows.knowledge import load_knowledge

    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    settings = load_settings()
    knowledge = load_knowledge()
    print(f"rendering {limit} knowledge answers normal and slow ({settings.slow.speed} speed, pauses "
          f"{settings.slow.sentence_pause_s} s between clauses and {settings.slow.figure_pause_s} s before figures)",
          flush=True)
    report = {"audio": render_comparison(settings, knowledge, limit, progress=not as_json)}
    print("scoring the held-out questions with long pauses", flush=True)
    report["turns"] = long_pause_turns(settings, progress=not as_json)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    a = report["audio"]
    print(f"speech on {a['answers']} knowledge answers ({a['answers_with_figures_repeated']} with figures said twice):")
    print(f"  {'':<32}{'normal p50':>12}{'p95':>8}{'slow p50':>12}{'p95':>8}")
    for key, label in (("rate", "syllables per second"), ("pause_count", "pauses per 10 words"),
                       ("pause_s", "pause length, s"), ("pause_share", "share of time in pauses")):
        n, s = a["normal"][key], a["slow"][key]
        print(f"  {label:<32}{n['median']:>12.2f}{n['p95']:>8.2f}{s['median']:>12.2f}{s['p95']:>8.2f}")
    print(f"  slow rate / normal rate: {100 * a['rate_ratio']:.0f} %")
    t = report["turns"]
    print(f"end of turn, {t['utterances']} held-out questions with pauses of {t['pauses_s'][0]:.1f}-"
          f"{t['pauses_s'][1]:.1f} s mid-sentence:")
    print(f"  {'':<16}{'cut %':>7}{'mean ms':>9}{'p50 ms':>8}{'p95 ms':>8}")
    for name in ("silence 0.8 s", "normal", "slow"):
        r = t[name]
        def ms(v):
            return f"{v:>8.0f}" if v is not None else f"{'-':>8}"
        print(f"  {name:<16}{r['cut_percent']:>7.1f}{ms(r['delay_mean_ms']):>9}{ms(r['delay_p50_ms'])}"
              f"{ms(r['delay_p95_ms'])}")
    return 0

"""`callbot bench stt`: word error rate and decoding time on real French telephone speech.

The corpus is Debian's asterisk-core-sounds-fr: one speaker recorded for a phone
system, 8 kHz WAV files under /usr/share/asterisk/sounds/fr, with their transcripts in
/usr/share/doc/asterisk-core-sounds-fr/core-sounds-fr.txt.gz. Only the utterances at
even positions are used: odd ones are kept for external evaluation and never read here.
The project has read "the name-sorted list" two ways (every transcribed utterance,
sub-folders included; the top-level WAV files), so an utterance is used only when its
position is even in both lists where it appears in both.

The current settings (STTSettings() defaults, as the pipeline decodes: no VAD filter,
the segment is already cut by the VAD) are compared with plain Whisper base (beam 1,
temperature 0, Silero VAD filter, no prompt, no penalties) on the same audio.
"""

from __future__ import annotations

import gzip
import json
import re
import statistics
import sys
import unicodedata
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bot.bench import percentile
from voice.stt import DOMAIN_PROMPT, STTSettings, Transcriber, has_loop, load_audio_16k

SOUNDS = Path("/usr/share/asterisk/sounds/fr")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-fr/core-sounds-fr.txt.gz")

# Typos in the published transcripts (the speaker says the word correctly).
REFERENCE_TYPOS = {
    "présentemnet": "présentement",
    "verouill": "verrouill",
    "vérouill": "verrouill",
    "déverouill": "déverrouill",
    "conctact": "contacte",
    "seixième": "seizième",
    "millardième": "milliardième",
    "ce tte": "cette",
    "Aurevoir": "Au revoir",
}
# Notes in the transcripts that are not words: "(emphase)", "[ascending tones]".
NOT_SPOKEN = re.compile(r"\([^)]*\)|\[[^\]]*\]")


@dataclass(frozen=True)
class Utterance:
    name: str
    path: Path
    reference: str


@dataclass(frozen=True)
class Variant:
    label: str
    settings: STTSettings
    vad_filter: bool


PLAIN_BASE = Variant(
    "plain Whisper base",
    STTSettings(beam_size=1, initial_prompt="", hotwords="", repetition_penalty=1.0, no_repeat_ngram_size=0,
                loop_guard=False),
    vad_filter=True,
)


def current_variant() -> Variant:
    return Variant("current settings", STTSettings(), vad_filter=False)


def sweep_variants() -> list[Variant]:
    """Candidates compared when the defaults were chosen (README 'Measured')."""
    plain, current = PLAIN_BASE.settings, STTSettings()
    old_prompt = replace(plain, initial_prompt=DOMAIN_PROMPT)
    return [
        Variant("former production (prompt, penalties, beam 1)",
                replace(old_prompt, repetition_penalty=1.1, no_repeat_ngram_size=3), vad_filter=False),
        Variant("former prompt, no penalties, beam 1", old_prompt, vad_filter=False),
        Variant("hotwords, loop guard, beam 1", replace(current, beam_size=1), vad_filter=False),
        Variant("hotwords, no loop guard, beam 1", replace(current, beam_size=1, loop_guard=False),
                vad_filter=False),
        Variant("current settings + VAD filter", current, vad_filter=True),
        Variant("current settings, 30 s encoder window", replace(current, fitted_window=False), vad_filter=False),
        Variant("plain Whisper base, beam 5", replace(plain, beam_size=5), vad_filter=True),
    ]


# ----------------------------------------------------------------------- corpus


def read_transcripts(path: Path = TRANSCRIPTS) -> dict[str, str]:
    out = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if ":" in line and not line.startswith(";"):
                name, text = line.split(":", 1)
                out[name.strip()] = text.strip()
    return out


def reference(text: str) -> str:
    """The words said: typos fixed, ellipses, quotes and notes removed."""
    text = NOT_SPOKEN.sub(" ", text).replace("…", " ").replace("...", " ").replace('"', " ")
    for typo, word in REFERENCE_TYPOS.items():
        text = text.replace(typo, word)
    return " ".join(text.split())


def even_utterances(sounds: Path = SOUNDS, transcripts: Path = TRANSCRIPTS) -> list[Utterance]:
    """The usable utterances at even positions of the name-sorted lists (see the module docstring)."""
    texts = read_transcripts(transcripts)
    every = sorted(name for name in texts if (sounds / f"{name}.wav").is_file())
    top_level = sorted(p.stem for p in sounds.glob("*.wav"))
    even_top = set(top_level[0::2])
    out = []
    for name in every[0::2]:
        if "/" not in name and name not in even_top:
            continue
        ref = reference(texts[name])
        if normalise_words(ref):  # "[ascending tones]", "(ahooga)": nothing said
            out.append(Utterance(name, sounds / f"{name}.wav", ref))
    return out


# -------------------------------------------------------------------- scoring

_UNITS = ["zero", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix", "onze",
          "douze", "treize", "quatorze", "quinze", "seize", "dix-sept", "dix-huit", "dix-neuf"]
_TENS = ["", "dix", "vingt", "trente", "quarante", "cinquante", "soixante", "soixante", "quatre-vingt",
         "quatre-vingt"]


def french_number(n: int) -> str:
    """0..999 in words ('appuyez sur 1' and 'appuyez sur un' are both right)."""
    if n >= 100:
        hundreds, rest = divmod(n, 100)
        head = "cent" if hundreds == 1 else f"{_UNITS[hundreds]} cent"
        return head if rest == 0 else f"{head} {french_number(rest)}"
    if n < 20:
        return _UNITS[n]
    tens, unit = divmod(n, 10)
    if tens in (7, 9):
        return f"{_TENS[tens]} {'et ' if n == 71 else ''}{_UNITS[10 + unit]}"
    if unit == 0:
        return _TENS[tens]
    return f"{_TENS[tens]} {'et ' if unit == 1 and tens < 8 else ''}{_UNITS[unit]}"


def normalise_words(text: str) -> list[str]:
    """Lowercase, accents stripped, punctuation and apostrophes as word breaks, numbers in words."""
    text = re.sub(r"\d{1,3}", lambda m: f" {french_number(int(m.group()))} ", text)
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", text).split()


def word_errors(reference_text: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words)."""
    ref, hyp = normalise_words(reference_text), normalise_words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)], len(ref)


def word_error_rate(reference_text: str, hypothesis: str) -> float:
    errors, words = word_errors(reference_text, hypothesis)
    return errors / max(words, 1)


# ------------------------------------------------------------------ benchmark


SENTENCE_WORDS = 3  # references of fewer words are isolated words: digits, letters, "merci"


def _figures(rows: list[dict]) -> dict:
    times = [float(r["ms"]) for r in rows]
    sentences = [r for r in rows if r["words"] >= SENTENCE_WORDS]
    short = [r for r in rows if r["words"] < SENTENCE_WORDS]

    def corpus(part: list[dict]) -> float | None:
        return sum(r["errors"] for r in part) / sum(r["words"] for r in part) if part else None

    return {
        "utterances": len(rows),
        "wer_mean": statistics.fmean(r["wer"] for r in rows),
        "wer_corpus": corpus(rows),
        "wer_corpus_sentences": corpus(sentences),
        "wer_corpus_short": corpus(short),
        "sentences": len(sentences),
        "decode_ms_p50": percentile(times, 0.5),
        "decode_ms_p95": percentile(times, 0.95),
        "loops": sum(r["loops"] for r in rows),
        "loop_guarded": sum(r["loop_guarded"] for r in rows),
    }


def run_stt_bench(*, limit: int = 0, sweep: bool = False, progress: bool = False) -> dict:
    """Every variant decodes every utterance, interleaved (utterance by utterance) so that
    other work on the machine slows them alike; one model shared by all."""
    utterances = even_utterances()
    if limit:
        utterances = utterances[:limit]
    variants = [current_variant(), PLAIN_BASE] + (sweep_variants() if sweep else [])
    first = Transcriber(variants[0].settings)
    transcribers = [first] + [Transcriber(v.settings, model=first.model) for v in variants[1:]]
    rows: list[list[dict]] = [[] for _ in variants]
    seconds = 0.0
    try:
        for i, u in enumerate(utterances):
            samples = load_audio_16k(str(u.path))
            seconds += len(samples) / 16000
            for variant, transcriber, out in zip(variants, transcribers, rows, strict=True):
                result = transcriber.transcribe(samples, vad_filter=variant.vad_filter)
                errors, words = word_errors(u.reference, result.text)
                out.append({"name": u.name, "errors": errors, "words": words, "wer": errors / max(words, 1),
                            "ms": result.duration_ms, "text": result.text, "loop_guarded": result.loop_guarded,
                            "loops": has_loop(result.text)})
            if progress:
                print(f"{i + 1}/{len(utterances)} {u.name}", file=sys.stderr, flush=True)
    finally:
        for transcriber in transcribers:
            transcriber.close()
    results = [{"label": v.label, "vad_filter": v.vad_filter, "settings": asdict(v.settings), **_figures(r),
                "rows": r} for v, r in zip(variants, rows, strict=True)]
    current, plain = results[0], results[1]
    return {
        "corpus": f"asterisk-core-sounds-fr, even positions, 8 kHz ({len(utterances)} utterances, "
                  f"{seconds / 60:.1f} min)",
        "variants": results,
        "no_worse_than_plain": current["wer_corpus"] <= plain["wer_corpus"] + 1e-9,
    }


def format_report(result: dict) -> str:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    first = result["variants"][0]
    lines = [(f"corpus: {result['corpus']}; 'sentences': the {first['sentences']} references of "
              f"{SENTENCE_WORDS} words or more")]
    lines.append(f"{'settings':<44}{'WER mean':>9}{'corpus':>8}{'sentences':>10}{'short':>8}"
                 f"{'p50 ms':>8}{'p95 ms':>8}{'loops':>6}{'n':>5}")
    for v in result["variants"]:
        lines.append(f"{v['label']:<44}{pct(v['wer_mean']):>9}{pct(v['wer_corpus']):>8}"
                     f"{pct(v['wer_corpus_sentences']):>10}{pct(v['wer_corpus_short']):>8}"
                     f"{v['decode_ms_p50']:>8.0f}{v['decode_ms_p95']:>8.0f}{v['loops']:>6}{v['utterances']:>5}")
    lines.append("current settings no worse than plain Whisper base (corpus WER): "
                 + ("yes" if result["no_worse_than_plain"] else "NO"))
    return "\n".join(lines)


def main(*, limit: int = 0, as_json: bool = False, sweep: bool = False, progress: bool = False) -> int:
    if not TRANSCRIPTS.is_file():
        print(f"error: {TRANSCRIPTS} not found: install the Debian package asterisk-core-sounds-fr "
              "(make setup does)", file=sys.stderr)
        return 1
    result = run_stt_bench(limit=limit, sweep=sweep, progress=progress)
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(format_report(result))
    return 0 if result["no_worse_than_plain"] else 1

"""voice/stt.py on real recorded French telephone prompts (Debian asterisk-core-sounds-fr),
and the `callbot transcribe` command.

Only utterances at even positions of the name-sorted list are used: odd ones are kept
for external evaluation. "Even" is checked both in the sorted list of the top-level
WAV files and in the sorted list of every transcribed utterance (with sub-folders),
so the choice is even whichever way the list is read.
"""

from __future__ import annotations

import gzip
import re
import subprocess
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from voice.stt import STTSettings, Transcriber, load_audio_16k

ROOT = Path(__file__).resolve().parent.parent
SOUNDS = Path("/usr/share/asterisk/sounds/fr")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-fr/core-sounds-fr.txt.gz")
CALLBOT = ROOT / ".venv" / "bin" / "callbot"

# 8 prompts of 2.5 to 7.5 s without digits (digits make the reference ambiguous).
PROMPTS = (
    "agent-alreadyon",
    "agent-newlocation",
    "agent-user",
    "at-tone-time-exactly",
    "confbridge-lock-no-join",
    "dir-nomatch",
    "enter-num-blacklist",
    "info-about-last-call",
)
# Typos in the published transcripts (the speaker says the word correctly).
REFERENCE_TYPOS = {"présentemnet": "présentement", "verouillée": "verrouillée"}

# Measured on 2026-11-24 (Whisper base int8, STTSettings() defaults: beam 1, no VAD
# filter, 2 threads): mean WER 30.9 % over these 8 prompts, per prompt 0 % (dir-nomatch)
# to 58 % (agent-newlocation: "dièse" heard as "d'hierse"). Most errors are French
# homophones the strict WER counts ("composé"/"composez", "appuyer"/"appuyez"); FIELD-NOTES'
# 17 % was over the whole set with beam 5. Bound: measured + about 10 points.
MEASURED_MEAN_WER = 0.309
MEAN_WER_BOUND = 0.41

pytestmark = pytest.mark.skipif(not TRANSCRIPTS.is_file(), reason="asterisk-core-sounds-fr-wav not installed")


def normalise_words(text: str) -> list[str]:
    """Lowercase, accents stripped, punctuation and apostrophes as word breaks."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", text).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(len(ref), 1)


def test_word_error_rate_itself():
    assert word_error_rate("Aucune entrée ne correspond.", "aucune entree ne correspond") == 0
    assert word_error_rate("un deux trois quatre", "un trois quatre cinq") == 0.5
    assert word_error_rate("l'heure", "l heure") == 0


def read_transcripts() -> dict[str, str]:
    out = {}
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8") as f:
        for line in f:
            if ":" in line and not line.startswith(";"):
                name, text = line.split(":", 1)
                out[name.strip()] = text.strip()
    return out


def reference(text: str) -> str:
    text = text.replace("…", " ").replace("...", " ")
    for typo, word in REFERENCE_TYPOS.items():
        text = text.replace(typo, word)
    return text


@pytest.fixture(scope="module")
def transcripts() -> dict[str, str]:
    return read_transcripts()


def test_prompts_are_at_even_positions(transcripts):
    top_level = sorted(p.stem for p in SOUNDS.glob("*.wav"))
    every = sorted(name for name in transcripts if (SOUNDS / f"{name}.wav").is_file())
    for name in PROMPTS:
        assert top_level.index(name) % 2 == 0, name
        assert every.index(name) % 2 == 0, name
        assert transcripts[name]


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber(STTSettings())


def test_asterisk_prompts_mean_wer(transcriber, transcripts):
    rates = {}
    for name in PROMPTS:
        audio = load_audio_16k(str(SOUNDS / f"{name}.wav"))
        assert audio.dtype == np.float32 and audio.ndim == 1
        result = transcriber.transcribe(audio)
        assert 0.0 < result.confidence <= 1.0
        rates[name] = word_error_rate(reference(transcripts[name]), result.text)
        print(f"{name}: WER {rates[name]:.0%}  {result.text!r}")
    mean = sum(rates.values()) / len(rates)
    print(f"mean WER {mean:.1%} (measured when written: {MEASURED_MEAN_WER:.1%})")
    assert mean < MEAN_WER_BOUND, rates
    assert max(rates.values()) < 0.75, rates  # no prompt lost entirely (loops, empty output)


def test_silence_gives_no_text(transcriber):
    result = transcriber.transcribe(np.zeros(16_000 * 2, dtype=np.float32), vad_filter=True)
    assert result.text == ""
    assert result.confidence == 0.0


def test_load_audio_16k_resamples(tmp_path):
    src = SOUNDS / "dir-nomatch.wav"
    audio_8k = load_audio_16k(str(src))
    stereo_44k = tmp_path / "stereo44k.wav"
    subprocess.run(["sox", str(src), "-r", "44100", "-c", "2", str(stereo_44k)], check=True)
    audio_44k = load_audio_16k(str(stereo_44k))
    assert audio_44k.dtype == np.float32 and audio_44k.ndim == 1
    assert abs(len(audio_44k) - len(audio_8k)) <= 16  # same duration at 16 kHz


# --------------------------------------------------------------------- the CLI


def run_cli(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CALLBOT), "transcribe", *map(str, files)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_cli_transcribes_8k_and_44k_files(tmp_path, transcripts):
    wav_8k = SOUNDS / "dir-nomatch.wav"
    flac_44k = tmp_path / "dir-nomatch-44k.flac"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(wav_8k), "-ar", "44100", str(flac_44k)], check=True
    )
    done = run_cli(wav_8k, flac_44k)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    expected = reference(transcripts["dir-nomatch"])
    for line, path in zip(lines, (wav_8k, flac_44k), strict=True):
        name, text = line.split("\t")
        assert name == str(path)
        assert word_error_rate(expected, text) <= 0.2, line
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "content",
    [b"RIFF\x24\x00\x00\x00WAVEfmt garbage" + bytes(range(256)) * 40, b""],
    ids=["corrupt", "empty"],
)
def test_cli_reports_unreadable_audio(tmp_path, content):
    bad = tmp_path / "appel.wav"
    bad.write_bytes(content)
    good = SOUNDS / "dir-nomatch.wav"
    done = run_cli(bad, good)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith(f"{bad}\t")]
    assert len(errors) == 1, done.stderr
    assert "error" in errors[0] and "cannot read audio" in errors[0]
    # The other file is still transcribed.
    assert done.stdout.startswith(f"{good}\t")
    assert str(bad) not in done.stdout


def test_cli_missing_file(tmp_path):
    missing = tmp_path / "absent.wav"
    done = run_cli(missing)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert f"{missing}\t" in done.stderr and "No such file" in done.stderr

"""voice/stt.py on real recorded French telephone prompts (Debian asterisk-core-sounds-fr)
and on domain sentences in voices the bot does not use; the loop guard; the Whisper
thread; the `callbot transcribe` command; and the CI rule that a skip is a failure.

Only utterances at even positions of the name-sorted list are used: odd ones are kept
for external evaluation. "Even" is checked both in the sorted list of the top-level
WAV files and in the sorted list of every transcribed utterance (with sub-folders),
so the choice is even whichever way the list is read (bot/bench_stt.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bot.bench_stt import (
    PLAIN_BASE,
    SENTENCE_WORDS,
    SOUNDS,
    TRANSCRIPTS,
    even_utterances,
    french_number,
    normalise_words,
    read_transcripts,
    reference,
    word_error_rate,
    word_errors,
)
from voice.stt import (
    FITTED_MAX_S,
    STTSettings,
    Transcriber,
    Transcript,
    cut_loops,
    has_loop,
    load_audio_16k,
    reads_back_hotwords,
    without_non_words,
)

__all__ = ["word_error_rate"]  # tests/test_tts.py scores its round trips with it

ROOT = Path(__file__).resolve().parent.parent
CALLBOT = ROOT / ".venv" / "bin" / "callbot"

needs_sounds = pytest.mark.skipif(
    not TRANSCRIPTS.is_file(), reason="Debian asterisk-core-sounds-fr (and -wav) not installed: run make setup"
)

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
# Measured on 2026-12-06 (Whisper base int8, STTSettings() defaults: hotwords, beam 5,
# encoder window fitted to the audio, no VAD filter, loop guard, 2 threads): mean WER 27.5 %
# over these 8 prompts (29.1 % with the 30 s window); plain Whisper base 37.4 %, the former
# prompt and penalties 29.6 %. CTranslate2 on CPU may change a word between runs
# ("dièse"/"dies"). Most errors are French homophones the strict WER counts
# ("composé"/"composez"). Bound: measured + about 10 points.
MEASURED_MEAN_WER = 0.275
MEAN_WER_BOUND = 0.39

# The comparison with plain Whisper base: the 27 even utterances of 3 words or more and
# the first 5 shorter ones by name (isolated words: "activé", "merci", "un"...), 32 in all,
# both decoded here (about 40 s on 2 idle cores). Measured 2026-12-06 in this test: 16.4 %
# with STTSettings() (a 12 s encoder window; 14.7 % with the 30 s window, 14.0 % with a
# 20 s one, at 0.6 s a decode instead of 0.4), plain Whisper base 17.4 %; on all 110
# utterances (`callbot bench stt`) 29.3 % against 40.1 %.
COMPARED_SENTENCES = 27
COMPARED_SHORT = 5
MEASURED_SUBSET_WER = 0.164
SUBSET_WER_BOUND = 0.22
# CTranslate2 on CPU may decode a word differently from one process to the next (what
# was decoded before changes the rounding): on 40 utterances greedy plain base made
# 21.8 % in one run and 25.1 % in another, STTSettings() 17.2 % in both. One point here
# is 3 words.
NUMERIC_NOISE = 0.01

# Isolated words on which Whisper base looped at 8 kHz in some runs and not in others
# ("Sainte-de-de-de-...", "Quatre-quatre-...", "et de la vie de la vie ..."), at beam 1,
# plain or with the hotwords: whether it loops depends on rounding that changes from one
# process to the next, so the guard must be there whatever a run shows.
LOOPING_WORDS = ("digits/day-6", "digits/h-14", "digits/h-8", "digits/mon-5")
# Short prompts that looped when the encoder saw only the audio and 1 s of silence ("Merci
# Merci Merci", "pose pose pose pause pose pose"): the fitted window is 12 s at least.
SHORT_WINDOW_LOOPS = ("auth-thankyou", "confbridge-leave-in", "dictate/pause", "dictate/playback_mode")


@pytest.fixture(scope="module")
def transcripts() -> dict[str, str]:
    return read_transcripts()


@pytest.fixture(scope="module")
def transcriber() -> Iterator[Transcriber]:
    t = Transcriber(STTSettings())
    yield t
    t.close()


@pytest.fixture(scope="module")
def transcriber_beam_1(transcriber) -> Iterator[Transcriber]:
    t = Transcriber(replace(transcriber.settings, beam_size=1), model=transcriber.model)
    yield t
    t.close()


# --------------------------------------------------------------- scoring itself


def test_word_error_rate_itself():
    assert word_error_rate("Aucune entrée ne correspond.", "aucune entree ne correspond") == 0
    assert word_error_rate("un deux trois quatre", "un trois quatre cinq") == 0.5
    assert word_error_rate("l'heure", "l heure") == 0
    assert word_error_rate("appuyez sur 1", "appuyez sur un") == 0
    assert word_errors("pour reculer 7", "pour reculer sept.") == (0, 3)


def test_french_numbers():
    assert [french_number(n) for n in (0, 17, 21, 71, 80, 91, 100, 342)] == [
        "zero", "dix-sept", "vingt et un", "soixante et onze", "quatre-vingt", "quatre-vingt onze",
        "cent", "trois cent quarante deux"]


def test_references_are_cleaned():
    assert reference("Cette conférence est verouillée…") == "Cette conférence est verrouillée"
    assert reference("Pour (emphase)") == "Pour"
    assert reference("[ascending tones]") == ""


# ------------------------------------------------------------ the loop guard


def test_loop_detection():
    assert has_loop("en en en en en en")
    assert has_loop("Sainte-de-de-de-de-de-de")
    assert has_loop("et de la vie de la vie de la vie de la vie de la")
    assert not has_loop("non non non, ce n'est pas ça")
    assert not has_loop("Pour accepter cet appel, appuyez sur 1, pour le refuser, appuyez sur 2.")
    assert cut_loops("en en en en en en en. Merci") == "en. Merci"
    assert cut_loops("et de la vie de la vie de la vie de la vie de la") == "et de la vie"
    assert cut_loops("Sainte-de-de-de-de-de") == "Sainte-de"
    assert cut_loops("Bonjour, mon SIRET.") == "Bonjour, mon SIRET."
    # A long word group said three times (Whisper on a question through G.711), not twice.
    looped = ("de retard alors que je paye avec juste deux jours de retard alors que je paye avec juste "
              "deux jours de retard alors que je paye avec juste deux jours de retard.")
    assert has_loop(looped)
    assert cut_loops(looped) == "de retard alors que je paye avec juste deux jours."
    assert not has_loop("je ne sais pas, je ne sais pas comment faire")


def test_a_hum_read_as_one_letter_group_over_and_over_is_no_word():
    """Whisper on a hum: "MMMMMMMM", "Ahemememem"; words, numbers and "non non" stay."""
    assert without_non_words("MMMMMMMMMMMMMMMMMMMMMMMM") == ""
    assert without_non_words("Ashemememememememememem") == ""
    assert without_non_words("Mmmmh. Quel est le plafond ?") == "Quel est le plafond ?"
    for kept in ("Hmm, je voudrais mon attestation.", "non non non", "10000 euros", "SIRET 73282932000074",
                 "la CFE de 2024", "ahah"):
        assert without_non_words(kept) == kept


@needs_sounds
def test_real_speech_never_needs_the_tokens_a_looping_decode_is_stopped_at(transcriber):
    """The cap on Whisper's tokens (twice the fastest real speech) never cuts a caller:
    every even utterance of the corpus, written as Whisper writes it, fits well under it."""
    from faster_whisper.tokenizer import Tokenizer

    from voice.stt import max_new_tokens

    tokenizer = Tokenizer(transcriber.model.hf_tokenizer, True, task="transcribe", language="fr")
    for u in even_utterances():
        samples = len(load_audio_16k(str(u.path)))
        needed = len(tokenizer.encode(" " + u.reference.capitalize() + "."))
        assert needed * 1.5 <= max_new_tokens(samples), (u.name, needed, max_new_tokens(samples))


@needs_sounds
def test_a_decode_stops_at_the_tokens_its_audio_could_hold(transcriber, monkeypatch):
    """The real decoder is given the cap: lowered to 4 tokens, a sentence comes out cut to 4 words at most."""
    from voice import stt

    u = next(u for u in even_utterances() if len(u.reference.split()) >= 7)
    audio = load_audio_16k(str(u.path))
    whole = transcriber.transcribe(audio).text
    monkeypatch.setattr(stt, "MAX_TOKENS_BASE", 4)
    monkeypatch.setattr(stt, "MAX_TOKENS_PER_S", 0.0)
    cut = transcriber.transcribe(audio).text
    assert len(whole.split()) >= 7 and 0 < len(cut.split()) <= 4, (whole, cut)


def test_loop_guard_decodes_again_then_cuts(transcriber, monkeypatch):
    calls = []

    def looping(audio, *, vad_filter, guarded, hotwords=True):
        calls.append(guarded)
        text = " et de la vie de la vie de la vie de la vie de la vie" if not guarded else " de la vie de la vie de la vie de la vie"
        return [SimpleNamespace(text=text, no_speech_prob=0.1, avg_logprob=-0.5)]

    monkeypatch.setattr(transcriber, "_decode", looping)
    result = transcriber.transcribe(np.zeros(48_000, dtype=np.float32))
    assert calls == [False, True]
    assert result.loop_guarded and result.text == "de la vie"


def test_hotwords_read_back_are_recognised():
    hotwords = STTSettings().hotwords
    for copied in ("Urssaf, SIRET, ACRE, auto-entrepreneur, cotisations", "Urssaf, ACRE, amèque la somme",
                   "Oui, à l'endroit de l'étranger de cotisations, cotisations, attestation de vigilance."):
        assert reads_back_hotwords(copied, hotwords), copied
    for said in ("Mon compte bancaire a été bloqué par l'Urssaf pour des cotisations impayées.",
                 "je suis auto-entrepreneur, j'ai demandé l'ACRE à l'Urssaf", "Urssaf", ""):
        assert not reads_back_hotwords(said, hotwords), said


def test_hotwords_read_back_are_decoded_again_without_them(transcriber, monkeypatch):
    calls = []

    def copying(audio, *, vad_filter, guarded, hotwords=True):
        calls.append(hotwords)
        text = " Urssaf, SIRET, ACRE, auto-entrepreneur" if hotwords else " Je voudrais un rendez-vous."
        return [SimpleNamespace(text=text, no_speech_prob=0.1, avg_logprob=-0.5)]

    monkeypatch.setattr(transcriber, "_decode", copying)
    result = transcriber.transcribe(np.zeros(16_000, dtype=np.float32))
    assert calls == [True, False]
    assert result.text == "Je voudrais un rendez-vous."


def test_more_words_than_the_audio_could_hold_is_no_text(transcriber, monkeypatch):
    invented = SimpleNamespace(text=" et j'ai fait ce que je suis capable de faire, mais c'est pas très simple.",
                               no_speech_prob=0.1, avg_logprob=-1.6)
    monkeypatch.setattr(transcriber, "_decode", lambda audio, **kw: [invented])
    assert transcriber.transcribe(np.zeros(16_000, dtype=np.float32)).text == ""   # 15 words in 1 s
    assert transcriber.transcribe(np.zeros(48_000, dtype=np.float32)).text.startswith("et j'ai fait")


def test_punctuation_alone_is_no_text(transcriber, monkeypatch):
    segment = SimpleNamespace(text=" ? ? ? ?", no_speech_prob=0.1, avg_logprob=-0.5)
    monkeypatch.setattr(transcriber, "_decode", lambda audio, **kw: [segment])
    result = transcriber.transcribe(np.zeros(16_000, dtype=np.float32))
    assert (result.text, result.confidence) == ("", 0.0)


def test_plain_whisper_base_is_plain():
    s = PLAIN_BASE.settings
    assert (s.model, s.beam_size, s.initial_prompt, s.hotwords) == ("base", 1, "", "")
    assert (s.repetition_penalty, s.no_repeat_ngram_size, s.loop_guard) == (1.0, 0, False)
    assert PLAIN_BASE.vad_filter


def test_settings_are_checked():
    with pytest.raises(ValueError, match="beam_size"):
        STTSettings(beam_size=0)
    with pytest.raises(ValueError, match="no_speech_threshold"):
        STTSettings(no_speech_threshold=1.5)


# ---------------------------------------------------------- real telephone speech


@needs_sounds
def test_prompts_are_at_even_positions(transcripts):
    top_level = sorted(p.stem for p in SOUNDS.glob("*.wav"))
    every = sorted(name for name in transcripts if (SOUNDS / f"{name}.wav").is_file())
    for name in PROMPTS:
        assert top_level.index(name) % 2 == 0, name
        assert every.index(name) % 2 == 0, name
        assert transcripts[name]


@needs_sounds
def test_bench_corpus_is_even_both_ways(transcripts):
    top_level = sorted(p.stem for p in SOUNDS.glob("*.wav"))
    every = sorted(name for name in transcripts if (SOUNDS / f"{name}.wav").is_file())
    used = even_utterances()
    assert len(used) == 110
    for u in used:
        assert every.index(u.name) % 2 == 0, u.name
        assert "/" in u.name or top_level.index(u.name) % 2 == 0, u.name
        assert u.reference


@needs_sounds
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


@needs_sounds
def test_no_worse_than_plain_whisper_base(transcriber):
    used = even_utterances()
    sentences = [u for u in used if len(normalise_words(u.reference)) >= SENTENCE_WORDS]
    short = [u for u in used if len(normalise_words(u.reference)) < SENTENCE_WORDS]
    assert len(sentences) == COMPARED_SENTENCES
    subset = sentences + short[:COMPARED_SHORT]
    plain = Transcriber(PLAIN_BASE.settings, model=transcriber.model)
    totals = {"settings": [0, 0], "plain": [0, 0]}
    try:
        for u in subset:
            audio = load_audio_16k(str(u.path))
            for key, t, vad in (("settings", transcriber, False), ("plain", plain, PLAIN_BASE.vad_filter)):
                errors, words = word_errors(u.reference, t.transcribe(audio, vad_filter=vad).text)
                totals[key][0] += errors
                totals[key][1] += words
    finally:
        plain.close()
    ours, theirs = (errors / words for errors, words in totals.values())
    print(f"corpus WER on {len(subset)} utterances: settings {ours:.1%} (measured {MEASURED_SUBSET_WER:.1%}), "
          f"plain Whisper base {theirs:.1%}")
    assert ours <= theirs + NUMERIC_NOISE
    assert ours < SUBSET_WER_BOUND


@needs_sounds
@pytest.mark.parametrize("beam", [5, 1])
@pytest.mark.parametrize("name", LOOPING_WORDS + SHORT_WINDOW_LOOPS)
def test_no_repetition_loop_on_8k_audio(transcriber, transcriber_beam_1, name, beam):
    audio = load_audio_16k(str(SOUNDS / f"{name}.wav"))  # 8 kHz telephone audio
    result = (transcriber_beam_1 if beam == 1 else transcriber).transcribe(audio)
    print(f"{name}: {result.text!r} (guarded: {result.loop_guarded}, {result.duration_ms} ms)")
    assert not has_loop(result.text)
    assert len(result.text.split()) <= 12, result.text  # no runaway text (a word was said)
    assert result.duration_ms < 20_000  # not 448 tokens of loop, decoded twice


def test_turns_are_encoded_in_a_window_fitted_to_them(transcriber, monkeypatch):
    """Not the 30 s window faster-whisper pads every segment to (3000 mel frames): the
    encoder is most of a decode's time on CPU."""
    frames = []
    encode = transcriber.model.encode
    monkeypatch.setattr(transcriber.model, "encode", lambda f: frames.append(f.shape[-1]) or encode(f))
    for seconds in (3, 20, 40):
        frames.clear()
        transcriber.transcribe(np.zeros(16_000 * seconds, dtype=np.float32))
        window_s = max(seconds + transcriber.settings.window_pad_s, transcriber.settings.min_window_s)
        expected = {3000} if seconds > FITTED_MAX_S else {int(window_s * 100), int(window_s * 100) + 2}
        assert frames and set(frames) <= expected, (seconds, frames)
    assert transcriber.settings.min_window_s == 12.0 and transcriber.settings.window_pad_s == 2.0


def test_silence_gives_no_text(transcriber):
    silence = np.zeros(16_000 * 2, dtype=np.float32)
    for vad_filter in (True, False):  # the pipeline decodes without the filter
        result = transcriber.transcribe(silence, vad_filter=vad_filter)
        assert result.text == "", vad_filter  # not the hotwords read back
        assert result.confidence == 0.0


def test_line_noise_gives_no_domain_words(transcriber):
    hiss = (np.random.default_rng(3).normal(0, 0.01, 16_000 * 2)).astype(np.float32)
    text = transcriber.transcribe(hiss).text.lower()
    assert not any(term in text for term in ("urssaf", "siret", "acre", "cotisation", "vigilance")), text


@needs_sounds
def test_load_audio_16k_resamples(tmp_path):
    src = SOUNDS / "dir-nomatch.wav"
    audio_8k = load_audio_16k(str(src))
    stereo_44k = tmp_path / "stereo44k.wav"
    subprocess.run(["sox", str(src), "-r", "44100", "-c", "2", str(stereo_44k)], check=True)
    audio_44k = load_audio_16k(str(stereo_44k))
    assert audio_44k.dtype == np.float32 and audio_44k.ndim == 1
    assert abs(len(audio_44k) - len(audio_8k)) <= 16  # same duration at 16 kHz


# ------------------------------------------------- domain words, voices not the bot's

# Short domain sentences in Kokoro 'jm_kumo' (the simulated caller's voice) and espeak-ng,
# at 16 kHz. Measured 2026-12-06 on 8 such sentences in both voices: domain terms heard
# 10 of 22 with STTSettings(), 10 with the former prompt, 4 with plain Whisper base
# (which writes "l'Ursafe", "Zoton Otopana" for auto-entrepreneur, "attestation de mes
# violences"). These are the ones STTSettings() gets.
DOMAIN_SENTENCES = (
    ("kumo", "L'Urssaf me demande des cotisations.", ("urssaf", "cotisations")),
    ("kumo", "Je suis auto-entrepreneur depuis mars.", ("auto entrepreneur",)),
    ("espeak", "Je voudrais mon attestation de vigilance.", ("attestation de vigilance",)),
)


def _espeak(text: str, path: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", "fr", "-s", "130", "-w", str(path), text], check=True)
    return load_audio_16k(str(path))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs Debian espeak-ng")
def test_domain_words_are_heard(transcriber, tmp_path):
    from bot.caller_sim import CallerVoice

    kumo = CallerVoice("jm_kumo")
    missing = []
    for voice, text, terms in DOMAIN_SENTENCES:
        if voice == "kumo":
            audio = kumo.say(text).astype(np.float32) / 32768.0
        else:
            audio = _espeak(text, tmp_path / "sentence.wav")
        heard = " ".join(normalise_words(transcriber.transcribe(audio).text))
        print(f"{voice}: {text!r} -> {heard!r}")
        missing += [term for term in terms if term not in heard]
    assert not missing, missing


# ------------------------------------------------------------ the Whisper thread


async def test_transcribe_async_runs_on_the_whisper_thread(transcriber, monkeypatch):
    threads: list[str] = []
    running = 0
    most_at_once = 0

    def slow_transcribe(audio: np.ndarray, *, vad_filter: bool = False) -> Transcript:
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        threads.append(threading.current_thread().name)
        time.sleep(0.3)
        running -= 1
        return Transcript(text="bonjour", confidence=0.9, duration_ms=300)

    monkeypatch.setattr(transcriber, "transcribe", slow_transcribe)
    audio = np.zeros(1600, dtype=np.float32)
    decoding = [asyncio.ensure_future(transcriber.transcribe_async(audio, vad_filter=True)) for _ in range(3)]
    await asyncio.sleep(0.05)
    # Meanwhile the default executor (cached replies, other calls' I/O) answers at once.
    started = time.perf_counter()
    assert await asyncio.to_thread(threading.current_thread) is not threading.main_thread()
    assert time.perf_counter() - started < 0.2
    results = await asyncio.gather(*decoding)
    assert [r.text for r in results] == ["bonjour"] * 3
    assert most_at_once == 1  # one segment at a time on the shared model
    assert len(set(threads)) == 1 and threads[0].startswith("whisper"), threads


async def test_a_cancelled_segment_is_not_decoded(transcriber, monkeypatch):
    decoded = []

    def slow_transcribe(audio: np.ndarray, *, vad_filter: bool = False) -> Transcript:
        decoded.append(len(audio))
        time.sleep(0.2)
        return Transcript(text="oui", confidence=0.9, duration_ms=200)

    monkeypatch.setattr(transcriber, "transcribe", slow_transcribe)
    first = asyncio.ensure_future(transcriber.transcribe_async(np.zeros(1600, dtype=np.float32)))
    stale = asyncio.ensure_future(transcriber.transcribe_async(np.zeros(3200, dtype=np.float32)))
    await asyncio.sleep(0.05)
    stale.cancel()  # a speculative decode the caller's next words made stale, still queued
    assert (await first).text == "oui"
    await asyncio.sleep(0.3)
    assert decoded == [1600]


@needs_sounds
async def test_transcribe_async_real_audio(transcriber, transcripts):
    audio = load_audio_16k(str(SOUNDS / "dir-nomatch.wav"))
    result = await transcriber.transcribe_async(audio)
    assert word_error_rate(reference(transcripts["dir-nomatch"]), result.text) <= 0.2, result.text


async def test_close_stops_the_whisper_thread(transcriber):
    own = Transcriber(STTSettings(), model=transcriber.model)
    own.close()
    with pytest.raises(RuntimeError, match="shutdown"):
        await own.transcribe_async(np.zeros(1600, dtype=np.float32))


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


@needs_sounds
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


@needs_sounds
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


# ------------------------------------------------ CI: a skipped test is a failure

TINY_TESTS = '''
import pytest

def test_runs():
    pass

@pytest.mark.skipif(True, reason="transcripts file missing")
def test_needs_data():
    pass

def test_needs_tool():
    pytest.skip("baresip not installed")

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    assert False
'''


@pytest.mark.parametrize("ci", ["true", "1", ""])
def test_skips_fail_in_ci(tmp_path, ci):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_tiny.py").write_text(TINY_TESTS)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": ci} if ci else {})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, check=False,
    )
    out = done.stdout
    if ci:
        assert done.returncode == 1, out
        assert "transcripts file missing" in out and "baresip not installed" in out
        assert "1 passed" in out and "1 xfailed" in out and "skipped" not in out.splitlines()[-1]
    else:
        assert done.returncode == 0, out
        assert "1 passed, 2 skipped, 1 xfailed" in out


def test_a_transcript_longer_than_the_audio_is_decoded_again_not_dropped(transcriber):
    """Whisper base wrote one clause of a question three times over (46 words for 7.6 s of
    a call through G.711): more than the audio could hold, so the turn was dropped and the
    caller heard nothing back. It is decoded again with the anti-loop options first; only
    what is still too long is dropped."""

    class Scripted(Transcriber):
        """The real decoder's filters and decisions, on scripted decodes."""

        def __init__(self, texts: dict[bool, str]) -> None:
            super().__init__(transcriber.settings, model=transcriber.model)
            self.texts, self.asked = texts, []

        def _decode(self, audio, *, vad_filter, guarded, hotwords=True):
            self.asked.append(guarded)
            return [SimpleNamespace(text=self.texts[guarded], avg_logprob=-0.3, no_speech_prob=0.0)]

    seconds = np.zeros(int(7.6 * 16000), dtype=np.float32)
    loop = "de hâte à l'or que je paye avec juste deux jours " * 4 + "en salarie avec un peu de retard"
    said = "On me réclame des majorations de retard alors que j'ai payé avec juste deux jours de retard."
    redone = Scripted({False: loop, True: said})
    assert redone.transcribe(seconds).text == said and redone.asked == [False, True]
    # Still looping once decoded again: the loop is cut; text the audio could never hold
    # without repeating itself is dropped.
    cut = Scripted({False: loop, True: loop + " " + loop})
    assert cut.transcribe(seconds).text == "de hâte à l'or que je paye avec juste deux jours en salarie avec un peu de retard"
    invented = " ".join(f"mot{i}" for i in range(50))
    dropped = Scripted({False: invented, True: invented})
    assert dropped.transcribe(seconds).text == "" and dropped.asked == [False, True]


def test_a_question_through_the_phone_with_pauses_is_heard(transcriber):
    """The question whose transcript looped (the test above), as a call brings it: Kokoro,
    two pauses, G.711 and back through the media stream's resampler."""
    from bot.bench_turns import Item, Renderer
    from voice.codecs import StreamResampler, pcm16_to_ulaw, resample, ulaw_to_pcm16

    item = Item("q043-clauses", "clauses", "jf_nezumi", ("On me réclame des majorations de retard",
                "alors que j'ai payé", "avec juste deux jours de retard."), pauses=(1.18, 0.95))
    with tempfile.TemporaryDirectory() as cache:
        audio = Renderer(Path(cache)).render(item, lead_s=0.2, tail_s=0.0).audio
    phone = ulaw_to_pcm16(pcm16_to_ulaw(resample(audio.astype(np.int16), 16000, 8000).tobytes()))
    heard = np.frombuffer(StreamResampler(8000, 16000).process(phone, last=True), dtype=np.int16)
    result = transcriber.transcribe(heard.astype(np.float32) / 32768)
    print(f"{result.text!r} (guarded: {result.loop_guarded})")
    assert "deux jours" in result.text and not has_loop(result.text)

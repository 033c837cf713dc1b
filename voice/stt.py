"""French speech recognition with faster-whisper: one shared model, production decoding.

Decoding was chosen on real French telephone speech (`callbot bench stt --sweep`, README
'Measured'): the domain vocabulary is given as faster-whisper `hotwords` (a short list of
terms, not a sentence to imitate), no repetition penalties, beam 5; a loop guard decodes
again with the anti-loop options only when the text repeats itself.

Whisper's encoder is trained on 30 s windows and faster-whisper always pads to one: on two
CPU cores that costs about 0.75 s whatever the length of the turn, most of the time a caller
waits for their answer. A turn is encoded in a window fitted to it (12 s, or its audio and
2 s of silence): about three times faster, and as accurate on real telephone speech
(`callbot bench stt --sweep`).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger("callbot.voice.stt")

# The former production prompt: a whole sentence of domain words. Kept for comparison
# (`callbot bench stt --sweep`): with the penalties it made 20.9 % WER on real telephone
# sentences, the hotwords 13.9 %.
DOMAIN_PROMPT = (
    "Appel à l'Urssaf. Auto-entrepreneur, micro-entreprise, chiffre d'affaires, "
    "cotisations, déclaration, attestation de vigilance, SIRET, ACRE, conseiller."
)
# Without them Whisper base writes "l'Ursafe", "Zoton Otopana" for auto-entrepreneur,
# "attestation de mes violences" (tests/test_stt.py, voices not the bot's).
DOMAIN_HOTWORDS = "Urssaf, SIRET, ACRE, auto-entrepreneur, cotisations, attestation de vigilance"


# What Whisper writes on noise, music or silence: subtitles credits learnt from its
# training data. Such a transcript means nothing was said.
HALLUCINATIONS = re.compile(
    r"sous-titr|amara\.org|merci d'avoir regard|abonnez-vous|radio-canada|"
    r"n'oubliez pas de vous abonner|www\.|\.com\b",
    re.IGNORECASE,
)

# A word group said this many times in a row is a decoding loop ("en en en en ..."),
# not speech: people say "non non non", not four times. A group of LONG_GROUP words or
# more said three times is one too: Whisper on a question through G.711 wrote "de hâte à
# l'or que je paye avec juste deux jours" three times over.
LOOP_REPEATS = 4
LOOP_MAX_NGRAM = 12
LONG_GROUP = 4
LONG_GROUP_REPEATS = 3


@dataclass(frozen=True)
class STTSettings:
    model: str = "base"               # 'base' (shipped) or a CTranslate2 model folder
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 2
    beam_size: int = 5
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0
    no_speech_threshold: float = 0.6
    initial_prompt: str = ""
    hotwords: str = DOMAIN_HOTWORDS
    # When the text loops: decode again with these, then cut what still repeats.
    loop_guard: bool = True
    # The encoder sees the audio and window_pad_s of silence, min_window_s at least, not a
    # 30 s window (audio longer than FITTED_MAX_S, or filtered by VAD, is decoded the usual
    # way). Shorter windows loop on short words ("Merci Merci Merci"): 1 s of padding alone
    # made 46 % WER on the asterisk prompts, a 12 s window 29.3 % (30 s: 30.6 %).
    fitted_window: bool = True
    window_pad_s: float = 2.0
    min_window_s: float = 12.0
    guard_no_repeat_ngram_size: int = 3
    guard_repetition_penalty: float = 1.1

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, not {self.beam_size}")
        if self.cpu_threads < 0:
            raise ValueError(f"cpu_threads must be 0 (all) or more, not {self.cpu_threads}")
        if self.repetition_penalty <= 0 or self.guard_repetition_penalty <= 0:
            raise ValueError("repetition penalties must be positive (1.0 is none)")
        if self.no_repeat_ngram_size < 0 or self.guard_no_repeat_ngram_size < 0:
            raise ValueError("no_repeat_ngram_size must be 0 (off) or more")
        if self.window_pad_s < 0 or not 0 <= self.min_window_s <= 30:
            raise ValueError("window_pad_s must be 0 or more and min_window_s within 0..30 s")
        if not 0.0 <= self.no_speech_threshold <= 1.0:
            raise ValueError(f"no_speech_threshold must be within 0..1, not {self.no_speech_threshold}")


FITTED_MAX_S = 28.0
# Fast French speech is 3 to 4 words a second: more than this is text Whisper invented.
MAX_WORDS_PER_S = 5.0
# Real telephone speech is at most about 6.5 tokens a second (the asterisk prompts); a
# decode stops at twice that: one that loops ("a t'a ramené, a t'a ramené...") would
# otherwise run on to Whisper's 448 tokens, 4-5 s of beam search while the caller waits.
MAX_TOKENS_BASE = 16
MAX_TOKENS_PER_S = 12.0
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class _Segment:
    """What the filters and the confidence need of a decoded segment."""

    text: str
    no_speech_prob: float
    avg_logprob: float


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float        # exp(mean log-probability of the tokens), 0..1
    duration_ms: int         # decoding time
    loop_guarded: bool = False  # the first decoding looped and was redone or cut


_WORD = re.compile(r"[^\W_]+")


def _first_loop(keys: list[str]) -> tuple[int, int, int] | None:
    """(start, n, repeats) of the first group of n words said in a row LOOP_REPEATS times or
    more (LONG_GROUP_REPEATS for a group of LONG_GROUP words or more)."""
    for start in range(len(keys)):
        for n in range(1, LOOP_MAX_NGRAM + 1):
            group = keys[start:start + n]
            if len(group) < n:
                break
            repeats = 1
            while keys[start + repeats * n:start + (repeats + 1) * n] == group:
                repeats += 1
            if repeats >= (LONG_GROUP_REPEATS if n >= LONG_GROUP else LOOP_REPEATS):
                return start, n, repeats
    return None


def has_loop(text: str) -> bool:
    return _first_loop(_WORD.findall(text.lower())) is not None


def cut_loops(text: str) -> str:
    """Every run of a repeated word group kept once ("de-de-de-de-de" -> "de")."""
    while True:
        words = list(_WORD.finditer(text))
        keys = [w.group().lower() for w in words]
        found = _first_loop(keys)
        if found is None:
            return text
        start, n, repeats = found
        last = start + repeats * n - 1
        while last + 1 < len(keys) and keys[last + 1] == keys[start + (last + 1 - start) % n]:
            last += 1  # the group's beginning said once more, cut short
        text = text[:words[start + n - 1].end()] + text[words[last].end():]


# A hum or a mumble comes back as a letter group said over and over in one "word"
# ("MMMMMMMM", "Ahemememem"): no French word repeats one four times in a row.
_NON_WORD = re.compile(r"\S*?([^\W\d_]{1,3}?)\1{3,}\S*", re.IGNORECASE)


def without_non_words(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", text).split())


def max_new_tokens(samples: int) -> int:
    """The most tokens Whisper may write for this much audio."""
    return int(MAX_TOKENS_BASE + MAX_TOKENS_PER_S * samples / SAMPLE_RATE)


def _could_be_said(text: str, samples: int) -> bool:
    return len(_WORD.findall(text)) <= 2 + MAX_WORDS_PER_S * samples / SAMPLE_RATE


def reads_back_hotwords(text: str, hotwords: str) -> bool:
    """Whisper copying its hotwords when it cannot make out the speech ("Urssaf, SIRET,
    ACRE, ..." on unclear audio, then routed as if said): two terms in a row with only a
    comma between them, which callers do not say."""
    terms = {t.strip().lower() for t in hotwords.split(",") if t.strip()}
    chunks = [c.strip(" .?!").lower() for c in text.split(",")]
    return any(a in terms and b in terms for a, b in itertools.pairwise(chunks))


def _joined(segments: list[Any]) -> str:
    # U+FFFD: a character whose bytes were split across tokens and never completed.
    return " ".join(" ".join(seg.text.replace("\ufffd", "").split()) for seg in segments).strip()


class Transcriber:
    """Owns the Whisper model and the one thread that decodes with it; shared by every call.

    `transcribe` blocks; `transcribe_async` runs it on the Transcriber's own executor
    (one worker: the model decodes one segment at a time), so the default executor, which
    other calls' I/O and cached replies use, never queues behind Whisper.
    """

    def __init__(self, settings: STTSettings, *, model: WhisperModel | None = None) -> None:
        """`model`: an already loaded model to decode with (benchmarks comparing settings)."""
        from faster_whisper import WhisperModel

        from models.whisper import resolve_whisper_model

        self.settings = settings
        self.model = model or WhisperModel(
            resolve_whisper_model(settings.model),
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")

    def _decode(self, audio: np.ndarray, *, vad_filter: bool, guarded: bool, hotwords: bool = True) -> list[Any]:
        s = self.settings
        if not hotwords:
            s = replace(s, hotwords="")
        if s.fitted_window and not vad_filter and len(audio) <= FITTED_MAX_S * SAMPLE_RATE:
            segments: Any = [self._decode_fitted(audio, s, guarded=guarded)]
        else:
            segments, _ = self.model.transcribe(
                audio,
                language="fr",
                task="transcribe",
                beam_size=s.beam_size,
                temperature=0.0,
                no_repeat_ngram_size=s.guard_no_repeat_ngram_size if guarded else s.no_repeat_ngram_size,
                repetition_penalty=s.guard_repetition_penalty if guarded else s.repetition_penalty,
                initial_prompt=s.initial_prompt or None,
                hotwords=s.hotwords or None,
                condition_on_previous_text=False,
                vad_filter=vad_filter,
                without_timestamps=True,
            )
        return [seg for seg in segments  # faster-whisper's decode while iterating
                if seg.no_speech_prob < s.no_speech_threshold and not HALLUCINATIONS.search(seg.text)]

    def _decode_fitted(self, audio: np.ndarray, s: STTSettings, *, guarded: bool) -> _Segment:
        """One segment decoded with the encoder window fitted to the audio; the prompt,
        the suppressed tokens and the score are faster-whisper's own."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self.model
        window = max(len(audio) / SAMPLE_RATE + s.window_pad_s, s.min_window_s)
        padded = np.concatenate([audio.astype(np.float32),
                                 np.zeros(int(window * SAMPLE_RATE) - len(audio), np.float32)])
        features = model.feature_extractor(padded)
        frames = min(features.shape[1] // 2 * 2, model.feature_extractor.nb_max_frames)  # the encoder halves it
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="fr")
        previous = tokenizer.encode(" " + s.initial_prompt.strip()) if s.initial_prompt else []
        prompt = model.get_prompt(tokenizer, previous, without_timestamps=True, hotwords=s.hotwords or None)
        result = model.model.generate(
            model.encode(features[:, :frames]),
            [prompt],
            beam_size=s.beam_size,
            repetition_penalty=s.guard_repetition_penalty if guarded else s.repetition_penalty,
            no_repeat_ngram_size=s.guard_no_repeat_ngram_size if guarded else s.no_repeat_ngram_size,
            max_length=min(model.max_length, len(prompt) + max_new_tokens(len(audio))),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=list(get_suppressed_tokens(tokenizer, [-1])),
        )[0]
        tokens = result.sequences_ids[0]
        return _Segment(text=tokenizer.decode(tokens).strip(), no_speech_prob=result.no_speech_prob,
                        avg_logprob=result.scores[0] * len(tokens) / (len(tokens) + 1))

    def transcribe(self, audio: np.ndarray, *, vad_filter: bool = False) -> Transcript:
        """16 kHz float32 mono in, French text out (blocking)."""
        started = time.perf_counter()
        kept = self._decode(audio, vad_filter=vad_filter, guarded=False)
        text = _joined(kept)
        hotwords = bool(self.settings.hotwords)
        if hotwords and reads_back_hotwords(text, self.settings.hotwords):
            log.info("the transcript reads the hotwords back: decoded again without them")
            hotwords = False
            kept = self._decode(audio, vad_filter=vad_filter, guarded=False, hotwords=False)
            text = _joined(kept)
        # More words than the audio could hold is a loop the word groups did not show
        # (or invented text): decoded again with the anti-loop options before it is dropped.
        looped = self.settings.loop_guard and (has_loop(text) or not _could_be_said(text, len(audio)))
        if looped:
            guarded = self._decode(audio, vad_filter=vad_filter, guarded=True, hotwords=hotwords)
            # The penalties can push a short word into an invented sentence ("et j'ai fait
            # ce que je suis capable de faire..." for "lundi"): then the loop, cut, is kept.
            if _could_be_said(_joined(guarded), len(audio)):
                kept = guarded
            text = cut_loops(_joined(kept))
        if not _could_be_said(text, len(audio)):
            log.info("the transcript is longer than the audio could hold (%d words in %.1f s): dropped",
                     len(_WORD.findall(text)), len(audio) / SAMPLE_RATE)
            text, kept = "", []
        text = without_non_words(text)
        if not _WORD.search(text):  # "...", "? ? ? ?": no word was heard
            text, kept = "", []
        logprob = (sum(seg.avg_logprob for seg in kept) / len(kept)) if kept else -math.inf
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        if looped:
            log.info("decoding looped: decoded again with the anti-loop options (%d ms)", elapsed_ms)
        return Transcript(
            text=text,
            confidence=round(math.exp(logprob), 3) if kept else 0.0,
            duration_ms=elapsed_ms,
            loop_guarded=looped,
        )

    async def transcribe_async(self, audio: np.ndarray, **kw: Any) -> Transcript:
        """`transcribe` on the Transcriber's own one-thread executor."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self.transcribe, audio, **kw))

    def close(self) -> None:
        """Stops the decoding thread; segments still queued are dropped."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def load_audio_16k(path: str) -> np.ndarray:
    """Any audio file (any rate, any format ffmpeg/libsndfile reads) as 16 kHz float32 mono."""
    import soundfile as sf

    from voice.codecs import resample

    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError):
        from faster_whisper.audio import decode_audio

        return decode_audio(path, sampling_rate=16000)
    mono = data.mean(axis=1)
    return resample(mono, rate, 16000).astype(np.float32)

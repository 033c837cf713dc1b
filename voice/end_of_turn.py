"""Has the caller finished their turn? Decided from the audio (smart-turn v3.2), the words
so far (a phrase left open is not a finished turn; a request said whole, by a model the
dialogue side provides: flows/turn_completeness.py) and the silence since they stopped.

Silence alone cuts natural speech: people pause 0.4-1.2 s mid-sentence ("pour
l'attestation de vigilance... elle dure combien de temps ?"). So when the caller pauses,
the policy weighs these signals into one probability that the turn is over
(`TurnWeights`) and waits little when it is high, up to `max_wait_s` when it is low or the
words leave the phrase open.
"""

from __future__ import annotations

import math
import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MODEL_RATE = 16_000
MODEL_WINDOW_S = 8  # smart-turn looks at the last 8 s of the turn

# A turn whose last word is one of these is not finished: conjunctions, prepositions,
# articles and determiners, subject and object pronouns, fillers. Lowercase, accents kept:
# "a" (has) and "là" (there) end sentences, "à" and "la" do not.
_OPEN_WORDS = frozenset((
    "et", "ou", "mais", "donc", "car", "or", "ni", "puis", "puisque", "parce", "que", "qu",
    "quand", "lorsque", "lorsqu", "si", "comme", "alors", "sinon", "à", "au", "aux", "de",
    "du", "des", "d", "en", "dans", "pour", "par", "sur", "sous", "avec", "sans", "chez",
    "vers", "entre", "depuis", "pendant", "après", "avant", "contre", "selon", "concernant",
    "jusqu", "envers", "malgré", "via", "le", "la", "les", "l", "un", "une", "mon", "ma",
    "mes", "ton", "ta", "tes", "son", "sa", "ses", "notre", "nos", "votre", "vos", "leur",
    "leurs", "ce", "cet", "cette", "ces", "quel", "quelle", "quels", "quelles", "chaque",
    "plusieurs", "certains", "certaines", "aucun", "aucune", "je", "j", "tu", "il", "elle",
    "on", "nous", "vous", "ils", "elles", "me", "m", "te", "t", "se", "s", "y", "qui", "dont",
    "lequel", "laquelle", "euh", "heu", "hum", "hmm", "bah", "ben", "beh",
    # verbs that announce what follows: "je voudrais savoir...", "je vous appelle pour..."
    "savoir", "connaître", "demander", "voudrais", "voulais", "aimerais", "souhaiterais",
    "souhaite", "veux", "faut", "dois", "peux", "appelle",
))
# Two-word endings that leave the phrase open ("c'est", "il y a", "est-ce que").
_OPEN_PAIRS = frozenset({("c", "est"), ("il", "y"), ("ce", "que"), ("est", "ce"),
                         ("j", "ai"), ("je", "suis"), ("j", "avais"), ("on", "m"), ("m", "a")})
_DETERMINERS = frozenset({"les", "des", "ces", "mes", "tes", "ses", "nos", "vos", "leurs", "tous", "toutes"})
_FILLERS = frozenset({"euh", "heu", "hum", "hmm", "bah", "ben", "beh"})
_NUMBER_WORDS = frozenset((
    "zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix",
    "onze", "douze", "treize", "quatorze", "quinze", "seize", "vingt", "trente", "quarante",
    "cinquante", "soixante", "cent", "cents", "mille",
))


# A caller tells their situation first and asks last: until a question or a request has
# been said, a pause that sounds final is more likely the end of the context.
_ASKED = re.compile(
    r"\?|\b(comment|combien|quel|quelle|quels|quelles|pourquoi|où|quand|est-ce|qu'est|quoi|"
    r"voudrais|voulais|aimerais|veux|cherche|besoin|pouvez|pourriez|peut-on|puis-je|dois-je|"
    r"faut-il|est-il|ai-je|svp|s'il vous plaît|merci|au revoir|oui|non|d'accord|conseiller)\b",
    re.IGNORECASE)
SHORT_ANSWER_WORDS = 3  # "oui", "non merci", "d'accord": answers, not questions


def asks_something(text: str) -> bool:
    """A question, a request or an answer has been said (not only context so far): the
    word rule used when no completeness model reads the words."""
    return len(_words(text)) <= SHORT_ANSWER_WORDS or bool(_ASKED.search(text))


def _words(text: str) -> list[str]:
    return re.findall(r"[0-9]+|[^\W\d_]+", unicodedata.normalize("NFC", text.lower()))


def text_ending(text: str) -> str:
    """'open' (the phrase cannot end here), 'number' (digits being dictated may go on),
    'trailing' (the transcript trails off: '...'), or 'closed'."""
    words = _words(text)
    if not words:
        return "closed"
    last = words[-1]
    if last in _OPEN_WORDS or tuple(words[-2:]) in _OPEN_PAIRS:
        # "qu'est-ce que c'est ?", "c'est quoi le... plafond ?" end on these words only
        # when the question is asked; an explicit question mark closes it.
        return "closed" if text.rstrip().endswith("?") and last not in _FILLERS else "open"
    if last.isdigit() or last in _NUMBER_WORDS:
        # "quand on fait les deux", "tous les trois": a number that is a pronoun ends the phrase
        return "closed" if last in _NUMBER_WORDS and len(words) > 1 and words[-2] in _DETERMINERS else "number"
    if text.rstrip().endswith(("...", "…", ",")):
        return "trailing"
    return "closed"


@dataclass(frozen=True)
class TurnWeights:
    """A logistic regression over what is known at a pause: the probability that the caller
    has finished. No one signal is enough on French callers (smart-turn is rarely sure on
    voices unlike those it was trained on; the completeness model cannot hear a falling
    voice; Whisper's punctuation is a hint, not a rule), so each weighs as much as it
    separated the last pause of a turn from the pauses inside it on the tuning part of the
    turn-taking set (`callbot bench turns --tune` fits them and prints these values)."""

    bias: float = -3.575
    smart_turn: float = 0.197       # x logit of smart-turn's probability
    words: float = 0.297            # x logit of the completeness model's probability
    question_mark: float = 0.331    # the transcript ends on "?"
    full_stop: float = 0.345        # ... on "." or "!"
    trailing: float = -1.213        # ... on "...", "…" or ","
    word_count: float = 1.138       # x log(1 + words said): a pause after three words is rarely the end
    asks: float = 0.865             # a question word, a request verb or a short answer (asks_something)


def _logit(p: float) -> float:
    p = min(max(p, 1e-3), 1 - 1e-3)
    return math.log(p / (1 - p))


def turn_features(probability: float, text: str, words_probability: float) -> dict[str, float]:
    """The values `TurnWeights` weighs (the same names), for smart-turn's probability, the
    transcript so far and the completeness model's probability."""
    stripped = text.rstrip()
    ending = text_ending(text)
    return {
        "smart_turn": _logit(probability),
        "words": _logit(words_probability),
        "question_mark": float(stripped.endswith("?")),
        "full_stop": float(stripped.endswith((".", "!")) and not stripped.endswith("...")),
        "trailing": float(ending == "trailing"),
        "word_count": math.log1p(len(_words(text))),
        "asks": float(asks_something(text)),
    }


def turn_probability(weights: TurnWeights, features: dict[str, float]) -> float:
    z = weights.bias + sum(getattr(weights, name) * value for name, value in features.items())
    return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class EndOfTurnSettings:
    """How long to wait after the caller stops, by how likely it is that they have finished.

    Defaults: `callbot bench turns --tune`'s choice on the tuning part of the turn-taking
    set for a mean end-of-turn delay of at most 800 ms (README, "Turn-taking": at the
    issue's 600 ms, a quarter of the callers of the cross-validation were cut)."""

    engine: str = "smart"            # "smart": audio + words + silence; "silence": silence only
    silence_s: float = 0.6           # engine "silence": the fixed wait
    complete_s: float = 0.2          # the turn probability is >= complete_probability
    likely_s: float = 1.2            # ... >= likely_probability; the words end on a number
    unsure_s: float = 2.0            # ... below it; no audio model
    max_wait_s: float = 2.0          # the words leave the phrase open ("parce que", "de", "euh")
    complete_probability: float = 0.7
    likely_probability: float = 0.4
    weights: TurnWeights = field(default_factory=TurnWeights)
    max_turn_s: float = 28.0         # a turn longer than this is cut (Whisper's window is 30 s)
    continuation_s: float = 2.0      # the caller goes on within this after the bot began: one question

    def __post_init__(self) -> None:
        if self.engine not in ("smart", "silence"):
            raise ValueError(f"end-of-turn engine must be 'smart' or 'silence', got '{self.engine}'")
        if not 0 < self.complete_s <= self.likely_s <= self.unsure_s <= self.max_wait_s:
            raise ValueError("end-of-turn waits must grow: complete_s <= likely_s <= unsure_s <= max_wait_s")
        if not 0 <= self.likely_probability <= self.complete_probability <= 1:
            raise ValueError("end-of-turn probabilities: 0 <= likely_probability <= complete_probability <= 1")


@dataclass(frozen=True)
class Decision:
    wait_s: float          # silence, counted from the end of speech, before the turn is over
    reason: str
    probability: float | None = None        # smart-turn's
    words_probability: float | None = None  # the completeness model's, when it was asked
    turn_probability: float | None = None   # all signals weighed (TurnWeights)


def decide(settings: EndOfTurnSettings, probability: float | None, text: str,
           words_probability: float | None = None, *, short_answer: bool = False) -> Decision:
    """The silence to wait for, given smart-turn's probability that the turn is complete
    (None when not computed), the transcript of the whole turn so far, the completeness
    model's probability that it is a whole request (None without a model: the word rule
    `asks_something` stands in) and whether the bot asked for a short answer (yes/no, a
    choice, a value)."""
    if settings.engine == "silence":
        return Decision(settings.silence_s, "silence", probability)
    ending = text_ending(text)
    if ending == "open":
        return Decision(settings.max_wait_s, "open phrase", probability)
    if ending == "number":
        # a caller dictating a SIRET or an amount pauses between groups of digits
        return Decision(settings.likely_s, "number", probability)
    if probability is None:
        return Decision(settings.unsure_s, "no audio model", probability)
    if short_answer and len(_words(text)) <= SHORT_ANSWER_WORDS:
        # "oui", "non merci", "d'accord" answer the bot's question (the turn-taking set the
        # weights come from has no such answers); asked "how can I help?", a caller who says
        # "oui bonjour" and pauses has not started yet, and the weights decide.
        return Decision(settings.complete_s, "short answer", probability, words_probability)
    if words_probability is None:
        words_probability = 1.0 if asks_something(text) else 0.0
    turn = turn_probability(settings.weights, turn_features(probability, text, words_probability))
    if turn >= settings.complete_probability:
        return Decision(settings.complete_s, "complete", probability, words_probability, turn)
    if turn >= settings.likely_probability:
        return Decision(settings.likely_s, "likely complete", probability, words_probability, turn)
    return Decision(settings.unsure_s, "unsure", probability, words_probability, turn)


def smart_turn_model_path() -> Path:
    import pipecat

    return Path(pipecat.__file__).parent / "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"


class SmartTurnModel:
    """smart-turn v3.2 (shipped inside pipecat): probability that a turn is complete.
    Shared by every call; runs in its own one-thread executor so it never waits behind
    Whisper or the speech renderer."""

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(str(path or smart_turn_model_path()), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart-turn")

    def probability(self, pcm16: np.ndarray) -> float:
        """16 kHz int16 audio of the turn so far (blocking)."""
        from pipecat.audio.turn.smart_turn._whisper_features import compute_whisper_log_mel_features

        audio = pcm16[-MODEL_WINDOW_S * MODEL_RATE:].astype(np.float32) / 32768.0
        audio = np.pad(audio, (MODEL_WINDOW_S * MODEL_RATE - len(audio), 0))
        features = compute_whisper_log_mel_features(audio, do_normalize=True)[np.newaxis]
        return float(self._session.run(None, {"input_features": features})[0].reshape(-1)[0])

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

"""Have the caller's words so far said a whole question or request, or only its beginning
or its context? The end-of-turn decision (voice/end_of_turn.py) asks this at every pause.

Callers give their situation first and ask last ("je suis kiné depuis vingt ans, ... et là
je comprends pas le montant de mon échéancier"), and a finished request needs no question
word ("j'ai perdu mon mot de passe et je n'arrive plus à me connecter"). Word lists cannot
tell these apart; meaning can. A logistic regression on e5 embeddings learns it from the
question types' phrasings, which are whole requests, against what a caller pausing in the
middle of one has said: a phrasing cut at a word boundary, and its first clause (before
",", "et", "mais"); the last clause of a phrasing is a whole request too. The turn-taking
set of `callbot bench turns` is never trained on.

On that set's tuning part, the probability separates the last pause of an utterance from
the pauses in its middle (those not ending on an open word) with an area under the ROC
curve of 0.83; the end-of-turn decision weighs it with smart-turn and the words said
(voice/end_of_turn.py, README "Turn-taking").
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from flows.intent_classifier import (
    EmbeddingCache,
    _atomic_save,
    _softmax,
    embed,
    embedding_tag,
    fit_softmax_regression,
    normalize,
)
from flows.knowledge import Knowledge

log = logging.getLogger("callbot.flows.turn_completeness")
TRAINING_VERSION = 1
# Weaker than the router's regularisation: chosen on the tuning part of the turn-taking set
# (1e-4, 1e-3, 1e-2 gave an area under the curve of 0.874, 0.863, 0.839).
L2 = 1e-4
MIN_WORDS = 4          # a phrasing is cut only if both halves keep two words
_CLAUSES = re.compile(r",\s*|\s+et\s+|\s+mais\s+")


def training_texts(phrasings: Iterable[str]) -> tuple[list[str], list[str]]:
    """(whole requests, unfinished ones): every phrasing, and the last clause of a phrasing
    of several when it has three words or more (the request said on its own: "..., je peux
    pas payer"; without these, every short text in the training reads unfinished, and so did
    "je voudrais un rendez-vous"); for each phrasing its cut at a word boundary (the same for
    the same phrasing) and its first clause when it has three words or more."""
    whole, unfinished = [], []
    for phrasing in phrasings:
        whole.append(phrasing)
        words = phrasing.split()
        if len(words) >= MIN_WORDS:
            seed = int(hashlib.sha256(phrasing.encode()).hexdigest(), 16)
            unfinished.append(" ".join(words[:2 + seed % (len(words) - 3)]))
        clauses = _CLAUSES.split(phrasing)
        if len(clauses) > 1:
            if len(clauses[0].split()) >= 3:
                unfinished.append(clauses[0])
            if len(clauses[-1].split()) >= 3:
                whole.append(clauses[-1].strip())
    return whole, unfinished


class CompletenessModel:
    """Probability that a caller's words make a finished request (blocking, about 10 ms)."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray) -> None:
        self.weights = weights
        self.bias = bias

    def probability(self, text: str) -> float:
        words = normalize(text)
        if not words:
            return 0.0
        return float(_softmax(embed([words]) @ self.weights + self.bias)[0, 1])

    @classmethod
    def train(cls, whole: list[str], unfinished: list[str], cache: EmbeddingCache) -> CompletenessModel:
        texts = [normalize(t) for t in whole + unfinished]
        labels = np.array([1] * len(whole) + [0] * len(unfinished))
        weights, bias = fit_softmax_regression(cache.vectors(texts), labels, 2, l2=L2)
        return cls(weights, bias)


def build_completeness(knowledge: Knowledge, cache_dir: Path, *, force: bool = False) -> CompletenessModel:
    """The model for this data: loaded from the cache dir, or trained (seconds when the
    router's embeddings are cached) and saved there."""
    whole, unfinished = training_texts(p for qt in knowledge.question_types.values() for p in qt.phrasings)
    digest = hashlib.sha256(f"{embedding_tag()}|{L2}\n".encode())
    for text in whole + ["|"] + unfinished:
        digest.update(f"{text}\n".encode())
    path = cache_dir / f"completeness-{digest.hexdigest()[:16]}-v{TRAINING_VERSION}.npz"
    if path.is_file() and not force:
        try:
            with np.load(path) as data:
                return CompletenessModel(data["weights"], data["bias"])
        except (OSError, ValueError, KeyError) as e:
            log.warning("turn completeness: cached model %s unreadable (%s): training again", path.name, e)
    started = time.perf_counter()
    model = CompletenessModel.train(whole, unfinished, EmbeddingCache(cache_dir))
    for old in cache_dir.glob("completeness-*.npz"):
        old.unlink(missing_ok=True)
    _atomic_save(path, weights=model.weights, bias=model.bias)
    log.info("turn completeness: trained on %d whole and %d unfinished requests in %.1f s, saved as %s",
             len(whole), len(unfinished), time.perf_counter() - started, path.name)
    return model

"""A yes/no question about a caller's words, learned from examples: logistic regression on
their e5 vectors (the router's embedding), trained in seconds and cached by its data.

Used where word lists do not generalise: whether the words so far make a finished request
(flows/turn_completeness.py), whether a question is about the caller's own file
(flows/own_file.py).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
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

log = logging.getLogger("callbot.flows.binary_text_model")


class BinaryTextModel:
    """Probability that words are of the positive kind (blocking, about 10 ms)."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray) -> None:
        self.weights = weights
        self.bias = bias

    def probability(self, text: str) -> float:
        words = normalize(text)
        if not words:
            return 0.0
        return float(self.probabilities(embed([words]))[0])

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Of e5 query vectors of normalised texts, (n, 384) -> (n,)."""
        return _softmax(vectors @ self.weights + self.bias)[:, 1]

    @classmethod
    def train(cls, positives: Sequence[str], negatives: Sequence[str], cache: EmbeddingCache, *,
              l2: float) -> BinaryTextModel:
        texts = [normalize(t) for t in [*positives, *negatives]]
        labels = np.array([1] * len(positives) + [0] * len(negatives))
        weights, bias = fit_softmax_regression(cache.vectors(texts), labels, 2, l2=l2)
        return cls(weights, bias)


def build_binary_model(name: str, positives: Sequence[str], negatives: Sequence[str], cache_dir: Path, *,
                       l2: float, version: int, force: bool = False) -> BinaryTextModel:
    """The model for these examples: loaded from `cache_dir` (`{name}-{fingerprint}-v{version}.npz`),
    or trained and saved there (seconds when the router's embeddings are cached); older
    files of that name are removed."""
    digest = hashlib.sha256(f"{embedding_tag()}|{l2}\n".encode())
    for text in [*positives, "|", *negatives]:
        digest.update(f"{text}\n".encode())
    path = cache_dir / f"{name}-{digest.hexdigest()[:16]}-v{version}.npz"
    if path.is_file() and not force:
        try:
            with np.load(path) as data:
                return BinaryTextModel(data["weights"], data["bias"])
        except (OSError, ValueError, KeyError) as e:
            log.warning("%s: cached model %s unreadable (%s): training again", name, path.name, e)
    started = time.perf_counter()
    model = BinaryTextModel.train(positives, negatives, EmbeddingCache(cache_dir), l2=l2)
    for old in cache_dir.glob(f"{name}-*.npz"):
        old.unlink(missing_ok=True)
    _atomic_save(path, weights=model.weights, bias=model.bias)
    log.info("%s: trained on %d + %d examples in %.1f s, saved as %s", name, len(positives), len(negatives),
             time.perf_counter() - started, path.name)
    return model

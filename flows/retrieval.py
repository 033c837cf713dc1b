"""Retrieval over the knowledge base: every answer text, with its source, found by what a
caller asks even when the router could not name the question type.

A passage is one question type's answer. It is scored three ways: e5 between the question
and the passage's best sentence or description ("passage:" embeddings), e5 between the
question and the type's phrasings (what callers ask to get this answer), and BM25 over the
stems of all of them, so that rare decisive words weigh. The three are put on one scale by
their spread over the whole knowledge base for this question (z-scores), then added.
Answers whose question type only runs a flow, an action or a handoff are not passages:
their text is no answer without the caller's file.

The e5 vectors are cached by a fingerprint of the passages: the index is rebuilt when an
answer, a description or a source changes.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flows.intent_classifier import EmbeddingCache, _atomic_save, embed, normalize
from flows.knowledge import Knowledge
from flows.lexical import BM25, stems

__all__ = ["Passage", "Retrieved", "Retriever", "sentences"]

log = logging.getLogger("callbot.flows.retrieval")

INDEX_VERSION = 2
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# Weight of the lexical z-score beside e5's: BM25 tells apart answers e5 finds alike
# ("attestation de vigilance" / "attestation fiscale"), e5 finds the ones that share no word.
LEXICAL_WEIGHT = 1.0


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


@dataclass(frozen=True)
class Passage:
    id: str              # the question type whose answer it is
    team: str
    title: str           # the type's description
    text: str
    source: str


@dataclass(frozen=True)
class Retrieved:
    passage: Passage
    score: float          # hybrid z-score: how far above the rest of the knowledge base
    semantic: float       # best e5 cosine (question to a sentence, the description or a phrasing)
    lexical: float        # BM25 over the question's stems, as a share of its best possible
    best_sentence: int    # index in sentences(passage.text) of the sentence nearest the question


class Retriever:
    def __init__(self, knowledge: Knowledge, cache_dir: Path | None = None) -> None:
        types = [qt for qt in knowledge.question_types.values()
                 if qt.answer is not None and qt.flow is None and qt.action is None and qt.handoff is None]
        self.passages = [Passage(qt.id, qt.team, qt.description, qt.answer.text, qt.answer.source) for qt in types]
        self._sentences = [sentences(p.text) for p in self.passages]
        self._bm25 = BM25([stems(" ".join((p.title, p.text, *qt.phrasings)))
                           for p, qt in zip(self.passages, types, strict=True)])
        owner, units = [], []
        for i, (p, parts) in enumerate(zip(self.passages, self._sentences, strict=True)):
            for text in (p.title, *parts):
                owner.append(i)
                units.append(text)
        self._owner = np.array(owner)
        self._first_sentence = np.searchsorted(self._owner, np.arange(len(self.passages))) + 1
        phrasings = [(i, normalize(text)) for i, qt in enumerate(types) for text in qt.phrasings]
        self._phrasing_owner = np.array([i for i, _ in phrasings])
        # The router's own cache: its phrasings are embedded the same way (as queries).
        self._phrasing_vectors = EmbeddingCache(cache_dir).vectors([t for _, t in phrasings])
        digest = hashlib.sha256(f"{INDEX_VERSION}\n".encode())
        for p, text in zip(owner, units, strict=True):
            digest.update(f"{self.passages[p].id}\t{text}\n".encode())
        self.fingerprint = digest.hexdigest()[:16]
        self._vectors = self._load_or_build(units, cache_dir)

    def _load_or_build(self, units: list[str], cache_dir: Path | None) -> np.ndarray:
        path = cache_dir / f"retrieval-{self.fingerprint}-v{INDEX_VERSION}.npz" if cache_dir else None
        if path is not None and path.is_file():
            try:
                with np.load(path) as d:
                    vectors = d["vectors"]
                if vectors.shape == (len(units), 384):
                    return vectors
            except (OSError, ValueError, KeyError) as e:
                log.warning("retrieval: index %s unreadable (%s): rebuilt", path.name, e)
        started = time.perf_counter()
        vectors = embed(units, passage=True)
        log.info("retrieval: %d passages (%d sentences) embedded in %.1f s", len(self.passages), len(units),
                 time.perf_counter() - started)
        if path is not None:
            for old in path.parent.glob("retrieval-*.npz"):
                old.unlink(missing_ok=True)
            _atomic_save(path, vectors=vectors)
        return vectors

    def search(self, question: str, k: int = 3) -> list[Retrieved]:
        """The k passages that best answer `question`, best first. Blocking (~20 ms)."""
        if not self.passages:
            return []
        query = stems(question)
        vector = embed([normalize(question)])[0]
        unit_scores = self._vectors @ vector
        phrasing_scores = self._phrasing_vectors @ vector
        semantic = _best_per(self._owner, unit_scores, len(self.passages))
        asked = _best_per(self._phrasing_owner, phrasing_scores, len(self.passages))
        lexical = self._bm25.scores(query) / max(self._bm25.max_score(query), 1e-6)
        score = _z(semantic) + _z(asked) + LEXICAL_WEIGHT * _z(lexical)
        out = []
        for i in np.argsort(-score)[:k]:
            n = len(self._sentences[i])
            start = self._first_sentence[i]
            best = int(np.argmax(unit_scores[start:start + n])) if n else 0
            out.append(Retrieved(self.passages[i], float(score[i]), float(max(semantic[i], asked[i])),
                                 float(lexical[i]), best))
        return out


def _best_per(owner: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    best = np.full(n, -1.0, dtype=np.float32)
    np.maximum.at(best, owner, scores)
    return best


def _z(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    return (values - float(values.mean())) / spread if spread > 1e-9 else np.zeros_like(values)

"""Words as the lexical scores see them: accent-free normalisation, French stems without
the words that carry no meaning here, and BM25 over a set of documents.

e5 embeddings blur rare, decisive words (ACRE, CFE, DSN, "mise en demeure", "vigilance")
into the general sense of a sentence; a lexical score over stems weighs them by their
rarity, so routing and retrieval use both.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import snowballstemmer

__all__ = ["BM25", "normalize", "stems"]

_NOT_WORD = re.compile(r"[^a-z0-9]+")

# Words that say nothing about what a caller asks: function words, politeness, the way
# callers open and hedge a question, and the words every question of a helpline shares.
_STOPWORDS = """
a au aux avec ce ces cet cette c ca d de des du elle elles en et eu il ils j je l la le les leur leurs lui
m ma mais me mes moi mon n ne ni nos notre nous on ou par pas pour qu que quel quelle quelles quels qui s sa
se ses si son sur t ta te tes toi ton tu un une vos votre vous y est sont ai as avez avons ont suis es etes
sommes etait etais ete etre avoir fait faire faut peut peux pouvez pourriez voudrais voulais veux voudrait
savoir connaitre dire dit bonjour bonsoir merci madame monsieur euh heu hum ben bah bon alors ah oh voila
donc enfin quoi comment combien pourquoi quand ou est-ce parce comme aussi tres plus moins tout tous toute
toutes rien chose choses cela ceci ici la-bas oui non bien deja encore juste vraiment peu beaucoup
excusez pardon appelle appeler appelais question demande demander sais sait savez voila dis svp plait
"""
STOPWORDS = frozenset(_STOPWORDS.split())


def normalize(text: str) -> str:
    """Lowercase, no accents, punctuation and apostrophes as spaces: the one form in which
    keywords, stems and callers' words are compared."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(_NOT_WORD.sub(" ", text).split())


_stemmer = snowballstemmer.stemmer("french")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _stemmer.stemWord(word)


def stems(text: str) -> list[str]:
    """The meaningful words of `text` as French stems ("cotisations" -> "cotis"), in order."""
    return [_stem(w) for w in normalize(text).split() if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]


class BM25:
    """Okapi BM25 of a query against fixed documents (each a list of stems)."""

    def __init__(self, documents: Sequence[Sequence[str]], *, k1: float = 1.2, b: float = 0.6) -> None:
        self.k1, self.b = k1, b
        self._counts = [Counter(d) for d in documents]
        self._lengths = np.array([len(d) for d in documents], dtype=np.float32)
        self._avg = float(self._lengths.mean()) if len(documents) else 1.0
        frequency: Counter[str] = Counter()
        for c in self._counts:
            frequency.update(c.keys())
        n = len(documents)
        self.idf = {t: math.log(1.0 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}
        self._postings: dict[str, list[tuple[int, int]]] = {}
        for i, c in enumerate(self._counts):
            for t, tf in c.items():
                self._postings.setdefault(t, []).append((i, tf))

    def __len__(self) -> int:
        return len(self._counts)

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """Score of every document for the query's stems (each distinct stem counted once:
        a caller who repeats a word does not ask it twice)."""
        out = np.zeros(len(self._counts), dtype=np.float32)
        norm = self.k1 * (1.0 - self.b + self.b * self._lengths / max(self._avg, 1e-6))
        for t in set(query):
            idf = self.idf.get(t)
            if idf is None:
                continue
            for i, tf in self._postings[t]:
                out[i] += idf * tf * (self.k1 + 1.0) / (tf + norm[i])
        return out

    def score_without(self, query: Sequence[str], doc: int, removed: Sequence[str]) -> float:
        """Score of document `doc` as if the stems `removed` (one of its sentences) were not in
        it: the leave-one-out score of a document's own sentence, without which fitting on
        the documents' sentences would only measure that they contain themselves."""
        counts = self._counts[doc] - Counter(removed)
        length = max(float(self._lengths[doc]) - len(removed), 0.0)
        norm = self.k1 * (1.0 - self.b + self.b * length / max(self._avg, 1e-6))
        return float(sum(self.idf[t] * counts[t] * (self.k1 + 1.0) / (counts[t] + norm)
                         for t in set(query) if counts.get(t)))

    def max_score(self, query: Sequence[str]) -> float:
        """The score a document holding every stem of the query once would reach at best: a
        scale for scores, whatever the query's length."""
        return float(sum(self.idf.get(t, 0.0) for t in set(query)) * (self.k1 + 1.0) / (1.0 + self.k1 * (1.0 - self.b)))

"""The knowledge base's own words, shortened for the ear: the sentence of the best passage
nearest the question, and the ones after it while they fit, with the source."""

from __future__ import annotations

from urllib.parse import urlparse

from flows.retrieval import Retrieved, sentences

MAX_WORDS = 45   # about 15 seconds said: what a caller keeps in mind


def spoken_source(url: str) -> str:
    """"https://www.service-public.fr/particuliers/vosdroits/F23264" -> "service-public point fr"."""
    host = (urlparse(url).hostname or url).removeprefix("www.")
    return host.replace(".", " point ")


def extract(found: Retrieved, max_words: int = MAX_WORDS) -> str:
    """The passage's sentence nearest the question, then the next ones within `max_words`
    (the first sentence of a passage when the nearest one would start mid-explanation)."""
    parts = sentences(found.passage.text)
    if not parts:
        return found.passage.text
    start = min(found.best_sentence, len(parts) - 1)
    taken: list[str] = []
    words = 0
    for sentence in parts[start:]:
        n = len(sentence.split())
        if taken and words + n > max_words:
            break
        taken.append(sentence)
        words += n
    return " ".join(taken)

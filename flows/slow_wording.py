"""Wording of the slow-speech mode: short sentences, each figure said twice.

Simpler sentences and repeated key figures help older listeners more than a slower voice
(issue "slow-speech mode"). Long sentences are cut where a new clause with its own subject
begins (after ";" or ":", or a comma or "et", "mais", "ou", "car", "donc" followed by
"vous", "il", "c'est"...), never after a leading "si ..." or "quand ..." clause, never
inside a figure ("77 700 €", "12,3 %", "39 57"); every sentence holding a figure is followed by "Je répète : <the
figures>." Identifiers read back in chunks (a SIRET) are not repeated: the read-back asks
the caller to confirm them already.
"""

from __future__ import annotations

import re

MAX_WORDS = 14            # a longer sentence is cut when it can be
MIN_PIECE_WORDS = 4       # ... into pieces of at least this many words
MAX_FIGURE_DIGITS = 8     # longer digit strings are identifiers, read back elsewhere

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# A place to end a sentence: where a clause with its own subject begins.
_SUBJECT = r"(?:vous|il|elle|on|ils|elles|nous|je|j'|c'|ce|cela|ça|cette|ces|votre|vos|les|le|la|l')"
_BREAK = re.compile(rf"(?:[;:]\s+)|(?:,\s+(?=(?:(?:et|mais|ou|car|donc|puis|sinon)\s+)?{_SUBJECT}))"
                    rf"|(?:\s+(?=(?:et|mais|car|donc|puis)\s+{_SUBJECT}))", re.IGNORECASE)
# A sentence opening on a subordinate clause keeps it with its main clause.
_SUBORDINATE = re.compile(r"^(?:si|s'il|s'ils|quand|lorsque|lorsqu'|dès que|pour|avant|après|en cas|tant que)\b",
                          re.IGNORECASE)
_KEYPAD = re.compile(r"\b(tapez|appuyez|touche)\b", re.IGNORECASE)
_MONTHS = ("janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|novembre|"
           "décembre|decembre")
_FIGURE = re.compile(
    r"(?<![\w,])(?:\d{2}(?:[ \u00a0\u202f]\d{2})+(?![ \u00a0\u202f]?\d)|\d{1,3}(?:[ \u00a0\u202f]\d{3})+|\d+)"
    r"(?:,\d+)?(?!\d)"
    r"(?:\s?(?:%|€|euros?\b|pour cent\b|jours?\b|mois\b|ans?\b|années?\b|heures?\b|h\b|salariés?\b|"
    rf"trimestres?\b|(?:{_MONTHS})\b(?:\s\d{{4}})?))?")


def figures(sentence: str) -> list[str]:
    """The figures of a sentence as written, with their unit ("77 700 €", "15 mars"); not
    the keys of a keypad instruction ("tapez 1 pour oui") nor a lone digit."""
    if _KEYPAD.search(sentence):
        return []
    out = []
    for m in _FIGURE.finditer(sentence):
        figure = m.group().strip()
        digits = re.sub(r"\D", "", figure.split(",")[0])
        if len(digits) <= MAX_FIGURE_DIGITS and not figure.isdigit() or 1 < len(digits) <= MAX_FIGURE_DIGITS:
            out.append(figure)
    return out


def short_sentences(text: str, max_words: int = MAX_WORDS) -> list[str]:
    """The text as sentences of about `max_words` words at most, each ending with its
    punctuation; a sentence that cannot be cut stays whole."""
    out: list[str] = []
    for sentence in _SENTENCE.split(text.strip()):
        if sentence:
            out += _cut(sentence, max_words)
    return out


def _cut(sentence: str, max_words: int) -> list[str]:
    if len(sentence.split()) <= max_words:
        return [sentence]
    end = sentence[-1] if sentence[-1] in ".!?" else "."
    body = sentence.rstrip(".!?").rstrip()
    total = len(body.split())
    breaks = list(_BREAK.finditer(body))
    candidates = []
    for i, m in enumerate(breaks):
        before = len(body[:m.start()].split())
        if i == 0 and _SUBORDINATE.match(body) and not body[m.start():m.end()].strip() in (";", ":"):
            continue  # "si vous ..., vous pouvez": the condition stays with what it conditions
        if before >= MIN_PIECE_WORDS and total - before >= MIN_PIECE_WORDS:
            candidates.append((abs(before - total / 2), m))
    if not candidates:
        return [sentence]
    _, m = min(candidates, key=lambda c: c[0])
    first, rest = body[:m.start()].rstrip(" ,;:"), body[m.end():].strip()
    first_end = "." if end == "?" else end  # a question is asked in its last piece
    return _cut(first + first_end, max_words) + _cut(_capitalised(rest) + end, max_words)


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def slow_wording(texts: list[str], repeat_prefix: str) -> list[str]:
    """The texts of a reply for slow speech: short sentences, and after each sentence that
    holds figures, `repeat_prefix` ("Je répète :") and those figures."""
    out: list[str] = []
    for text in texts:
        for sentence in short_sentences(text):
            out.append(sentence)
            found = figures(sentence)
            if found and not sentence.startswith(repeat_prefix):
                out.append(f"{repeat_prefix} {', '.join(found)}.")
    return out

"""Turn display text into what a French TTS should read, and cut it into clauses.

Clauses are what the TTS renders one at a time, so the first one can leave
while the next is synthesised, and what the audio cache is keyed on.
"""

from __future__ import annotations

import itertools
import re

from num2words import num2words

_GROUPED = re.compile(r"\b\d{1,3}(?:[ \u00a0\u202f]\d{3})+\b")
_DECIMAL = re.compile(r"\b(\d+),(\d+)\b")
_INTEGER = re.compile(r"\b\d+\b")
_ORDINAL_1ER = re.compile(r"\b1er\b")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+")
_COMMA = re.compile(r"(?<=,)\s+")
# A space that belongs to a figure: "12 345", "24,6 %", "1 500 €" (cutting there would
# read "douze" then "trois cent quarante-cinq").
_FIGURE_SPACE = re.compile(r"(?<=\d)\s(?=[\d%€])")
_SYMBOLS = {"%": " pour cent", "€": " euros", "&": " et ", "/": " sur "}


def _words(number: str) -> str:
    return num2words(int(number), lang="fr")


def speakable(text: str) -> str:
    """Numbers, symbols and abbreviations spelled out as a French speaker reads them."""
    text = _ORDINAL_1ER.sub("premier", text)
    text = _GROUPED.sub(lambda m: re.sub(r"\D", "", m.group()), text)
    text = _DECIMAL.sub(lambda m: f"{_words(m.group(1))} virgule {_decimals(m.group(2))}", text)
    text = _INTEGER.sub(lambda m: _words(m.group()), text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    return re.sub(r"\s+", " ", text).strip()


def _decimals(digits: str) -> str:
    # "12,05" is read "douze virgule zéro cinq", "24,6" "vingt-quatre virgule six".
    zeros = len(digits) - len(digits.lstrip("0"))
    rest = digits.lstrip("0")
    return " ".join(["zéro"] * zeros + ([_words(rest)] if rest else []))


def clauses(text: str, long_sentence: int = 110, max_chars: int = 200) -> list[str]:
    """Sentences; a long sentence is cut at its commas, a very long clause at spaces."""
    out: list[str] = []
    for sentence in _SENTENCE.split(text.strip()):
        pieces = _COMMA.split(sentence) if len(sentence) > long_sentence else [sentence]
        for piece in pieces:
            piece = piece.strip()
            while len(piece) > max_chars:
                cut = _cut(piece, max_chars)
                out.append(piece[:cut].strip())
                piece = piece[cut:].strip()
            if piece:
                out.append(piece)
    return out


def comma_pieces(clause: str) -> list[str]:
    """A clause cut at its commas: what a sentence not in the audio cache is rendered as,
    so that its first words are heard after rendering a few words, not the sentence."""
    return [p.strip() for p in _COMMA.split(clause) if p.strip()]


_FIGURE_START = re.compile(r"(?<=\s)(?=\d)")


def before_figures(clause: str) -> list[str]:
    """The clause cut before each figure it holds ("Le plafond est de", "77 700 euros."), so
    that a pause can be put there; a figure's own spaces are not cut."""
    starts = [m.start() for m in _FIGURE_START.finditer(clause) if m.start() - 1 not in _figure_spaces(clause)]
    bounds = [0, *starts, len(clause)]
    return [p for p in (clause[a:b].strip() for a, b in itertools.pairwise(bounds)) if p]


def _figure_spaces(text: str) -> set[int]:
    return {m.start() for m in _FIGURE_SPACE.finditer(text)}


def _cut(piece: str, max_chars: int) -> int:
    """Where to cut a clause too long for the TTS: the last space before `max_chars` that is
    not inside a figure (any space if there is none, the limit itself in a word that long)."""
    inside = {i for i in _figure_spaces(piece) if i <= max_chars}
    spaces = [i for i, c in enumerate(piece[:max_chars]) if c == " " and i > 0]
    for i in reversed(spaces):
        if i not in inside:
            return i
    return spaces[-1] if spaces else max_chars


# Kokoro on one thread of this CPU speaks about 14 characters a second and renders a clause
# in 0.75 to 1.0 times its length when the machine is not busy (2026-12-06).
RENDER_AHEAD_RTF = 0.8
CHARS_PER_SECOND = 14.0


def leading_clauses(text: str, *, rtf: float = RENDER_AHEAD_RTF, chars_per_s: float = CHARS_PER_SECOND,
                    pause_s: float = 0.25) -> list[str]:
    """The first clauses of `text` to have in the audio cache before it is said, so that
    each later clause, rendered one after the other from the moment the text starts at `rtf`
    times its length, is ready by the time the clauses before it have been played."""
    parts = clauses(text)
    spoken = [len(c) / chars_per_s for c in parts]
    for n in range(1, len(parts) + 1):
        played = sum(spoken[:n]) + n * pause_s
        rendered = 0.0
        for k in range(n, len(parts)):
            rendered += rtf * spoken[k]
            if rendered > played:
                break
            played += spoken[k] + pause_s
        else:
            return parts[:n]
    return parts

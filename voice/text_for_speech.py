"""Turn display text into what a French TTS should read, and cut it into clauses.

Clauses are what the TTS renders one at a time, so the first one can leave
while the next is synthesised, and what the audio cache is keyed on.
"""

from __future__ import annotations

import re

from num2words import num2words

_GROUPED = re.compile(r"\b\d{1,3}(?:[ \u00a0\u202f]\d{3})+\b")
_DECIMAL = re.compile(r"\b(\d+),(\d+)\b")
_INTEGER = re.compile(r"\b\d+\b")
_ORDINAL_1ER = re.compile(r"\b1er\b")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+")
_COMMA = re.compile(r"(?<=,)\s+")
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
                cut = piece.rfind(" ", 0, max_chars)
                cut = cut if cut > 0 else max_chars
                out.append(piece[:cut].strip())
                piece = piece[cut:].strip()
            if piece:
                out.append(piece)
    return out

"""What a generated answer may not say, whatever the backend: a figure that is not in the
passages it was given, or anything about the caller's own file; and the questions a
generative backend is not given at all (prompt injection).

Patterns are data (flows/data/keywords.yaml: `injection`, `personal_claim`), matched on
normalised text (flows/lexical.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from flows.lexical import normalize
from flows.slots import figures

__all__ = ["Guard"]


class Guard:
    def __init__(self, keywords) -> None:
        """`keywords`: flows.engine.Keywords (the patterns of flows/data/keywords.yaml)."""
        self._keywords = keywords

    def is_injection(self, question: str) -> bool:
        """The caller's words try to change the assistant's rules, read them, or get someone
        else's data: declined before any backend sees them."""
        return self._keywords.match("injection", normalize(question))

    @staticmethod
    def allowed_figures(passages: Iterable[str]) -> set[str]:
        """Figures of the passages, and the parts of their decimals ("24,6" may be said
        "vingt-quatre virgule six")."""
        allowed: set[str] = set()
        for text in passages:
            for f in figures(text):
                allowed.add(f)
                allowed.update(f.split("."))
        return allowed

    def unsupported_figures(self, sentence: str, allowed: set[str]) -> set[str]:
        return figures(sentence) - allowed

    def claims_personal(self, sentence: str) -> bool:
        """A generated sentence about the caller's own account ("votre solde est de",
        "vous nous devez", "votre dossier indique"): only the action server may say that,
        after identification."""
        return self._keywords.match("personal_claim", normalize(sentence))

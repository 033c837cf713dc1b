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
import re
from collections.abc import Iterable
from pathlib import Path

from flows.binary_text_model import BinaryTextModel, build_binary_model
from flows.knowledge import Knowledge

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


def build_completeness(knowledge: Knowledge, cache_dir: Path, *, force: bool = False) -> BinaryTextModel:
    """The model for this data (`probability(text)`: a whole request), cached in `cache_dir`."""
    whole, unfinished = training_texts(p for qt in knowledge.question_types.values() for p in qt.phrasings)
    return build_binary_model("completeness", whole, unfinished, cache_dir, l2=L2, version=TRAINING_VERSION,
                              force=force)

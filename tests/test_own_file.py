"""Questions about the caller's own file, by meaning: the examples the model learns from
are sound and written apart from what measures it; it generalises to wordings the
`personal` patterns miss; a rule question with the caller's context first is not one."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bot.bench_callers import load_callers
from flows.binary_text_model import BinaryTextModel
from flows.intent_classifier import EmbeddingCache, normalize
from flows.knowledge import load_knowledge
from flows.own_file import L2, build_own_file_model, load_examples

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def examples():
    return load_examples()


@pytest.fixture(scope="module")
def model():
    return build_own_file_model(ROOT / "var" / "router")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\W\d_]+", text.lower()))


def test_the_examples_are_many_distinct_and_balanced(examples):
    own, general = examples
    assert len(own) >= 250 and len(general) >= 250
    everything = [normalize(t) for t in own + general]
    assert len(set(everything)) == len(everything)   # no example twice, nor in both lists


def test_the_examples_are_written_apart_from_the_bench_and_the_phrasings(examples):
    """Not the caller bench's utterances (which measure the model) nor the question types'
    phrasings, nor light edits of them (three words in four shared)."""
    knowledge = load_knowledge()
    others = [_words(u.text) for u in load_callers(knowledge)]
    others += [_words(p) for qt in knowledge.question_types.values() for p in qt.phrasings]
    close = []
    for text in examples[0] + examples[1]:
        words = _words(text)
        if len(words) >= 4 and any(len(words & o) / len(words | o) >= 0.75 for o in others):
            close.append(text)
    assert close == []


def test_examples_never_trained_on_are_told_apart(examples, tmp_path):
    """Five folds: each fifth scored by a model trained on the other four."""
    own, general = examples
    texts, labels = own + general, np.array([1] * len(own) + [0] * len(general))
    cache = EmbeddingCache(ROOT / "var" / "router")
    vectors = cache.vectors([normalize(t) for t in texts])
    fold = np.arange(len(texts)) % 5
    right = 0
    for k in range(5):
        train = fold != k
        m = BinaryTextModel.train([t for t, y, f in zip(texts, labels, train, strict=True) if y and f],
                                  [t for t, y, f in zip(texts, labels, train, strict=True) if not y and f],
                                  cache, l2=L2)
        right += int(((m.probabilities(vectors[~train]) >= 0.5) == labels[~train]).sum())
    assert right / len(texts) >= 0.85


@pytest.mark.parametrize("text", [
    "ma comptable dit que vous avez toujours pas encaissé le chèque que je vous ai posté en septembre",
    "bonjour monsieur, je viens de regarder mon relevé de banque et il y a deux sommes de l'urssaf le même jour",
    "euh on me réclame une somme pour l'an dernier alors que ben j'avais tout réglé",
])
def test_a_question_about_ones_own_file_in_other_words(model, text):
    from flows.engine import Keywords

    assert not Keywords().match("personal", normalize(text))   # the patterns miss it
    assert model.probability(text) >= 0.5


@pytest.mark.parametrize("text", [
    "je suis coiffeuse à domicile depuis trois ans, c'est quoi le taux de cotisation pour moi",
    "mon fils veut se lancer comme livreur à vélo, comment il doit faire pour s'inscrire",
    "si je paie mes cotisations avec quelques jours de retard, qu'est-ce qui se passe",
])
def test_a_rule_question_with_the_callers_context_first_is_not(model, text):
    assert model.probability(text) < 0.5

"""The completeness model of the end-of-turn decision (flows/turn_completeness.py), real
e5 inference: trained on the question types' phrasings, it must tell a whole request from
its beginning or its context on sentences written here, apart from the phrasings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from flows.knowledge import load_knowledge
from flows.turn_completeness import build_completeness, training_texts

ROOT = Path(__file__).resolve().parent.parent

# (the caller's whole turn, where they paused in the middle of it)
PAIRS = [
    ("je suis kiné depuis vingt ans et là je comprends pas le montant de mon échéancier",
     "je suis kiné depuis vingt ans"),
    ("pour l'attestation de vigilance, elle dure combien de temps ?", "pour l'attestation de vigilance"),
    ("bonjour, je voudrais savoir quel est le plafond du chiffre d'affaires en micro-entreprise",
     "bonjour, je voudrais savoir quel est le"),
    ("mon fils m'a créé une micro-entreprise mais je sais pas comment on déclare le chiffre d'affaires",
     "mon fils m'a créé une micro-entreprise"),
    ("j'ai reçu une mise en demeure et je ne comprends pas pourquoi", "j'ai reçu une mise en demeure et"),
    ("ma banque a rejeté le prélèvement, qu'est-ce que je dois faire ?", "ma banque a rejeté le prélèvement"),
    ("est-ce que je peux créer une petite activité en étant à la retraite ?", "est-ce que je peux créer une"),
    ("je voudrais changer le compte bancaire sur lequel vous prélevez", "je voudrais changer le compte"),
]


@pytest.fixture(scope="module")
def model():
    # The project's cache: the phrasings' vectors are those the router was trained on.
    return build_completeness(load_knowledge(), ROOT / "var" / "router")


def test_a_whole_request_reads_more_complete_than_where_the_caller_paused(model):
    whole = [model.probability(w) for w, _ in PAIRS]
    paused = [model.probability(p) for _, p in PAIRS]
    assert all(w > p for w, p in zip(whole, paused, strict=True)), list(zip(whole, paused, strict=True))
    assert np.mean(whole) >= 0.7, whole
    # a pause after words that read finished ("ma banque a rejeté le prélèvement") is often
    # one: the end-of-turn decision weighs this with the voice and the words said
    assert np.mean(paused) <= 0.4 and np.mean(whole) - np.mean(paused) >= 0.4, paused
    assert model.probability("") == 0.0


def test_training_texts_cut_every_long_phrasing_the_same_way():
    whole, unfinished = training_texts(["quel est le plafond de chiffre d'affaires", "mon SIRET",
                                        "je suis retraité, est-ce que je peux cumuler"])
    assert whole == ["quel est le plafond de chiffre d'affaires", "mon SIRET",
                     "je suis retraité, est-ce que je peux cumuler",
                     "est-ce que je peux cumuler"]                # the request said on its own
    assert "je suis retraité" in unfinished                     # the first clause
    cut = unfinished[0].split()
    assert 2 <= len(cut) <= 5 and "quel est le plafond de chiffre d'affaires".startswith(unfinished[0])
    assert training_texts(["quel est le plafond de chiffre d'affaires"])[1] == [unfinished[0]]
    assert not any(u.startswith("mon") for u in unfinished)    # too short to cut


def test_the_model_is_cached_and_retrained_when_the_phrasings_change(tmp_path):
    knowledge = load_knowledge()
    small = replace(knowledge, question_types=dict(list(knowledge.question_types.items())[:6]))
    first = build_completeness(small, tmp_path)
    saved = list(tmp_path.glob("completeness-*.npz"))
    assert len(saved) == 1
    again = build_completeness(small, tmp_path)
    np.testing.assert_array_equal(first.weights, again.weights)
    assert list(tmp_path.glob("completeness-*.npz")) == saved
    fewer = replace(knowledge, question_types=dict(list(knowledge.question_types.items())[:5]))
    build_completeness(fewer, tmp_path)
    assert list(tmp_path.glob("completeness-*.npz")) != saved and len(list(tmp_path.glob("completeness-*.npz"))) == 1

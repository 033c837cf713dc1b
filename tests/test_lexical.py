"""flows/lexical.py and the lexical half of the hybrid router (flows/intent_classifier.py:
TypeLexicon, the out-of-fold fusion) and the question clause of a long turn
(flows/router.py): pure functions, no e5."""

from __future__ import annotations

import numpy as np
import pytest

from flows.intent_classifier import TypeLexicon, fit_fusion, fuse
from flows.lexical import BM25, normalize, stems
from flows.router import question_clause


def test_normalize_and_stems():
    assert normalize("Attestation de Vigilance ? L'URSSAF") == "attestation de vigilance l urssaf"
    assert stems("Je voudrais savoir mes cotisations") == ["cotis"]


def test_leaving_a_sentence_out_of_its_document():
    docs = [["cfe", "impot", "avis"], ["acre", "aide"], ["impot", "revenu"]]
    bm25 = BM25(docs)
    # Nothing removed: the ordinary score; the query's only word removed: nothing left.
    assert bm25.score_without(["cfe"], 0, []) == pytest.approx(float(bm25.scores(["cfe"])[0]))
    assert bm25.score_without(["cfe"], 0, ["cfe"]) == 0.0
    # A shorter document scores a word it still holds higher (BM25's length norm).
    assert bm25.score_without(["impot"], 0, ["avis"]) > float(bm25.scores(["impot"])[0])


LEXICON_PHRASINGS = [
    ("acre", "j'ai droit à l'aide à la création"), ("acre", "exonération de début d'activité"),
    ("cfe", "avis d'impôt de la cotisation foncière"), ("cfe", "je paie la cfe où"),
    ("vigilance", "il me faut une attestation de vigilance"), ("vigilance", "attestation pour un marché public"),
]


def test_rare_decisive_words_weigh():
    lexicon = TypeLexicon(("acre", "cfe", "vigilance"), LEXICON_PHRASINGS,
                          {"acre": "L'ACRE exonère une partie des cotisations."})
    scores = lexicon.scores("euh c'est pour l'ACRE en fait")
    assert lexicon.types[int(scores.argmax())] == "acre"          # read in the answer text only
    assert lexicon.types[int(lexicon.scores("ma CFE").argmax())] == "cfe"
    assert lexicon.evidence("bonjour madame euh") == 0.0           # no meaningful word
    assert lexicon.evidence("attestation de vigilance") > lexicon.evidence("attestation")


def test_left_out_scores_do_not_find_the_phrasing_itself():
    lexicon = TypeLexicon(("acre", "cfe", "vigilance"), LEXICON_PHRASINGS, {})
    text = "attestation pour un marché public"
    assert lexicon.types[int(lexicon.scores(text).argmax())] == "vigilance"
    left_out = lexicon.scores_left_out(text, "vigilance")
    assert left_out[2] < lexicon.scores(text)[2]
    assert left_out[2] > 0.0   # "attestation" is in the type's other phrasing


def test_fusion_recovers_known_weights():
    """Labels drawn from the fused model with known (a, w, b): the fit finds them again."""
    rng = np.random.default_rng(5)
    n, n_types = 4000, 6
    log_probs = np.log(rng.dirichlet(np.ones(n_types + 1), size=n))
    lexical = rng.uniform(0.0, 1.0, size=(n, n_types))
    truth = np.array([0.8, 3.0, 1.5])
    p = np.exp(fuse(log_probs, lexical, truth))
    y = np.array([rng.choice(n_types + 1, p=row) for row in p])
    fitted = fit_fusion(log_probs, lexical, y, l2=0.0)
    np.testing.assert_allclose(fitted, truth, atol=0.25)
    # Fused log-probabilities are normalised, and w = 0, a = 1, b = 0 changes nothing.
    assert np.exp(fuse(log_probs, lexical, fitted)).sum(axis=1) == pytest.approx(np.ones(n))
    np.testing.assert_allclose(fuse(log_probs, lexical, np.array([1.0, 0.0, 0.0])), log_probs, atol=1e-9)


@pytest.mark.parametrize(("text", "clause"), [
    ("je suis kiné depuis vingt ans et là je comprends pas le montant de mon échéancier",
     "je comprends pas le montant de mon échéancier"),
    ("Bonjour, je vous appelle parce que je voudrais connaître le plafond, chiffre d'affaires de notre entrepreneur.",
     "je voudrais connaître le plafond chiffre d'affaires de notre entrepreneur"),
    ("J'ai créé ma boîte en mars. Est-ce que je dois payer la CFE cette année ?",
     "est-ce que je dois payer la cfe cette année"),
    ("on a eu un gros chantier cet hiver donc on va embaucher un apprenti",
     "on va embaucher un apprenti"),
    # The last clause says too little on its own: back to the one before, or the whole turn.
    ("j'ai une question sur mon attestation de vigilance, mais voilà", None),
    ("mot de passe oublié", None),
    ("   ", None),
])
def test_question_clause(text, clause):
    assert question_clause(text) == clause

"""voice/text_for_speech.py: what the French TTS reads, and how text is cut into clauses."""

from __future__ import annotations

import pytest

from voice.text_for_speech import clauses, leading_clauses, speakable


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("77 700 euros", "soixante-dix-sept mille sept cents euros"),
        ("203\u00a0100 euros", "deux cent trois mille cent euros"),  # no-break space
        ("5\u202f000 €", "cinq mille euros"),  # narrow no-break space
        ("1 000 000", "un million"),
        ("24,6 %", "vingt-quatre virgule six pour cent"),
        ("24,6%", "vingt-quatre virgule six pour cent"),
        ("12,05", "douze virgule zéro cinq"),
        ("0,5 %", "zéro virgule cinq pour cent"),
        ("1er janvier", "premier janvier"),
        ("le 1er juillet 2026", "le premier juillet deux mille vingt-six"),
        ("le 31 janvier", "le trente et un janvier"),
        ("en 2026", "en deux mille vingt-six"),
        ("en 1999", "en mille neuf cent quatre-vingt-dix-neuf"),
        ("de 0,1 à 0,3 %", "de zéro virgule un à zéro virgule trois pour cent"),
        ("Cotisations & impôts", "Cotisations et impôts"),
        ("  deux   espaces  ", "deux espaces"),
        ("Quelle est votre question ?", "Quelle est votre question ?"),
    ],
)
def test_speakable(text, spoken):
    assert speakable(text) == spoken


def test_speakable_leaves_no_digit_in_the_knowledge_base_answers():
    from flows.knowledge import load_knowledge

    for text in load_knowledge().spoken_texts():
        out = speakable(text)
        assert not any(c.isdigit() for c in out), (text, out)
        assert "%" not in out and "€" not in out


def test_clauses_splits_sentences():
    assert clauses("Bonjour. Comment allez-vous ? Très bien ! Merci; au revoir.") == [
        "Bonjour.",
        "Comment allez-vous ?",
        "Très bien !",
        "Merci;",
        "au revoir.",
    ]


def test_clauses_keeps_short_sentences_with_commas_whole():
    text = "Le 30 avril, le 31 juillet, le 31 octobre et le 31 janvier."
    assert clauses(text) == [text]
    # Decimal commas are not clause breaks.
    assert clauses("Le taux est de 12,3 %, en 2026.") == ["Le taux est de 12,3 %, en 2026."]


def test_clauses_cuts_long_sentences_at_commas():
    text = (
        "Si vous déclarez chaque trimestre, la prochaine échéance est le 31 janvier 2027, "
        "pour le quatrième trimestre 2026, et ensuite le 30 avril, pour le premier trimestre."
    )
    assert len(text) > 110
    parts = clauses(text)
    assert parts == [
        "Si vous déclarez chaque trimestre,",
        "la prochaine échéance est le 31 janvier 2027,",
        "pour le quatrième trimestre 2026,",
        "et ensuite le 30 avril,",
        "pour le premier trimestre.",
    ]
    assert " ".join(parts) == text


def test_clauses_cuts_very_long_clauses_at_spaces():
    text = " ".join(["mot"] * 150)  # 599 characters, no punctuation
    parts = clauses(text, max_chars=200)
    assert all(0 < len(p) <= 200 for p in parts)
    assert " ".join(parts) == text
    # A word longer than the limit is cut rather than looping forever.
    long_word = "x" * 450
    assert "".join(clauses(long_word)) == long_word
    assert all(len(p) <= 200 for p in clauses(long_word))


@pytest.mark.parametrize("empty", ["", "   ", "\n\t"])
def test_clauses_of_nothing(empty):
    assert clauses(empty) == []


def test_clauses_of_every_prompt_and_answer_fit_the_tts():
    from flows.knowledge import load_knowledge

    for text in load_knowledge().spoken_texts():
        parts = clauses(text)
        assert parts, text
        assert all(0 < len(p) <= 200 for p in parts)
        assert " ".join(parts).split() == text.split()


@pytest.mark.parametrize("figure", ["12 345 678 euros", "24,6 %", "1 500 €", "77\u00a0700 euros"])
def test_a_very_long_clause_is_never_cut_inside_a_figure(figure):
    for words in range(40, 52):  # the limit falls before, inside and after the figure
        text = " ".join(["mot"] * words) + f" {figure} " + " ".join(["mot"] * 30)
        parts = clauses(text, max_chars=200)
        assert all(len(p) <= 200 for p in parts)
        assert " ".join(parts) == text
        number = figure.removesuffix(" euros")   # a unit word may go to the next clause
        assert any(number in p for p in parts), (words, parts)


def test_the_value_of_a_read_back_is_a_clause_of_its_own():
    # The fixed words around it come from the audio cache; only the value is rendered.
    said = "J'ai noté : sept trois deux, huit deux neuf, trois deux zéro, zéro zéro zéro sept quatre. Est-ce exact ?"
    assert clauses(said) == [
        "J'ai noté :",
        "sept trois deux, huit deux neuf, trois deux zéro, zéro zéro zéro sept quatre.",
        "Est-ce exact ?",
    ]


def test_leading_clauses_cover_what_could_not_be_rendered_while_they_play():
    long_first = ("Vous pouvez déclarer votre chiffre d'affaires chaque mois ou chaque trimestre, en ligne. "
                  "Le site vous guide. Gardez le justificatif.")
    assert leading_clauses(long_first) == clauses(long_first)[:1]
    short_first = ("Oui. Vous pouvez déclarer votre chiffre d'affaires chaque mois ou chaque trimestre, depuis "
                   "votre espace en ligne ou depuis l'application mobile de l'Urssaf. Gardez le justificatif.")
    # "Oui." plays for a fraction of a second: the long sentence after it is needed as well.
    assert leading_clauses(short_first) == clauses(short_first)[:2]
    # A voice that renders twenty times faster than it speaks needs only the first.
    assert leading_clauses(short_first, rtf=0.05) == clauses(short_first)[:1]
    assert leading_clauses("") == []

"""The independent caller set (flows/data/bench_callers/) and its bench: the data is sound,
written apart from the training phrasings, and goes through the real router and dialogue."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from bot.bench_callers import (
    DEV_PARTS,
    KINDS,
    CallerUtterance,
    format_caller_report,
    has_fact,
    load_callers,
    run_caller_bench,
)
from flows.knowledge import DataError, load_knowledge
from flows.router import RouterSettings, load_router


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


@pytest.fixture(scope="module")
def callers(knowledge):
    return load_callers(knowledge)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\W\d_]+", text.lower()))


def test_the_set_is_large_and_varied(knowledge, callers):
    assert len(callers) >= 300
    kinds = Counter(k for u in callers for k in u.kinds)
    assert kinds["narrative"] >= 40 and kinds["personal"] >= 25 and kinds["out_of_domain"] >= 20, kinds
    assert all(kinds[k] for k in KINDS), kinds
    teams = {knowledge.question_types[u.type].team for u in callers if u.type}
    assert teams == {qt.team for qt in knowledge.question_types.values()}
    assert len({u.text.lower() for u in callers}) == len(callers)  # no utterance twice


def test_the_set_is_written_apart_from_the_phrasings(knowledge, callers):
    """Not the training sentences, nor light edits of them (three words in four shared);
    short questions that came out the same as a phrasing were taken out of the set."""
    phrasings = [_words(p) for qt in knowledge.question_types.values() for p in qt.phrasings]
    close = []
    for u in callers:
        words = _words(u.text)
        if len(words) < 4:
            continue
        for p in phrasings:
            if len(words & p) / len(words | p) >= 0.75:
                close.append(u.text)
                break
    assert not close, close[:5]


def test_the_bench_runs_through_the_real_router_and_dialogue(knowledge, callers):
    # the classifier `callbot models provision` trained, as the bench uses it
    router = load_router(knowledge, RouterSettings(), Path(__file__).resolve().parent.parent / "var" / "router")
    sample = [u for u in callers if "short" in u.kinds][:6] + [u for u in callers if "out_of_domain" in u.kinds][:3]
    sample.append(CallerUtterance("euh je voudrais parler à un conseiller s'il vous plaît", None, ("human",)))
    # A held-out item (no development part), with a key fact the greeting-less reply cannot hold.
    sample.append(CallerUtterance("mon mot de passe ne marche plus depuis hier soir", "mot_de_passe_perdu",
                                  ("short",), fact=("vingt-sept zèbres",)))
    result = run_caller_bench(knowledge, router, sample)
    assert result["utterances"] == len(sample) and result["in_domain"] == 7
    assert 0.0 <= result["team_accuracy"] <= 1.0 and 0.0 <= result["out_of_domain_declined"] <= 1.0
    assert 0.0 <= result["router_team_accuracy"] <= 1.0
    assert result["human_requests_handed_over"] == 1.0   # the keyword rule: always a human
    assert sum(result["replies"].values()) == pytest.approx(1.0)
    assert result["key_fact"]["items"] == sum(bool(u.fact) for u in sample)
    assert result["key_fact"]["present"] <= 1 - 1 / result["key_fact"]["items"]   # not the zebras
    dev = sum(u.part in DEV_PARTS for u in sample)
    assert result["dev"]["utterances"] == dev and result["held_out"]["utterances"] == len(sample) - dev
    # Held out: aggregate figures only, never which items failed.
    assert "frequent_confusions" in result["dev"] and "missed_teams" in result["dev"]
    assert "frequent_confusions" not in result["held_out"] and "missed_teams" not in result["held_out"]
    report = "\n".join(format_caller_report(result))
    assert "independent caller set" in report and "out of domain declined" in report
    assert "development part" in report and "held-out part" in report and "key fact" in report
    assert "mot de passe ne marche plus" not in report


def test_parts_and_facts_are_read(knowledge, tmp_path):
    (tmp_path / "part_a.yaml").write_text(
        "utterances:\n"
        "  - {text: 'quand dois-je déclarer', type: echeances_declaration, kinds: [short], fact: 'le 31 janvier'}\n"
        "  - {text: 'le taux pour la vente', type: taux_cotisations_micro, kinds: [short], fact: ['12,3 %', '12.3']}\n",
        "utf-8")
    (tmp_path / "part_z.yaml").write_text(
        "utterances:\n  - {text: 'la météo demain', type: null, kinds: [out_of_domain]}\n", "utf-8")
    items = load_callers(knowledge, tmp_path)
    assert [(u.part, u.fact) for u in items] == [
        ("part_a", ("le 31 janvier",)), ("part_a", ("12,3 %", "12.3")), ("part_z", ())]
    (tmp_path / "part_z.yaml").write_text(
        "utterances:\n  - {text: 'la météo', type: null, kinds: [out_of_domain], fact: [3]}\n", "utf-8")
    with pytest.raises(DataError, match="fact"):
        load_callers(knowledge, tmp_path)


def test_a_key_fact_is_found_in_the_normalised_reply():
    said = ["Vous déclarez avant le 31 Janvier.", "Le taux est de 12,3 % du chiffre d'affaires."]
    assert has_fact(("le 31 janvier",), said)
    assert has_fact(("nope", "12,3 %"), said)           # any of the wordings
    assert has_fact(("CHIFFRE D'AFFAIRES",), said)      # case, accents and punctuation aside
    assert not has_fact(("le 3 janvier",), said)        # whole words: 3 is not 31
    assert not has_fact(("le 15 mars",), said)

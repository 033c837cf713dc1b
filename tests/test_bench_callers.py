"""The independent caller set (flows/data/bench_callers/) and its bench: the data is sound,
written apart from the training phrasings, and goes through the real router and dialogue."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from bot.bench_callers import KINDS, CallerUtterance, format_caller_report, load_callers, run_caller_bench
from flows.knowledge import load_knowledge
from flows.router import IntentRouter, RouterSettings


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


def test_the_bench_runs_through_the_real_router_and_dialogue(knowledge, callers, tmp_path_factory):
    router = IntentRouter(knowledge, RouterSettings(), tmp_path_factory.mktemp("router"))
    sample = [u for u in callers if "short" in u.kinds][:6] + [u for u in callers if "out_of_domain" in u.kinds][:3]
    sample.append(CallerUtterance("euh je voudrais parler à un conseiller s'il vous plaît", None, ("human",)))
    result = run_caller_bench(knowledge, router, sample)
    assert result["utterances"] == len(sample) and result["in_domain"] == 6
    assert 0.0 <= result["team_accuracy"] <= 1.0 and 0.0 <= result["out_of_domain_declined"] <= 1.0
    assert result["human_requests_handed_over"] == 1.0   # the keyword rule: always a human
    report = "\n".join(format_caller_report(result))
    assert "independent caller set" in report and "out of domain declined" in report

"""The fallback's generative backends on a real model: the packaged Qwen2.5-Coder-0.5B
through llama.cpp's OpenAI-compatible server (the `openai` backend), and in-process (the
`llama_cpp` backend). A small model invents figures: whatever it generates, nothing the
guard should stop reaches the caller."""

from __future__ import annotations

import pytest

from bot.config import ROOT
from flows.engine import Keywords
from flows.fallback import Fallback, FallbackSettings, Guard
from flows.fallback.openai_chat import OpenAIChatBackend
from flows.knowledge import load_knowledge
from flows.retrieval import Retriever
from tests.llm_server import MODEL, llm_server, require_llm

pytestmark = [pytest.mark.slow, pytest.mark.cpu]   # the LLM generates on the CPU

QUESTIONS = [
    "est-ce vrai qu'un notaire, un avocat ou un expert-comptable peut accompagner une vente",
    "combien de temps elle est valable l'attestation de vigilance que mon client me demande",
]
HOLDING_OR_VERBATIM = ("Je cherche l'information", "Je n'ai pas de réponse toute prête", "Je préfère vous lire",
                       "Source :")


@pytest.fixture(scope="module")
def parts():
    knowledge = load_knowledge()
    return knowledge, Retriever(knowledge, ROOT / "var" / "router"), Guard(Keywords())


async def _check_answers(fallback: Fallback, guard: Guard) -> list:
    answers = []
    for question in QUESTIONS:
        answer = await fallback.answer(question, session_id="llm-test")
        assert answer is not None and answer.found, question
        clauses = [c async for c in answer.clauses()]
        assert clauses and answer.outcome in ("generated", "unknown", "guarded", "late"), (answer.outcome, answer.detail)
        allowed = guard.allowed_figures(r.passage.text for r in answer.found)
        for clause in clauses:
            # Every figure said is one of the passages', and nothing about the caller's own file.
            assert not guard.unsupported_figures(clause, allowed), (clause, answer.outcome)
            assert not guard.claims_personal(clause), clause
        generated = [c for c in clauses if not c.startswith(HOLDING_OR_VERBATIM)]
        if answer.outcome == "generated":
            assert generated and any(w in " ".join(generated).lower() for w in (" vous ", " le ", " la ", " de ", " un ", " une "))
        answers.append(answer)
    return answers


async def test_openai_backend_against_a_real_llama_cpp_server(parts):
    require_llm()
    knowledge, retriever, guard = parts
    with llm_server() as url:
        backend = OpenAIChatBackend(url, MODEL)
        fallback = Fallback(FallbackSettings(backend="openai", base_url=url, model=MODEL), knowledge, retriever,
                            guard, backend)
        try:
            answers = await _check_answers(fallback, guard)
        finally:
            await backend.close()
    # The server answered (not only the passage read after a failure).
    assert any(a.outcome in ("generated", "unknown", "guarded") for a in answers), [a.record() for a in answers]


async def test_llama_cpp_backend_in_process(parts):
    path = require_llm()
    from flows.fallback.llama_local import LlamaCppBackend
    from models.llm_server import disable_weight_repacking

    knowledge, retriever, guard = parts
    disable_weight_repacking()
    backend = LlamaCppBackend(path, threads=2)
    await backend.load()
    fallback = Fallback(FallbackSettings(backend="llama_cpp"), knowledge, retriever, guard, backend)
    answers = await _check_answers(fallback, guard)
    assert any(a.outcome in ("generated", "unknown", "guarded") for a in answers), [a.record() for a in answers]
    await backend.close()

"""The fallback: a question the router could not place, answered from the knowledge base
(retrieval), by the configured backend, within the guard's limits.

- Nothing relevant enough is found: no answer (the conversation says so and offers a human).
- Prompt injection: declined politely before any backend sees it.
- `extractive`: the best passage, shortened for the ear, with its source.
- A generative backend gets the passages and the question, never the caller's identity or
  slots; its text is cut into sentences, each checked before it is said (a figure that is
  not in the passages, or a claim about the caller's own file, stops the generation: the
  passage itself is read instead). The first token late: a holding phrase at
  `hold_after_s`, the passage itself at `give_up_after_s`. A backend error never ends the
  call: the passage is read instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from flows.fallback.base import Backend, BackendError
from flows.fallback.extractive import extract, spoken_source
from flows.fallback.guard import Guard
from flows.knowledge import DATA_DIR, Knowledge
from flows.lexical import normalize
from flows.retrieval import Retrieved, Retriever

log = logging.getLogger("callbot.flows.fallback")

BACKENDS = ("extractive", "openai", "llama_cpp")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
IDLE_TOKEN_S = 5.0      # a stream silent this long mid-answer is taken as dropped
# The model saying it has no answer in the passages (as the system prompt asks it to).
_UNKNOWN = re.compile(r"\b(je n ai pas|nous n avons pas|je ne dispose pas de) (cette|d|l|les|ces) ?(information|reponse|element)")


@dataclass(frozen=True)
class FallbackSettings:
    backend: str = "extractive"
    # openai: any OpenAI-compatible server. The key is read from CALLBOT_FALLBACK_API_KEY.
    base_url: str = ""
    model: str = ""
    api_key: str = field(default="", repr=False)
    # llama_cpp: a GGUF path, or a packaged model name (models/llm.py).
    gguf: str = "qwen-0.5b"
    max_tokens: int = 160
    temperature: float = 0.1
    hold_after_s: float = 1.5
    give_up_after_s: float = 5.0
    passages: int = 3
    # Passages given to a generative backend: the prompt it must read before its first
    # token grows with each (about 120 tokens); on a CPU that is seconds.
    prompt_passages: int = 1
    # A passage is an answer when it stands out of the knowledge base for this question
    # (hybrid z-score) and e5 finds it close in absolute terms: measured on the project's
    # phrasings against its out-of-scope sentences (flows/retrieval.py, README).
    min_score: float = 10.0
    min_semantic: float = 0.88
    min_semantic_out_of_scope: float = 0.95

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"fallback backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.backend == "openai" and not (self.base_url and self.model):
            raise ValueError("the openai fallback backend needs CALLBOT_FALLBACK_BASE_URL and CALLBOT_FALLBACK_MODEL")
        if not 1 <= self.prompt_passages <= self.passages:
            raise ValueError("fallback prompt_passages must be within 1..passages")
        if not 0 < self.hold_after_s <= self.give_up_after_s:
            raise ValueError("fallback hold_after_s must be > 0 and <= give_up_after_s")


@dataclass
class FallbackAnswer:
    """One answer on its way out. `clauses()` yields what is said; meanwhile `outcome` says
    how it went: declined, extractive, generated, unknown (the model found no answer in the
    passages), guarded (the guard stopped the generated text), late (no first token in
    time), error (the backend failed)."""

    question: str
    found: list[Retrieved]
    backend: str
    outcome: str = "extractive"
    said: list[str] = field(default_factory=list)
    first_clause_s: float | None = None   # from the question to the first clause
    used: int = 1                         # passages read, or given to the model
    detail: str = ""
    _clauses: AsyncIterator[str] | None = None

    @property
    def verbatim(self) -> bool:
        """The caller heard a passage as it is written (nearest text, maybe not the answer)."""
        return self.outcome in ("extractive", "late", "error", "guarded")

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(r.passage.source for r in self.found))

    @property
    def passage_ids(self) -> list[str]:
        return [r.passage.id for r in self.found]

    def record(self) -> dict:
        """What the call record keeps: which passages the answer came from (those read or
        given to the model), the others retrieved, and how it went."""
        return {"backend": self.backend, "outcome": self.outcome, "passages": self.passage_ids[:self.used],
                "retrieved": [[r.passage.id, round(r.score, 2)] for r in self.found], "detail": self.detail[:200]}

    async def clauses(self) -> AsyncIterator[str]:
        started = time.monotonic()
        assert self._clauses is not None
        async for clause in self._clauses:
            if self.first_clause_s is None:
                self.first_clause_s = time.monotonic() - started
            self.said.append(clause)
            yield clause


class Fallback:
    def __init__(self, settings: FallbackSettings, knowledge: Knowledge, retriever: Retriever, guard: Guard,
                 backend: Backend | None = None, prompt_path: Path = DATA_DIR / "llm.yaml") -> None:
        self.settings = settings
        self.retriever = retriever
        self.guard = guard
        self.backend = backend
        self._texts = knowledge.prompts["fallback"]
        prompt = yaml.safe_load(prompt_path.read_text("utf-8"))
        self._system, self._user = str(prompt["system"]), str(prompt["user"])

    @property
    def name(self) -> str:
        return self.backend.name if self.backend is not None else "extractive"

    def grounded(self, found: list[Retrieved], out_of_scope: float = 0.0) -> list[Retrieved]:
        """The passages an answer may rest on (empty: nothing relevant enough). The router
        finding the words outside the Urssaf's business (`out_of_scope`, its calibrated
        probability) asks for a stronger match: both signals must agree to answer."""
        s = self.settings
        min_semantic = s.min_semantic_out_of_scope if out_of_scope >= 0.5 else s.min_semantic
        if not found or found[0].score < s.min_score or found[0].semantic < min_semantic:
            return []
        return [r for r in found if r.score >= s.min_score / 2]

    async def answer(self, question: str, *, session_id: str, out_of_scope: float = 0.0) -> FallbackAnswer | None:
        """An answer from the knowledge base; a polite refusal for an injection attempt or a
        request outside the Urssaf's business; None when the knowledge base holds nothing
        relevant enough."""
        if self.guard.is_injection(question):
            log.info("session %s: fallback declined a prompt injection", session_id)
            return self._declined(question)
        found = self.grounded(await asyncio.to_thread(self.retriever.search, question, self.settings.passages),
                              out_of_scope)
        if not found and out_of_scope >= 0.5:
            return self._declined(question)
        if not found:
            return None
        log.info("session %s: fallback (%s) on passages %s", session_id, self.name, [r.passage.id for r in found])
        answer = FallbackAnswer(question, found, self.name)
        answer._clauses = self._extractive(answer) if self.backend is None else self._generated(answer)
        return answer

    def _declined(self, question: str) -> FallbackAnswer:
        answer = FallbackAnswer(question, [], self.name, outcome="declined")
        answer._clauses = _each([self._texts["declined"]])
        return answer

    def _extract_text(self, answer: FallbackAnswer) -> str:
        best = answer.found[0]
        return self._texts["extract"].format(source=spoken_source(best.passage.source), text=extract(best))

    async def _extractive(self, answer: FallbackAnswer) -> AsyncIterator[str]:
        yield self._extract_text(answer)

    def messages(self, question: str, found: list[Retrieved]) -> list[dict[str, str]]:
        passages = "\n".join(f"[{i}] {r.passage.title} : {r.passage.text}" for i, r in enumerate(found, 1))
        return [{"role": "system", "content": self._system},
                {"role": "user", "content": self._user.format(passages=passages, question=question)}]

    async def _generated(self, answer: FallbackAnswer) -> AsyncIterator[str]:
        assert self.backend is not None
        s = self.settings
        given = answer.found[:s.prompt_passages]
        answer.used = len(given)
        allowed = self.guard.allowed_figures(r.passage.text for r in given)
        tokens = self.backend.stream(self.messages(answer.question, given), max_tokens=s.max_tokens,
                                     temperature=s.temperature)
        spoken = 0
        first: asyncio.Future | None = None
        try:
            first = asyncio.ensure_future(anext(tokens))
            done, _ = await asyncio.wait({first}, timeout=s.hold_after_s)
            if not done:
                yield self._texts["holding"]
                done, _ = await asyncio.wait({first}, timeout=s.give_up_after_s - s.hold_after_s)
            if not done:
                answer.outcome, answer.detail = "late", f"no first token after {s.give_up_after_s} s"
                yield self._extract_text(answer)
                return
            async for sentence in _sentences(first.result(), tokens):
                problem = self._problem(sentence, allowed)
                if problem:
                    answer.outcome, answer.detail = "guarded", problem
                    log.warning("fallback guard: %s", problem)
                    yield self._texts["replaced"]
                    yield self._extract_text(answer)
                    return
                spoken += 1
                yield sentence
            if not spoken:
                raise BackendError("empty answer")
            if _UNKNOWN.search(normalize(" ".join(answer.said))):
                answer.outcome = "unknown"
                return
            answer.outcome = "generated"
            yield self._texts["source"].format(source=spoken_source(answer.found[0].passage.source))
        except (BackendError, TimeoutError, StopAsyncIteration) as e:
            answer.outcome, answer.detail = "error", f"{type(e).__name__}: {e}"
            log.warning("fallback backend %s failed: %s", self.name, answer.detail)
            if spoken:
                yield self._texts["replaced"]
            yield self._extract_text(answer)
        finally:
            if first is not None and not first.done():
                first.cancel()
                with contextlib.suppress(BaseException):
                    await first  # the generator cannot be closed while its next piece is awaited
            await tokens.aclose()

    def _problem(self, sentence: str, allowed: set[str]) -> str:
        unsupported = self.guard.unsupported_figures(sentence, allowed)
        if unsupported:
            return f"figures not in the passages: {', '.join(sorted(unsupported))}"
        if self.guard.claims_personal(sentence):
            return "a claim about the caller's own file"
        return ""


async def _sentences(first: str, tokens: AsyncIterator[str]) -> AsyncIterator[str]:
    """The generated text cut into sentences as the pieces come, the unfinished end last; a
    stream silent for IDLE_TOKEN_S mid-answer raises TimeoutError."""
    buffer, piece = "", first
    while piece is not None:
        buffer += piece
        *complete, buffer = _SENTENCE_END.split(buffer)
        for sentence in complete:
            if sentence.strip():
                yield sentence.strip()
        try:
            piece = await asyncio.wait_for(anext(tokens), IDLE_TOKEN_S)
        except StopAsyncIteration:
            piece = None
    if buffer.strip():
        yield buffer.strip()


async def _each(texts: list[str]) -> AsyncIterator[str]:
    for t in texts:
        yield t
